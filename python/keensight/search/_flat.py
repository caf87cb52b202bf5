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
from .. import _validate
from .._validate import matrix as _matrix

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
        Neighbours per query, >= 1. At most ``n`` are returned: the result has
        ``min(k, n)`` columns (as scikit-learn's ``kneighbors``, never wider
        than the base).
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
    distances : ndarray of float32, shape (nq, min(k, n))
        Best first: ascending distances, or descending similarities for ``"ip"``.
    indices : ndarray of int64, shape (nq, min(k, n))
        Row numbers in `base`; ties are broken by the lower index.

    Raises
    ------
    ValueError
        Bad shapes, NaN or infinity in the input, negative values for
        ``"chi2"``, or vectors so large that their distances overflow float32
        (rescale them).

    Notes
    -----
    Every distance is computed directly from the two rows (for ``l2``,
    ``sum((q - b)^2)``), and a query gets the same neighbours and distances
    whatever the batch it comes in, the path taken or the number of threads.
    From 8 queries on, ``l2``, ``ip`` and ``cosine`` first rank the rows by a
    blocked GEMM (the expansion ``||q||^2 - 2 q.b + ||b||^2``, on rows shifted
    by the mean of a sample of the base, so data far from the origin keeps its
    precision) and keep a few more than `k` candidates; their distances are
    then computed directly, and a floating-point error bound certifies that no
    other row can be among the `k` nearest. A query it cannot certify (many
    rows tied within rounding) is searched directly over the whole base.

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
    return _core.knn(q, b, _validate.positive_int(k, "k", high=_validate.INT64_MAX), metric)


class FlatIndex:
    """A brute-force index: exact search over every stored vector.

    Vectors are appended by :meth:`add`; their ids are their insertion order
    (0, 1, 2, ...). :meth:`search` is :func:`knn` over the stored vectors.

    Thread safety: any method may be called from several threads at once.
    Searches run concurrently; :meth:`add` and :meth:`reset` wait for the
    searches in flight and a search sees the vectors before or after them,
    never a part.

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
        dim = _validate.positive_int(dim, "dim")
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
        """Append the rows of `x` (shape (n, dim)); they get ids ``len(self) ... len(self) + n - 1``.

        Raises ValueError for NaN or infinity (and negative values with ``"chi2"``).
        """
        self._index.add(_matrix(x, "x", dim=self.dim, allow_empty=True))

    def search(self, queries: Any, k: int) -> Tuple[np.ndarray, np.ndarray]:
        """The `k` nearest stored vectors of every query row: (distances, ids), as :func:`knn`
        (``min(k, len(self))`` columns).

        Raises ValueError if the index is empty.
        """
        q = _matrix(queries, "queries", dim=self.dim, allow_empty=True)
        k = _validate.positive_int(k, "k", high=_validate.INT64_MAX)
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
        self._index.save(_validate.output_file(path, "path"))

    @classmethod
    def load(cls, path: PathLike) -> "FlatIndex":
        """Read an index written by :meth:`save`.

        Raises ValueError for a file that is not a FlatIndex file, is truncated
        or corrupt (checksum mismatch), has an unsupported format version or
        holds vectors :meth:`add` would refuse (NaN, infinity, chi2 negatives);
        FileNotFoundError, IsADirectoryError or PermissionError when `path`
        cannot be read.
        """
        inner = _core.FlatIndex.load(_validate.input_file(path, "path"))
        index = cls.__new__(cls)
        index._index = inner
        return index
