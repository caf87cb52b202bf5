"""The filter workloads of ``../shared/BENCHMARKS.md``, defined once for bench_filters.py and report.py.

Each workload pairs a keensight call with its OpenCV peer on the same 1920x1080 single-channel
random image; both are zero-argument callables so that timing measures only the filter.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Union

import cv2
import numpy as np

import keensight as ks

H, W = 1080, 1920
THREADS = (1, "all")  # the two settings every workload is measured at


@dataclass(frozen=True)
class Workload:
    id: str                    # short name for pytest ids
    name: str                  # the row of BENCHMARKS.md's filter table
    target: float              # target ratio OpenCV time / keensight time (BENCHMARKS.md)
    opencv: Callable[[], Any]
    keensight: Callable[[], Any]


def workloads(seed: int = 0) -> List[Workload]:
    """The filter table of BENCHMARKS.md, with inputs and kernels drawn from `seed`."""
    rng = np.random.default_rng(seed)
    u8 = rng.integers(0, 256, (H, W), dtype=np.uint8)
    u16 = rng.integers(0, 65536, (H, W), dtype=np.uint16)
    f32 = rng.random((H, W), dtype=np.float32)
    k3 = rng.standard_normal((3, 3)).astype(np.float32)  # general: not separable, not symmetric
    k7 = rng.standard_normal((7, 7)).astype(np.float32)
    gabor = [k.astype(np.float32) for k in ks.gabor_kernels(21, sigma=4.0, lambd=10.0, gamma=0.5,
                                                             psi=0.0, n_orientations=8)]
    f = cv2.CV_32F
    return [
        Workload("gauss5_u8", "GaussianBlur 5x5 sigma 1.2, uint8", 1.0,
                 lambda: cv2.GaussianBlur(u8, (5, 5), 1.2),
                 lambda: ks.gaussian_blur(u8, 5, 1.2)),
        Workload("gauss5_u16", "GaussianBlur 5x5 sigma 1.2, uint16 (not in BENCHMARKS.md)", 1.0,
                 lambda: cv2.GaussianBlur(u16, (5, 5), 1.2),
                 lambda: ks.gaussian_blur(u16, 5, 1.2)),
        Workload("gauss11_f32", "GaussianBlur 11x11 sigma 2.5, float32", 1.2,
                 lambda: cv2.GaussianBlur(f32, (11, 11), 2.5),
                 lambda: ks.gaussian_blur(f32, 11, 2.5)),
        Workload("sobel_u8_f32", "Sobel dx=1 ksize 3, uint8 -> float32", 1.0,
                 lambda: cv2.Sobel(u8, f, 1, 0, ksize=3),
                 lambda: ks.sobel(u8, 1, 0, ksize=3, ddepth=np.float32)),
        Workload("laplacian3_f32", "Laplacian ksize 3, float32", 1.0,
                 lambda: cv2.Laplacian(f32, f, ksize=3),
                 lambda: ks.laplacian(f32, ksize=3)),
        Workload("filter2d3_u8_f32", "filter2D 3x3 general kernel, uint8 -> float32", 2.0,
                 lambda: cv2.filter2D(u8, f, k3),
                 lambda: ks.filter2d(u8, k3, ddepth=np.float32)),
        Workload("filter2d7_u8_f32", "filter2D 7x7 general kernel, uint8 -> float32", 3.0,
                 lambda: cv2.filter2D(u8, f, k7),
                 lambda: ks.filter2d(u8, k7, ddepth=np.float32)),
        Workload("gabor8x21_f32", "Gabor bank, 8 orientations 21x21, float32", 3.0,
                 lambda: [cv2.filter2D(f32, f, k) for k in gabor],
                 lambda: ks.filter_bank(f32, gabor)),
        Workload("gradmag_u8", "gradient magnitude (Sobel x, y, magnitude), uint8", 2.0,
                 lambda: cv2.magnitude(cv2.Sobel(u8, f, 1, 0), cv2.Sobel(u8, f, 0, 1)),
                 lambda: ks.gradient_magnitude(u8)),
    ]


def copy_floor() -> Callable[[], None]:
    """The floor: a 1080p float32 copy into a preallocated array."""
    src = np.random.default_rng(0).random((H, W), dtype=np.float32)
    dst = np.empty_like(src)
    return lambda: np.copyto(dst, src)


def check_agree(w: Workload) -> None:
    """Raise AssertionError unless keensight and OpenCV agree on `w` (integers within 1,
    float within 1e-3 of the reference's largest magnitude)."""
    ref, out = np.asarray(w.opencv()), np.asarray(w.keensight())
    assert out.shape == ref.shape and out.dtype == ref.dtype, \
        f"{w.name}: keensight gives {out.dtype}{out.shape}, OpenCV {ref.dtype}{ref.shape}"
    err = float(np.max(np.abs(out.astype(np.float64) - ref)))
    tol = 1.0 if ref.dtype in (np.uint8, np.uint16) else 1e-3 * float(np.max(np.abs(ref)))
    assert err <= tol, f"{w.name}: max |keensight - OpenCV| = {err:g} > {tol:g}"


def n_threads(threads: Union[int, str]) -> int:
    """1 -> 1; "all" -> every core this process may run on."""
    if threads == "all":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return int(threads)


@contextlib.contextmanager
def thread_count(threads: Union[int, str]) -> Iterator[int]:
    """Run OpenCV and keensight with the same explicit thread count, then restore both.

    (An explicit count, because ``cv2.setNumThreads(0)`` turns OpenCV's threading off.)
    """
    n = n_threads(threads)
    cv_before, ks_before = cv2.getNumThreads(), ks.get_num_threads()
    cv2.setNumThreads(n)
    ks.set_num_threads(n)
    try:
        yield n
    finally:
        cv2.setNumThreads(cv_before)
        ks.set_num_threads(ks_before)
