"""Argument checks shared by the area modules: one place that turns user input
into what ``_core`` accepts, with errors that name the argument."""
from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Tuple, Union

import numpy as np

IMAGE_DTYPES = (np.uint8, np.uint16, np.int16, np.float32)
_DTYPE_NAMES = "uint8, uint16, int16 or float32"

BORDERS = {"constant": 0, "replicate": 1, "reflect": 2, "wrap": 3, "reflect101": 4}
_BORDER_ALIASES = {"reflect_101": 4, "default": 4, "isolated": 4}

BorderLike = Union[str, int]
DTypeLike = Any


def image(src: Any, name: str = "src") -> np.ndarray:
    """Return `src` as an HxW or HxWxC array of a supported dtype, with pixels
    contiguous within rows and a positive row stride (copying only if needed).

    NumPy arrays must already have a supported dtype (nothing is converted
    silently); other array-likes (nested lists, ...) of numbers become float32.
    """
    if isinstance(src, np.ndarray):
        a = src
    else:
        try:
            a = np.asarray(src)
        except Exception as exc:  # pragma: no cover - numpy's own message is kept
            raise TypeError(f"{name}: expected an array-like image ({exc})") from None
        if a.dtype.kind not in "iuf":
            raise TypeError(f"{name}: expected a numeric array-like image, got dtype {a.dtype}")
        a = a.astype(np.float32)
    if a.dtype not in IMAGE_DTYPES:
        hint = " (convert with .astype(np.float32))" if a.dtype.kind in "fiub" else ""
        raise TypeError(f"{name}: expected dtype {_DTYPE_NAMES}, got {a.dtype}{hint}")
    if a.ndim not in (2, 3):
        raise ValueError(f"{name}: expected a 2-D (HxW) or 3-D (HxWxC) image, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name}: expected a non-empty image, got shape {a.shape}")
    item = a.itemsize
    inner = a.strides[1:] == ((item,) if a.ndim == 2 else (item * a.shape[2], item))
    inner = inner or (a.ndim == 2 and a.shape[1] == 1) or (a.ndim == 3 and a.shape[1] * a.shape[2] == 1)
    if not inner or (a.shape[0] > 1 and a.strides[0] <= 0) or not a.flags.aligned:
        a = np.ascontiguousarray(a)
    return a


def out_dtype(ddepth: Optional[DTypeLike], src: np.ndarray, name: str = "ddepth") -> np.dtype:
    """The output dtype: `src`'s for None or -1 (OpenCV's convention), else a NumPy dtype."""
    if ddepth is None or (isinstance(ddepth, numbers.Integral) and not isinstance(ddepth, bool) and ddepth == -1):
        return src.dtype
    try:
        dt = np.dtype(ddepth)
    except TypeError:
        raise TypeError(f"{name}: expected None or a dtype ({_DTYPE_NAMES}), got {ddepth!r}") from None
    if dt not in IMAGE_DTYPES:
        raise TypeError(f"{name}: expected None or a dtype ({_DTYPE_NAMES}), got {dt}")
    return dt


def border(value: BorderLike, name: str = "border") -> int:
    """Border mode as OpenCV's integer code; accepts names or cv2.BORDER_* ints."""
    if isinstance(value, str):
        key = value.lower()
        if key in BORDERS:
            return BORDERS[key]
        if key in _BORDER_ALIASES:
            return _BORDER_ALIASES[key]
        raise ValueError(f"{name}: expected one of {sorted(BORDERS)}, got {value!r}")
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        code = int(value) & ~16  # cv2.BORDER_ISOLATED changes nothing for whole arrays
        if code in BORDERS.values():
            return code
        raise ValueError(f"{name}: unsupported OpenCV border code {value}")
    raise TypeError(f"{name}: expected a border name or cv2.BORDER_* int, got {type(value).__name__}")


def integer(value: Any, name: str) -> int:
    if type(value) is int:  # the common case, without the slower ABC checks below
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    return int(value)


def real(value: Any, name: str, finite: bool = True) -> float:
    if type(value) is not float and type(value) is not int:  # ABC checks only off the common path
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    v = float(value)
    if finite and not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v}")
    return v


def ksize_pair(ksize: Any, name: str = "ksize") -> Tuple[int, int]:
    """An int k -> (k, k); a (width, height) pair -> itself; None -> (0, 0)."""
    if ksize is None:
        return 0, 0
    if isinstance(ksize, (tuple, list)):
        if len(ksize) != 2:
            raise ValueError(f"{name}: expected an int or a (width, height) pair, got {ksize!r}")
        return integer(ksize[0], name), integer(ksize[1], name)
    k = integer(ksize, name)
    return k, k


def anchor(value: Any, kh: int, kw: int) -> Tuple[int, int]:
    """(x, y) anchor; None or (-1, -1) is the kernel centre."""
    if value is None:
        return -1, -1
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"anchor: expected an (x, y) pair, got {value!r}")
    ax, ay = integer(value[0], "anchor"), integer(value[1], "anchor")
    if not (-1 <= ax < kw and -1 <= ay < kh):
        raise ValueError(f"anchor: ({ax}, {ay}) is outside the {kh}x{kw} kernel")
    return ax, ay


def kernel(value: Any, ndim: int, name: str = "kernel") -> np.ndarray:
    """A finite float32 kernel of `ndim` dimensions (a 1-D kernel may also be given as Nx1 or 1xN)."""
    try:
        k = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a numeric array") from None
    if ndim == 1 and k.ndim == 2 and 1 in k.shape:
        k = k.reshape(-1)
    if k.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D kernel, got shape {k.shape}")
    if k.size == 0:
        raise ValueError(f"{name}: expected a non-empty kernel")
    if max(k.shape) > 1023:
        raise ValueError(f"{name}: kernels larger than 1023 taps per side are not supported, got {k.shape}")
    if not np.all(np.isfinite(k)):
        raise ValueError(f"{name}: kernel values must be finite")
    return np.ascontiguousarray(k)


def matrix(x: Any, name: str = "X", *, dim: Optional[int] = None, allow_empty: bool = False,
           check_finite: bool = True) -> np.ndarray:
    """`x` as a C-contiguous float32 matrix (one row per vector), copying only if needed.

    Numeric array-likes are converted (float64 -> float32 included); non-numeric
    input raises TypeError; not 2-D, no columns, no rows (unless `allow_empty`),
    a number of columns other than `dim`, NaN or infinity raise ValueError.
    ``check_finite=False`` leaves the NaN / infinity check to the caller (who may
    check a smaller result instead: one pass over a large input costs as much as
    a fast kernel).
    """
    try:
        a = np.asarray(x)
    except Exception as exc:  # pragma: no cover - numpy's own message is kept
        raise TypeError(f"{name}: expected a numeric 2-D array-like ({exc})") from None
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array, got dtype {a.dtype}")
    if a.ndim != 2:
        hint = " (use x.reshape(1, -1) for a single vector)" if a.ndim == 1 else ""
        raise ValueError(f"{name}: expected a 2-D array (one row per vector), got shape {a.shape}{hint}")
    if a.shape[1] == 0 or (a.shape[0] == 0 and not allow_empty):
        raise ValueError(f"{name}: expected a non-empty array, got shape {a.shape}")
    if dim is not None and a.shape[1] != dim:
        raise ValueError(f"{name}: expected {dim} columns (the fitted dimension), got {a.shape[1]}")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported below
        a = np.ascontiguousarray(a, dtype=np.float32)
    # min and max propagate NaN and are reductions without a temporary array.
    if check_finite and a.size and not (np.isfinite(a.min()) and np.isfinite(a.max())):
        raise ValueError(f"{name}: contains NaN or infinity (or values too large for float32)")
    return a


def positive_int(value: Any, name: str) -> int:
    """An int >= 1 (bools refused)."""
    value = integer(value, name)
    if value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value}")
    return value
