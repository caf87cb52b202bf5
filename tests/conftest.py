"""Shared fixtures: run kernels at every SIMD level this machine supports."""
from __future__ import annotations

import os
import zlib

# scikit-learn's estimator checks include check_array_api_input, which runs only when
# SciPy's array-API mode is on; it must be set before SciPy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np
import pytest

import keensight
from keensight import _core

def available_isas():
    """Levels this CPU and build can run, lowest first (scalar always)."""
    info = keensight.cpu_info()
    return [name for name in info["levels"] if name in info["compiled_levels"]]


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
