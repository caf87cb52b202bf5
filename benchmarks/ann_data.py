"""Data sets and peers of the ANN benchmarks (BENCHMARKS.md, "Recognition over CNN features"),
defined once for bench_hnsw.py and report_hnsw.py.

Data: synthetic clustered float32 vectors (100k or 1M x 128) and Fashion-MNIST raw pixels
(60k x 784 base, 10k queries; Debian package ``dataset-fashion-mnist``). Peers, all at
M=16, ef_construction=200, one thread: hnswlib and faiss IndexHNSWFlat. Each ``Index`` wrapper
offers build / set_ef / search so that the timing loops treat the three alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np

from keensight.datasets import load_fashion_mnist

M, EF_CONSTRUCTION, K = 16, 200, 10
FASHION_DIR = "/usr/share/datasets/fashion-mnist"


@dataclass
class Dataset:
    name: str
    base: np.ndarray     # n x d float32
    queries: np.ndarray  # nq x d float32
    truth: np.ndarray    # nq x K int64, exact L2 neighbours


def clustered(n: int, dim: int = 128, n_queries: int = 1000, seed: int = 0) -> Dataset:
    """Gaussian clusters (one per 1000 points) whose within-cluster spread decays as a power law
    over the axes of a random basis (variance ~ 1/rank, the spectrum shape of CNN features)."""
    rng = np.random.default_rng(seed)
    n_clusters = max(10, n // 1000)
    centers = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    scales = (0.6 * (1.0 + np.arange(dim)) ** -0.5).astype(np.float32)
    basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)
    total = n + n_queries
    x = np.empty((total, dim), np.float32)
    for s in range(0, total, 100_000):  # in blocks: 1M x 128 stays light
        e = min(total, s + 100_000)
        noise = rng.standard_normal((e - s, dim), dtype=np.float32) * scales
        x[s:e] = centers[rng.integers(0, n_clusters, e - s)] + noise @ basis.T
    base, queries = x[:n], x[n:]
    return Dataset(f"clustered {n // 1000}k x {dim}", base, queries, exact_knn(base, queries, K))


def gaussian_classes(n: int, dim: int, decaying: bool, n_queries: int = 1000, seed: int = 0) -> Dataset:
    """Gaussian classes (one per 1000 points, at least 10) in `dim` dimensions: isotropic (every
    coordinate of centres and noise of scale 1), or with the scale decaying linearly across the
    coordinates from 1 to 1/dim (as the variance of CNN features decays across its principal
    axes), on a random basis so that no coordinate order gives it away."""
    rng = np.random.default_rng(seed)
    n_clusters = max(10, n // 1000)
    scale = (np.linspace(1.0, 1.0 / dim, dim) if decaying else np.ones(dim)).astype(np.float32)
    basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)
    centers = rng.standard_normal((n_clusters, dim)).astype(np.float32) * scale
    total = n + n_queries
    x = centers[rng.integers(0, n_clusters, total)] + 0.5 * rng.standard_normal((total, dim), dtype=np.float32) * scale
    x = (x @ basis.T).astype(np.float32)
    base, queries = x[:n], x[n:]
    kind = "decaying" if decaying else "isotropic"
    return Dataset(f"{kind} {n // 1000}k x {dim}", base, queries, exact_knn(base, queries, K))


def fashion_mnist(n_queries: int = 1000) -> Optional[Dataset]:
    """Raw 784-d pixels as float32: train (60k) is the base, the first test images the queries.
    None when the files are not installed."""
    try:
        xtr, _, xte, _ = load_fashion_mnist(FASHION_DIR)
    except FileNotFoundError:
        return None
    base = xtr.reshape(len(xtr), -1).astype(np.float32)
    queries = xte[:n_queries].reshape(-1, 784).astype(np.float32)
    return Dataset("Fashion-MNIST 60k x 784 (raw)", base, queries, exact_knn(base, queries, K))


def exact_knn(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact L2 neighbours by blocked float64 matrix products."""
    b = base.astype(np.float64)
    bn = (b ** 2).sum(1)
    out = np.empty((len(queries), k), np.int64)
    for s in range(0, len(queries), 256):
        q = queries[s:s + 256].astype(np.float64)
        d = bn[None, :] - 2.0 * q @ b.T
        part = np.argpartition(d, k, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(d, part, 1), axis=1)
        out[s:s + 256] = np.take_along_axis(part, order, 1)
    return out


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    hits = sum(len(set(f[:k].tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / (k * len(truth))


# ------------------------------------------------------------------------------ indexes

class Index:
    name = ""

    def build(self, base: np.ndarray) -> None: ...
    def set_ef(self, ef: int) -> None: ...
    def search(self, queries: np.ndarray, k: int) -> np.ndarray: ...
    def memory_bytes(self) -> Optional[int]:
        return None


class KeensightHNSW(Index):
    def __init__(self, pca="auto", early_termination: bool = True):
        self.pca, self.early = pca, early_termination
        self.name = ("keensight" + {True: " pca", False: "", "auto": " (default)"}[pca] +
                     ("" if early_termination else " (no ET)"))

    def build(self, base):
        from keensight.search import HNSWIndex
        self.index = HNSWIndex(base.shape[1], M=M, ef_construction=EF_CONSTRUCTION, pca=self.pca,
                               early_termination=self.early, num_threads=1)
        self.index.add(base)

    def set_ef(self, ef):
        self.ef = ef

    def search(self, queries, k):
        return self.index.search(queries, k, ef=self.ef)[1]

    def memory_bytes(self):
        return self.index.memory_usage()


class HnswlibHNSW(Index):
    name = "hnswlib"

    def build(self, base):
        import hnswlib
        self.index = hnswlib.Index("l2", base.shape[1])
        self.index.init_index(max_elements=len(base), M=M, ef_construction=EF_CONSTRUCTION, random_seed=100)
        self.index.set_num_threads(1)
        self.index.add_items(base, np.arange(len(base)))

    def set_ef(self, ef):
        self.index.set_ef(ef)

    def search(self, queries, k):
        return self.index.knn_query(queries, k)[0]


class FaissHNSW(Index):
    name = "faiss HNSWFlat"

    def build(self, base):
        import faiss
        faiss.omp_set_num_threads(1)
        self.index = faiss.IndexHNSWFlat(base.shape[1], M)
        self.index.hnsw.efConstruction = EF_CONSTRUCTION
        self.index.add(base)

    def set_ef(self, ef):
        self.index.hnsw.efSearch = ef

    def search(self, queries, k):
        return self.index.search(queries, k)[1]


def peers() -> List[Callable[[], Index]]:
    """Factories of the indexes compared, keensight at its defaults first (pca="auto"; pca on /
    off: report_hnsw_pca.py); peers only where installed."""
    out: List[Callable[[], Index]] = [lambda: KeensightHNSW(pca="auto")]
    try:
        import hnswlib  # noqa: F401
        out.append(HnswlibHNSW)
    except ImportError:
        pass
    try:
        import faiss  # noqa: F401
        out.append(FaissHNSW)
    except ImportError:
        pass
    return out
