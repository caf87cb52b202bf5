"""keensight.filters against OpenCV (and SciPy/NumPy where OpenCV has no equivalent).

Every numerical test runs at each SIMD level the machine has (the `isa` fixture).
Tolerances: integer outputs within 1 level of OpenCV, exact where OpenCV's own
arithmetic is exact (integer derivative kernels, the fixed-point uint8 Gaussian);
float outputs within 1e-4 relative to the largest |value| of the reference, because
keensight and OpenCV sum taps in different orders (and keensight pairs mirrored taps).
"""
from __future__ import annotations

import math
import warnings

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi

import keensight as ks
from keensight import _core

BORDERS = {
    "constant": cv2.BORDER_CONSTANT,
    "replicate": cv2.BORDER_REPLICATE,
    "reflect": cv2.BORDER_REFLECT,
    "reflect101": cv2.BORDER_REFLECT_101,
    "wrap": cv2.BORDER_WRAP,
}
SCIPY_MODES = {"constant": "constant", "replicate": "nearest", "reflect": "reflect",
               "reflect101": "mirror", "wrap": "wrap"}
DTYPES = [np.uint8, np.uint16, np.int16, np.float32]
CV_DEPTH = {np.uint8: cv2.CV_8U, np.uint16: cv2.CV_16U, np.int16: cv2.CV_16S,
            np.float32: cv2.CV_32F}


# ---------------------------------------------------------------------------
# helpers

def random_image(rng, shape, dtype):
    if dtype == np.float32:
        return rng.uniform(-100, 100, shape).astype(np.float32)
    info = np.iinfo(dtype)
    hi = min(int(info.max), 4000) if dtype != np.uint8 else 255
    lo = max(int(info.min), -4000)
    return rng.integers(lo, hi + 1, shape).astype(dtype)


def random_shape(rng, channels=None, max_side=48):
    """Sizes include 1xN, Nx1, tiny and odd/even widths not multiple of SIMD widths."""
    kind = rng.integers(0, 6)
    if kind == 0:
        h, w = 1, int(rng.integers(1, max_side * 2))
    elif kind == 1:
        h, w = int(rng.integers(1, max_side)), 1
    elif kind == 2:
        h, w = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    else:
        h, w = int(rng.integers(2, max_side)), int(rng.integers(2, max_side * 2))
    c = channels if channels is not None else int(rng.choice([0, 1, 3, 4]))
    return (h, w) if c == 0 else (h, w, c)


def as_cv(ref, shape):
    """cv2 drops a trailing channel axis of length 1; restore it."""
    return np.asarray(ref).reshape(shape)


def assert_close(got, ref, what="", terms=0.0):
    """`terms`: size of the largest term summed (max |input| x L1 norm of the kernel);
    results that cancel to near zero carry rounding relative to that, not to themselves."""
    ref = np.asarray(ref)
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    assert got.dtype == ref.dtype, (what, got.dtype, ref.dtype)
    if got.dtype == np.float32:
        scale = max(1.0, float(np.abs(ref).max()) if ref.size else 1.0, 0.1 * terms)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * scale, err_msg=what)
    else:
        diff = np.abs(got.astype(np.int64) - ref.astype(np.int64))
        assert diff.max() <= 1, f"{what}: max diff {diff.max()}"


def cv_border_supported(fn):
    """Run fn(); None if OpenCV refuses the border mode."""
    try:
        return fn()
    except cv2.error:
        return None


def border_interpolate(p, n, border):
    """cv::borderInterpolate: source index of virtual index p (-1: constant border).
    Reflections repeat until inside, for pads larger than the image."""
    if 0 <= p < n:
        return p
    if border == "constant":
        return -1
    if border == "replicate":
        return 0 if p < 0 else n - 1
    if border == "wrap":
        return p % n
    if n == 1:
        return 0
    delta = 1 if border == "reflect101" else 0
    while not 0 <= p < n:
        p = -p - 1 + delta if p < 0 else n - 1 - (p - n) - delta
    return p


def filter2d_reference(img, kernel, anchor, border, value):
    """Correlation by explicit padding in NumPy (float64), any border and anchor."""
    kh, kw = kernel.shape
    ax, ay = anchor
    x = img.astype(np.float64)
    squeeze = x.ndim == 2
    if squeeze:
        x = x[..., None]
    h, w = x.shape[:2]
    rows = [border_interpolate(p, h, border) for p in range(-ay, h + kh - 1 - ay)]
    cols = [border_interpolate(p, w, border) for p in range(-ax, w + kw - 1 - ax)]
    xp = np.full((len(rows), len(cols), x.shape[2]), float(value))
    for i, r in enumerate(rows):
        if r >= 0:
            valid = [j for j, c in enumerate(cols) if c >= 0]
            xp[i, valid] = x[r, [cols[j] for j in valid]]
    out = np.zeros_like(x)
    for i in range(kh):
        for j in range(kw):
            out += kernel[i, j] * xp[i:i + h, j:j + w]
    return out[..., 0] if squeeze else out


def filter2d_expected(img, kernel, anchor, border, value, delta, out_dtype):
    """filter2d_reference + delta in the output dtype (rounded and saturated as OpenCV)."""
    exact = filter2d_reference(img, kernel, anchor, border, value) + delta
    if out_dtype == np.float32:
        return exact.astype(np.float32)
    info = np.iinfo(out_dtype)
    return np.clip(np.rint(exact), info.min, info.max).astype(out_dtype)


# ---------------------------------------------------------------------------
# filter2d / convolve / sep_filter2d / filter_bank

@pytest.mark.parametrize("border", list(BORDERS))
def test_filter2d_matches_opencv(isa, rng, border):
    for _ in range(12):
        dtype = DTYPES[rng.integers(0, 4)]
        shape = random_shape(rng)
        img = random_image(rng, shape, dtype)
        kh, kw = int(rng.integers(1, 8)), int(rng.integers(1, 8))
        kernel = rng.standard_normal((kh, kw)).astype(np.float32)
        anchor = (int(rng.integers(0, kw)), int(rng.integers(0, kh)))
        ddepth = [None, np.float32, np.int16][rng.integers(0, 3)]
        value = 3.0 if border == "constant" else 0.0
        got = ks.filter2d(img, kernel, ddepth=ddepth, anchor=anchor, delta=1.5, border=border,
                          border_value=value)
        out_dtype = img.dtype if ddepth is None else np.dtype(ddepth)
        ref = None
        if value == 0.0:
            ref = cv_border_supported(lambda: cv2.filter2D(
                img, CV_DEPTH[out_dtype.type], kernel, anchor=anchor, delta=1.5,
                borderType=BORDERS[border]))
        if ref is None:  # OpenCV lacks this border (wrap) or a border value: NumPy reference
            ref = filter2d_expected(img, kernel, anchor, border, value, 1.5, out_dtype)
        assert_close(got, as_cv(ref, got.shape), f"{shape} {dtype} k{kh}x{kw} {anchor}")


def test_filter2d_numpy_reference_all_borders(isa, rng):
    """Exercise the independent NumPy reference on every border, float output."""
    for border in BORDERS:
        for _ in range(6):
            img = random_image(rng, random_shape(rng), np.float32)
            k = rng.standard_normal((int(rng.integers(1, 10)), int(rng.integers(1, 10)))).astype(np.float32)
            got = ks.filter2d(img, k, border=border, border_value=-2.0)
            ref = filter2d_reference(img, k, (k.shape[1] // 2, k.shape[0] // 2), border, -2.0)
            assert_close(got, ref.astype(np.float32), border)


def test_convolve_matches_scipy(isa, rng):
    for border, mode in SCIPY_MODES.items():
        for _ in range(5):
            img = random_image(rng, random_shape(rng, channels=0), np.float32)
            k = rng.standard_normal((int(rng.integers(0, 4)) * 2 + 1, int(rng.integers(0, 4)) * 2 + 1))
            got = ks.convolve(img, k, border=border, border_value=1.25)
            if max(k.shape) // 2 >= min(img.shape) and mode in ("reflect", "mirror"):
                # SciPy reflects only once; compare with the flipped correlation instead.
                ref = ks.filter2d(img, k[::-1, ::-1], border=border, border_value=1.25)
            else:
                ref = ndi.convolve(img.astype(np.float64), k, mode=mode, cval=1.25).astype(np.float32)
            assert_close(got, ref, border)


def test_convolve_is_flipped_correlation(isa, rng):
    img = random_image(rng, (20, 31, 3), np.uint8)
    k = rng.standard_normal((4, 5)).astype(np.float32)  # even height: anchor matters
    got = ks.convolve(img, k, ddepth=np.float32, anchor=(1, 2))
    ref = ks.filter2d(img, k[::-1, ::-1], ddepth=np.float32, anchor=(5 - 1 - 1, 4 - 1 - 2))
    np.testing.assert_array_equal(got, ref)


def test_sep_filter2d_matches_opencv(isa, rng):
    for _ in range(25):
        dtype = DTYPES[rng.integers(0, 4)]
        img = random_image(rng, random_shape(rng), dtype)
        kx = rng.standard_normal(int(rng.integers(1, 10))).astype(np.float32)
        ky = rng.standard_normal(int(rng.integers(1, 10))).astype(np.float32)
        if rng.integers(0, 2):  # small integer kernels take keensight's exact uint8 path
            kx, ky = np.rint(kx * 3), np.rint(ky * 3)
        border = list(BORDERS)[rng.integers(0, 5)]
        if border == "wrap":
            border = "reflect"
        anchor = (int(rng.integers(0, kx.size)), int(rng.integers(0, ky.size)))
        got = ks.sep_filter2d(img, kx, ky, ddepth=np.float32, anchor=anchor, delta=-0.5, border=border)
        ref = cv2.sepFilter2D(img, cv2.CV_32F, kx.astype(np.float32), ky.astype(np.float32),
                              anchor=anchor, delta=-0.5, borderType=BORDERS[border])
        # Sums that cancel to near `delta` carry rounding relative to their terms.
        terms = float(np.abs(img).max()) * float(np.abs(kx).sum() * np.abs(ky).sum()) if img.size else 0.0
        assert_close(got, as_cv(ref, got.shape), f"{img.shape} {dtype}", terms=terms)


def test_sep_filter2d_constant_border_value(isa, rng):
    img = random_image(rng, (13, 17, 2), np.float32)
    kx, ky = rng.standard_normal(5), rng.standard_normal(3)
    got = ks.sep_filter2d(img, kx, ky, border="constant", border_value=7.0)
    ref = ks.filter2d(img, np.outer(ky, kx), border="constant", border_value=7.0)
    assert_close(got, ref)


def test_filter_bank_equals_filter2d(isa, rng):
    img = random_image(rng, (23, 37, 3), np.uint8)
    kernels = [rng.standard_normal((5, 7)).astype(np.float32) for _ in range(4)]
    bank = ks.filter_bank(img, kernels)
    assert bank.shape == (4, 23, 37, 3) and bank.dtype == np.float32
    for k, out in zip(kernels, bank):
        assert_close(out, cv2.filter2D(img, cv2.CV_32F, k))


@pytest.mark.parametrize("border", list(BORDERS))
def test_filter2d_fft_matches_reference(isa, rng, border):
    """The FFT path (overlap-save tiles, two tiles per complex transform) against
    OpenCV / the NumPy reference: tiny images, odd tile counts, channels, anchors."""
    for _ in range(6):
        dtype = DTYPES[rng.integers(0, 4)]
        shape = random_shape(rng, max_side=70)
        img = random_image(rng, shape, dtype)
        kh, kw = int(rng.integers(9, 26)), int(rng.integers(9, 26))
        kernel = rng.standard_normal((kh, kw)).astype(np.float32)
        anchor = (int(rng.integers(0, kw)), int(rng.integers(0, kh)))
        value = 3.0 if border == "constant" else 0.0
        ddepth = [np.float32, None][rng.integers(0, 2)]
        got = ks.filter2d(img, kernel, ddepth=ddepth, anchor=anchor, delta=1.5, border=border,
                          border_value=value, method="fft")
        out_dtype = img.dtype if ddepth is None else np.dtype(ddepth)
        ref = filter2d_expected(img, kernel, anchor, border, value, 1.5, out_dtype)
        terms = float(np.abs(img).max()) * float(np.abs(kernel).sum()) if img.size else 0.0
        assert_close(got, ref, f"{shape} {dtype} k{kh}x{kw} {anchor}", terms=terms)


@pytest.mark.parametrize("border", list(BORDERS))
def test_symmetric_3x3_fast_path(isa, rng, border):
    """3x3 kernels with the square's symmetries (Laplacians, box, sharpen) run on their
    own kernel; zero corner or edge coefficients skip their loads."""
    for corner, edge in [(0.0, 1.0), (2.0, 0.0), (0.7, -1.3), (0.0, 0.0)]:
        kernel = np.array([[corner, edge, corner], [edge, -3.5, edge], [corner, edge, corner]], np.float32)
        for _ in range(3):
            dtype = DTYPES[rng.integers(0, 4)]
            img = random_image(rng, random_shape(rng), dtype)
            value = 3.0 if border == "constant" else 0.0
            got = ks.filter2d(img, kernel, ddepth=np.float32, delta=0.5, border=border, border_value=value)
            ref = filter2d_expected(img, kernel, (1, 1), border, value, 0.5, np.dtype(np.float32))
            assert_close(got, ref, f"{img.shape} {dtype} {corner} {edge}")


def test_filter_bank_fft_equals_direct(isa, rng):
    img = random_image(rng, (150, 333, 3), np.float32)
    kernels = [rng.standard_normal((21, 17)).astype(np.float32) for _ in range(5)]
    fft = ks.filter_bank(img, kernels, method="fft", delta=2.0)
    direct = ks.filter_bank(img, kernels, method="direct", delta=2.0)
    auto = ks.filter_bank(img, kernels, delta=2.0)
    terms = float(np.abs(img).max()) * max(float(np.abs(k).sum()) for k in kernels)
    for f, d, a, k in zip(fft, direct, auto, kernels):
        assert_close(f, d, terms=terms)
        assert_close(a, d, terms=terms)
        assert_close(f, cv2.filter2D(img, cv2.CV_32F, k, delta=2.0), terms=terms)


def test_gabor_bank_21x21_matches_opencv(isa, rng):
    """The benchmark's bank (8 orientations, 21x21) runs by FFT under method='auto'."""
    img = random_image(rng, (97, 203), np.float32)
    bank = ks.gabor_bank(img, ksize=21, sigma=4.0, lambd=10.0, gamma=0.5)
    for k, out in zip(ks.gabor_kernels(21, 4.0, 10.0, 0.5), bank):
        k = k.astype(np.float32)
        assert_close(out, cv2.filter2D(img, cv2.CV_32F, k),
                     terms=float(np.abs(img).max() * np.abs(k).sum()))


# ---------------------------------------------------------------------------
# kernel makers

@pytest.mark.parametrize("ksize", [1, 3, 5, 7, 9, 15])
@pytest.mark.parametrize("sigma", [0.0, -1.0, 0.6, 1.5, 4.0])
def test_gaussian_kernel_matches_opencv(ksize, sigma):
    got = ks.gaussian_kernel(ksize, sigma)
    ref = cv2.getGaussianKernel(ksize, sigma).ravel()
    assert got.dtype == np.float64 and got.shape == (ksize,)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("ksize", [1, 5, 8, 21, (9, 15), (16, 7)])
@pytest.mark.parametrize("theta", [0.0, 0.4, math.pi / 2, 2.7])
def test_gabor_kernel_matches_opencv(ksize, theta):
    for sigma, lambd, gamma, psi in [(4.0, 10.0, 0.5, 0.0), (2.0, 5.0, 1.0, math.pi / 2),
                                     (3.0, 7.5, 2.0, 1.0)]:
        size = ksize if isinstance(ksize, tuple) else (ksize, ksize)
        got = ks.gabor_kernel(ksize, sigma, theta, lambd, gamma, psi)
        ref = cv2.getGaborKernel(size, sigma, theta, lambd, gamma, psi)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


def test_log_kernel_properties():
    for ksize, sigma in [(5, 1.0), (9, 1.4), (13, 2.0), (7, 0.0)]:
        k = ks.log_kernel(ksize, sigma)
        assert k.shape == (ksize, ksize)
        assert abs(k.sum()) < 1e-6
        np.testing.assert_allclose(k, k.T, atol=1e-7)
        np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)
        assert k[ksize // 2, ksize // 2] < 0  # a bright blob gives a negative response
    # close to the analytic LoG of the continuous Gaussian (away from truncation)
    s = 2.0
    k = ks.log_kernel(21, s)
    y, x = np.mgrid[-10:11, -10:11]
    r2 = x * x + y * y
    analytic = (r2 - 2 * s * s) / s**4 * np.exp(-r2 / (2 * s * s)) / (2 * np.pi * s * s)
    assert np.abs(k - analytic).max() < 0.02 * np.abs(analytic).max()


def test_gabor_kernels_order():
    ks_ = ks.gabor_kernels(11, 3.0, 6.0, 0.5, 0.0, n_orientations=4, scales=(1.0, 2.0))
    assert len(ks_) == 8
    np.testing.assert_allclose(ks_[1], ks.gabor_kernel(11, 3.0, math.pi / 4, 6.0, 0.5, 0.0))
    np.testing.assert_allclose(ks_[6], ks.gabor_kernel(11, 6.0, 2 * math.pi / 4, 12.0, 0.5, 0.0))


# ---------------------------------------------------------------------------
# smoothing and derivatives

def test_gaussian_blur_uint8_bit_exact(isa, rng):
    """OpenCV's uint8 Gaussian is integer fixed point; keensight reproduces it exactly."""
    for _ in range(60):
        img = random_image(rng, random_shape(rng), np.uint8)
        kx, ky = int(rng.choice([1, 3, 5, 7, 9, 11, 15])), int(rng.choice([1, 3, 5, 7, 9]))
        sigma, sigma_y = float(rng.choice([0, 0.5, 1.2, 2.5, 6.0])), float(rng.choice([0, 0.8, 3.0]))
        border = ["constant", "replicate", "reflect", "reflect101"][rng.integers(0, 4)]
        got = ks.gaussian_blur(img, (kx, ky), sigma, sigma_y, border=border)
        ref = cv2.GaussianBlur(img, (kx, ky), sigma, sigmaY=sigma_y, borderType=BORDERS[border])
        np.testing.assert_array_equal(got, as_cv(ref, got.shape))


def opencv_bitexact_test_image(rows, cols, cn, dtype):
    """The source image of OpenCV's GaussianBlur_Bitexact tests
    (modules/imgproc/test/test_smooth_bitexact.cpp): a sine patch, a checkerboard,
    ramps and a constant quarter, truncated to `dtype`."""
    j, i = np.mgrid[0:rows, 0:cols]
    sine = (np.sin((i + 1) * np.pi / 256) * np.sin((j + 1) * np.pi / 256) * np.sin((cn + 4) * np.pi / 8) + 1) * 128
    checker = ((i // 128 + j // 128) % 2) * 250 + (j // 128) % 2
    ramps = ((i // 128) * (85 - j // 256 * 40) * ((j // 128) % 2)
             + (7 - i // 128) * (85 - j // 256 * 40) * ((j // 128 + 1) % 2))
    # cv::RNG(0x123456789abcdef), one draw as uchar: the low byte of
    # (uint32)state * 4164903690 + (state >> 32).
    draw = ((0x123456789abcdef & 0xFFFFFFFF) * 4164903690 + (0x123456789abcdef >> 32)) & 0xFF
    val = np.where(j < rows // 2, np.where(i < cols // 2, sine, checker), np.where(i < cols // 2, ramps, draw))
    img = np.trunc(val).astype(dtype)
    return np.repeat(img[:, :, None], cn, axis=2) if cn > 1 else img


# (size (w, h), ksize, channels) of OpenCV's Linear16U bit-exact cases (sigma 0), and the
# fixed-point kernels (units of 2^-16) that test states for each ksize.
OPENCV_16U_CASES = [((1, 1), 3, 1), ((2, 2), 3, 1), ((3, 1), 3, 1), ((1, 3), 3, 1), ((3, 3), 3, 1),
                    ((3, 3), 5, 1), ((3, 3), 7, 1), ((5, 5), 3, 1), ((5, 5), 5, 1), ((3, 5), 5, 1),
                    ((5, 5), 5, 1), ((5, 5), 7, 1), ((7, 7), 7, 1), ((256, 128), 3, 1), ((256, 128), 3, 2),
                    ((256, 128), 3, 3), ((256, 128), 3, 4), ((256, 128), 5, 1), ((256, 128), 7, 1),
                    ((256, 128), 9, 1)]
OPENCV_16U_KERNELS = {
    1: [1 << 16],
    3: [1 << 14, 1 << 15, 1 << 14],
    5: [1 << 12, 1 << 14, 6 << 12, 1 << 14, 1 << 12],
    7: [1 << 11, 7 << 10, 7 << 11, 9 << 11, 7 << 11, 7 << 10, 1 << 11],
    9: [4 << 8, 13 << 8, 30 << 8, 51 << 8, 60 << 8, 51 << 8, 30 << 8, 13 << 8, 4 << 8],
}


def fixed_point_blur_reference(img, kernel, border):
    """OpenCV's test formula for the fixed-point Gaussian: exact integer sum of the
    border-extended window times kx[i] * ky[j] (units 2^-32), rounded half up, saturated.
    The border comes from cv2.copyMakeBorder."""
    k = np.asarray(kernel, np.int64)
    r = len(k) // 2
    a = img.reshape(img.shape[0], img.shape[1], -1)
    pad = cv2.copyMakeBorder(a, r, r, r, r, BORDERS[border]).reshape(a.shape[0] + 2 * r, a.shape[1] + 2 * r, -1)
    pad = pad.astype(np.int64)
    rows = sum(k[i] * pad[:, i:i + a.shape[1]] for i in range(len(k)))
    total = sum(k[j] * rows[j:j + a.shape[0]] for j in range(len(k)))
    return np.minimum((total + (1 << 31)) >> 32, 65535).astype(np.uint16).reshape(img.shape)


@pytest.mark.parametrize("border", list(BORDERS))
def test_gaussian_blur_uint16_opencv_bitexact_cases(isa, border):
    """The cases of OpenCV's own GaussianBlur_Bitexact.Linear16U test: its image, sizes,
    kernel sizes and channel counts, every border (BORDER_ISOLATED: the image is a view
    into a larger one), against that test's integer formula and against cv2."""
    for (w, h), k, cn in OPENCV_16U_CASES:
        src = opencv_bitexact_test_image(h + 20, w + 20, cn, np.uint16)
        roi = src[10:10 + h, 10:10 + w]
        got = ks.gaussian_blur(roi, k, 0, border=border)
        what = f"{w}x{h}x{cn} k={k} {border}"
        np.testing.assert_array_equal(got, fixed_point_blur_reference(roi, OPENCV_16U_KERNELS[k], border), what)
        ref = cv2.GaussianBlur(np.ascontiguousarray(roi), (k, k), 0, borderType=BORDERS[border])
        np.testing.assert_array_equal(got, as_cv(ref, got.shape), what)


def test_gaussian_blur_uint16_bit_exact(isa, rng):
    """uint16 is OpenCV's fixed-point path too (ufixedpoint32 taps): bit-exact for random
    full-range images of any size, ksize, sigma (tiny and huge included), border and 1-4
    channels. Before, a float path differed by 1 on ~15% of the pixels."""
    img = rng.integers(0, 65536, (64, 80)).astype(np.uint16)
    np.testing.assert_array_equal(ks.gaussian_blur(img, 5, 1.0), cv2.GaussianBlur(img, (5, 5), 1.0))
    for trial in range(80):
        shape = random_shape(rng) if trial % 4 else (int(rng.integers(20, 70)), int(rng.integers(40, 140)),
                                                   int(rng.integers(1, 5)))
        img = rng.integers(0, 65536, shape).astype(np.uint16)
        if trial % 9 == 0:
            img[:] = 65535  # the largest sums: nothing may overflow or round up past 65535
        kx = int(rng.choice([0, 1, 3, 5, 7, 9, 11, 15, 21, 31]))
        ky = int(rng.choice([kx, 0, 3, 5, 13]))
        sigma = float(rng.choice([0, 1e-300, 0.1, 0.5, 0.8, 1.3, 2.5, 6.0, 1e300]))
        sigma_y = float(rng.choice([0, sigma, 0.05, 2.2]))
        if (kx == 0 and not 0 < sigma < 30) or (ky == 0 and not 0 < (sigma_y or sigma) < 30):
            continue  # no size, or one OpenCV cannot derive
        border = list(BORDERS)[rng.integers(0, 5)]
        got = ks.gaussian_blur(img, (kx, ky), sigma, sigma_y, border=border)
        ref = cv2.GaussianBlur(img, (kx, ky), sigma, sigmaY=sigma_y, borderType=BORDERS[border])
        np.testing.assert_array_equal(got, as_cv(ref, got.shape), f"{shape} {kx}x{ky} {sigma} {sigma_y} {border}")


def test_gaussian_blur_uint16_opencv_overflow_regressions(isa):
    """OpenCV's overflow_20121 (flat 65535 stays 65535) and overflow_20792 (a peaky kernel,
    sigma < 0.2, whose centre tap is exactly 1.0 = 2^16, must not vanish)."""
    flat = np.full((100, 100), 65535, np.uint16)
    np.testing.assert_array_equal(ks.gaussian_blur(flat, 9, 0.0), flat)
    src = np.full((128, 128), 255, np.uint16)
    for sigma in (0.01, 0.1, 0.19):
        got = ks.gaussian_blur(src, 7, sigma, 0.9)
        assert np.count_nonzero(got) > 0.9 * got.size
        np.testing.assert_array_equal(got, cv2.GaussianBlur(src, (7, 7), sigma, sigmaY=0.9))


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_gaussian_blur_other_depths(isa, rng, dtype):
    for _ in range(15):
        img = random_image(rng, random_shape(rng), dtype)
        k = int(rng.choice([3, 5, 11]))
        sigma = float(rng.choice([0, 1.0, 2.5]))
        border = ["replicate", "reflect", "reflect101"][rng.integers(0, 3)]
        got = ks.gaussian_blur(img, k, sigma, border=border)
        ref = cv2.GaussianBlur(img, (k, k), sigma, borderType=BORDERS[border])
        assert_close(got, as_cv(ref, got.shape))


def test_gaussian_blur_ksize_from_sigma(isa, rng):
    img = random_image(rng, (40, 50), np.float32)
    assert_close(ks.gaussian_blur(img, None, 1.7), cv2.GaussianBlur(img, (0, 0), 1.7))
    u8 = random_image(rng, (40, 50), np.uint8)
    np.testing.assert_array_equal(ks.gaussian_blur(u8, 0, 1.7), cv2.GaussianBlur(u8, (0, 0), 1.7))


@pytest.mark.parametrize("ksize", [1, 3, 5, 7])
def test_sobel_matches_opencv(isa, rng, ksize):
    orders = [(1, 0), (0, 1), (1, 1), (2, 0), (0, 2)] + ([(2, 1), (3, 0)] if ksize >= 5 else [])
    for dx, dy in orders:
        if ksize == 1 and max(dx, dy) > 2:
            continue
        for _ in range(3):
            dtype = DTYPES[rng.integers(0, 4)]
            img = random_image(rng, random_shape(rng), dtype)
            ddepth = [np.float32, np.int16, None][rng.integers(0, 3)] if dtype == np.uint8 else np.float32
            scale = float(rng.choice([1.0, 0.5, 2.0]))
            out = img.dtype if ddepth is None else np.dtype(ddepth)
            border = ["replicate", "reflect", "reflect101", "constant"][rng.integers(0, 4)]
            got = ks.sobel(img, dx, dy, ksize, scale=scale, delta=2.0, ddepth=ddepth, border=border)
            ref = cv2.Sobel(img, CV_DEPTH[out.type], dx, dy, ksize=ksize, scale=scale, delta=2.0,
                            borderType=BORDERS[border])
            kx, ky = cv2.getDerivKernels(dx, dy, ksize)
            terms = float(np.abs(img).max()) * np.abs(kx).sum() * np.abs(ky).sum() * scale
            assert_close(got, as_cv(ref, got.shape), f"{dx},{dy} {dtype}", terms)


def test_sobel_uint8_exact(isa, rng):
    """Integer kernels on uint8 are exact in keensight, as in OpenCV."""
    for _ in range(20):
        img = random_image(rng, random_shape(rng), np.uint8)
        ksize = int(rng.choice([1, 3, 5, 7]))
        dx, dy = [(1, 0), (0, 1), (1, 1)][rng.integers(0, 3)]
        got = ks.sobel(img, dx, dy, ksize, ddepth=np.int16)
        np.testing.assert_array_equal(got, as_cv(cv2.Sobel(img, cv2.CV_16S, dx, dy, ksize=ksize), got.shape))


def test_scharr_and_prewitt(isa, rng):
    for _ in range(10):
        dtype = DTYPES[rng.integers(0, 4)]
        img = random_image(rng, random_shape(rng), dtype)
        for dx, dy in [(1, 0), (0, 1)]:
            got = ks.scharr(img, dx, dy, scale=0.5, ddepth=np.float32)
            assert_close(got, as_cv(cv2.Scharr(img, cv2.CV_32F, dx, dy, scale=0.5), got.shape))
            kernel = np.outer([1, 1, 1], [-1, 0, 1]) if dx else np.outer([-1, 0, 1], [1, 1, 1])
            got = ks.prewitt(img, dx, dy, ddepth=np.float32, delta=1.0)
            ref = cv2.filter2D(img, cv2.CV_32F, kernel.astype(np.float32), delta=1.0)
            assert_close(got, as_cv(ref, got.shape))


@pytest.mark.parametrize("ksize", [1, 3, 5, 7])
def test_laplacian_matches_opencv(isa, rng, ksize):
    for _ in range(8):
        dtype = DTYPES[rng.integers(0, 4)]
        img = random_image(rng, random_shape(rng), dtype)
        ddepth = np.float32 if rng.integers(0, 2) else (np.int16 if dtype == np.uint8 else None)
        out = img.dtype if ddepth is None else np.dtype(ddepth)
        border = ["replicate", "reflect", "reflect101", "constant"][rng.integers(0, 4)]
        got = ks.laplacian(img, ksize, scale=1.5, delta=0.25, ddepth=ddepth, border=border)
        ref = cv2.Laplacian(img, CV_DEPTH[out.type], ksize=ksize, scale=1.5, delta=0.25,
                            borderType=BORDERS[border])
        kd, ks_ = cv2.getDerivKernels(2, 0, ksize) if ksize > 1 else (np.ones(3), np.ones(3))
        terms = 2 * float(np.abs(img).max()) * np.abs(kd).sum() * np.abs(ks_).sum() * 1.5
        assert_close(got, as_cv(ref, got.shape), f"{img.shape} {dtype}", terms)


def test_laplacian_ksize1_kernel(isa, rng):
    img = random_image(rng, (9, 12), np.float32)
    ref = cv2.filter2D(img, cv2.CV_32F, np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32))
    assert_close(ks.laplacian(img, 1), ref)


def test_log_equals_filter2d_with_log_kernel(isa, rng):
    for _ in range(10):
        dtype = DTYPES[rng.integers(0, 4)]
        img = random_image(rng, random_shape(rng), dtype)
        sigma = float(rng.choice([0.8, 1.5, 2.5]))
        ksize = int(rng.choice([5, 9, 13]))
        border = ["replicate", "reflect", "reflect101"][rng.integers(0, 3)]
        got = ks.log(img, sigma, ksize, border=border)
        ref = cv2.filter2D(img, cv2.CV_32F, ks.log_kernel(ksize, sigma).astype(np.float32),
                           borderType=BORDERS[border])
        assert_close(got, as_cv(ref, got.shape))
    flat = np.full((20, 20), 77, np.uint8)
    np.testing.assert_allclose(ks.log(flat, 2.0), 0, atol=1e-3)


def test_dog_equals_difference_of_blurs(isa, rng):
    for _ in range(10):
        img = random_image(rng, random_shape(rng), DTYPES[rng.integers(0, 4)])
        s1, s2 = float(rng.uniform(0.5, 2.0)), float(rng.uniform(2.0, 4.0))
        ksize = int(rng.choice([7, 11, 15]))
        got = ks.dog(img, s1, s2, ksize)
        f = img.astype(np.float32)
        ref = cv2.GaussianBlur(f, (ksize, ksize), s1) - cv2.GaussianBlur(f, (ksize, ksize), s2)
        assert_close(got, as_cv(ref, got.shape))
    default = ks.dog(img.astype(np.float32), 1.0, 2.0)
    k = int(round(2.0 * 8 + 1)) | 1
    f = img.astype(np.float32)
    ref = cv2.GaussianBlur(f, (k, k), 1.0) - cv2.GaussianBlur(f, (k, k), 2.0)
    assert_close(default, as_cv(ref, default.shape))


@pytest.mark.parametrize("operator", ["sobel", "prewitt", "scharr"])
@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_gradient_magnitude(isa, rng, operator, norm):
    for _ in range(8):
        dtype = DTYPES[rng.integers(0, 4)]
        img = random_image(rng, random_shape(rng), dtype)
        ksize = int(rng.choice([1, 3, 5])) if operator == "sobel" else 3
        if operator == "sobel":
            gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=ksize)
            gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=ksize)
        elif operator == "scharr":
            gx, gy = cv2.Scharr(img, cv2.CV_32F, 1, 0), cv2.Scharr(img, cv2.CV_32F, 0, 1)
        else:
            kx = np.outer([1, 1, 1], [-1, 0, 1]).astype(np.float32)
            gx, gy = cv2.filter2D(img, cv2.CV_32F, kx), cv2.filter2D(img, cv2.CV_32F, kx.T.copy())
        gx, gy = gx.astype(np.float64), gy.astype(np.float64)
        ref = np.abs(gx) + np.abs(gy) if norm == "l1" else np.sqrt(gx * gx + gy * gy)
        got = ks.gradient_magnitude(img, operator, ksize, norm)
        assert_close(got, as_cv(ref.astype(np.float32), got.shape), f"{operator} {dtype}")


def test_gabor_bank(isa, rng):
    img = random_image(rng, (30, 45), np.float32)
    bank = ks.gabor_bank(img, ksize=9, sigma=2.0, lambd=5.0, gamma=0.5, psi=0.3,
                         n_orientations=4, scales=(1.0, 1.5))
    assert bank.shape == (8, 30, 45) and bank.dtype == np.float32
    kernels = ks.gabor_kernels(9, 2.0, 5.0, 0.5, 0.3, 4, (1.0, 1.5))
    for k, out in zip(kernels, bank):
        assert_close(out, cv2.filter2D(img, cv2.CV_32F, k.astype(np.float32)))
    rgb = random_image(rng, (12, 14, 3), np.uint8)
    assert ks.gabor_bank(rgb, ksize=7, n_orientations=2).shape == (2, 12, 14, 3)


# ---------------------------------------------------------------------------
# strides, levels, threads

def _views(rng):
    big = random_image(rng, (40, 60, 4), np.uint8)
    return {
        "step": big[::2, ::3, 0],
        "negative": big[::-1, :, 1],
        "negative_cols": big[:, ::-1, :3],
        "transposed": big[:, :, 2].T,
        "channels": big[..., :3],
        "row_padded": big[5:30, 5:50],
    }


@pytest.mark.parametrize("name", ["step", "negative", "negative_cols", "transposed", "channels", "row_padded"])
def test_views_equal_contiguous_copies(isa, rng, name):
    view = _views(rng)[name]
    copy = np.ascontiguousarray(view)
    k = rng.standard_normal((3, 5)).astype(np.float32)
    calls = [
        lambda a: ks.filter2d(a, k, ddepth=np.float32),
        lambda a: ks.gaussian_blur(a, 5, 1.1),
        lambda a: ks.sobel(a, 1, 0, ddepth=np.float32),
        lambda a: ks.laplacian(a, 3, ddepth=np.float32),
        lambda a: ks.gradient_magnitude(a),
        lambda a: ks.dog(a, 1.0, 2.0, 7),
    ]
    for call in calls:
        np.testing.assert_array_equal(call(view), call(copy))
    np.testing.assert_array_equal(ks.gaussian_blur(view, 5, 1.1),
                                  as_cv(cv2.GaussianBlur(copy, (5, 5), 1.1), copy.shape))


def test_simd_levels_agree(rng):
    """The scalar reference and every SIMD level give the same answers."""
    from conftest import available_isas
    before = _core.active_isa()
    img8 = random_image(rng, (37, 71, 3), np.uint8)
    f32 = random_image(rng, (37, 71), np.float32)
    k = rng.standard_normal((5, 6)).astype(np.float32)
    calls = [
        lambda: ks.filter2d(img8, k, ddepth=np.float32),
        lambda: ks.filter2d(f32, k),
        lambda: ks.gaussian_blur(img8, 7, 1.3),
        lambda: ks.gaussian_blur(img8.astype(np.uint16) * 257, 9, 1.7),
        lambda: ks.gaussian_blur(f32, 9, 2.0),
        lambda: ks.sobel(img8, 1, 1, 5, ddepth=np.float32),
        lambda: ks.laplacian(f32, 5),
        lambda: ks.gradient_magnitude(img8, norm="l1"),
        lambda: ks.gabor_bank(f32, ksize=7, n_orientations=3),
        lambda: ks.filter2d(f32, np.ones((13, 11), np.float32), method="fft"),
    ]
    try:
        results = {}
        for level in available_isas():
            _core.set_isa(level)
            results[level] = [c() for c in calls]
        ref = results["scalar"]
        for level, outs in results.items():
            for a, b in zip(outs, ref):
                assert_close(a, b, level)
    finally:
        _core.set_isa(before)


def test_results_do_not_depend_on_thread_count(rng):
    img8 = random_image(rng, (203, 151), np.uint8)
    f32 = random_image(rng, (203, 151, 2), np.float32)
    k = rng.standard_normal((7, 7)).astype(np.float32)
    calls = [
        lambda: ks.filter2d(f32, k),
        lambda: ks.gaussian_blur(img8, 5, 1.2),
        lambda: ks.gaussian_blur(img8.astype(np.uint16) * 250, 7, 1.2),
        lambda: ks.gaussian_blur(f32, 11, 2.5),
        lambda: ks.sobel(img8, 1, 0, ddepth=np.float32),
        lambda: ks.gradient_magnitude(img8),
        lambda: ks.filter_bank(img8, [k, k.T.copy()]),
        lambda: ks.filter_bank(f32, [np.tile(k, (3, 3))] * 2, method="fft"),
    ]
    try:
        ks.set_num_threads(1)
        one = [c() for c in calls]
        ks.set_num_threads(2)
        two = [c() for c in calls]
        ks.set_num_threads(3)
        three = [c() for c in calls]
    finally:
        ks.set_num_threads(0)
    for a, b, c in zip(one, two, three):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_border_ints_and_names_agree(rng):
    img = random_image(rng, (10, 11), np.float32)
    for name, code in BORDERS.items():
        np.testing.assert_array_equal(ks.sobel(img, 1, 0, border=name), ks.sobel(img, 1, 0, border=code))


def test_array_like_input():
    out = ks.filter2d([[1.0, 2.0], [3.0, 4.0]], [[1.0]])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[1, 2], [3, 4]])
    with pytest.raises(TypeError, match="numeric"):
        ks.filter2d([["a", "b"]], [[1.0]])


# ---------------------------------------------------------------------------
# bad input

GOOD = np.zeros((8, 8), np.uint8)

PUBLIC_IMAGE_CALLS = {
    "filter2d": lambda a: ks.filter2d(a, np.ones((3, 3))),
    "convolve": lambda a: ks.convolve(a, np.ones((3, 3))),
    "sep_filter2d": lambda a: ks.sep_filter2d(a, [1, 2, 1], [1, 2, 1]),
    "filter_bank": lambda a: ks.filter_bank(a, [np.ones((3, 3))]),
    "gaussian_blur": lambda a: ks.gaussian_blur(a, 3, 1.0),
    "sobel": lambda a: ks.sobel(a, 1, 0),
    "scharr": lambda a: ks.scharr(a, 1, 0),
    "prewitt": lambda a: ks.prewitt(a, 1, 0),
    "laplacian": lambda a: ks.laplacian(a),
    "log": lambda a: ks.log(a, 1.0),
    "dog": lambda a: ks.dog(a, 1.0, 2.0),
    "gradient_magnitude": lambda a: ks.gradient_magnitude(a),
    "gabor_bank": lambda a: ks.gabor_bank(a, ksize=5, n_orientations=2),
}


@pytest.mark.parametrize("name", list(PUBLIC_IMAGE_CALLS))
def test_bad_images(name):
    call = PUBLIC_IMAGE_CALLS[name]
    for bad in (np.zeros((8, 8), np.float16), np.zeros((8, 8), np.int32), np.zeros((8, 8), bool),
                np.array([[object()]])):
        with pytest.raises(TypeError, match="dtype|numeric"):
            call(bad)
    for bad in (np.zeros(8, np.uint8), np.zeros((2, 3, 4, 5), np.uint8)):
        with pytest.raises(ValueError, match="2-D|dimensions"):
            call(bad)
    for bad in (np.zeros((0, 5), np.uint8), np.zeros((5, 0, 3), np.uint8), np.zeros((4, 4, 0), np.uint8)):
        with pytest.raises(ValueError, match="non-empty"):
            call(bad)
    call(GOOD)  # and a good image works


def test_bad_kernels_and_parameters():
    with pytest.raises(ValueError, match="finite"):
        ks.filter2d(GOOD, [[1.0, np.nan]])
    with pytest.raises(ValueError, match="finite"):
        ks.filter2d(GOOD, [[np.inf]])
    with pytest.raises(ValueError, match="2-D"):
        ks.filter2d(GOOD, [1.0, 2.0])
    with pytest.raises(ValueError, match="non-empty"):
        ks.filter2d(GOOD, np.zeros((0, 3)))
    with pytest.raises(ValueError, match="1023"):
        ks.filter2d(GOOD, np.ones((5000, 1)))
    with pytest.raises(ValueError, match="anchor"):
        ks.filter2d(GOOD, np.ones((3, 3)), anchor=(3, 0))
    with pytest.raises(ValueError, match="anchor"):
        ks.filter2d(GOOD, np.ones((3, 3)), anchor=(1,))
    with pytest.raises(ValueError, match="border"):
        ks.filter2d(GOOD, np.ones((3, 3)), border="mirror-ish")
    with pytest.raises(ValueError, match="border"):
        ks.filter2d(GOOD, np.ones((3, 3)), border=7)
    with pytest.raises(TypeError, match="border"):
        ks.filter2d(GOOD, np.ones((3, 3)), border=1.5)
    with pytest.raises(ValueError, match="delta"):
        ks.filter2d(GOOD, np.ones((3, 3)), delta=np.nan)
    with pytest.raises(ValueError, match="method"):
        ks.filter2d(GOOD, np.ones((3, 3)), method="winograd")
    with pytest.raises(ValueError, match="method"):
        ks.filter_bank(GOOD, [np.ones((3, 3))], method=None)
    with pytest.raises(TypeError, match="ddepth"):
        ks.filter2d(GOOD, np.ones((3, 3)), ddepth=np.float16)
    with pytest.raises(TypeError, match="ddepth"):
        ks.filter2d(GOOD, np.ones((3, 3)), ddepth=np.int32)
    with pytest.raises(ValueError, match="ksize"):
        ks.gaussian_blur(GOOD, 4, 1.0)
    with pytest.raises(ValueError, match="ksize"):
        ks.gaussian_blur(GOOD, (3, -3), 0.0)
    with pytest.raises(ValueError, match="sigma"):
        ks.gaussian_blur(GOOD, 0, 0.0)
    with pytest.raises(ValueError, match="sigma"):
        ks.gaussian_blur(GOOD, 3, np.nan)
    with pytest.raises(TypeError, match="ksize"):
        ks.gaussian_blur(GOOD, 3.0, 1.0)
    with pytest.raises(ValueError, match="dx"):
        ks.sobel(GOOD, 0, 0)
    with pytest.raises(ValueError, match="dx|order"):
        ks.sobel(GOOD, -1, 1)
    with pytest.raises(ValueError, match="order"):
        ks.sobel(GOOD, 3, 0, ksize=3)
    with pytest.raises(ValueError, match="ksize"):
        ks.sobel(GOOD, 1, 0, ksize=4)
    with pytest.raises(ValueError, match="Scharr"):
        ks.scharr(GOOD, 1, 1)
    with pytest.raises(ValueError, match="Prewitt"):
        ks.prewitt(GOOD, 2, 0)
    with pytest.raises(ValueError, match="ksize"):
        ks.laplacian(GOOD, 2)
    with pytest.raises(ValueError, match="sigma"):
        ks.log(GOOD, 0.0)
    with pytest.raises(ValueError, match="sigma"):
        ks.dog(GOOD, 1.0, -2.0)
    with pytest.raises(ValueError, match="operator"):
        ks.gradient_magnitude(GOOD, "canny")
    with pytest.raises(ValueError, match="norm"):
        ks.gradient_magnitude(GOOD, norm="l3")
    with pytest.raises(ValueError, match="one shape"):
        ks.filter_bank(GOOD, [np.ones((3, 3)), np.ones((5, 5))])
    with pytest.raises(ValueError, match="non-empty"):
        ks.filter_bank(GOOD, [])
    with pytest.raises(ValueError, match="ksize"):
        ks.gaussian_kernel(4, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        ks.gabor_kernel(5, 0.0, 0.0, 5.0, 0.5)
    with pytest.raises(ValueError, match="lambd"):
        ks.gabor_kernel(5, 1.0, 0.0, 0.0, 0.5)
    with pytest.raises(ValueError, match="finite"):
        ks.gabor_kernel(5, 1.0, np.inf, 5.0, 0.5)
    with pytest.raises(ValueError, match="ksize"):
        ks.gabor_kernel(0, 1.0, 0.0, 5.0, 0.5)
    with pytest.raises(ValueError, match="ksize"):
        ks.log_kernel(6, 1.0)
    with pytest.raises(ValueError, match="n_orientations"):
        ks.gabor_bank(GOOD, n_orientations=0)
    with pytest.raises(ValueError, match="scales"):
        ks.gabor_bank(GOOD, scales=(1.0, -1.0))


# ---------------------------------------------------------------------------
# one kernel-size cap (issue 10, item 5)

TOO_BIG = [1025, 99999, 10**9 + 1]


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_size_cap_gaussian_blur_every_dtype(dtype):
    """uint8 took its own path past the size check: 99999 ran for minutes, 10**9 + 1
    allocated 13.7 GB. Now every dtype stops at the one cap, before any allocation."""
    img = np.zeros((64, 80), dtype)
    for k in TOO_BIG:
        for ksize in (k, (3, k), (k, 3)):
            with pytest.raises(ValueError, match=r"ksize: .*1023"):
                ks.gaussian_blur(img, ksize, 1.0)
    for sigma in (200.0, 1e6, 1e300):  # sizes derived from sigma obey the same cap
        with pytest.raises(ValueError, match=r"sigma: .*1023"):
            ks.gaussian_blur(img, 0, sigma)
        with pytest.raises(ValueError, match=r"sigma: .*1023"):
            ks.gaussian_blur(img, (3, 0), 1.0, sigma)
    assert ks.gaussian_blur(img, ks.filters.MAX_KERNEL_SIZE, 1.0).shape == img.shape


def test_kernel_size_cap_every_filter():
    f = np.zeros((16, 16), np.float32)
    calls = {
        "gaussian_kernel": lambda k: ks.gaussian_kernel(k | 1, 1.0),
        "log_kernel": lambda k: ks.log_kernel(k | 1, 1.0),
        "gabor_kernel": lambda k: ks.gabor_kernel(k, 2.0, 0.0, 5.0, 0.5),
        "gabor_kernel_pair": lambda k: ks.gabor_kernel((5, k), 2.0, 0.0, 5.0, 0.5),
        "gabor_bank": lambda k: ks.gabor_bank(f, ksize=k, n_orientations=1),
        "log": lambda k: ks.log(f, 1.0, ksize=k | 1),
        "dog": lambda k: ks.dog(f, 1.0, 2.0, ksize=k | 1),
        "filter2d": lambda k: ks.filter2d(f, np.ones((1, min(k, 5000)))),
        "convolve": lambda k: ks.convolve(f, np.ones((min(k, 5000), 1))),
        "sep_filter2d": lambda k: ks.sep_filter2d(f, np.ones(min(k, 5000)), [1.0]),
        "filter_bank": lambda k: ks.filter_bank(f, [np.ones((1, min(k, 5000)))]),
    }
    for name, call in calls.items():
        for k in TOO_BIG:
            with pytest.raises(ValueError, match="1023"):
                call(k)
    for call in (lambda k: ks.sobel(f, 1, 0, ksize=k), lambda k: ks.laplacian(f, ksize=k),
                 lambda k: ks.gradient_magnitude(f, ksize=k)):  # apertures stop at 31
        for k in [33] + TOO_BIG:
            with pytest.raises(ValueError, match="ksize"):
                call(k)
    for sigma in (1e6, 1e300):  # sizes derived from sigma
        with pytest.raises(ValueError, match=r"sigma: .*1023"):
            ks.log(f, sigma)
        with pytest.raises(ValueError, match=r"sigma: .*1023"):
            ks.dog(f, 1.0, sigma)
    assert ks.gaussian_kernel(1023, 0.0).shape == (1023,)
    assert ks.gabor_kernel(1023, 2.0, 0.0, 5.0, 0.5).shape == (1023, 1023)


def test_kernel_size_cap_in_the_cpp_entry_points():
    """The C++ operators and kernel makers check the same cap themselves (for C++
    callers, who skip the Python checks), before allocating."""
    assert _core.max_kernel_size() == ks.filters.MAX_KERNEL_SIZE == 1023
    img = np.zeros((64, 80), np.uint8)
    for dtype in DTYPES:
        src = img.astype(dtype)
        dst = np.empty_like(src)
        with pytest.raises(ValueError, match="1023"):
            _core.gaussian_blur(src, dst, 99999, 99999, 1.0, 1.0)
        with pytest.raises(ValueError, match="1023"):
            _core.gaussian_blur(src, dst, 10**9 + 1, 3, 1.0, 1.0)
        with pytest.raises(ValueError, match="1023"):
            _core.gaussian_blur(src, dst, 0, 0, 1e300, 0.0)
    f = np.zeros((16, 16), np.float32)
    out = np.empty_like(f)
    checks = [
        lambda: _core.gaussian_kernel(10**9 + 1, 1.0),
        lambda: _core.log_kernel(1025, 1.0),
        lambda: _core.gabor_kernel(1025, 5, 2.0, 0.0, 5.0, 0.5, 0.0),
        lambda: _core.gabor_kernel(0, 0, 1e300, 0.3, 5.0, 0.5, 0.0),  # size derived from sigma
        lambda: _core.gabor_kernel(0, 0, 1.0, 0.3, 5.0, 1e-300, 0.0),  # sigma / gamma
        lambda: _core.gaussian_ksize_for_sigma(1e6, True),
        lambda: _core.laplacian_of_gaussian(f, out, 10**9 + 1, 1.0, 1.0),
        lambda: _core.laplacian_of_gaussian(f, out, 0, 1e300, 1.0),
        lambda: _core.difference_of_gaussians(f, out, 10**9 + 1, 1.0, 2.0),
        lambda: _core.difference_of_gaussians(f, out, 0, 1.0, 1e300),
        lambda: _core.filter2d(f, out, np.ones((1, 1025), np.float32)),
        lambda: _core.sep_filter2d(f, out, np.ones(1025, np.float32), np.ones(1, np.float32)),
    ]
    for check in checks:
        with pytest.raises(ValueError, match="1023"):
            check()


# ---------------------------------------------------------------------------
# degenerate parameters (issue 10, items 13 and 14)

@pytest.mark.parametrize("ksize", [1, 3, 5, 9, 11, 31])
def test_gaussian_kernel_tiny_and_huge_sigma_match_opencv(ksize):
    """sigma^2 underflowing gave 0 * -inf = NaN at the centre; OpenCV gives the identity
    kernel. A huge sigma is the box filter; sigma <= 0 takes OpenCV's rule."""
    for sigma in (1e-300, 1e-160, 1e-20, 0.01, 1e150, 1e300, 0.0, -1.0, -1e300):
        got = ks.gaussian_kernel(ksize, sigma)
        ref = cv2.getGaussianKernel(ksize, sigma).ravel()
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-15, err_msg=str(sigma))
    identity = np.zeros(ksize)
    identity[ksize // 2] = 1
    np.testing.assert_array_equal(ks.gaussian_kernel(ksize, 1e-300), identity)
    img = np.random.default_rng(ksize).uniform(0, 255, (9, 12)).astype(np.float32)
    np.testing.assert_array_equal(ks.gaussian_blur(img, ksize, 1e-300), img)


def test_derivative_scale_applies_to_the_result(isa, rng):
    """scale=1e38 was folded into a kernel tap, so sums overflowed on the way and gave
    inf - inf = NaN. Now outputs are inf exactly where the true value overflows float32
    and 0 where the derivative is 0 (OpenCV itself gives NaN or -inf for some)."""
    img = rng.uniform(-100, 100, (24, 30)).astype(np.float32)
    img[:, :6] = 1.0  # a flat band: derivatives exactly 0
    scale = 1e38
    cases = {
        "sobel3": (lambda s: ks.sobel(img, 1, 0, scale=s), lambda a: cv2.Sobel(a, cv2.CV_64F, 1, 0)),
        "sobel5": (lambda s: ks.sobel(img, 1, 1, ksize=5, scale=s), lambda a: cv2.Sobel(a, cv2.CV_64F, 1, 1, ksize=5)),
        "scharr": (lambda s: ks.scharr(img, 0, 1, scale=s), lambda a: cv2.Scharr(a, cv2.CV_64F, 0, 1)),
        "laplacian1": (lambda s: ks.laplacian(img, 1, scale=s), lambda a: cv2.Laplacian(a, cv2.CV_64F, ksize=1)),
        "laplacian5": (lambda s: ks.laplacian(img, 5, scale=s), lambda a: cv2.Laplacian(a, cv2.CV_64F, ksize=5)),
    }
    for name, (ours, reference) in cases.items():
        unscaled = ours(1.0)
        exact = reference(img.astype(np.float64))
        assert_close(unscaled, exact.astype(np.float32), name, terms=100 * 256)
        got = ours(scale)
        assert not np.isnan(got).any(), name
        np.testing.assert_array_equal(got[exact == 0], 0, name)
        expected = unscaled.astype(np.float64) * scale  # the finished sum, scaled once
        over = np.abs(expected) > np.finfo(np.float32).max
        assert over.any(), name
        np.testing.assert_array_equal(got[over], np.sign(expected[over]) * np.inf, name)
        np.testing.assert_allclose(got[~over], expected[~over], rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(ours(0.25), unscaled.astype(np.float64) * 0.25, rtol=1e-6)
    with pytest.raises(ValueError, match="scale"):
        ks.sobel(img, 1, 0, scale=1e39)  # beyond float32: 0 * inf would be NaN


def test_complex_kernels_are_refused():
    """A complex kernel silently lost its imaginary part."""
    f = np.zeros((8, 8), np.float32)
    k = np.ones((3, 3)) * (1 + 1j)
    with pytest.raises(TypeError, match="kernel: .*real"):
        ks.filter2d(f, k)
    with pytest.raises(TypeError, match="kernel: .*real"):
        ks.convolve(f, k)
    with pytest.raises(TypeError, match="kernel_x: .*real"):
        ks.sep_filter2d(f, [1j, 1, 1], [1, 1, 1])
    with pytest.raises(TypeError, match="kernel_y: .*real"):
        ks.sep_filter2d(f, [1, 1, 1], np.array([1, 2, 1], np.complex64))
    with pytest.raises(TypeError, match="kernels: .*real"):
        ks.filter_bank(f, [np.ones((3, 3)), k])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a real part is an ordinary kernel: no ComplexWarning
        ks.filter2d(f, np.ones((3, 3), np.complex128).real)


def test_tiny_sigma_log_and_dog_are_defined():
    """dog / log with a tiny sigma failed with "kernel_x: kernel values must be finite".
    As in cv2.GaussianBlur, a Gaussian far narrower than a pixel is the identity; the
    sampled LoG of it has nothing to curve and is exactly 0."""
    img = np.random.default_rng(3).uniform(-50, 50, (20, 25)).astype(np.float32)
    for tiny in (1e-300, 1e-100, 1e-5):
        np.testing.assert_allclose(ks.dog(img, tiny, 2.0, 9), img - cv2.GaussianBlur(img, (9, 9), 2.0),
                                   rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(ks.dog(img, 2.0, tiny, 9), cv2.GaussianBlur(img, (9, 9), 2.0) - img,
                                   rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(ks.log(img, tiny, 5, delta=1.5), 1.5)
        k = ks.log_kernel(7, tiny)
        assert np.all(np.isfinite(k)) and np.all(k == 0)
    # a small but resolvable sigma keeps the LoG's shape: zero sum, negative centre
    k = ks.log_kernel(7, 0.5)
    assert abs(k.sum()) < 1e-6 and k[3, 3] < 0


def test_gabor_tiny_sigma_and_degenerate_parameters():
    k = ks.gabor_kernel(5, 1e-300, 0.3, 5.0, 0.5, psi=0.0)
    expected = np.zeros((5, 5))
    expected[2, 2] = 1.0
    np.testing.assert_array_equal(k, expected)
    assert np.all(np.isfinite(ks.gabor_kernel(7, 1e-30, 0.3, 5.0, 1e300)))
    with pytest.raises(ValueError, match="lambd"):
        ks.gabor_kernel(5, 1.0, 0.3, 1e-320, 0.5)


def test_gabor_scales_accept_a_single_number():
    """gabor_kernels(scales=5) failed with "object of type 'int' has no len()"."""
    one = ks.gabor_kernels(9, n_orientations=3, scales=5)
    ref = ks.gabor_kernels(9, n_orientations=3, scales=(5.0,))
    assert len(one) == 3
    for a, b in zip(one, ref):
        np.testing.assert_array_equal(a, b)
    assert len(ks.gabor_kernels(9, n_orientations=2, scales=np.float32(2.0))) == 2
    assert len(ks.gabor_kernels(9, n_orientations=2, scales=(s for s in (1.0, 2.0)))) == 4
    assert ks.gabor_bank(np.zeros((12, 12), np.float32), ksize=5, n_orientations=2, scales=2).shape == (2, 12, 12)
    with pytest.raises(TypeError, match="scales"):
        ks.gabor_kernels(scales="2")
    with pytest.raises(TypeError, match="scales"):
        ks.gabor_kernels(scales=True)
    with pytest.raises(TypeError, match="scales"):
        ks.gabor_kernels(scales=None)
    with pytest.raises(ValueError, match="scales"):
        ks.gabor_kernels(scales=[])
    with pytest.raises(ValueError, match="scales"):
        ks.gabor_kernels(scales=[1.0, np.nan])


def test_huge_ints_get_clear_errors():
    """Ints of 2^31 and more are range-checked in Python (no pybind11 "incompatible
    function arguments" dump), and counts are capped."""
    f = np.zeros((8, 8), np.float32)
    calls = [
        lambda n: ks.gaussian_blur(f, n),
        lambda n: ks.gaussian_blur(f, (3, n)),
        lambda n: ks.gaussian_kernel(n),
        lambda n: ks.log_kernel(n),
        lambda n: ks.gabor_kernel(n, 2.0, 0.0, 5.0, 0.5),
        lambda n: ks.sobel(f, n, 0),
        lambda n: ks.sobel(f, 1, n),
        lambda n: ks.sobel(f, 1, 0, ksize=n),
        lambda n: ks.prewitt(f, n, 0),
        lambda n: ks.laplacian(f, n),
        lambda n: ks.log(f, 1.0, ksize=n),
        lambda n: ks.dog(f, 1.0, 2.0, ksize=n),
        lambda n: ks.gradient_magnitude(f, ksize=n),
        lambda n: ks.filter2d(f, np.ones((3, 3)), anchor=(n, 1)),
        lambda n: ks.sep_filter2d(f, [1.0], [1.0], anchor=(0, n)),
        lambda n: ks.gabor_kernels(n_orientations=n),
        lambda n: ks.filter2d(f, np.ones((3, 3)), border=n),
    ]
    for n in (2**31, 2**63, -2**31 - 1, 10**30):
        for call in calls:
            with pytest.raises(ValueError) as err:
                call(n)
            assert "incompatible" not in str(err.value)
    with pytest.raises(ValueError, match="n_orientations: .*360"):
        ks.gabor_kernels(n_orientations=10**6)  # would build a million kernels


def test_argument_sweep_messages():
    f = np.zeros((8, 8), np.float32)
    with pytest.raises(ValueError, match="operator"):
        ks.gradient_magnitude(f, [])  # unhashable: no "unhashable type" from a dict lookup
    with pytest.raises(ValueError, match="norm"):
        ks.gradient_magnitude(f, norm=np.array(["l1", "l2"]))  # no "truth value ... ambiguous"
    for bad in (None, "4", [4.0]):  # checked before scales multiply them
        with pytest.raises(TypeError, match="sigma"):
            ks.gabor_kernels(sigma=bad)
        with pytest.raises(TypeError, match="lambd"):
            ks.gabor_bank(f, lambd=bad)
    with pytest.raises(TypeError, match=r"ddepth: .*np\.float32"):
        ks.sobel(f, 1, 0, ddepth=cv2.CV_32F)
    with pytest.raises(ValueError, match="ksize"):
        ks.gaussian_blur(f, -3, 1.0)  # negative sizes are not "derive from sigma"
    with pytest.raises(TypeError, match="ksize"):
        ks.gabor_kernel(None, 2.0, 0.0, 5.0, 0.5)
    with pytest.raises(ValueError, match="sigma"):
        ks.dog(f, np.nan, 1.0)
    with pytest.raises(ValueError, match="sigma2"):
        _core.difference_of_gaussians(f, np.empty_like(f), 5, 1.0, -1.0)
    with pytest.raises(TypeError, match="sigma"):
        ks.log(f, "1.0")
    np.testing.assert_array_equal(ks.filter2d(f, np.ones((3, 3)), anchor=np.array([0, 2])),
                                  ks.filter2d(f, np.ones((3, 3)), anchor=(0, 2)))


def test_inputs_are_not_modified(rng):
    img = random_image(rng, (16, 16), np.uint8)
    before = img.copy()
    ks.gaussian_blur(img, 5, 1.0)
    ks.filter2d(img, np.ones((3, 3)))
    np.testing.assert_array_equal(img, before)


def test_doctests():
    import doctest
    import keensight.filters
    failures, tried = doctest.testmod(keensight.filters)[:2]
    assert tried > 0 and failures == 0


def test_large_float_outputs_streaming_path(isa, rng):
    """Float32 outputs of 4 MiB and more are written with non-temporal stores after an
    alignment head; the results equal OpenCV's like small images do, also for sources whose
    rows are not aligned like the destination's (a view starting at column 3)."""
    big = rng.standard_normal((1100, 1003), dtype=np.float32) * 50
    views = {"aligned": big[:, :1000], "offset view": big[:, 3:]}
    sym = np.array([[0.5, 1, 0.5], [1, -6, 1], [0.5, 1, 0.5]], np.float32)
    general = rng.standard_normal((5, 5)).astype(np.float32)
    for what, img in views.items():
        assert img.nbytes >= 4 << 20
        checks = [
            (ks.laplacian(img, ksize=1), cv2.Laplacian(img, cv2.CV_32F, ksize=1)),
            (ks.laplacian(img, ksize=3), cv2.Laplacian(img, cv2.CV_32F, ksize=3)),
            (ks.filter2d(img, sym), cv2.filter2D(img, cv2.CV_32F, sym)),
            (ks.filter2d(img, general), cv2.filter2D(img, cv2.CV_32F, general)),
            (ks.gaussian_blur(img, (11, 11), 2.5), cv2.GaussianBlur(img, (11, 11), 2.5)),
            (ks.sobel(img, 1, 0), cv2.Sobel(img, cv2.CV_32F, 1, 0)),
        ]
        for i, (got, ref) in enumerate(checks):
            assert_close(got, ref, f"{what} #{i}")


def test_all_zero_kernels_give_delta(isa, rng):
    # Every tap is dropped: the passes run with no taps at all.
    for shape in [(40, 70), (1100, 1000)]:
        img = rng.random(shape, dtype=np.float32)
        np.testing.assert_array_equal(ks.filter2d(img, np.zeros((3, 3), np.float32)), 0)
        np.testing.assert_array_equal(ks.filter2d(img, np.zeros((5, 4), np.float32), delta=2.5), 2.5)
        np.testing.assert_array_equal(ks.sep_filter2d(img, np.zeros(5, np.float32), np.ones(3, np.float32)), 0)


@pytest.mark.parametrize("kh", [1, 2, 3, 4, 5, 7, 9, 11, 13, 15, 17])
def test_separable_mirrored_columns_two_rows_at_a_time(isa, rng, kh):
    """Full mirrored column kernels of up to 15 taps filter two output rows per pass (each
    source row loaded once for both); any row count, odd or even, and every thread split."""
    half = rng.uniform(0.1, 1.0, (kh + 1) // 2).astype(np.float32)
    sym = np.concatenate([half, half[: kh // 2][::-1]]).astype(np.float32)
    kx = rng.standard_normal(5).astype(np.float32)
    for rows in (1, 2, 3, 8, 17, 40):
        for dtype in (np.float32, np.uint16):
            img = random_image(rng, (rows, 37), dtype)
            for border in ("reflect101", "constant", "wrap"):
                got = ks.sep_filter2d(img, kx, sym, ddepth=np.float32, border=border)
                ref = cv2.sepFilter2D(img, cv2.CV_32F, kx, sym, borderType=BORDERS[border]) \
                    if border != "wrap" else None
                if ref is not None:
                    assert_close(got, ref, f"{rows} {dtype} {border}")
                for threads in (1, 3):
                    ks.set_num_threads(threads)
                    try:
                        again = ks.sep_filter2d(img, kx, sym, ddepth=np.float32, border=border)
                    finally:
                        ks.set_num_threads(1)
                    np.testing.assert_array_equal(again, got)


# ---------------------------------------------------------------------------
# float64 images (as OpenCV and SciPy users pass them): filtered in float32

def _abs_filter(src, k, border=cv2.BORDER_REFLECT_101):
    """sum_ij |k_ij| |src(x + j, y + i)|: the scale of the rounding error of a sum of terms."""
    return cv2.filter2D(np.abs(src), cv2.CV_64F, np.abs(np.asarray(k, np.float64)), borderType=border)


def _sobel_kernel(dx, dy, ksize):
    kx, ky = cv2.getDerivKernels(dx, dy, ksize)
    return ky @ kx.T


_G13a = cv2.getGaussianKernel(13, 1.5)
_G13b = cv2.getGaussianKernel(13, 3.0)
_GABOR = ks.gabor_kernel(11, 3.0, 0.6, 8.0, 0.5)
_K7 = np.random.default_rng(7).standard_normal((7, 7))
_K25 = np.random.default_rng(25).standard_normal((25, 25))

# name -> (keensight on a float64 image, cv2 on CV_64F, the |terms| scale)
FLOAT64_CASES = {
    "filter2d 7x7 direct": (lambda x: ks.filter2d(x, _K7, method="direct"),
                            lambda x: cv2.filter2D(x, cv2.CV_64F, _K7), lambda x: _abs_filter(x, _K7)),
    "filter2d 25x25 fft": (lambda x: ks.filter2d(x, _K25, method="fft"),
                           lambda x: cv2.filter2D(x, cv2.CV_64F, _K25), lambda x: _abs_filter(x, _K25)),
    "convolve 7x7": (lambda x: ks.convolve(x, _K7),
                     lambda x: cv2.filter2D(x, cv2.CV_64F, _K7[::-1, ::-1]), lambda x: _abs_filter(x, _K7)),
    "sep_filter2d": (lambda x: ks.sep_filter2d(x, _G13a.ravel(), _G13b.ravel()),
                     lambda x: cv2.sepFilter2D(x, cv2.CV_64F, _G13a, _G13b),
                     lambda x: _abs_filter(x, _G13b @ _G13a.T)),
    "filter_bank": (lambda x: ks.filter_bank(x, [_K7, -_K7.T], ddepth=np.float64)[1],
                    lambda x: cv2.filter2D(x, cv2.CV_64F, -_K7.T), lambda x: _abs_filter(x, _K7)),
    "gabor_bank": (lambda x: ks.gabor_bank(x, 11, 3.0, 8.0, 0.5, 0.0, n_orientations=4, ddepth=np.float64)[2],
                   lambda x: cv2.filter2D(x, cv2.CV_64F, cv2.getGaborKernel((11, 11), 3.0, np.pi / 2, 8.0, 0.5, 0.0,
                                                                            ktype=cv2.CV_64F)),
                   lambda x: _abs_filter(x, _GABOR)),
    "gaussian_blur 5x5": (lambda x: ks.gaussian_blur(x, 5, 1.2), lambda x: cv2.GaussianBlur(x, (5, 5), 1.2),
                          lambda x: _abs_filter(x, cv2.getGaussianKernel(5, 1.2) @ cv2.getGaussianKernel(5, 1.2).T)),
    "gaussian_blur 31x31": (lambda x: ks.gaussian_blur(x, 31, 0), lambda x: cv2.GaussianBlur(x, (31, 31), 0),
                            lambda x: _abs_filter(x, cv2.getGaussianKernel(31, 0) @ cv2.getGaussianKernel(31, 0).T)),
    "sobel dx ksize 3": (lambda x: ks.sobel(x, 1, 0), lambda x: cv2.Sobel(x, cv2.CV_64F, 1, 0),
                         lambda x: _abs_filter(x, _sobel_kernel(1, 0, 3))),
    "sobel dx dy ksize 5": (lambda x: ks.sobel(x, 1, 1, 5, scale=0.5), lambda x: cv2.Sobel(x, cv2.CV_64F, 1, 1, ksize=5,
                                                                                          scale=0.5),
                            lambda x: 0.5 * _abs_filter(x, _sobel_kernel(1, 1, 5))),
    "scharr dy": (lambda x: ks.scharr(x, 0, 1), lambda x: cv2.Scharr(x, cv2.CV_64F, 0, 1),
                  lambda x: _abs_filter(x, _sobel_kernel(0, 1, -1))),
    "prewitt dx": (lambda x: ks.prewitt(x, 1, 0), lambda x: cv2.filter2D(x, cv2.CV_64F, np.array([[-1, 0, 1]] * 3, float)),
                   lambda x: _abs_filter(x, np.ones((3, 3)))),
    "laplacian ksize 1": (lambda x: ks.laplacian(x), lambda x: cv2.Laplacian(x, cv2.CV_64F),
                          lambda x: _abs_filter(x, [[0, 1, 0], [1, 4, 1], [0, 1, 0]])),
    "laplacian ksize 5": (lambda x: ks.laplacian(x, 5), lambda x: cv2.Laplacian(x, cv2.CV_64F, ksize=5),
                          lambda x: _abs_filter(x, _sobel_kernel(2, 0, 5)) + _abs_filter(x, _sobel_kernel(0, 2, 5))),
    "log": (lambda x: ks.log(x, 1.4, 9, ddepth=np.float64), lambda x: cv2.filter2D(x, cv2.CV_64F, ks.log_kernel(9, 1.4)),
            lambda x: _abs_filter(x, ks.log_kernel(9, 1.4))),
    "dog": (lambda x: ks.dog(x, 1.5, 3.0, 13, ddepth=np.float64),
            lambda x: cv2.GaussianBlur(x, (13, 13), 1.5) - cv2.GaussianBlur(x, (13, 13), 3.0),
            lambda x: _abs_filter(x, _G13a @ _G13a.T) + _abs_filter(x, _G13b @ _G13b.T)),
    "gradient_magnitude": (lambda x: ks.gradient_magnitude(x, ddepth=np.float64),
                           lambda x: np.hypot(cv2.Sobel(x, cv2.CV_64F, 1, 0), cv2.Sobel(x, cv2.CV_64F, 0, 1)),
                           lambda x: _abs_filter(x, _sobel_kernel(1, 0, 3)) + _abs_filter(x, _sobel_kernel(0, 1, 3))),
}

# The bound the filters' docstrings and the README state for float64 images: rounding the
# image to float32 and summing in float32 leaves each output within 1e-6 of the sum of the
# |terms| (kernel tap times pixel) of the exact result; measured up to 2.1e-7.
FLOAT64_REL_ERROR = 1e-6


@pytest.mark.parametrize("name", list(FLOAT64_CASES))
@pytest.mark.parametrize("scale", [1.0, 1e4, 1e-4])
def test_float64_images_match_opencv_cv64f(isa, rng, name, scale):
    ours, peer, terms = FLOAT64_CASES[name]
    x = (rng.standard_normal((37, 53)) + 2.0) * scale  # a positive offset: sums that do not cancel to 0
    got = ours(x)
    assert got.dtype == np.float64 and got.shape == x.shape
    ref = peer(x)
    bound = FLOAT64_REL_ERROR * terms(x)
    assert np.all(np.abs(got - ref) <= bound), f"{name}: worst error {np.max(np.abs(got - ref) / bound):.2f} x the bound"


def test_float64_multichannel_and_views(rng):
    x = rng.standard_normal((20, 30, 3)) * 50
    got = ks.gaussian_blur(x[:, ::-1], 5, 1.0)  # a negative-stride view
    assert got.dtype == np.float64
    ref = cv2.GaussianBlur(np.ascontiguousarray(x[:, ::-1]), (5, 5), 1.0)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6 * np.abs(x).max())


def test_ddepth_float64_and_float64_inputs_to_other_depths(rng):
    f32 = random_image(rng, (17, 23), np.float32)
    u8 = random_image(rng, (17, 23), np.uint8)
    # ddepth float64 (any spelling) gives float64: the float32 result, widened
    for spelling in (np.float64, "float64", float, np.dtype("f8")):
        got = ks.sobel(f32, 1, 0, ddepth=spelling)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, ks.sobel(f32, 1, 0, ddepth=np.float32).astype(np.float64))
    got = ks.filter2d(u8, _K7, ddepth=np.float64)
    np.testing.assert_array_equal(got, ks.filter2d(u8, _K7, ddepth=np.float32).astype(np.float64))
    # a float64 image is its float32 rounding for every output depth
    f64 = f32.astype(np.float64) + 1e-9  # below float32's resolution at these magnitudes
    np.testing.assert_array_equal(ks.laplacian(f64, ddepth=np.float32), ks.laplacian(f32))
    np.testing.assert_array_equal(ks.laplacian(f64, ddepth=np.int16), ks.laplacian(f32, ddepth=np.int16))
    np.testing.assert_array_equal(ks.filter2d(f64, _K7, ddepth=np.uint8), ks.filter2d(f32, _K7, ddepth=np.uint8))
    np.testing.assert_array_equal(ks.filter_bank(f64, [_K7]), ks.filter_bank(f32, [_K7]))  # float32 by default
    assert ks.gabor_bank(f64, 5, n_orientations=2).dtype == np.float32


@pytest.mark.parametrize("name", list(PUBLIC_IMAGE_CALLS))
def test_float64_non_finite_pixels_behave_as_float32(rng, name):
    call = PUBLIC_IMAGE_CALLS[name]
    x = rng.standard_normal((16, 19)) * 10
    x[3, 4], x[9, 12], x[12, 2] = np.nan, np.inf, -np.inf
    x[0, 0] = 1e300  # beyond float32: +inf, as float32 arithmetic would make it
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    got, want = call(x), call(x32)
    # float32 by default (ddepth=np.float32) for these; the input's dtype for the others
    float32_default = ("filter_bank", "gabor_bank", "log", "dog", "gradient_magnitude")
    assert got.dtype == (np.float32 if name in float32_default else np.float64)
    np.testing.assert_array_equal(got, want.astype(got.dtype))  # NaN where float32 has NaN, inf where inf
    assert np.isnan(got).any() and np.isfinite(got).any()
