"""The C++ kernel test (tests/cpp/kernel_test.cpp), built with CMake and run from pytest.

It calls every entry of every area's kernel table at every level this CPU has against
the scalar entry (lengths 0..48, misaligned pointers, odd strides, guard elements after
each output) and checks the core's TensorView validation; it exits nonzero and names
the kernel, level and length of every mismatch.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    """A build tool from PATH, else from its pip package (the [test] extra installs both)."""
    found = shutil.which(name)
    if found:
        return found
    module = __import__(name)
    bin_dir = Path(module.CMAKE_BIN_DIR if name == "cmake" else module.BIN_DIR)
    exe = bin_dir / (name + (".exe" if sys.platform == "win32" else ""))
    assert exe.is_file(), f"{name} is a test dependency (pip install '.[test]')"
    return str(exe)


def build_kernel_test(build: Path) -> Path:
    cmake = _tool("cmake")
    configure = [cmake, "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                 "-DKEENSIGHT_BUILD_TESTS=ON", "-DKEENSIGHT_BUILD_PYTHON=OFF", "-DKEENSIGHT_INSTALL_CPP=OFF",
                 "-DKEENSIGHT_USE_OPENMP=OFF"]
    try:
        configure += ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={_tool('ninja')}"]
    except (ImportError, AssertionError):
        pass  # the platform's default generator
    env = dict(os.environ)
    for step in (configure, [cmake, "--build", str(build), "--target", "kernel_test", "--config", "Release"]):
        done = subprocess.run(step, capture_output=True, text=True, env=env)
        assert done.returncode == 0, f"{' '.join(step)} failed:\n{done.stdout}\n{done.stderr}"
    for candidate in (build / "kernel_test", build / "Release" / "kernel_test.exe", build / "kernel_test.exe"):
        if candidate.is_file():
            return candidate
    raise AssertionError(f"kernel_test not found under {build}")


def test_every_kernel_table_entry_matches_scalar_at_every_level(tmp_path):
    exe = build_kernel_test(tmp_path / "build")
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    # Every level this CPU and build have was run, and each passed.
    import keensight
    info = keensight.cpu_info()
    levels = [name for name in info["levels"] if name in info["compiled_levels"]]
    assert lines[0].split()[1:] == levels
    for level in levels:
        assert f"{level:<17} ok" in lines, run.stdout
    checks = int(lines[-1].split()[0])
    assert checks > 100_000 * len(levels) and lines[-1].endswith(" 0 failures")
