"""The installed C++ package: another CMake project can find_package(keensight) and link it."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import keensight

HERE = Path(__file__).parent


def test_headers_and_cmake_package_are_installed():
    include = Path(keensight.get_include())
    assert (include / "keensight" / "core.hpp").is_file()
    assert (include / "keensight" / "filters.hpp").is_file()
    cmake_dir = Path(keensight.get_cmake_dir())
    assert (cmake_dir / "keensightConfig.cmake").is_file()
    assert (cmake_dir / "keensightConfigVersion.cmake").is_file()


def test_cpp_application_builds_and_runs(tmp_path):
    cmake = shutil.which("cmake")
    assert cmake, "cmake is a test dependency (pip install '.[test]') and must be on PATH"
    build = tmp_path / "build"
    configure = [cmake, "-S", str(HERE / "cpp_consumer"), "-B", str(build),
                 "-DCMAKE_BUILD_TYPE=Release", f"-Dkeensight_DIR={keensight.get_cmake_dir()}"]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    env = dict(os.environ)
    subprocess.run(configure, check=True, capture_output=True, text=True, env=env)
    subprocess.run([cmake, "--build", str(build)], check=True, capture_output=True, text=True, env=env)
    exe = build / "consumer"
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "worst=" in run.stdout
    assert "index_failures=0" in run.stdout, run.stdout
