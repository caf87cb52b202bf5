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


# --- begin: ONNX importer fixtures (tests/test_nn_onnx.py) ---------------------------------
# The real MobileNetV3 text-direction classifier of PaddleOCR, shipped inside the
# rapidocr-onnxruntime wheel. The wheel is taken from the package registry with pip (only
# when not cached) and the model read out of it; the package itself is not installed.
RAPIDOCR_VERSION = "1.4.4"
RAPIDOCR_CLS_MEMBER = "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"
RAPIDOCR_CLS_SHA256 = "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"


@pytest.fixture(scope="session")
def ppocr_cls_model_path():
    """Path of ch_ppocr_mobile_v2.0_cls_infer.onnx (verified by SHA-256); fails, never skips."""
    import hashlib
    import pathlib
    import subprocess
    import sys
    import zipfile

    cache = pathlib.Path.home() / ".cache" / "keensight" / "test-fixtures"
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / "ch_ppocr_mobile_v2.0_cls_infer.onnx"
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == RAPIDOCR_CLS_SHA256:
        return target
    wheels = sorted(cache.glob(f"rapidocr_onnxruntime-{RAPIDOCR_VERSION}-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               f"rapidocr-onnxruntime=={RAPIDOCR_VERSION}", "-d", str(cache)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        wheels = sorted(cache.glob(f"rapidocr_onnxruntime-{RAPIDOCR_VERSION}-*.whl"))
        if proc.returncode != 0 or not wheels:
            pytest.fail(f"could not download the rapidocr-onnxruntime=={RAPIDOCR_VERSION} wheel with "
                        f"{' '.join(cmd)!r} (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    with zipfile.ZipFile(wheels[-1]) as zf:
        data = zf.read(RAPIDOCR_CLS_MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != RAPIDOCR_CLS_SHA256:
        pytest.fail(f"{RAPIDOCR_CLS_MEMBER} in {wheels[-1].name} has SHA-256 {digest}, expected "
                    f"{RAPIDOCR_CLS_SHA256}")
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(target)  # atomic: a half-written file is never taken for the model
    return target
# --- end: ONNX importer fixtures -----------------------------------------------------------
