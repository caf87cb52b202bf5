"""The HNSW approximate nearest-neighbour index (keensight's C++ graph, checked here)."""
from __future__ import annotations

import numbers
import os
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from .. import _core
from .._validate import matrix
from ._flat import knn

__all__ = ["HNSWIndex"]

PathLike = Union[str, "os.PathLike[str]"]
_METRICS = ("l2", "ip", "cosine")
# The rotation of pca=True is fitted on the differences between _PCA_SAMPLE_ROWS rows and their
# _PCA_NEIGHBOURS nearest neighbours among _PCA_REFERENCE_ROWS rows of the first batch: enough for
# the shape of the spectrum (the early-termination savings barely move between 1000 x 10 of 10k
# rows and 4000 x 30 of 30k rows), a fraction of a second for 784-d data.
_PCA_REFERENCE_ROWS = 10000
_PCA_SAMPLE_ROWS = 1000
_PCA_NEIGHBOURS = 10
_CHECK_ROWS = 4096     # difference rows per block of the covariance
# pca=True keeps the leading _PCA_AXES axes in order and completes them with Householder
# reflectors (HNSWIndex.set_pca_axes: 2 k dim + k^2 floats and multiply-adds per rotated
# vector instead of dim^2) when that is cheaper; the early-termination checks fall in the
# first granules (32, then every 128 coordinates), where the leading axes carry the variance.
_PCA_AXES = 128


def _int(value: Any, name: str, low: int, high: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    v = int(value)
    if v < low or (high is not None and v > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name}: expected an int {bound}, got {v}")
    return v


def _matrix(x: Any, name: str, dim: int) -> np.ndarray:
    """`x` as a finite, C-contiguous float32 n x dim matrix (a 1-D vector is one row).
    NumPy arrays must have a float dtype (no silent casts of integer arrays)."""
    if isinstance(x, np.ndarray) and x.dtype.kind != "f":
        raise TypeError(f"{name}: expected a float array (float32 preferred), got dtype {x.dtype}")
    if np.ndim(x) == 1:
        x = np.asarray(x)[None, :]
    return matrix(x, name, dim=dim)


def _ids(ids: Any, name: str, n: Optional[int] = None) -> np.ndarray:
    a = np.asarray(ids)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.size == 0:
        a = a.astype(np.int64)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer ids, got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of ids, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name}: expected {n} ids (one per vector), got {a.shape[0]}")
    if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: ids must fit in int64")
    return np.ascontiguousarray(a, dtype=np.int64)


def _pca_rotation(x: np.ndarray) -> np.ndarray:
    """Rows = principal axes of the differences between rows of `x` and their
    nearest neighbours, by decreasing variance (fitted with LAPACK).

    Early termination compares a query with candidates near it, so the first
    coordinates should carry the variance of near-neighbour differences, not
    that of the data: on clustered data the data's own principal axes are the
    ones that separate the clusters, while the differences inside a cluster,
    which decide whether a near candidate is rejected, spread over other
    directions. On clustered 128-d data this lets the first granule alone
    reject 20 times more candidates. Deterministic: evenly spaced rows, exact
    neighbours."""
    n, dim = x.shape
    ref = x if n <= _PCA_REFERENCE_ROWS else x[np.linspace(0, n - 1, _PCA_REFERENCE_ROWS).astype(np.int64)]
    sample = ref if len(ref) <= _PCA_SAMPLE_ROWS else ref[
        np.linspace(0, len(ref) - 1, _PCA_SAMPLE_ROWS).astype(np.int64)]
    k = min(_PCA_NEIGHBOURS, len(ref) - 1)
    cov = np.zeros((dim, dim))
    if k >= 1:
        # k + 1 neighbours: the row itself (or an equal row) is among them and adds a zero difference.
        _, nbr = knn(sample, ref, k + 1)
        step = max(1, _CHECK_ROWS // (k + 1))
        for s in range(0, len(sample), step):  # in blocks: small float64 temporaries
            diff = (ref[nbr[s:s + step]] - sample[s:s + step, None, :]).reshape(-1, dim).astype(np.float64)
            cov += diff.T @ diff
    _, vecs = np.linalg.eigh(cov)  # ascending eigenvalues, orthonormal columns
    return np.ascontiguousarray(vecs[:, ::-1].T, dtype=np.float32)


class HNSWIndex:
    """Approximate nearest neighbours in a Hierarchical Navigable Small World graph.

    Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search
    using Hierarchical Navigable Small World graphs" (arXiv:1603.09320). Batched,
    multi-threaded, incremental construction; filtered search; deletion marks;
    versioned, checksummed files.

    Beyond hnswlib: with ``pca=True`` (or a given ``rotation``) the vectors are
    stored rotated onto principal axes fitted on the first batch (those of the
    differences between near neighbours), so that the first coordinates carry
    most of the distance between a query and the candidates near it; distances are then
    computed ``granule`` coordinates at a time and a candidate is abandoned as
    soon as its partial L2 distance reaches the bound at which the search would
    reject it anyway. This is exact: the same nodes are visited and the same
    results returned as with ``early_termination=False``. An orthonormal
    rotation preserves L2 distances and inner products, so results match those
    on the unrotated vectors up to float rounding.

    Parameters
    ----------
    dim : int
        Vector dimension.
    metric : {"l2", "ip", "cosine"}
        ``"l2"``: squared Euclidean distance. ``"ip"``: inner product, a
        similarity (results sorted largest first). ``"cosine"``: 1 - cosine
        similarity (vectors and queries are normalised; zero vectors are refused).
    M : int
        Links per node on the upper layers (``2 * M`` on layer 0).
    ef_construction : int
        Candidate-list size while inserting (larger: better graph, slower build).
    ef_search : int
        Default candidate-list size of :meth:`search` (at least ``k`` is used).
    pca : bool
        Fit a PCA rotation on the first batch passed to :meth:`add`: the
        principal axes of the differences between its rows and their nearest
        neighbours. Above about 300 dimensions only the leading 128 axes are
        kept in order, completed to a rotation by Householder reflectors (a
        third of the memory and of the work of rotating a 784-d vector).
    rotation : array-like, optional
        A ``dim x dim`` matrix with orthonormal rows to rotate by instead.
    granule : int
        Coordinates of the first early-termination check (kept in a dense
        table, checked for a whole batch of candidates); the rest of a
        distance is checked every ``4 * granule`` coordinates.
    early_termination : bool
        Abandon L2 / cosine distances early (exact; no effect for ``"ip"``).
    num_threads : int, optional
        Threads for :meth:`add` and :meth:`search`; None follows
        :func:`keensight.set_num_threads`.
    seed : int
        Seeds the random levels of the nodes.

    Examples
    --------
    >>> import numpy as np
    >>> from keensight.search import HNSWIndex
    >>> x = np.random.default_rng(0).standard_normal((1000, 16)).astype(np.float32)
    >>> index = HNSWIndex(16, pca=True)
    >>> index.add(x)
    >>> distances, ids = index.search(x[:3], k=1)
    >>> ids.ravel().tolist()
    [0, 1, 2]
    >>> len(index), index.dim, index.metric
    (1000, 16, 'l2')
    """

    def __init__(self, dim: int, metric: str = "l2", M: int = 16, ef_construction: int = 200,
                 ef_search: int = 64, pca: bool = False, rotation: Any = None, granule: int = 32,
                 early_termination: bool = True, num_threads: Optional[int] = None,
                 seed: int = 100) -> None:
        dim = _int(dim, "dim", 1, 1 << 24)
        if not isinstance(metric, str) or metric not in _METRICS:
            raise ValueError(f"metric: expected one of {list(_METRICS)}, got {metric!r}")
        if pca and rotation is not None:
            raise ValueError("pca and rotation: give one or the other")
        self._num_threads = 0 if num_threads is None else _int(num_threads, "num_threads", 1)
        self._pca = bool(pca)
        self._index = _core.HNSWIndex(
            dim, metric, _int(M, "M", 2, 2048), _int(ef_construction, "ef_construction", 1),
            _int(ef_search, "ef_search", 1), _int(granule, "granule", 1),
            bool(early_termination), _int(seed, "seed", 0, 2**64 - 1))
        if rotation is not None:
            r = np.asarray(rotation, dtype=np.float32)
            if r.shape != (dim, dim):
                raise ValueError(f"rotation: expected shape ({dim}, {dim}), got {r.shape}")
            self._index.set_rotation(np.ascontiguousarray(r))

    # ------------------------------------------------------------------ build
    def add(self, vectors: Any, ids: Any = None) -> None:
        """Insert vectors (multi-threaded; may be called repeatedly).

        Parameters
        ----------
        vectors : array-like, shape (n, dim)
            Float vectors (converted to float32); finite values only.
        ids : array-like of int, shape (n,), optional
            Non-negative labels, new to the index; default ``len(self) + arange(n)``.
        """
        x = _matrix(vectors, "vectors", self.dim)
        id_array = None if ids is None else _ids(ids, "ids", x.shape[0])
        if id_array is not None and id_array.size and id_array.min() < 0:
            raise ValueError("ids: must be non-negative (-1 marks missing results)")
        if x.shape[0] == 0:
            return
        if self._pca and self._index.size == 0 and self._index.rotation() is None:
            if self.metric == "cosine":  # the rotation of what is stored: unit vectors
                fit = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-30)
            else:
                fit = x
            axes = _pca_rotation(fit)
            k = min(self.dim, _PCA_AXES)
            if 2 * k * self.dim + k * k < self.dim * self.dim:
                self._index.set_pca_axes(np.ascontiguousarray(axes[:k]))
            else:
                self._index.set_rotation(axes)
        self._index.add(x, id_array, self._num_threads)

    def mark_deleted(self, ids: Any) -> None:
        """Exclude ids from results; they still guide the search through the graph."""
        self._index.mark_deleted(_ids(ids, "ids"))

    def unmark_deleted(self, ids: Any) -> None:
        """Undo :meth:`mark_deleted`."""
        self._index.unmark_deleted(_ids(ids, "ids"))

    # ----------------------------------------------------------------- search
    def search(self, queries: Any, k: int, ef: Optional[int] = None, allowed: Any = None,
               return_stats: bool = False
               ) -> Union[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray, Dict[str, int]]]:
        """The k nearest neighbours of each query.

        Parameters
        ----------
        queries : array-like, shape (nq, dim) or (dim,)
        k : int
            Neighbours per query (>= 1).
        ef : int, optional
            Candidate-list size (accuracy / speed trade-off); default
            ``ef_search``; at least ``k`` is used.
        allowed : array-like of int, optional
            Only these ids may be returned (unknown ids are ignored). A short
            list (at most ``ef * 2M`` ids) is searched exhaustively, hence exactly.
        return_stats : bool
            Also return ``{"distances": evaluations, "rejected": evaluations
            found beyond their bound}``.

        Returns
        -------
        distances : ndarray of float32, shape (nq, k)
            Best first (for ``"ip"``: largest inner product first).
        ids : ndarray of int64, shape (nq, k)
            -1 (with distance inf, or -inf for ``"ip"``) where fewer than k
            results exist (small index, deletions, filter).
        """
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise TypeError(f"k: expected an int, got {type(k).__name__}")
        if k <= 0:
            raise ValueError(f"k: expected a positive int, got {k}")
        ef_value = 0 if ef is None else _int(ef, "ef", 1)
        q = _matrix(queries, "queries", self.dim)
        if self._index.size == 0:
            raise ValueError("search: the index is empty (add vectors first)")
        allow = None if allowed is None else _ids(allowed, "allowed")
        d, i, stats = self._index.search(q, int(k), ef_value, allow, self._num_threads)
        return (d, i, stats) if return_stats else (d, i)

    # ------------------------------------------------------------ persistence
    def save(self, path: PathLike) -> None:
        """Write the index to `path` (versioned and checksummed). The file is
        written next to `path` under a temporary name and renamed over it, so a
        failure leaves no partial file behind."""
        p = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(p))
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"save: directory {parent!r} does not exist")
        self._index.save(p)

    @classmethod
    def load(cls, path: PathLike, num_threads: Optional[int] = None) -> "HNSWIndex":
        """Read an index written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            If `path` does not exist.
        ValueError
            If the file is truncated, corrupt (checksum), of another format
            version, or not a keensight HNSW index.
        """
        p = os.fspath(path)
        if not os.path.isfile(p):
            raise FileNotFoundError(f"load: no such file {p!r}")
        self = cls.__new__(cls)
        self._index = _core.HNSWIndex.load(p)
        self._num_threads = 0 if num_threads is None else _int(num_threads, "num_threads", 1)
        self._pca = self._index.rotation() is not None
        return self

    # ------------------------------------------------------------- properties
    def __len__(self) -> int:
        """Vectors stored, deleted ones included (they remain in the graph)."""
        return int(self._index.size)

    def __contains__(self, id: Any) -> bool:
        return bool(np.isin(id, self.ids).any())

    def __repr__(self) -> str:
        return (f"HNSWIndex(dim={self.dim}, metric={self.metric!r}, M={self.M}, "
                f"ef_construction={self.ef_construction}, size={len(self)}, "
                f"rotation={self.rotation is not None})")

    @property
    def dim(self) -> int:
        return int(self._index.dim)

    @property
    def metric(self) -> str:
        return str(self._index.metric)

    @property
    def M(self) -> int:  # noqa: N802 (the paper's name)
        return int(self._index.M)

    @property
    def ef_construction(self) -> int:
        return int(self._index.ef_construction)

    @property
    def ef_search(self) -> int:
        return int(self._index.ef_search)

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._index.ef_search = _int(value, "ef_search", 1)

    @property
    def early_termination(self) -> bool:
        return bool(self._index.early_termination)

    @early_termination.setter
    def early_termination(self, value: bool) -> None:
        self._index.early_termination = bool(value)

    @property
    def granule(self) -> int:
        return int(self._index.granule)

    @property
    def num_threads(self) -> Optional[int]:
        return self._num_threads or None

    @num_threads.setter
    def num_threads(self, value: Optional[int]) -> None:
        self._num_threads = 0 if value is None else _int(value, "num_threads", 1)

    @property
    def rotation(self) -> Optional[np.ndarray]:
        """The stored rotation (rows = axes), or None."""
        return self._index.rotation()

    @property
    def n_deleted(self) -> int:
        return int(self._index.n_deleted)

    @property
    def ids(self) -> np.ndarray:
        """The ids in insertion order."""
        return self._index.ids()

    @property
    def max_level(self) -> int:
        return int(self._index.max_level)

    def memory_usage(self) -> int:
        """Bytes held by the index (vectors, links, ids, locks, scratch buffers)."""
        return int(self._index.memory_usage())
