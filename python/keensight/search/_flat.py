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
from ._index import Index, as_bytes, ids_array

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


class FlatIndex(Index):
    """A brute-force index: exact search over every stored vector.

    Implements the :class:`~keensight.search.Index` protocol in full: ids,
    filtered search, range search, removal, stored vectors back, files, bytes
    and pickling. :meth:`search` is :func:`knn` over the stored vectors (or over
    the `allowed` ones) with the row numbers mapped to ids.

    Ids are int64 labels, any values but -1 (the missing-result marker), unique
    in the index. By default a batch of n vectors gets ``len(self) ...
    len(self) + n - 1`` (the insertion order, as before ids existed); after
    :meth:`remove` those may already be taken, which raises ValueError (pass
    ids explicitly then). Vectors stay in insertion order, which breaks ties
    (the earlier vector first); :meth:`remove` compacts the storage.

    Thread safety: any method may be called from several threads at once.
    Searches run concurrently; :meth:`add`, :meth:`remove` and :meth:`reset`
    wait for the searches in flight and a search sees the vectors before or
    after them, never a part.

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
    >>> index.add(np.array([[0, 0], [3, 4], [6, 8]], dtype=np.float32), ids=[10, 20, 30])
    >>> len(index)
    3
    >>> d, i = index.search([[3, 3]], k=1)
    >>> int(i[0, 0]), float(d[0, 0])
    (20, 1.0)
    >>> index.search([[3, 3]], k=1, allowed=[10, 30])[1].tolist()
    [[10]]
    >>> lims, d, i = index.range_search([[0, 0]], radius=26.0)
    >>> lims.tolist(), i.tolist()
    ([0, 2], [10, 20])
    >>> index.remove([20])
    1
    >>> index.ids.tolist(), index.get_items([30]).tolist()
    ([10, 30], [[6.0, 8.0]])
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

    def __contains__(self, id: Any) -> bool:
        return bool(np.isin(id, self.ids).any())

    @property
    def ids(self) -> np.ndarray:
        """The ids of the stored vectors (int64), in storage order."""
        return self._index.ids()

    def add(self, x: Any, ids: Any = None) -> None:
        """Append the rows of `x` (shape (n, dim)).

        Parameters
        ----------
        x : array-like, shape (n, dim)
            Finite values (and non-negative ones with ``"chi2"``); n = 0 adds nothing.
        ids : array-like of int, shape (n,), optional
            Labels new to the index, any int64 but -1; default
            ``len(self) + arange(n)``.

        Raises ValueError for NaN or infinity, negative values with ``"chi2"``,
        and ids repeated in the batch, already in the index, or -1; nothing is
        added then.
        """
        x = _matrix(x, "x", dim=self.dim, allow_empty=True)
        id_array = None if ids is None else ids_array(ids, "ids", x.shape[0])
        self._index.add(x, id_array)

    def search(self, queries: Any, k: int, allowed: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        """The `k` nearest stored vectors of every query row: (distances, ids), as :func:`knn`
        (``min(k, len(self))`` columns) with ids in place of row numbers.

        `allowed`, an array-like of ids (unknown ones ignored), restricts the
        results to those vectors, searched exactly; slots past them hold id -1
        and distance inf (-inf for ``"ip"``), as :meth:`HNSWIndex.search`.

        Raises ValueError if the index is empty.
        """
        q = _matrix(queries, "queries", dim=self.dim, allow_empty=True)
        k = _validate.positive_int(k, "k", high=_validate.INT64_MAX)
        allow = None if allowed is None else ids_array(allowed, "allowed")
        if len(self) == 0:
            raise ValueError("FlatIndex.search: the index is empty (add vectors first)")
        return self._index.search(q, k, allow)

    def range_search(self, queries: Any, radius: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every stored vector within `radius` of each query, in faiss's form.

        As faiss's ``range_search``: a vector is returned when its distance is
        strictly below `radius` (``"l2"``: the squared distance), or for
        ``"ip"`` when the inner product is strictly above it. Distances are the
        ones :meth:`search` reports.

        Returns
        -------
        lims : ndarray of int64, shape (nq + 1,)
            The results of query ``i`` are ``distances[lims[i]:lims[i + 1]]`` and
            ``ids[lims[i]:lims[i + 1]]``, in storage order (not sorted).
        distances : ndarray of float32, shape (lims[-1],)
        ids : ndarray of int64, shape (lims[-1],)
        """
        q = _matrix(queries, "queries", dim=self.dim, allow_empty=True)
        r = _validate.real(radius, "radius", finite=False)
        if np.isnan(r):
            raise ValueError("radius: expected a number, got NaN")
        return self._index.range_search(q, r)

    def remove(self, ids: Any) -> int:
        """Delete the vectors of `ids` (unknown ids are ignored, as faiss's ``remove_ids``)
        and compact the storage; returns how many were removed."""
        return int(self._index.remove(ids_array(ids, "ids")))

    def mark_deleted(self, ids: Any) -> None:
        """Exclude `ids` from results: for a flat index, :meth:`remove` (a removed
        vector guides no later search, so nothing is kept). Unknown ids: ValueError."""
        id_array = ids_array(ids, "ids")
        missing = id_array[~np.isin(id_array, self.ids)]
        if missing.size:
            raise ValueError(f"ids: {missing[:5].tolist()} not in the index")
        self._index.remove(id_array)

    def get_items(self, ids: Any) -> np.ndarray:
        """The stored vectors of `ids`, shape (len(ids), dim), float32; ValueError for an unknown id."""
        return self._index.get_items(ids_array(ids, "ids"))

    def vectors(self) -> np.ndarray:
        """A copy of the stored vectors, shape (len(self), dim), in storage order (that of :attr:`ids`)."""
        return self._index.rows()

    def reset(self) -> None:
        """Remove every vector (the dim and metric stay)."""
        self._index.reset()

    def save(self, path: PathLike) -> None:
        """Write the index to `path` atomically (a temporary file beside it, then a rename).

        The file holds a magic number, the format version (2), the metric, dim
        and count, the float32 vectors, the ids unless they are ``0 .. n-1``,
        and an FNV-1a 64 checksum.
        """
        self._index.save(_validate.output_file(path, "path"))

    @classmethod
    def load(cls, path: PathLike) -> "FlatIndex":
        """Read an index written by :meth:`save` (format versions 1 and 2).

        Raises ValueError for a file that is not a FlatIndex file, is truncated
        or corrupt (checksum mismatch), has an unsupported format version or
        holds what :meth:`add` would refuse (NaN, infinity, chi2 negatives,
        duplicate ids); FileNotFoundError, IsADirectoryError or PermissionError
        when `path` cannot be read.
        """
        return cls._wrap(_core.FlatIndex.load(_validate.input_file(path, "path")))

    def to_bytes(self) -> bytes:
        """Exactly the bytes :meth:`save` writes (pickling goes through them)."""
        return self._index.to_bytes()

    @classmethod
    def from_bytes(cls, data: Any) -> "FlatIndex":
        """An index from :meth:`to_bytes` (or a file's contents), validated as :meth:`load`
        validates a file: ValueError for truncated, corrupt or foreign data."""
        return cls._wrap(_core.FlatIndex.from_bytes(as_bytes(data)))

    @classmethod
    def _wrap(cls, inner: Any) -> "FlatIndex":
        index = cls.__new__(cls)
        index._index = inner
        return index
