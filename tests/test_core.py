"""Core facilities: CPU detection and the ISA level, KEENSIGHT_ISA, threads, GIL release."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import keensight as ks
from keensight import _core

ORDER = {"scalar": 0, "avx2": 1, "avx512": 2}


def child(code: str, **env) -> dict:
    """Run Python code in a fresh interpreter with extra environment; return its JSON output."""
    import os
    e = dict(os.environ)
    e.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


INFO = "import json, keensight; print(json.dumps(keensight.cpu_info()))"


def test_cpu_info_fields():
    info = ks.cpu_info()
    for key in ("arch", "features", "detected", "compiled", "active", "forced", "openmp", "num_threads"):
        assert key in info
    assert all(isinstance(v, bool) for v in info["features"].values())
    assert ORDER[info["active"]] <= min(ORDER[info["detected"]], ORDER[info["compiled"]])
    if info["detected"] != "scalar":
        assert info["features"]["avx2"] and info["features"]["fma"]


def test_cpu_info_agrees_with_proc_cpuinfo():
    path = Path("/proc/cpuinfo")
    info = ks.cpu_info()
    if info["arch"] != "x86_64" or not path.exists():
        assert info["detected"] == "scalar" or info["arch"] == "x86_64"
        return
    flags = set()
    for line in path.read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    assert info["features"]["avx2"] == ("avx2" in flags)
    assert info["features"]["fma"] == ("fma" in flags)
    assert info["features"]["avx512f"] == ("avx512f" in flags)


def test_keensight_isa_forces_lower_level():
    parent = ks.cpu_info()
    forced = child(INFO, KEENSIGHT_ISA="scalar")
    assert forced["active"] == "scalar" and forced["forced"] == "scalar"
    if ORDER[min(parent["detected"], parent["compiled"], key=ORDER.get)] >= 1:
        assert child(INFO, KEENSIGHT_ISA="avx2")["active"] == "avx2"
    high = child(INFO, KEENSIGHT_ISA="avx512")
    assert ORDER[high["active"]] <= min(ORDER[parent["detected"]], ORDER[parent["compiled"]])


def test_keensight_isa_names_ignore_case_and_unknown_names_warn():
    # "foo" or "AVX2" silently ran scalar.
    parent = ks.cpu_info()
    best = min(parent["detected"], parent["compiled"], key=ORDER.get)
    if ORDER[best] >= 1:
        upper = child(INFO, KEENSIGHT_ISA="AVX2")
        assert upper["active"] == "avx2" and upper["forced_valid"]
    assert child(INFO, KEENSIGHT_ISA="Scalar")["active"] == "scalar"
    import os
    env = dict(os.environ, KEENSIGHT_ISA="foo")
    out = subprocess.run([sys.executable, "-c", INFO], env=env, capture_output=True, text=True, check=True)
    bogus = json.loads(out.stdout)
    assert bogus["forced"] == "foo" and not bogus["forced_valid"]
    assert bogus["active"] == best  # ignored, not a silent fall to scalar
    assert "KEENSIGHT_ISA='foo'" in out.stderr and "'scalar', 'avx2' or 'avx512'" in out.stderr


def test_scalar_process_gives_same_results(tmp_path):
    rng = np.random.default_rng(7)
    img = rng.uniform(0, 255, (61, 83)).astype(np.float32)
    np.save(tmp_path / "img.npy", img)
    code = ("import json, numpy as np, keensight as ks;"
            f"a = np.load(r'{tmp_path / 'img.npy'}');"
            f"np.save(r'{tmp_path / 'out.npy'}', ks.gaussian_blur(a, 7, 1.6));"
            "print(json.dumps(ks.cpu_info()))")
    assert child(code, KEENSIGHT_ISA="scalar")["active"] == "scalar"
    scalar = np.load(tmp_path / "out.npy")
    np.testing.assert_allclose(ks.gaussian_blur(img, 7, 1.6), scalar, rtol=1e-5, atol=1e-4)


def test_set_isa():
    before = _core.active_isa()
    try:
        assert _core.set_isa("scalar") == "scalar"
        assert ks.cpu_info()["active"] == "scalar"
        top = _core.set_isa("avx512")
        info = ks.cpu_info()
        assert ORDER[top] == min(ORDER[info["detected"]], ORDER[info["compiled"]])
        with pytest.raises(ValueError, match="isa"):
            _core.set_isa("sse9")
    finally:
        _core.set_isa(before)


def test_threads():
    try:
        ks.set_num_threads(1)
        assert ks.get_num_threads() == 1
        ks.set_num_threads(2)
        assert ks.get_num_threads() == 2
        ks.set_num_threads(0)
        assert ks.get_num_threads() >= 1
        for bad in (1.5, "2", True, None):
            with pytest.raises(TypeError, match="int"):
                ks.set_num_threads(bad)
        # 2**40 gave pybind11's "incompatible function arguments" dump.
        for bad in (257, 10 ** 4, 2 ** 31, 2 ** 40):
            with pytest.raises(ValueError, match=r"n: expected an int <= 256"):
                ks.set_num_threads(bad)
        ks.set_num_threads(256)
        assert ks.get_num_threads() == 256
        ks.set_num_threads(-2 ** 40)  # any n <= 0: the default
        assert 1 <= ks.get_num_threads() < 256
    finally:
        ks.set_num_threads(0)


def test_concurrent_calls_match_serial():
    rng = np.random.default_rng(1)
    imgs = [rng.uniform(0, 1, (300, 400)).astype(np.float32) for _ in range(4)]
    k = rng.standard_normal((9, 9)).astype(np.float32)
    serial = [ks.filter2d(a, k) for a in imgs]
    results = [None] * 4

    def work(i):
        results[i] = ks.filter2d(imgs[i], k)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(results, serial):
        np.testing.assert_array_equal(a, b)


def test_kernels_release_the_gil():
    """Another Python thread runs while this one is inside a C++ kernel.

    With a switch interval far longer than the call, a thread that kept the GIL
    would give the counter no chance to run between `before` and `after`.
    """
    img = np.random.default_rng(2).uniform(0, 1, (1000, 1000)).astype(np.float32)
    k = np.ones((9, 9), np.float32)
    go, done = threading.Event(), threading.Event()
    ticks = []

    def counter():
        go.wait()
        while not done.is_set():
            ticks.append(1)

    t = threading.Thread(target=counter)
    t.start()
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.5)
    try:
        ks.set_num_threads(1)
        go.set()
        before = len(ticks)
        # ~0.1 s of work: long enough for the OS to schedule the counter even on a busy machine
        ks.filter_bank(img, [k] * 8, method="direct")
        after = len(ticks)
    finally:
        done.set()
        sys.setswitchinterval(old)
        t.join()
        ks.set_num_threads(0)
    assert after > before


def test_version_matches_pyproject():
    import tomllib
    meta = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert ks.__version__ == meta["project"]["version"]


@pytest.mark.parametrize("module", ["keensight.search._flat", "keensight.search._pca", "keensight.search._sequential",
                                    "keensight.search._classifiers", "keensight.search._hnsw",
                                    "keensight.datasets", "keensight.profile", "keensight.extract"])
def test_module_doctests(module, tmp_path, monkeypatch):
    """The examples in the docstrings run (extract's converts the default model into a temp cache)."""
    import doctest
    import importlib

    monkeypatch.setenv("KEENSIGHT_CACHE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    failures, tried = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert failures == 0 and tried > 0


def test_search_area_is_reachable_lazily():
    import keensight

    assert keensight.search.SequentialClassifier.__name__ == "SequentialClassifier"
    with pytest.raises(AttributeError):
        keensight.no_such_area
