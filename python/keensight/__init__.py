"""keensight: efficient image recognition on CPUs.

A C++ core (SIMD kernels chosen at run time, OpenMP threads) under a NumPy-first
Python API. Areas: :mod:`keensight.filters` (OpenCV-compatible image filters),
:mod:`keensight.search` (k-NN, PCA, the sequential three-way classifier, HNSW;
imported on first use, as it loads scikit-learn), :mod:`keensight.extract` and
:mod:`keensight.models` (ONNX CNN features, the offline EfficientNet-Lite0), and
:func:`keensight.evaluate` (the gallery/query table of classifiers over features).
"""
from __future__ import annotations

import os as _os
from typing import Any, Dict

from . import _core
from . import _validate
from . import filters
from . import models, extract
from . import nn
from .extract import Extractor
from .evaluate import Evaluation, EvaluationRow, evaluate
from .filters import (
    convolve,
    dog,
    filter2d,
    filter_bank,
    gabor_bank,
    gabor_kernel,
    gabor_kernels,
    gaussian_blur,
    gaussian_kernel,
    gradient_magnitude,
    laplacian,
    log,
    log_kernel,
    prewitt,
    scharr,
    sep_filter2d,
    sobel,
)

__version__ = "0.1.0"


def _check_isa_variable() -> None:
    info = _core.cpu_info()
    if info["forced"] is not None and not info["forced_valid"]:
        import warnings

        names = ", ".join(repr(name) for name in info["all_levels"])
        warnings.warn(f"KEENSIGHT_ISA={info['forced']!r} names no SIMD level (expected one of {names}, in any "
                      f"case); it is ignored and the kernels use {info['active']!r}",
                      RuntimeWarning, stacklevel=3)


_check_isa_variable()

__all__ = [
    "models", "extract", "Extractor", "evaluate", "Evaluation", "EvaluationRow", "nn",
    "__version__", "cpu_info", "set_num_threads", "get_num_threads", "get_include",
    "get_cmake_dir", "filters", "convolve", "dog", "filter2d", "filter_bank", "gabor_bank",
    "gabor_kernel", "gabor_kernels", "gaussian_blur", "gaussian_kernel", "gradient_magnitude",
    "laplacian", "log", "log_kernel", "prewitt", "scharr", "sep_filter2d", "sobel",
]


def cpu_info() -> Dict[str, Any]:
    """Detected CPU features and the SIMD levels the kernels use.

    A level is a set of features (``avx2``: AVX2+FMA+F16C+POPCNT; ``avx2_vnni``:
    + AVX-VNNI; ``avx512``: avx2 + AVX-512 F/BW/DQ/VL; ``avx512_vnni``: + AVX512_VNNI;
    ``avx512_vpopcntdq``: + AVX512_VPOPCNTDQ). Each kernel area uses the best level
    it has among the enabled ones, falling back along the level's chain
    (``avx512_vnni`` -> ``avx512`` -> ``avx2`` -> ``scalar``).

    Returns
    -------
    dict
        ``arch``; ``features`` (flag -> bool, every feature detected, true only
        with OS support); ``levels`` (levels this CPU has), ``compiled_levels``
        (levels this build has), ``enabled_levels`` (levels the kernels may use
        now), ``all_levels`` (every level name), each lowest first;
        ``detected`` / ``compiled`` (best of ``levels`` / ``compiled_levels``),
        ``active`` (best enabled level); ``forced`` (``KEENSIGHT_ISA`` or None),
        ``forced_valid`` (whether it names a level, in any case; an unknown name
        forces nothing and is warned about at import); ``openmp`` and
        ``num_threads``.

    Examples
    --------
    >>> import keensight
    >>> info = keensight.cpu_info()
    >>> info["active"] in info["enabled_levels"] and "scalar" in info["levels"]
    True
    """
    return _core.cpu_info()


def set_num_threads(n: int) -> None:
    """Set the number of threads every kernel uses; ``n <= 0`` restores the default.

    ``n`` may be at most 256 (ValueError above). Results of the kernels do not
    depend on the thread count (a multi-threaded HNSW build gives another, equally
    good graph: see :class:`keensight.search.HNSWIndex`).
    """
    n = _validate.integer(n, "n", low=None, high=_validate.MAX_THREADS)
    _core.set_num_threads(max(n, 0))


def get_num_threads() -> int:
    """The number of threads kernels use (default: ``OMP_NUM_THREADS`` or all cores)."""
    return _core.get_num_threads()


def _install_dir() -> str:
    # The C++ install tree sits beside the extension module (also in editable installs,
    # where the Python sources live elsewhere).
    return _os.path.dirname(_os.path.abspath(_core.__file__))


def get_include() -> str:
    """Directory of the C++ headers (``#include <keensight/filters.hpp>``)."""
    return _os.path.join(_install_dir(), "include")


def get_cmake_dir() -> str:
    """Directory holding ``keensightConfig.cmake``, for ``find_package(keensight)``.

    Pass it as ``-Dkeensight_DIR=...`` (or add it to ``CMAKE_PREFIX_PATH``).
    """
    return _os.path.join(_install_dir(), "share", "cmake", "keensight")


def __getattr__(name: str) -> Any:
    # keensight.search on first use (PEP 562): it imports scikit-learn, about 0.8 s.
    if name == "search":
        import importlib

        return importlib.import_module(".search", __name__)
    raise AttributeError(f"module 'keensight' has no attribute {name!r}")
