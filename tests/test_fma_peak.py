"""The private FMA-peak measurement (_core._fma_peak_gflops), the benchmarks' "% of peak"
denominator: which kernel each level runs, a finite positive figure at every level this CPU
has, and clear errors for bad arguments. (No assertion on speed: a timer on a shared machine
proves nothing.)"""
import math

import pytest

from keensight import _core

INFO = _core.cpu_info()
ALL_LEVELS = INFO["all_levels"]


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_every_level_runs_or_is_refused(level):
    if level in INFO["levels"]:
        gflops = _core._fma_peak_gflops(level, seconds=0.01)
        assert isinstance(gflops, float) and math.isfinite(gflops) and gflops > 0.0
    else:
        with pytest.raises(ValueError, match="cannot run"):
            _core._fma_peak_gflops(level, seconds=0.01)


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_kernel_follows_the_fallback_chain(level):
    name = _core._fma_peak_kernel(level)
    assert name.startswith("fma_peak_")
    # The kernel of a level is the one of the nearest registered level along its chain
    # (scalar <- avx2 <- avx512 <- its extensions), and says its ISA in its name.
    if level.startswith("avx512") and "avx512" in INFO["compiled_levels"]:
        assert name.endswith("_avx512")
    elif level.startswith("avx2") and "avx2" in INFO["compiled_levels"]:
        assert name.endswith("_avx2")
    elif level == "scalar":
        assert name.endswith("_scalar")


def test_default_is_the_active_level():
    assert _core._fma_peak_kernel() == _core._fma_peak_kernel(INFO["active"])
    assert _core._fma_peak_gflops(seconds=0.01) > 0.0


@pytest.mark.parametrize("seconds", [0.0, -1.0, 61.0, float("nan")])
def test_bad_seconds(seconds):
    with pytest.raises(ValueError, match="seconds"):
        _core._fma_peak_gflops(None, seconds=seconds)


def test_bad_level():
    with pytest.raises(ValueError, match="isa"):
        _core._fma_peak_gflops("sse9")
    with pytest.raises(TypeError, match="level"):
        _core._fma_peak_gflops(2)
    with pytest.raises(TypeError, match="level"):
        _core._fma_peak_kernel(2)
