"""Exact k-nearest neighbours (:func:`knn`) and the flat index (:class:`FlatIndex`).

Both run the blocked SIMD kernels of the C++ core: a register-blocked GEMM for
``l2`` / ``ip`` / ``cosine`` (``||q||^2 - 2 q.b + ||b||^2`` fused with the top-k
selection), pair kernels for ``l1`` / ``chi2``.
"""
from __future__ import annotations

import os
from typing import Any, Tuple, Union

import numpy as np

from .. import _core
from .._validate import matrix as _matrix
from .._validate import integer, positive_int

METRICS = ("l2", "ip", "cosine", "l1", "chi2")

PathLike = Union[str, "os.PathLike[str]"]


def _metric(metric: Any) -> str:
    if not isinstance(metric, str):
        raise TypeError(f"metric: expected a string, got {type(metric).__name__}")
    return _core.metric_name(metric)  # ValueError naming the accepted metrics


def knn(queries: Any, base: Any, k: int, metric: str = "l2") -> Tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of every query row among the base rows.

    Parameters
    ----------
    queries : array-like of shape (nq, dim)
        Query vectors, converted to float32 (any numeric dtype is accepted).
    base : array-like of shape (n, dim)
        The vectors searched, n >= 1.
    k : int
        Neighbours per query, >= 1. When ``k > n`` the slots past ``n`` hold
        index -1 and distance +inf (-inf for ``"ip"``).
    metric : {"l2", "ip", "cosine", "l1", "chi2"}
        ``"l2"``: squared Euclidean distance (as faiss IndexFlatL2);
        ``"ip"``: inner product, a similarity, sorted descending (as faiss
        IndexFlatIP); ``"cosine"``: cosine distance ``1 - cos`` (as
        scikit-learn; a zero vector is at distance 1 from everything);
        ``"l1"``: Manhattan distance; ``"chi2"``: sum of ``(x - y)^2 / (x + y)``
        over the coordinates where ``x + y > 0``, for non-negative features
        (histograms); negative values raise ValueError.

    Returns
    -------
    distances : ndarray of float32, shape (nq, k)
        Best first: ascending distances, or descending similarities for ``"ip"``.
    indices : ndarray of int64, shape (nq, k)
        Row numbers in `base`; ties are broken by the lower index.

    Notes
    -----
    ``l2``, ``ip`` and ``cosine`` use the expansion ``||q||^2 - 2 q.b + ||b||^2``
    in float32 (clamped at 0), like faiss: distances carry an absolute error of
    about 1e-7 x (``||q||^2 + ||b||^2``), so near-duplicates may swap order.
    With fewer than 8 queries the distances are computed directly instead.
    Results do not depend on the number of threads.

    Examples
    --------
    >>> import numpy as np
    >>> from keensight.search import knn
    >>> base = np.array([[0, 0], [1, 0], [0, 2]], dtype=np.float32)
    >>> d, i = knn([[0.9, 0.1]], base, k=2)
    >>> i
    array([[1, 0]])
    >>> np.round(d, 2)
    array([[0.02, 0.82]], dtype=float32)
    """
    metric = _metric(metric)
    b = _matrix(base, "base")
    q = _matrix(queries, "queries", allow_empty=True)
    if q.shape[1] != b.shape[1]:
        raise ValueError(f"queries: expected {b.shape[1]} columns (as base), got {q.shape[1]}")
    return _core.knn(q, b, positive_int(k, "k"), metric)


class FlatIndex:
    """A brute-force index: exact search over every stored vector.

    Vectors are appended by :meth:`add`; their ids are their insertion order
    (0, 1, 2, ...). :meth:`search` is :func:`knn` over the stored vectors.

    Parameters
    ----------
    dim : int
        Length of every vector.
    metric : {"l2", "ip", "cosine", "l1", "chi2"}
        As in :func:`knn`.

    Examples
    --------
    >>> import numpy as np
    >>> from keensight.search import FlatIndex
    >>> index = FlatIndex(2)
    >>> index.add(np.array([[0, 0], [3, 4]], dtype=np.float32))
    >>> len(index)
    2
    >>> d, i = index.search([[3, 3]], k=1)
    >>> int(i[0, 0]), float(d[0, 0])
    (1, 1.0)
    """

    def __init__(self, dim: int, metric: str = "l2") -> None:
        dim = integer(dim, "dim")
        if dim < 1:
            raise ValueError(f"dim: expected a positive int, got {dim}")
        self._index = _core.FlatIndex(dim, _metric(metric))

    @property
    def dim(self) -> int:
        """Length of every vector."""
        return self._index.dim

    @property
    def metric(self) -> str:
        """The metric's name."""
        return self._index.metric

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return f"FlatIndex(dim={self.dim}, metric={self.metric!r}, n={len(self)})"

    def add(self, x: Any) -> None:
        """Append the rows of `x` (shape (n, dim)); they get ids ``len(self) ... len(self) + n - 1``."""
        self._index.add(_matrix(x, "x", allow_empty=True))

    def search(self, queries: Any, k: int) -> Tuple[np.ndarray, np.ndarray]:
        """The `k` nearest stored vectors of every query row: (distances, ids), as :func:`knn`.

        Raises ValueError if the index is empty.
        """
        q = _matrix(queries, "queries", allow_empty=True)
        if q.shape[1] != self.dim:
            raise ValueError(f"queries: expected {self.dim} columns (the index's dim), got {q.shape[1]}")
        k = positive_int(k, "k")
        if len(self) == 0:
            raise ValueError("FlatIndex.search: the index is empty (add vectors first)")
        return self._index.search(q, k)

    def vectors(self) -> np.ndarray:
        """A copy of the stored vectors, shape (len(self), dim), in id order."""
        return self._index.rows()

    def reset(self) -> None:
        """Remove every vector (the dim and metric stay)."""
        self._index.reset()

    def save(self, path: PathLike) -> None:
        """Write the index to `path` atomically (a temporary file beside it, then a rename).

        The file holds a magic number, the format version, the metric, dim and
        count, the float32 vectors and an FNV-1a 64 checksum.
        """
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"path: no such directory: {folder!r}")
        self._index.save(path)

    @classmethod
    def load(cls, path: PathLike) -> "FlatIndex":
        """Read an index written by :meth:`save`.

        Raises ValueError for a file that is not a FlatIndex file, is truncated
        or corrupt (checksum mismatch), or has an unsupported format version.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"path: no such file: {path!r}")
        inner = _core.FlatIndex.load(path)
        index = cls.__new__(cls)
        index._index = inner
        return index
