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

LEVELS = ["scalar", "avx2", "avx2_vnni", "avx512", "avx512_vnni", "avx512_vpopcntdq"]
# The features each level needs (core.hpp); a level's chain is the levels whose
# features are a subset of its own.
LEVEL_FEATURES = {
    "scalar": set(),
    "avx2": {"avx2", "fma", "f16c", "popcnt"},
    "avx512": {"avx2", "fma", "f16c", "popcnt", "avx512f", "avx512bw", "avx512dq", "avx512vl"},
}
LEVEL_FEATURES["avx2_vnni"] = LEVEL_FEATURES["avx2"] | {"avxvnni"}
LEVEL_FEATURES["avx512_vnni"] = LEVEL_FEATURES["avx512"] | {"avx512vnni"}
LEVEL_FEATURES["avx512_vpopcntdq"] = LEVEL_FEATURES["avx512"] | {"avx512vpopcntdq"}


def chain(level: str) -> list[str]:
    return [m for m in LEVELS if LEVEL_FEATURES[m] <= LEVEL_FEATURES[level]]


def child(code: str, **env) -> dict:
    """Run Python code in a fresh interpreter with extra environment; return its JSON output."""
    import os
    e = dict(os.environ)
    e.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


INFO = "import json, keensight; print(json.dumps(keensight.cpu_info()))"


def usable(info: dict) -> list[str]:
    return [name for name in info["levels"] if name in info["compiled_levels"]]


def test_cpu_info_fields():
    info = ks.cpu_info()
    for key in ("arch", "features", "detected", "compiled", "active", "forced", "forced_valid", "openmp",
                "num_threads", "levels", "compiled_levels", "enabled_levels", "all_levels"):
        assert key in info
    assert all(isinstance(v, bool) for v in info["features"].values())
    for key in ("avxvnni", "avx512vnni", "avx512vpopcntdq", "avx2", "fma", "avx512f"):
        assert key in info["features"]
    assert info["all_levels"] == LEVELS
    for key in ("levels", "compiled_levels", "enabled_levels"):
        assert info[key][0] == "scalar" and info[key] == [name for name in LEVELS if name in info[key]]
    # A level is available exactly when the CPU has every feature it needs.
    features = {name for name, present in info["features"].items() if present}
    assert info["levels"] == [name for name in LEVELS if LEVEL_FEATURES[name] <= features]
    assert info["detected"] == info["levels"][-1] and info["compiled"] == info["compiled_levels"][-1]
    assert info["active"] == info["enabled_levels"][-1]
    assert set(info["enabled_levels"]) <= set(usable(info))


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
    # keensight's names are the compiler's (-mavxvnni); Linux spells some with "_".
    for ours, linux in [("avx2", "avx2"), ("fma", "fma"), ("avx512f", "avx512f"), ("avx512bw", "avx512bw"),
                        ("avx512vl", "avx512vl"), ("avxvnni", "avx_vnni"), ("avx512vnni", "avx512_vnni"),
                        ("avx512vpopcntdq", "avx512_vpopcntdq"), ("popcnt", "popcnt")]:
        assert info["features"][ours] == (linux in flags), ours


def test_start_up_enables_every_usable_level():
    info = child(INFO, KEENSIGHT_ISA="")
    assert info["enabled_levels"] == usable(info) and info["active"] == usable(info)[-1]


@pytest.mark.parametrize("level", LEVELS)
def test_keensight_isa_forces_every_level_name(level):
    """KEENSIGHT_ISA=<level> restricts the kernels to the level's chain; a level the
    CPU or build lacks is clamped to the best level of its chain that both have."""
    forced = child(INFO, KEENSIGHT_ISA=level.upper())
    assert forced["forced"] == level.upper() and forced["forced_valid"]
    have = usable(forced)
    clamped = [m for m in chain(level) if m in have][-1]
    assert forced["active"] == clamped
    if clamped == have[-1]:
        assert forced["enabled_levels"] == have  # the best level: nothing restricted
    else:
        assert forced["enabled_levels"] == [m for m in chain(clamped) if m in have]


def test_keensight_isa_unknown_names_warn_and_are_ignored():
    # "foo" or "AVX2" silently ran scalar.
    parent = ks.cpu_info()
    assert child(INFO, KEENSIGHT_ISA="Scalar")["active"] == "scalar"
    import os
    env = dict(os.environ, KEENSIGHT_ISA="foo")
    out = subprocess.run([sys.executable, "-c", INFO], env=env, capture_output=True, text=True, check=True)
    bogus = json.loads(out.stdout)
    assert bogus["forced"] == "foo" and not bogus["forced_valid"]
    assert bogus["active"] == usable(parent)[-1]  # ignored, not a silent fall to scalar
    assert bogus["enabled_levels"] == usable(parent)
    assert "KEENSIGHT_ISA='foo'" in out.stderr and "RuntimeWarning" in out.stderr
    assert all(repr(name) in out.stderr for name in LEVELS)


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
    info = ks.cpu_info()
    have = usable(info)
    try:
        assert _core.set_isa("scalar") == "scalar"
        assert ks.cpu_info()["active"] == "scalar" and ks.cpu_info()["enabled_levels"] == ["scalar"]
        for level in LEVELS:
            got = _core.set_isa(level)
            clamped = [m for m in chain(level) if m in have][-1]
            assert got == clamped == _core.active_isa() == ks.cpu_info()["active"]
            enabled = ks.cpu_info()["enabled_levels"]
            assert enabled == (have if clamped == have[-1] else [m for m in chain(clamped) if m in have])
            # set_isa(active_isa()) keeps what is enabled: the restore idiom of the tests.
            _core.set_isa(_core.active_isa())
            assert ks.cpu_info()["enabled_levels"] == enabled
        assert _core.set_isa("AVX2") == ("avx2" if "avx2" in have else "scalar")
        with pytest.raises(ValueError, match="isa: expected 'scalar', 'avx2', 'avx2_vnni'"):
            _core.set_isa("sse9")
    finally:
        _core.set_isa(before)
    assert ks.cpu_info()["enabled_levels"] == info["enabled_levels"]


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
