"""The package's one softmax, one L2 normalisation and one SHA-256 (keensight._numeric,
keensight._files), against SciPy, the direct formulas and hashlib; and the callers that
must agree because they use them (classify and profile)."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from keensight._files import bytes_sha256, file_sha256
from keensight._numeric import l2_normalize, softmax

inf, nan = np.inf, np.nan


# ------------------------------------------------------------------------------------------
# softmax
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,axis", [((7,), -1), ((5, 1000), 1), ((5, 1000), 0), ((3, 4, 6), 1),
                                        ((2, 3, 4), -3), ((4, 1), 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_matches_scipy_and_the_formula(rng, shape, axis, dtype):
    scipy_special = pytest.importorskip("scipy.special")
    x = (rng.standard_normal(shape) * 10).astype(dtype)
    got = softmax(x, axis=axis)
    assert got.dtype == np.float64 and got.shape == x.shape
    ref = scipy_special.softmax(x.astype(np.float64), axis=axis)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-300)
    # the direct formula: small logits, so exp cannot overflow without the max shift
    x64 = x.astype(np.float64)
    e = np.exp(x64)
    np.testing.assert_allclose(got, e / e.sum(axis=axis, keepdims=True), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(got.sum(axis=axis), 1.0, rtol=1e-13)


def test_softmax_of_extreme_logits():
    # exp(1e30) overflows; with the max subtracted it is exp(0)
    got = softmax(np.array([[1e30, 0.0, -1e30], [-1e30, -1e30, -1e30], [1e30, 1e30, 0.0]]))
    np.testing.assert_array_equal(got, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]])
    big = np.float32(3e38)
    np.testing.assert_array_equal(softmax(np.array([big, -big], np.float32)), [1.0, 0.0])
    # a shift of the logits changes nothing, however far
    x = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(softmax(x + 1e6), softmax(x), rtol=1e-9)


def test_softmax_of_non_finite_logits():
    # -inf entries get 0 and the rest is the softmax of the finite entries
    np.testing.assert_allclose(softmax([1.0, -inf, 2.0]), np.r_[softmax([1.0, 2.0])[0], 0, softmax([1.0, 2.0])[1]])
    # +inf entries share the whole mass (the limit)
    np.testing.assert_array_equal(softmax([inf, 0.0, inf, -inf]), [0.5, 0, 0.5, 0])
    np.testing.assert_array_equal(softmax([inf, 1e308]), [1.0, 0.0])
    # NaN, or nothing but -inf: NaN throughout, row by row
    got = softmax(np.array([[nan, 1.0, 2.0], [-inf, -inf, -inf], [0.0, 0.0, nan], [nan, inf, 0], [0, 0, 0]]))
    assert np.isnan(got[:4]).all()
    np.testing.assert_array_equal(got[4], [1 / 3] * 3)
    # the input is not changed (the work is on a copy)
    x = np.array([[inf, 0.0]])
    softmax(x)
    np.testing.assert_array_equal(x, [[inf, 0.0]])


def test_softmax_shapes_dtypes_and_bad_arguments():
    assert softmax(np.zeros((3, 0))).shape == (3, 0)
    assert softmax(np.zeros((0, 5)), axis=1).shape == (0, 5)
    np.testing.assert_array_equal(softmax(np.array([0, 0], np.int64)), [0.5, 0.5])
    np.testing.assert_array_equal(softmax([True, True]), [0.5, 0.5])
    with pytest.raises(ValueError, match="x: expected at least one dimension"):
        softmax(1.0)
    with pytest.raises(ValueError, match="axis: 2 is out of range"):
        softmax(np.zeros((2, 2)), axis=2)
    with pytest.raises(TypeError, match="axis: expected an int"):
        softmax(np.zeros(2), axis=0.0)
    with pytest.raises(TypeError, match="x: expected a real numeric array"):
        softmax(np.zeros(2, complex))
    with pytest.raises(TypeError, match="x: expected a real numeric array"):
        softmax(["a", "b"])


def test_classify_and_profile_give_the_same_probabilities(rng):
    """Both turn logits into ImageNet probabilities with the one softmax: classify's per-class
    numbers summed per category are exactly profile's category masses."""
    from keensight import cli, profile

    # float32 network outputs with a wide range: subtracting the max in float32 (as classify
    # once did) and in float64 (as profile did) gave different numbers
    logits = (rng.standard_normal((6, 1000)) * 12 + rng.uniform(-50, 50, (6, 1))).astype(np.float32)
    probs = cli._class_probabilities(logits)
    np.testing.assert_array_equal(probs, softmax(logits.astype(np.float64), axis=1))
    mass = np.zeros((len(logits), len(profile.CATEGORIES)))
    np.add.at(mass.T, profile.class_categories(), probs.T)
    np.testing.assert_array_equal(profile.category_probabilities(logits), mass)
    best, confidence = profile.assign_categories(logits)
    np.testing.assert_array_equal(confidence, mass.max(axis=1))


# ------------------------------------------------------------------------------------------
# l2_normalize
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,axis", [((9,), 0), ((20, 1280), 1), ((20, 7), 0), ((3, 5, 4), 1),
                                        ((3, 5, 4), -1), ((6, 1), 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_l2_normalize_matches_the_formula(rng, shape, axis, dtype):
    x = (rng.standard_normal(shape) * rng.uniform(1e-3, 1e3)).astype(dtype)
    got = l2_normalize(x, axis=axis)
    assert got.dtype == dtype and got.shape == x.shape
    x64 = x.astype(np.float64)
    xl = x.astype(np.longdouble)  # 80-bit on x86: a reference finer than the float64 sum
    ref = xl / np.sqrt((xl * xl).sum(axis=axis, keepdims=True))
    # the division's rounding (and the norm's for float32), plus the float64 sum's error
    ulp = np.finfo(dtype).eps
    np.testing.assert_allclose(got, ref.astype(np.float64), rtol=2 * ulp + shape[axis] * 2e-16, atol=0)
    np.testing.assert_allclose(np.linalg.norm(got.astype(np.float64), axis=axis), 1.0, rtol=4 * ulp)
    # the input is not changed
    np.testing.assert_array_equal(x, x64.astype(dtype))


def test_l2_normalize_zero_tiny_huge_and_non_finite_vectors():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [inf, 1.0], [nan, 1.0], [-inf, inf],
                  [1e-200, 1e-200], [1e200, -1e200], [5e-324, 0.0], [1.7e308, 1.7e308]])
    got = l2_normalize(x)
    r = np.sqrt(0.5)
    np.testing.assert_array_equal(got[:2], [[0.6, 0.8], [0.0, 0.0]])  # a zero vector stays zero
    assert np.isnan(got[2:5]).all()  # no direction to keep: NaN throughout
    np.testing.assert_allclose(got[5:], [[r, r], [r, -r], [1, 0], [r, r]], rtol=1e-15)
    # float32: norms beyond float32's range and subnormal entries still give unit vectors
    f = l2_normalize(np.array([[3e38, 3e38], [1e-45, 0], [1e-30, 1e-30], [0, 0]], np.float32))
    assert f.dtype == np.float32
    np.testing.assert_allclose(f, [[r, r], [1, 0], [r, r], [0, 0]], rtol=1e-7)


def test_l2_normalize_eps():
    # eps > 0: PyTorch's rule x / max(||x||, eps)
    got = l2_normalize(np.array([[3.0, 4.0], [1e-13, 0.0], [0.0, 0.0]]), eps=1e-12)
    np.testing.assert_allclose(got, [[0.6, 0.8], [0.1, 0.0], [0.0, 0.0]], rtol=1e-15)
    # the default 0 makes every nonzero vector unit length
    np.testing.assert_allclose(l2_normalize(np.array([1e-13, 0.0])), [1.0, 0.0])
    for bad in (-1.0, nan, inf):
        with pytest.raises(ValueError, match="eps: expected a finite number >= 0"):
            l2_normalize(np.ones(2), eps=bad)
    with pytest.raises(TypeError, match="eps: expected a number"):
        l2_normalize(np.ones(2), eps="1e-12")


def test_l2_normalize_shapes_dtypes_and_bad_arguments():
    assert l2_normalize(np.zeros((0, 4), np.float32)).shape == (0, 4)
    assert l2_normalize(np.zeros((3, 0))).shape == (3, 0)
    assert l2_normalize(np.zeros((0, 3)), axis=0).shape == (0, 3)
    assert l2_normalize(np.array([3, 4], np.int64)).dtype == np.float64
    assert l2_normalize(np.array([3, 4], np.uint8)).dtype == np.float64
    assert l2_normalize(np.array([3, 4], np.float16)).dtype == np.float32
    np.testing.assert_allclose(l2_normalize([[3, 4]]), [[0.6, 0.8]])
    with pytest.raises(ValueError, match="x: expected at least one dimension"):
        l2_normalize(3.0)
    with pytest.raises(ValueError, match="axis: -3 is out of range"):
        l2_normalize(np.zeros((2, 2)), axis=-3)
    with pytest.raises(TypeError, match="x: expected a real numeric array"):
        l2_normalize(np.ones(2, complex))


def test_l2_normalize_callers_use_it(rng):
    """The set aggregation and the extractor's normalisation are this function."""
    from keensight.search import aggregate

    x = rng.standard_normal((6, 5)).astype(np.float32)
    x[4:] = 0
    ids, pooled = aggregate(x, [0, 0, 1, 1, 2, 2])
    mean = np.stack([x[:2].mean(0, dtype=np.float64), x[2:4].mean(0, dtype=np.float64), np.zeros(5)])
    np.testing.assert_array_equal(pooled, l2_normalize(mean).astype(np.float32))


# ------------------------------------------------------------------------------------------
# SHA-256
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 4095, 4096, 4097, 3 * 4096])
def test_sha256_of_files_and_bytes(tmp_path, rng, n):
    data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert bytes_sha256(data) == want and bytes_sha256(memoryview(data)) == want
    assert file_sha256(path) == want
    assert file_sha256(str(path), chunk_bytes=4096) == want  # chunk boundaries do not matter
    assert file_sha256(path, chunk_bytes=1) == want if n < 5000 else True


def test_sha256_known_value_and_bad_arguments(tmp_path):
    assert bytes_sha256(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2
    with pytest.raises(ValueError, match="chunk_bytes"):
        file_sha256(tmp_path, chunk_bytes=0)
    with pytest.raises(FileNotFoundError):
        file_sha256(tmp_path / "missing")
