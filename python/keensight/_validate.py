"""Argument checks shared by the area modules: one place that turns user input
into what ``_core`` accepts, with errors that name the argument."""
from __future__ import annotations

import math
import numbers
import os
import stat
from typing import Any, Optional, Tuple, Union

import numpy as np

from . import _core

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
    hint = ""
    if isinstance(ddepth, numbers.Integral) and not isinstance(ddepth, bool):
        hint = " (cv2.CV_* depth codes are not dtypes: pass e.g. np.float32)"
    try:
        dt = np.dtype(ddepth)
    except TypeError:
        raise TypeError(f"{name}: expected None or a dtype ({_DTYPE_NAMES}), got {ddepth!r}{hint}") from None
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


# Ints handed to the C++ core are 32-bit unless a caller says otherwise: checking the
# range here gives "name: expected ..." instead of pybind11's "incompatible arguments".
INT32_MAX = 2 ** 31 - 1
INT64_MAX = 2 ** 63 - 1
# The most threads any keensight function starts (kernels, decoders, onnxruntime
# sessions): far above any core count, far below what exhausts a process.
MAX_THREADS = 256


def integer(value: Any, name: str, low: Optional[int] = -INT32_MAX - 1, high: Optional[int] = INT32_MAX) -> int:
    """`value` as an int in [low, high] (None: unbounded on that side); bools and
    non-integral numbers raise TypeError, values out of range ValueError."""
    if type(value) is not int:  # the common case skips the slower ABC checks below
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
        value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            want = f">= {low}"
        elif low is None:
            want = f"<= {high}"
        else:
            want = f"in [{low}, {high}]"
        raise ValueError(f"{name}: expected an int {want}, got {value}")
    return value


def boolean(value: Any, name: str) -> bool:
    """`value` as a bool: True / False (or NumPy's bool); strings, numbers and None
    raise TypeError (``"no"`` is not False)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name}: expected True or False, got {value!r}")


def num_threads(value: Any, name: str = "threads", allow_default: bool = True) -> int:
    """A thread count in [1, MAX_THREADS], or 0 ("the default") when `allow_default`."""
    low = 0 if allow_default else 1
    return integer(value, name, low, MAX_THREADS)


def real(value: Any, name: str, finite: bool = True) -> float:
    if type(value) is not float and type(value) is not int:  # ABC checks only off the common path
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    v = float(value)
    if finite and not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v}")
    return v


# The largest kernel side (taps) any filter accepts, for every dtype, whether the
# size is given or derived from sigma: the C++ core's one cap (kMaxKernelSize).
MAX_KERNEL_SIZE = _core.max_kernel_size()


def kernel_size(value: Any, name: str = "ksize", allow_zero: bool = False) -> int:
    """A kernel size in [1, MAX_KERNEL_SIZE] ([0, ...] with `allow_zero`, where 0
    means "derive it from sigma"): TypeError for non-ints, ValueError naming the
    argument and the limit otherwise. Oddness is the operator's business."""
    low = 0 if allow_zero else 1
    if type(value) is int and low <= value <= MAX_KERNEL_SIZE:
        return value
    k = integer(value, name, None, None)
    if not low <= k <= MAX_KERNEL_SIZE:
        raise ValueError(f"{name}: expected a kernel size in [{low}, {MAX_KERNEL_SIZE}] "
                         f"(the largest kernel keensight accepts), got {k}")
    return k


def ksize_pair(ksize: Any, name: str = "ksize", allow_zero: bool = False) -> Tuple[int, int]:
    """An int k -> (k, k); a (width, height) pair -> itself; each a :func:`kernel_size`.
    None -> (0, 0) when `allow_zero` (sizes derived from sigma)."""
    if ksize is None and allow_zero:
        return 0, 0
    if isinstance(ksize, (tuple, list, np.ndarray)) and np.ndim(ksize) == 1:
        if len(ksize) != 2:
            raise ValueError(f"{name}: expected an int or a (width, height) pair, got {ksize!r}")
        return kernel_size(ksize[0], name, allow_zero), kernel_size(ksize[1], name, allow_zero)
    if ksize is None:
        raise TypeError(f"{name}: expected an int or a (width, height) pair, got None")
    k = kernel_size(ksize, name, allow_zero)
    return k, k


def anchor(value: Any, kh: int, kw: int) -> Tuple[int, int]:
    """(x, y) anchor; None or (-1, -1) is the kernel centre."""
    if value is None:
        return -1, -1
    if not isinstance(value, (tuple, list, np.ndarray)) or np.ndim(value) != 1 or len(value) != 2:
        raise ValueError(f"anchor: expected an (x, y) pair, got {value!r}")
    ax, ay = integer(value[0], "anchor"), integer(value[1], "anchor")
    if not (-1 <= ax < kw and -1 <= ay < kh):
        raise ValueError(f"anchor: ({ax}, {ay}) is outside the {kh}x{kw} kernel")
    return ax, ay


def kernel(value: Any, ndim: int, name: str = "kernel") -> np.ndarray:
    """A finite float32 kernel of `ndim` dimensions (a 1-D kernel may also be given as Nx1 or 1xN),
    at most MAX_KERNEL_SIZE taps per side. Complex kernels raise TypeError (the imaginary part
    would be dropped), as do non-numeric ones."""
    try:
        k = np.asarray(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a numeric array") from None
    if k.dtype.kind == "c":
        raise TypeError(f"{name}: expected a real kernel, got dtype {k.dtype} (filters are real: "
                        "filter the real and imaginary parts separately)")
    if k.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array, got dtype {k.dtype}")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported below
        k = k.astype(np.float32, copy=False)
    if ndim == 1 and k.ndim == 2 and 1 in k.shape:
        k = k.reshape(-1)
    if k.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D kernel, got shape {k.shape}")
    if k.size == 0:
        raise ValueError(f"{name}: expected a non-empty kernel")
    if max(k.shape) > MAX_KERNEL_SIZE:
        raise ValueError(f"{name}: kernels larger than {MAX_KERNEL_SIZE} taps per side are not supported, "
                         f"got {k.shape}")
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


def positive_int(value: Any, name: str, high: Optional[int] = INT32_MAX) -> int:
    """An int in [1, high] (bools refused)."""
    return integer(value, name, 1, high)


def input_file(path: Any, name: str = "path") -> str:
    """`path` as a str naming an existing regular file that can be read: FileNotFoundError,
    IsADirectoryError, PermissionError or ValueError (a device, a FIFO, ...) otherwise."""
    p = _fspath(path, name)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise FileNotFoundError(f"{name}: no such file: {p!r}") from None
    except PermissionError:
        raise PermissionError(f"{name}: permission denied: {p!r}") from None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{name}: {p!r} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{name}: {p!r} is not a regular file (a device, FIFO or socket)")
    if not os.access(p, os.R_OK):
        raise PermissionError(f"{name}: permission denied: {p!r} cannot be read")
    return p


def output_file(path: Any, name: str = "path") -> str:
    """`path` as a str naming a file that may be (re)written: its folder must exist and
    be writable (keensight never creates the parent folders of a file you name), and
    `path` must not be a directory or a special file. FileNotFoundError,
    NotADirectoryError, IsADirectoryError, PermissionError or ValueError otherwise."""
    p = _fspath(path, name)
    folder = os.path.dirname(os.path.abspath(p))
    if not os.path.exists(folder):
        raise FileNotFoundError(f"{name}: the folder {folder!r} does not exist (create it first)")
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"{name}: {folder!r} is not a folder")
    if os.path.isdir(p):
        raise IsADirectoryError(f"{name}: {p!r} is a directory, not a file")
    if os.path.lexists(p) and not os.path.islink(p) and not stat.S_ISREG(os.stat(p).st_mode):
        raise ValueError(f"{name}: {p!r} exists and is not a regular file (a device, FIFO or socket)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{name}: permission denied: cannot create files in {folder!r}")
    return p


def _fspath(path: Any, name: str) -> str:
    try:
        p = os.fspath(path)
    except TypeError:
        raise TypeError(f"{name}: expected a path (str or os.PathLike), got {type(path).__name__}") from None
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    if not p:
        raise ValueError(f"{name}: expected a non-empty path")
    if "\0" in p:
        raise ValueError(f"{name}: a path cannot contain NUL characters")
    return p
