"""Data and peers of the exact k-NN and PCA benchmarks (BENCHMARKS.md, "Recognition over CNN
features"), defined once for bench_search.py and report_search.py.

Data: embeddings-like vectors (1280-d, non-negative, 100 classes, the shape of EfficientNet-Lite0's
pooled features) and Fashion-MNIST raw pixels (60k train x 784 as the base, test images as the
queries; Debian package ``dataset-fashion-mnist``). Peers: faiss IndexFlatL2, NumPy brute force
(one float32 matrix product + argmin), scikit-learn PCA.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Optional, Union

import numpy as np

from keensight.datasets import load_fashion_mnist
from workloads import n_threads

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


@dataclass
class Labelled:
    name: str
    base: np.ndarray          # n x d float32
    base_labels: np.ndarray   # n int
    queries: np.ndarray       # nq x d float32
    query_labels: np.ndarray  # nq int


def embeddings(n: int = 60_000, n_queries: int = 2_000, dim: int = 1280, n_classes: int = 100,
               seed: int = 0) -> Labelled:
    """Class centres plus noise whose spread decays over the coordinates (variance ~ 1/rank),
    through a ReLU: non-negative, sparse-ish, clustered, like pooled CNN features."""
    rng = np.random.default_rng(seed)
    centres = rng.gamma(0.6, 0.5, (n_classes, dim)).astype(np.float32)
    scales = (0.8 * (1.0 + rng.permutation(dim)) ** -0.5).astype(np.float32)
    total = n + n_queries
    labels = rng.integers(0, n_classes, total)
    x = np.empty((total, dim), np.float32)
    for s in range(0, total, 10_000):
        e = min(total, s + 10_000)
        noise = rng.standard_normal((e - s, dim), dtype=np.float32) * scales
        x[s:e] = np.maximum(centres[labels[s:e]] + noise, 0.0)
    return Labelled(f"embeddings-like {dim}-d", x[:n], labels[:n], x[n:], labels[n:])


def fashion_mnist(n_queries: int = 10_000) -> Optional[Labelled]:
    """Raw 784-d pixels as float32 (0..255) with labels; None when the files are not installed."""
    try:
        xtr, ytr, xte, yte = load_fashion_mnist(FASHION_DIR)
    except FileNotFoundError:
        return None
    xtr, xte = xtr.reshape(len(xtr), -1).astype(np.float32), xte[:n_queries].reshape(-1, 784).astype(np.float32)
    return Labelled("Fashion-MNIST raw 784-d", xtr, ytr, xte, yte[:n_queries])


def numpy_1nn(queries: np.ndarray, base: np.ndarray, block: int = 1024) -> np.ndarray:
    """The NumPy peer: ||b||^2 - 2 q.b in float32 by blocks of queries, then argmin."""
    bn = (base.astype(np.float32) ** 2).sum(1)
    out = np.empty(len(queries), np.int64)
    for s in range(0, len(queries), block):
        out[s:s + block] = np.argmin(bn[None, :] - 2.0 * (queries[s:s + block] @ base.T), axis=1)
    return out


def same_neighbour(queries: np.ndarray, base: np.ndarray, got: np.ndarray, truth: np.ndarray,
                   rtol: float = 1e-4) -> float:
    """Fraction of 1-NN answers `got` equal to `truth`, counting as equal a different neighbour at
    the same exact (float64) distance within `rtol`: float32 expansions rank near-ties either way."""
    same = got == truth
    for r in np.nonzero(~same)[0]:
        q = queries[r].astype(np.float64)
        dg = ((q - base[got[r]].astype(np.float64)) ** 2).sum()
        dt = ((q - base[truth[r]].astype(np.float64)) ** 2).sum()
        same[r] = dg <= dt * (1 + rtol) + 1e-12
    return float(same.mean())


@contextlib.contextmanager
def thread_count(threads: Union[int, str]) -> Iterator[int]:
    """keensight, faiss (OpenMP) and every BLAS (NumPy's, faiss's) at the same thread count."""
    import faiss
    import threadpoolctl

    import keensight as ks

    n = n_threads(threads)
    ks_before, faiss_before = ks.get_num_threads(), faiss.omp_get_max_threads()
    with threadpoolctl.threadpool_limits(limits=n):
        faiss.omp_set_num_threads(n)
        ks.set_num_threads(n)
        try:
            yield n
        finally:
            faiss.omp_set_num_threads(faiss_before)
            ks.set_num_threads(ks_before)
