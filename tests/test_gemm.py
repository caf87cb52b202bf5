"""The core GEMM driver (cpp/src/core/gemm.hpp) through its private bindings:
every tile of every type this CPU runs against exact NumPy references
(int64 products for u8 x s8 and for ±1 matrices), the fused epilogue, and
the checks on bad input."""
from __future__ import annotations

import numpy as np
import pytest

from keensight import _core

U8S8 = _core._gemm_kernels("u8s8")
XNOR = _core._gemm_kernels("xnor")
F32 = _core._gemm_kernels("f32")
# m, n, k: tiles are 4..12 rows by 8..32 columns; slices 128..256 packed elements.
SHAPES = [(1, 1, 1), (1, 1, 0), (5, 3, 0), (7, 9, 1), (6, 16, 4), (13, 33, 5), (12, 32, 64), (25, 47, 131),
          (50, 70, 1030), (97, 5, 300), (3, 130, 77)]
# The shapes at which the 3 MiB B blocks and 48-row A blocks split the work.
LARGE = [(101, 2100, 500), (130, 40, 4100)]
MAX_K_U8S8 = 2**31 // (255 * 128)


def best_enabled_kernel(names):
    """The tile the dispatch must pick now: of the tiles this build and CPU have (named
    op_tile_level), the one of the best level among the enabled ones."""
    info = _core.cpu_info()
    level = {name: name.split("_", 2)[2] for name in names}  # "u8s8_6x16_avx2_vnni" -> "avx2_vnni"
    usable = [name for name in names if level[name] in info["enabled_levels"]]
    return max(usable, key=lambda name: info["all_levels"].index(level[name]))


def u8s8_reference(a, b):
    return a.astype(np.int64) @ b.astype(np.int64).T


def xnor_reference(bits_a, bits_b):
    """The ±1 matrices (bit 1 -> +1, bit 0 -> -1) multiplied in int64."""
    return (2 * bits_a.astype(np.int64) - 1) @ (2 * bits_b.astype(np.int64) - 1).T


def pack(bits):
    return np.packbits(bits.astype(np.uint8), axis=1)


def test_kernel_lists_match_the_cpu():
    features = _core.cpu_info()["features"]
    assert U8S8[0] == "u8s8_6x16_scalar" and XNOR[0] == "xnor_6x16_scalar" and F32[0] == "f32_6x16_scalar"
    assert ("u8s8_12x32_avx512_vnni" in U8S8) <= features["avx512vnni"]
    assert ("u8s8_6x16_avx2_vnni" in U8S8) <= features["avxvnni"]
    assert ("xnor_8x16_avx512_vpopcntdq" in XNOR) <= features["avx512vpopcntdq"]
    assert ("u8s8_6x16_avx2" in U8S8) <= features["avx2"]


# ---------------------------------------------------------------------------
# u8 x s8 -> s32


@pytest.mark.parametrize("kernel", U8S8)
@pytest.mark.parametrize("shape", SHAPES + LARGE)
def test_u8s8_matches_int64_reference(kernel, shape, rng):
    m, n, k = shape
    a = rng.integers(0, 256, (m, k), dtype=np.uint8)
    b = rng.integers(-128, 128, (n, k), dtype=np.int8)
    c = _core._gemm_u8s8(a, b, kernel=kernel)
    assert c.dtype == np.int32 and c.shape == (m, n)
    np.testing.assert_array_equal(c, u8s8_reference(a, b))


@pytest.mark.parametrize("kernel", U8S8)
@pytest.mark.parametrize("weight", [-128, 127, -1])
def test_u8s8_extreme_values_do_not_saturate(kernel, weight):
    # vpmaddubsw would saturate 255 * -128 * 2 to -32768 in int16.
    k = 4099
    a = np.full((7, k), 255, np.uint8)
    b = np.full((19, k), weight, np.int8)
    b[::2, ::3] = -128 if weight != -128 else 127  # mixed signs in every 4-byte group
    np.testing.assert_array_equal(_core._gemm_u8s8(a, b, kernel=kernel), u8s8_reference(a, b))


@pytest.mark.parametrize("kernel", U8S8)
def test_u8s8_longest_k_is_exact(kernel):
    a = np.full((2, MAX_K_U8S8), 255, np.uint8)
    b = np.full((3, MAX_K_U8S8), -128, np.int8)
    b[1] = 127
    c = _core._gemm_u8s8(a, b, kernel=kernel)
    np.testing.assert_array_equal(c, u8s8_reference(a, b))
    assert c.min() == -255 * 128 * MAX_K_U8S8


def test_u8s8_k_beyond_int32_is_refused():
    a = np.zeros((1, MAX_K_U8S8 + 1), np.uint8)
    with pytest.raises(ValueError, match="at most"):
        _core._gemm_u8s8(a, a.view(np.int8))


def test_u8s8_at_every_isa_level(isa, rng):
    a = rng.integers(0, 256, (29, 200), dtype=np.uint8)
    b = rng.integers(-128, 128, (45, 200), dtype=np.int8)
    np.testing.assert_array_equal(_core._gemm_u8s8(a, b), u8s8_reference(a, b))
    assert _core._gemm_active_kernel("u8s8") == best_enabled_kernel(U8S8)


# ---------------------------------------------------------------------------
# XNOR: bits x bits -> ±1 dot products


@pytest.mark.parametrize("kernel", XNOR)
@pytest.mark.parametrize("shape", SHAPES + [(9, 17, 63), (9, 17, 64), (9, 17, 65), (40, 50, 20000)] + LARGE)
def test_xnor_matches_pm1_reference(kernel, shape, rng):
    m, n, k = shape
    bits_a = rng.integers(0, 2, (m, k))
    bits_b = rng.integers(0, 2, (n, k))
    c = _core._gemm_xnor(pack(bits_a), pack(bits_b), k, kernel=kernel)
    assert c.dtype == np.int32 and c.shape == (m, n)
    np.testing.assert_array_equal(c, xnor_reference(bits_a, bits_b))


@pytest.mark.parametrize("kernel", XNOR)
def test_xnor_extremes(kernel):
    # Long runs of equal bytes: the AVX2 byte counters are flushed every 31 words.
    k = 64 * 31 * 3 + 7
    ones = np.ones((5, k), np.uint8)
    zeros = np.zeros((6, k), np.uint8)
    np.testing.assert_array_equal(_core._gemm_xnor(pack(ones), pack(zeros), k, kernel=kernel), np.full((5, 6), -k))
    np.testing.assert_array_equal(_core._gemm_xnor(pack(ones), pack(ones), k, kernel=kernel), np.full((5, 5), k))


def test_xnor_at_every_isa_level(isa, rng):
    bits_a = rng.integers(0, 2, (21, 333))
    bits_b = rng.integers(0, 2, (37, 333))
    np.testing.assert_array_equal(_core._gemm_xnor(pack(bits_a), pack(bits_b), 333), xnor_reference(bits_a, bits_b))
    assert _core._gemm_active_kernel("xnor") == best_enabled_kernel(XNOR)


# ---------------------------------------------------------------------------
# f32 and the epilogue


@pytest.mark.parametrize("kernel", F32)
@pytest.mark.parametrize("shape", SHAPES + LARGE)
def test_f32_matches_float64_reference(kernel, shape, rng):
    m, n, k = shape
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((n, k)).astype(np.float32)
    c = _core._gemm_f32(a, b, kernel=kernel)
    assert c.dtype == np.float32 and c.shape == (m, n)
    exact = a.astype(np.float64) @ b.astype(np.float64).T
    # |error| <= gamma_depth sum |a_i b_i|, depth = slice + slices <= 256 + k / 256 + 1
    bound = (256 + k / 256 + 2) * 2.0**-24 * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64).T)
    assert np.all(np.abs(c - exact) <= bound + 1e-30)


def test_f32_values_do_not_depend_on_blocks_or_threads(rng):
    # k-NN's error bound and its tie order rely on a fixed summation order.
    a = rng.standard_normal((150, 900)).astype(np.float32)
    b = rng.standard_normal((700, 900)).astype(np.float32)
    whole = _core._gemm_f32(a, b, num_threads=2)
    np.testing.assert_array_equal(whole, _core._gemm_f32(a, b, num_threads=1))
    np.testing.assert_array_equal(whole[37:38], _core._gemm_f32(a[37:38], b))
    np.testing.assert_array_equal(whole[:, 600:611], _core._gemm_f32(a, b[600:611]))


def test_f32_at_every_isa_level(isa, rng):
    a = rng.standard_normal((20, 70)).astype(np.float32)
    b = rng.standard_normal((30, 70)).astype(np.float32)
    np.testing.assert_allclose(_core._gemm_f32(a, b), a.astype(np.float64) @ b.T.astype(np.float64), rtol=1e-4,
                               atol=1e-4)
    assert _core._gemm_active_kernel("f32") == best_enabled_kernel(F32)


@pytest.mark.skipif(len(F32) < 3, reason="this CPU has no AVX-512")
@pytest.mark.parametrize("shape", SHAPES + LARGE)
def test_f32_avx512_tile_equals_avx2_tile_bit_for_bit(shape, rng):
    # The same FMAs in the same order: k-NN gives the same results at both levels.
    m, n, k = shape
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((n, k)).astype(np.float32)
    np.testing.assert_array_equal(_core._gemm_f32(a, b, kernel="f32_12x32_avx512"),
                                  _core._gemm_f32(a, b, kernel="f32_6x16_avx2"))


EPILOGUES = [
    dict(bias=True),
    dict(scale=True),
    dict(lo=-0.5, hi=0.75),
    dict(lo=0.0),
    dict(hi=1.0),
    dict(residual=True),
    dict(scale=True, bias=True, residual=True, lo=-2.0, hi=3.0),
]


def numpy_epilogue(c, scale, bias, residual, lo, hi):
    """v = c * scale + bias + residual, clamped: each step in c's dtype, in that order."""
    v = c.copy()
    if scale is not None:
        v = v * scale
    if bias is not None:
        v = v + bias
    if residual is not None:
        v = v + residual
    if lo is not None:
        v = np.maximum(v, v.dtype.type(lo))
    if hi is not None:
        v = np.minimum(v, v.dtype.type(hi))
    return v


def epilogue_args(spec, rng, m, n, dtype):
    if dtype == np.float32:
        vec = lambda: rng.standard_normal(n).astype(np.float32)  # noqa: E731
        mat = lambda: rng.standard_normal((m, n)).astype(np.float32)  # noqa: E731
    else:
        vec = lambda: rng.integers(-5, 6, n).astype(np.int32)  # noqa: E731
        mat = lambda: rng.integers(-1000, 1000, (m, n)).astype(np.int32)  # noqa: E731
    scalar = (lambda x: x) if dtype == np.float32 else (lambda x: int(x * 1000))
    return dict(scale=vec() if spec.get("scale") else None, bias=vec() if spec.get("bias") else None,
                residual=mat() if spec.get("residual") else None,
                lo=scalar(spec["lo"]) if "lo" in spec else None, hi=scalar(spec["hi"]) if "hi" in spec else None)


@pytest.mark.parametrize("spec", EPILOGUES)
@pytest.mark.parametrize("kernel", F32)
def test_f32_epilogue_matches_numpy(spec, kernel, rng):
    m, n, k = 53, 70, 40
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((n, k)).astype(np.float32)
    args = epilogue_args(spec, rng, m, n, np.float32)
    plain = _core._gemm_f32(a, b, kernel=kernel)
    # Bit for bit: the same float32 operations on the same products.
    np.testing.assert_array_equal(_core._gemm_f32(a, b, kernel=kernel, **args), numpy_epilogue(plain, **args))
    exact = numpy_epilogue(a.astype(np.float64) @ b.T.astype(np.float64), **args)
    np.testing.assert_allclose(_core._gemm_f32(a, b, kernel=kernel, **args), exact, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spec", EPILOGUES)
@pytest.mark.parametrize("kernel", U8S8)
def test_u8s8_epilogue_matches_int64_reference(spec, kernel, rng):
    m, n, k = 31, 40, 100
    a = rng.integers(0, 256, (m, k), dtype=np.uint8)
    b = rng.integers(-128, 128, (n, k), dtype=np.int8)
    args = epilogue_args(spec, rng, m, n, np.int32)
    got = _core._gemm_u8s8(a, b, kernel=kernel, **args)
    np.testing.assert_array_equal(got, numpy_epilogue(u8s8_reference(a, b), **args))


@pytest.mark.parametrize("spec", EPILOGUES)
@pytest.mark.parametrize("kernel", XNOR)
def test_xnor_epilogue_matches_int64_reference(spec, kernel, rng):
    m, n, k = 19, 45, 200
    bits_a, bits_b = rng.integers(0, 2, (m, k)), rng.integers(0, 2, (n, k))
    args = epilogue_args(spec, rng, m, n, np.int32)
    got = _core._gemm_xnor(pack(bits_a), pack(bits_b), k, kernel=kernel, **args)
    np.testing.assert_array_equal(got, numpy_epilogue(xnor_reference(bits_a, bits_b), **args))


# ---------------------------------------------------------------------------
# Bad input


def test_bad_input_is_refused_clearly():
    f = np.zeros((3, 4), np.float32)
    u = np.zeros((3, 4), np.uint8)
    s = np.zeros((3, 4), np.int8)
    with pytest.raises(TypeError, match="a: expected dtype float32"):
        _core._gemm_f32(f.astype(np.float64), f)
    with pytest.raises(TypeError, match="a: expected a numpy array"):
        _core._gemm_f32([[1.0]], f)
    with pytest.raises(TypeError, match="b: expected dtype int8"):
        _core._gemm_u8s8(u, u)
    with pytest.raises(TypeError, match="a: expected dtype uint8"):
        _core._gemm_u8s8(s, s)
    with pytest.raises(ValueError, match="a: expected a 2-D array"):
        _core._gemm_f32(np.zeros(4, np.float32), f)
    with pytest.raises(ValueError, match="b: expected 4 columns"):
        _core._gemm_u8s8(u, np.zeros((3, 5), np.int8))
    with pytest.raises(ValueError, match="bias: expected 3 values"):
        _core._gemm_f32(f, f, bias=np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="scale: expected dtype int32"):
        _core._gemm_u8s8(u, s, scale=np.ones(3, np.float32))
    with pytest.raises(ValueError, match="residual: expected shape"):
        _core._gemm_f32(f, f, residual=np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="lo <= hi"):
        _core._gemm_f32(f, f, lo=1.0, hi=0.0)
    with pytest.raises(TypeError, match="lo: expected an int"):
        _core._gemm_u8s8(u, s, lo=0.5)
    with pytest.raises(ValueError, match="int32 range"):
        _core._gemm_u8s8(u, s, hi=2**40)
    with pytest.raises(ValueError, match="kernel: expected one of"):
        _core._gemm_f32(f, f, kernel="f32_99x99_sse9")
    with pytest.raises(ValueError, match="num_threads"):
        _core._gemm_f32(f, f, num_threads=-1)
    with pytest.raises(ValueError, match="op: expected"):
        _core._gemm_kernels("f64")


def test_xnor_bad_input_is_refused_clearly():
    bits = np.packbits(np.ones((2, 10), np.uint8), axis=1)  # 2 bytes, 6 pad bits zero
    with pytest.raises(ValueError, match="a_bits: expected ceil"):
        _core._gemm_xnor(bits, bits, 17)
    with pytest.raises(ValueError, match="bits past k must be zero"):
        _core._gemm_xnor(bits, np.full((2, 2), 255, np.uint8), 10)
    with pytest.raises(ValueError, match="k: expected"):
        _core._gemm_xnor(bits, bits, -1)
    with pytest.raises(TypeError, match="b_bits: expected dtype uint8"):
        _core._gemm_xnor(bits, bits.astype(np.int8), 10)
    np.testing.assert_array_equal(_core._gemm_xnor(bits, bits, 10), np.full((2, 2), 10))
