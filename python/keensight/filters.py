"""Image filters with OpenCV's semantics, run by keensight's C++ core.

Images are HxW or HxWxC NumPy arrays of uint8, uint16, int16, float32 or float64
(any strides; views that are not row-contiguous are copied). Arithmetic is float32;
integer outputs are rounded to nearest and saturated, as ``cv2`` does. Border
modes are ``"constant"``, ``"replicate"``, ``"reflect"``, ``"reflect101"``
(default, as OpenCV) and ``"wrap"``; ``cv2.BORDER_*`` integers work too.

float64 images (as OpenCV's ``CV_64F`` and SciPy users pass them) are rounded to
float32 and filtered in float32, and the result is float64 wherever the output
takes the input's dtype (``ddepth=None``, and :func:`gaussian_blur`);
``ddepth=np.float64`` (or ``"float64"``) gives float64 for any input. Each float64
output is then within ``1e-6 * sum_ij |k_ij * src(x + j, y + i)|`` (the sum of the
absolute terms) of the exact float64 filter -- measured at most 2.1e-7 of it
against ``cv2`` on ``CV_64F`` for kernels from 3x3 to 41x41, direct and FFT --
for pixels inside float32's range: larger magnitudes become +-inf, and NaN and
infinities propagate exactly as in a float32 image.

Every kernel size -- given, or derived from sigma -- is at most
``MAX_KERNEL_SIZE`` (1023) taps per side, for every filter and dtype; larger
ones raise ValueError naming the argument.

Examples
--------
>>> import numpy as np
>>> import keensight as ks
>>> img = np.zeros((5, 5), np.uint8); img[2, 2] = 255
>>> ks.gaussian_blur(img, 3, 0)[1:4, 1:4]
array([[16, 32, 16],
       [32, 64, 32],
       [16, 32, 16]], dtype=uint8)
>>> ks.sobel(img.astype(np.float32), 1, 0)[2, 1:4]
array([ 510.,    0., -510.], dtype=float32)
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from . import _validate as v

__all__ = [
    "MAX_KERNEL_SIZE", "MAX_ORIENTATIONS", "filter2d", "convolve", "sep_filter2d", "filter_bank", "gaussian_kernel", "gabor_kernel",
    "gabor_kernels", "log_kernel", "gaussian_blur", "sobel", "scharr", "prewitt", "laplacian",
    "log", "dog", "gradient_magnitude", "gabor_bank",
]

KSize = Union[int, Tuple[int, int], None]

MAX_KERNEL_SIZE = v.MAX_KERNEL_SIZE
# The most orientations one Gabor bank takes (steps of half a degree): the bank's
# kernels and responses grow with it.
MAX_ORIENTATIONS = 360


def _options(anchor: Tuple[int, int], border: Any, border_value: Any, delta: Any) -> dict:
    return dict(anchor_x=anchor[0], anchor_y=anchor[1], border=v.border(border),
                border_value=v.real(border_value, "border_value"), delta=v.real(delta, "delta"))


def _method(method: Any) -> str:
    if not isinstance(method, str) or method not in ("auto", "direct", "fft"):
        raise ValueError(f"method: expected 'auto', 'direct' or 'fft', got {method!r}")
    return method


def _derivative_options(border: Any, delta: Any) -> dict:
    return _options((-1, -1), border, 0.0, delta)


_FLOAT64 = np.dtype(np.float64)


def _source(src: Any) -> Tuple[np.ndarray, bool]:
    """`src` as the core takes it, and whether it was float64: float64 images are rounded
    to float32 (values beyond float32's range become +-inf) and filtered in float32."""
    if isinstance(src, np.ndarray) and src.dtype == _FLOAT64:
        with np.errstate(over="ignore"):
            return v.image(src.astype(np.float32)), True
    return v.image(src), False


def _asks_float64(ddepth: Any) -> bool:
    if ddepth is None or isinstance(ddepth, (bool, numbers.Integral)):
        return False
    try:
        return np.dtype(ddepth) == _FLOAT64
    except TypeError:
        return False


def _keeps_dtype(ddepth: Any) -> bool:
    """None or -1: the output has the input's dtype (OpenCV's convention)."""
    return ddepth is None or (isinstance(ddepth, numbers.Integral) and not isinstance(ddepth, bool)
                              and ddepth == -1)


def _output_dtypes(src: np.ndarray, src_was_float64: bool, ddepth: Any) -> Tuple[np.dtype, np.dtype]:
    """(dtype the core writes, dtype returned): float64 results are computed as float32."""
    if src_was_float64 and _keeps_dtype(ddepth):
        return np.dtype(np.float32), _FLOAT64
    try:
        dt = v.out_dtype(ddepth, src)  # the common case first: a dtype the core writes
    except TypeError:
        if _asks_float64(ddepth):
            return np.dtype(np.float32), _FLOAT64
        raise
    return dt, dt


def _output(src: np.ndarray, src_was_float64: bool, ddepth: Any,
            shape: Optional[Tuple[int, ...]] = None) -> Tuple[np.ndarray, np.dtype]:
    run, returned = _output_dtypes(src, src_was_float64, ddepth)
    return np.empty(src.shape if shape is None else shape, dtype=run), returned


def _result(dst: np.ndarray, returned: np.dtype) -> np.ndarray:
    return dst if dst.dtype == returned else dst.astype(returned)


# ---------------------------------------------------------------------------
# General linear filters

def filter2d(src: Any, kernel: Any, ddepth: Any = None, anchor: Optional[Tuple[int, int]] = None,
             delta: float = 0.0, border: v.BorderLike = "reflect101",
             border_value: float = 0.0, method: str = "auto") -> np.ndarray:
    """Cross-correlate an image with a 2-D kernel, as ``cv2.filter2D``.

    ``dst(x, y) = sum_ij kernel(i, j) * src(x + j - ax, y + i - ay) + delta``.

    Parameters
    ----------
    src : array_like
        HxW or HxWxC image (uint8, uint16, int16, float32, float64: float64 is
        filtered in float32, see the module notes); each channel is filtered.
    kernel : array_like
        Real 2-D kernel (any size up to 1023x1023, even sizes allowed; complex
        kernels raise TypeError).
    ddepth : dtype, optional
        Output dtype (uint8, uint16, int16, float32 or float64); None keeps
        ``src.dtype``.
    anchor : (x, y), optional
        Kernel position of the output pixel; default the centre ``(kw // 2, kh // 2)``.
    delta : float
        Added to every output value.
    border : str or int
        Border extrapolation mode.
    border_value : float
        Pixel value outside the image for ``border="constant"``.
    method : {"auto", "direct", "fft"}
        ``"direct"`` sums the taps (SIMD, mirrored taps paired); ``"fft"`` runs
        overlap-save FFT tiles, cheaper for large kernels (from about 11x11),
        with float rounding of order 1e-6 of the response scale; ``"auto"``
        picks by kernel and image size.

    Returns
    -------
    numpy.ndarray
        Same shape as `src`, dtype `ddepth`.

    Examples
    --------
    >>> import numpy as np, keensight as ks
    >>> ks.filter2d(np.arange(9, dtype=np.float32).reshape(3, 3), [[0, 0, 0], [0, 0, 1], [0, 0, 0]],
    ...             border="constant")
    array([[1., 2., 0.],
           [4., 5., 0.],
           [7., 8., 0.]], dtype=float32)
    """
    src, src64 = _source(src)
    k = v.kernel(kernel, 2)
    a = v.anchor(anchor, *k.shape)
    dst, returned = _output(src, src64, ddepth)
    _core.filter2d(src, dst, k, **_options(a, border, border_value, delta), method=_method(method))
    return _result(dst, returned)


def convolve(src: Any, kernel: Any, ddepth: Any = None, anchor: Optional[Tuple[int, int]] = None,
             delta: float = 0.0, border: v.BorderLike = "reflect101",
             border_value: float = 0.0, method: str = "auto") -> np.ndarray:
    """True 2-D convolution: :func:`filter2d` with the kernel flipped both ways.

    The anchor refers to the unflipped kernel (default its centre), so
    ``convolve(img, k)`` equals ``scipy.ndimage.convolve(img, k)`` for odd kernels.
    """
    k = v.kernel(kernel, 2)
    kh, kw = k.shape
    ax, ay = v.anchor(anchor, kh, kw)
    ax = kw // 2 if ax < 0 else ax
    ay = kh // 2 if ay < 0 else ay
    return filter2d(src, k[::-1, ::-1], ddepth, (kw - 1 - ax, kh - 1 - ay), delta, border, border_value,
                    method)


def sep_filter2d(src: Any, kernel_x: Any, kernel_y: Any, ddepth: Any = None,
                 anchor: Optional[Tuple[int, int]] = None, delta: float = 0.0,
                 border: v.BorderLike = "reflect101", border_value: float = 0.0) -> np.ndarray:
    """Separable filter: rows with `kernel_x`, then columns with `kernel_y` (``cv2.sepFilter2D``)."""
    src, src64 = _source(src)
    kx = v.kernel(kernel_x, 1, "kernel_x")
    ky = v.kernel(kernel_y, 1, "kernel_y")
    a = v.anchor(anchor, ky.size, kx.size)
    dst, returned = _output(src, src64, ddepth)
    _core.sep_filter2d(src, dst, kx, ky, **_options(a, border, border_value, delta))
    return _result(dst, returned)


def filter_bank(src: Any, kernels: Sequence[Any], ddepth: Any = np.float32,
                anchor: Optional[Tuple[int, int]] = None, delta: float = 0.0,
                border: v.BorderLike = "reflect101", border_value: float = 0.0,
                method: str = "auto") -> np.ndarray:
    """Correlate one image with several kernels of one size in a single pass.

    Each source row is loaded and border-extended once for all kernels; with
    ``method="fft"`` (chosen by ``"auto"`` for large kernels) each image tile is
    transformed once and every kernel costs one product and one inverse
    transform. `method` as in :func:`filter2d`.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(kernels),) + src.shape``; entry k equals ``filter2d(src, kernels[k])``.
    """
    src, src64 = _source(src)
    if isinstance(kernels, np.ndarray) and kernels.ndim == 3:
        kernels = list(kernels)
    if not isinstance(kernels, (list, tuple)) or len(kernels) == 0:
        raise ValueError("kernels: expected a non-empty sequence of 2-D kernels")
    ks = [v.kernel(k, 2, "kernels") for k in kernels]
    if any(k.shape != ks[0].shape for k in ks):
        raise ValueError("kernels: expected kernels of one shape")
    a = v.anchor(anchor, *ks[0].shape)
    out, returned = _output(src, src64, ddepth, (len(ks),) + src.shape)
    _core.filter_bank(src, list(out), ks, **_options(a, border, border_value, delta),
                      method=_method(method))
    return _result(out, returned)


# ---------------------------------------------------------------------------
# Kernel makers

def gaussian_kernel(ksize: int, sigma: float = 0.0) -> np.ndarray:
    """1-D Gaussian kernel summing to 1, as ``cv2.getGaussianKernel(ksize, sigma)``.

    ``sigma <= 0`` takes ``0.3 * ((ksize - 1) * 0.5 - 1) + 0.8``, except for ksize 1 to 9,
    which use the fixed tables OpenCV 5 uses (multiples of 1/256). The values are
    OpenCV's to the last bit (its bit-exact arithmetic); a sigma so small that its
    square underflows gives ``[0, ..., 0, 1, 0, ..., 0]`` and a huge one the box
    filter, as in OpenCV.

    Parameters
    ----------
    ksize : int
        Odd size, 1 to ``MAX_KERNEL_SIZE``.
    sigma : float
        Standard deviation in pixels; ``<= 0`` derives it from `ksize`.

    Returns
    -------
    numpy.ndarray
        float64, shape ``(ksize,)``.

    Examples
    --------
    >>> import keensight as ks
    >>> ks.gaussian_kernel(5, 1e-300)
    array([0., 0., 1., 0., 0.])
    """
    return _core.gaussian_kernel(v.kernel_size(ksize), v.real(sigma, "sigma"))


def gabor_kernel(ksize: Union[int, Tuple[int, int]], sigma: float, theta: float, lambd: float,
                 gamma: float, psi: float = math.pi * 0.5) -> np.ndarray:
    """Gabor kernel with ``cv2.getGaborKernel``'s parameters and layout.

    Parameters
    ----------
    ksize : int or (width, height)
        Size, 1 to ``MAX_KERNEL_SIZE``; the kernel has ``2 * (k // 2) + 1`` taps per
        side (OpenCV's rule).
    sigma, theta, lambd, gamma, psi : float
        Gaussian envelope std, orientation (radians), wavelength, spatial aspect
        ratio and phase offset.

    Returns
    -------
    numpy.ndarray
        float64 2-D kernel.
    """
    kw, kh = v.ksize_pair(ksize)
    k = _core.gabor_kernel(kw, kh, v.real(sigma, "sigma"), v.real(theta, "theta"),
                           v.real(lambd, "lambd"), v.real(gamma, "gamma"), v.real(psi, "psi"))
    return k.astype(np.float64)


def _scales(scales: Any) -> List[float]:
    """`scales` as a non-empty list of positive factors; a single number is one scale."""
    if isinstance(scales, numbers.Real) and not isinstance(scales, bool):
        scales = [scales]
    elif isinstance(scales, (str, bytes)) or not isinstance(scales, Iterable):
        raise TypeError(f"scales: expected a number or a sequence of numbers, got {type(scales).__name__}")
    out = []
    for s in scales:
        s = v.real(s, "scales")
        if s <= 0:
            raise ValueError(f"scales: expected positive scale factors, got {s}")
        out.append(s)
    if not out:
        raise ValueError("scales: expected at least one scale")
    return out


def gabor_kernels(ksize: Union[int, Tuple[int, int]] = 21, sigma: float = 4.0, lambd: float = 10.0,
                  gamma: float = 0.5, psi: float = 0.0, n_orientations: int = 8,
                  scales: Union[float, Sequence[float]] = (1.0,)) -> List[np.ndarray]:
    """The kernels of :func:`gabor_bank`: for each scale s (sigma and lambd times s),
    orientations ``theta = k * pi / n_orientations``; scale-major order.

    `n_orientations` is 1 to ``MAX_ORIENTATIONS``; `scales` is a sequence of
    positive factors or a single number."""
    n = v.positive_int(n_orientations, "n_orientations", MAX_ORIENTATIONS)
    sigma, lambd = v.real(sigma, "sigma"), v.real(lambd, "lambd")  # before they are multiplied
    out = []
    for s in _scales(scales):
        for k in range(n):
            out.append(gabor_kernel(ksize, sigma * s, k * math.pi / n, lambd * s, gamma, psi))
    return out


def log_kernel(ksize: int, sigma: float = 0.0) -> np.ndarray:
    """Laplacian-of-Gaussian kernel used by :func:`log` (sums to zero).

    ``gxx (x) g + g (x) gxx`` with g the normalised sampled Gaussian and gxx its
    second derivative, corrected to sum to zero. ``sigma <= 0`` takes OpenCV's
    rule from ksize. A sigma far below a pixel leaves nothing between the samples to
    curve: the kernel is then all zeros. `ksize`: odd, 1 to ``MAX_KERNEL_SIZE``.
    """
    return _core.log_kernel(v.kernel_size(ksize), v.real(sigma, "sigma")).astype(np.float64)


# ---------------------------------------------------------------------------
# Smoothing and derivatives

def gaussian_blur(src: Any, ksize: KSize, sigma: float = 0.0, sigma_y: float = 0.0,
                  border: v.BorderLike = "reflect101") -> np.ndarray:
    """Gaussian blur, as ``cv2.GaussianBlur(src, ksize, sigma, sigmaY=sigma_y)``.

    Runs as a column pass and a row pass. `ksize` is an odd int up to
    ``MAX_KERNEL_SIZE``, a (width, height) pair, or 0/None to derive it from sigma
    (``round(sigma * 6 + 1) | 1`` for uint8, ``* 8`` otherwise, which must not exceed
    the limit either); ``sigma_y <= 0`` takes `sigma`.

    uint8 and uint16 images give OpenCV's results bit for bit: OpenCV computes
    them in fixed point (taps in units of 2^-8 and 2^-16) and so does keensight.
    int16 and float32 run in float32 arithmetic; float64 images too, with a
    float64 result (error bound in the module notes).
    """
    src, src64 = _source(src)
    kw, kh = v.ksize_pair(ksize, allow_zero=True)
    dst, returned = _output(src, src64, None)
    _core.gaussian_blur(src, dst, kw, kh, v.real(sigma, "sigma"), v.real(sigma_y, "sigma_y"),
                        v.border(border))
    return _result(dst, returned)


def sobel(src: Any, dx: int, dy: int, ksize: int = 3, scale: float = 1.0, delta: float = 0.0,
          ddepth: Any = None, border: v.BorderLike = "reflect101") -> np.ndarray:
    """Sobel derivative of order (dx, dy), as ``cv2.Sobel``.

    `ksize` is 1 (3-tap derivative, no smoothing), 3, 5, 7, ... 31, or -1 for Scharr.
    Default output dtype is the input's, as in OpenCV: pass ``ddepth=np.float32``
    (or int16) to keep negative derivatives of uint8 images. `scale` multiplies the
    finished derivative (not a kernel tap, as OpenCV does): an output is inf only
    when its true value overflows float32, and 0 where the derivative is 0.
    """
    src, src64 = _source(src)
    dst, returned = _output(src, src64, ddepth)
    _core.sobel(src, dst, v.integer(dx, "dx"), v.integer(dy, "dy"), v.integer(ksize, "ksize"),
                v.real(scale, "scale"), **_derivative_options(border, delta))
    return _result(dst, returned)


def scharr(src: Any, dx: int, dy: int, scale: float = 1.0, delta: float = 0.0,
           ddepth: Any = None, border: v.BorderLike = "reflect101") -> np.ndarray:
    """Scharr 3x3 first derivative (dx + dy == 1), as ``cv2.Scharr``."""
    return sobel(src, dx, dy, -1, scale, delta, ddepth, border)


def prewitt(src: Any, dx: int, dy: int, scale: float = 1.0, delta: float = 0.0,
            ddepth: Any = None, border: v.BorderLike = "reflect101") -> np.ndarray:
    """Prewitt 3x3 first derivative (dx + dy == 1): ``[-1 0 1]`` along the
    derivative, ``[1 1 1]`` across it."""
    src, src64 = _source(src)
    dst, returned = _output(src, src64, ddepth)
    _core.prewitt(src, dst, v.integer(dx, "dx"), v.integer(dy, "dy"), v.real(scale, "scale"),
                  **_derivative_options(border, delta))
    return _result(dst, returned)


def laplacian(src: Any, ksize: int = 1, scale: float = 1.0, delta: float = 0.0,
              ddepth: Any = None, border: v.BorderLike = "reflect101") -> np.ndarray:
    """Laplacian, as ``cv2.Laplacian``: ksize 1 is ``[[0,1,0],[1,-4,1],[0,1,0]]``,
    ksize 3 is ``[[2,0,2],[0,-8,0],[2,0,2]]``, larger odd sizes sum second Sobel derivatives.
    `scale` multiplies the finished sum, as in :func:`sobel`."""
    src, src64 = _source(src)
    dst, returned = _output(src, src64, ddepth)
    _core.laplacian(src, dst, v.integer(ksize, "ksize"), v.real(scale, "scale"),
                    **_derivative_options(border, delta))
    return _result(dst, returned)


def log(src: Any, sigma: float = 1.0, ksize: Optional[int] = None, scale: float = 1.0,
        delta: float = 0.0, ddepth: Any = np.float32,
        border: v.BorderLike = "reflect101") -> np.ndarray:
    """Laplacian of Gaussian: ``filter2d(src, log_kernel(ksize, sigma))`` computed
    as two separable passes in one sweep over the image.

    `ksize` None takes ``round(8 * sigma + 1) | 1``, at most ``MAX_KERNEL_SIZE``.
    Output float32 by default. A sigma far below a pixel gives the zero kernel
    (see :func:`log_kernel`).
    """
    src, src64 = _source(src)
    sigma = v.real(sigma, "sigma")
    if sigma <= 0:
        raise ValueError(f"sigma: expected sigma > 0, got {sigma}")
    k = _core.gaussian_ksize_for_sigma(sigma, False) if ksize is None else v.kernel_size(ksize)
    dst, returned = _output(src, src64, ddepth)
    _core.laplacian_of_gaussian(src, dst, k, sigma, v.real(scale, "scale"),
                                **_derivative_options(border, delta))
    return _result(dst, returned)


def dog(src: Any, sigma1: float, sigma2: float, ksize: Optional[int] = None, delta: float = 0.0,
        ddepth: Any = np.float32, border: v.BorderLike = "reflect101") -> np.ndarray:
    """Difference of Gaussians ``G(sigma1) * src - G(sigma2) * src`` in one pass.

    Both Gaussians have `ksize` taps (None: derived from the larger sigma; at most
    ``MAX_KERNEL_SIZE`` either way). Output float32 by default. A sigma far below
    a pixel is the identity kernel, as in :func:`gaussian_kernel`.
    """
    src, src64 = _source(src)
    k = 0 if ksize is None else v.kernel_size(ksize)
    dst, returned = _output(src, src64, ddepth)
    _core.difference_of_gaussians(src, dst, k, v.real(sigma1, "sigma1"), v.real(sigma2, "sigma2"),
                                  **_derivative_options(border, delta))
    return _result(dst, returned)


_GRADIENT_OPERATORS = {"sobel": 0, "prewitt": 1, "scharr": 2}


def gradient_magnitude(src: Any, operator: str = "sobel", ksize: int = 3, norm: str = "l2",
                       ddepth: Any = np.float32, border: v.BorderLike = "reflect101") -> np.ndarray:
    """Gradient magnitude ``sqrt(gx^2 + gy^2)`` (norm="l2") or ``|gx| + |gy|`` (norm="l1")
    of a Sobel (with `ksize`), Prewitt or Scharr derivative pair, in one pass.

    Equals ``cv2.magnitude(cv2.Sobel(src, cv2.CV_32F, 1, 0), cv2.Sobel(src, cv2.CV_32F, 0, 1))``
    for the default arguments.
    """
    src, src64 = _source(src)
    if not isinstance(operator, str) or operator not in _GRADIENT_OPERATORS:
        raise ValueError(f"operator: expected one of {sorted(_GRADIENT_OPERATORS)}, got {operator!r}")
    if not isinstance(norm, str) or norm not in ("l1", "l2"):
        raise ValueError(f"norm: expected 'l1' or 'l2', got {norm!r}")
    dst, returned = _output(src, src64, ddepth)
    _core.gradient_magnitude(src, dst, _GRADIENT_OPERATORS[operator], v.integer(ksize, "ksize"),
                             norm == "l1", **_derivative_options(border, 0.0))
    return _result(dst, returned)


def gabor_bank(src: Any, ksize: Union[int, Tuple[int, int]] = 21, sigma: float = 4.0,
               lambd: float = 10.0, gamma: float = 0.5, psi: float = 0.0,
               n_orientations: int = 8, scales: Union[float, Sequence[float]] = (1.0,),
               ddepth: Any = np.float32, border: v.BorderLike = "reflect101",
               method: str = "auto") -> np.ndarray:
    """Responses of a Gabor filter bank, computed in one pass over the image.

    Kernels are :func:`gabor_kernels` (``n_orientations`` per scale); `method`
    as in :func:`filter2d` (large banks run by FFT under ``"auto"``).

    Returns
    -------
    numpy.ndarray
        Shape ``(n_scales * n_orientations,) + src.shape``, float32 by default.
    """
    kernels = gabor_kernels(ksize, sigma, lambd, gamma, psi, n_orientations, scales)
    return filter_bank(src, kernels, ddepth=ddepth, border=border, method=method)
