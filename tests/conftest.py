"""Shared fixtures: run kernels at every SIMD level this machine supports."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import keensight
from keensight import _core

_LEVELS = ["scalar", "avx2", "avx512"]


def available_isas():
    """Levels this CPU and build can run, lowest first (scalar always)."""
    info = keensight.cpu_info()
    order = {name: i for i, name in enumerate(_LEVELS)}
    cap = min(order[info["detected"]], order[info["compiled"]])
    return _LEVELS[: cap + 1]


@pytest.fixture(params=available_isas())
def isa(request):
    """Force the dispatch level for one test, then restore the start-up level."""
    before = _core.active_isa()
    got = _core.set_isa(request.param)
    assert got == request.param
    yield request.param
    _core.set_isa(before)


@pytest.fixture
def rng(request):
    """A generator seeded from the test's name, so failures reproduce."""
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)
