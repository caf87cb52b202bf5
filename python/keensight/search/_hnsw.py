"""The HNSW approximate nearest-neighbour index (keensight's C++ graph, checked here)."""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from .. import _core
from .._numeric import l2_normalize
from .._validate import INT64_MAX, boolean, input_file, integer, matrix, num_threads, output_file, real
from ._index import Index, as_bytes

__all__ = ["HNSWIndex"]

PathLike = Union[str, "os.PathLike[str]"]
_METRICS = ("l2", "ip", "cosine")
# The largest ef / ef_construction / ef_search: a candidate list far longer than any search
# needs (a few MB per thread), so that no value asks for a huge allocation.
MAX_EF = int(_core.HNSWIndex.MAX_EF)
MAX_DIM = 1 << 24


def _threads(value: Optional[int]) -> int:
    """None (keensight's thread setting) as 0, else a count in [1, MAX_THREADS]."""
    return 0 if value is None else num_threads(value, "num_threads", allow_default=False)


def _ids(ids: Any, name: str, n: Optional[int] = None) -> np.ndarray:
    from ._index import ids_array
    return ids_array(ids, name, n)


def _hnsw_unpickle(data: bytes, num_threads: Optional[int]) -> "HNSWIndex":
    """Unpickling: :meth:`HNSWIndex.from_bytes` with the pickled thread setting."""
    return HNSWIndex.from_bytes(data, num_threads=num_threads)


class HNSWIndex(Index):
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
    on the unrotated vectors up to float rounding. For ``"l2"`` the first
    batch's mean is subtracted before rotating (it leaves L2 distances
    unchanged): rotated in float32 as they are, vectors far from the origin
    would lose the precision of their distances.

    A member of the :class:`~keensight.search.Index` protocol (as
    :class:`FlatIndex`): :meth:`range_search`, :meth:`remove`, :meth:`reset`,
    :meth:`get_items`, :attr:`ids`, ``len``, :meth:`to_bytes` /
    :meth:`from_bytes` (pickling). Deletion is hnswlib's: :meth:`remove` and
    :meth:`mark_deleted` mark vectors deleted, so that they leave the results,
    :attr:`ids` and ``len`` but keep their slots in the graph (they still guide
    searches; :attr:`n_deleted` of them); ``add(..., replace_deleted=True)``
    reuses those slots for new vectors, so that memory does not grow.

    Thread safety (the protocol's): searches may run from many threads at
    once, also while another thread adds, removes or resets; :meth:`add`,
    :meth:`remove`, :meth:`reset`, :meth:`mark_deleted`,
    :meth:`unmark_deleted` and the setters wait for the searches under way,
    and searches wait for them, so a search sees the index before or after
    such a write, never a part.

    Determinism: searching a given graph gives the same results whatever the
    number of threads. A build with one thread is reproducible (the same
    vectors in the same batches with the same ``seed`` give the same graph,
    bit for bit); with several threads the insertion order depends on timing,
    so the graph, and hence the approximate results, vary a little from build
    to build (every vector stays findable).

    Parameters
    ----------
    dim : int
        Vector dimension, in [1, 2**24].
    metric : {"l2", "ip", "cosine"}
        ``"l2"``: squared Euclidean distance. ``"ip"``: inner product, a
        similarity (results sorted largest first). ``"cosine"``: 1 - cosine
        similarity (vectors and queries are normalised; zero vectors are refused).
    M : int
        Links per node on the upper layers (``2 * M`` on layer 0), in [2, 2048].
    ef_construction : int
        Candidate-list size while inserting (larger: better graph, slower
        build), in [1, ``MAX_EF``] (``MAX_EF`` = 2**20).
    ef_search : int
        Default candidate-list size of :meth:`search` (at least ``k`` is
        used), in [1, ``MAX_EF``].
    pca : bool or "auto"
        True: fit a PCA rotation on the first batch passed to :meth:`add`:
        the principal axes of the differences between its rows and their
        nearest neighbours. Above about 300 dimensions only the leading 128
        axes are kept in order, completed to a rotation by Householder
        reflectors (a third of the memory and of the work of rotating a
        784-d vector). ``"auto"`` (the default): the same fit, kept only
        where it was measured to pay (benchmarks/report_hnsw_pca.py, QPS at
        recall@10 >= 0.95 against ``pca=False``): ``dim >= 512`` and the first
        five granules (160 coordinates) of the rotated differences carrying
        at least 70% of their variance; never for ``"ip"`` or without early
        termination. Measured: Fashion-MNIST pixels (77%) 1.20x; 784-d
        power-law clusters (71%) 1.04x; 784-d Gaussian classes with linearly
        decaying scale (55%) 0.97x and isotropic ones (39%) 0.97x; at 16 to
        256 dimensions 0.93x to 1.04x on every kind, so no rotation there
        (nor the fit). :attr:`rotation` tells what was chosen. False: no
        rotation.
    rotation : array-like, optional
        A ``dim x dim`` matrix with orthonormal rows to rotate by instead.
    granule : int
        Coordinates of the first early-termination check (kept in a dense
        table, checked for a whole batch of candidates); the rest of a
        distance is checked every ``4 * granule`` coordinates. In [1, 2**24].
    early_termination : bool
        Abandon L2 / cosine distances early (exact; no effect for ``"ip"``).
    num_threads : int, optional
        Threads for :meth:`add` and :meth:`search`, in [1, 256]; None follows
        :func:`keensight.set_num_threads`.
    seed : int
        Seeds the random levels of the nodes, in [0, 2**64 - 1].

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
                 ef_search: int = 64, pca: Union[bool, str] = "auto", rotation: Any = None, granule: int = 32,
                 early_termination: bool = True, num_threads: Optional[int] = None,
                 seed: int = 100) -> None:
        dim = integer(dim, "dim", 1, MAX_DIM)
        if not isinstance(metric, str) or metric not in _METRICS:
            raise ValueError(f"metric: expected one of {list(_METRICS)}, got {metric!r}")
        auto = isinstance(pca, str) and pca == "auto"
        if auto:
            pca = rotation is None  # a given rotation is used as given
        elif isinstance(pca, str):
            raise ValueError(f"pca: expected True, False or 'auto', got {pca!r}")
        else:
            pca = boolean(pca, "pca")
        if pca and rotation is not None:
            raise ValueError("pca and rotation: give one or the other")
        self._num_threads = _threads(num_threads)
        self._index = _core.HNSWIndex(
            dim, metric, integer(M, "M", 2, 2048), integer(ef_construction, "ef_construction", 1, MAX_EF),
            integer(ef_search, "ef_search", 1, MAX_EF), integer(granule, "granule", 1, MAX_DIM),
            boolean(early_termination, "early_termination"), integer(seed, "seed", 0, 2**64 - 1),
            pca=pca, pca_auto=auto and pca)
        if rotation is not None:
            r = matrix(rotation, "rotation", dim=dim)
            if r.shape != (dim, dim):
                raise ValueError(f"rotation: expected shape ({dim}, {dim}), got {r.shape}")
            self._index.set_rotation(r)

    # ------------------------------------------------------------------ build
    def add(self, vectors: Any, ids: Any = None, replace_deleted: bool = False) -> None:  # type: ignore[override]
        """Insert vectors (multi-threaded; may be called repeatedly).

        Parameters
        ----------
        vectors : array-like, shape (n, dim)
            Numeric (any int, uint, bool or float dtype; converted to float32),
            2-D (a single vector is ``x.reshape(1, -1)``); n = 0 adds nothing.
            Finite values, and norms of at most 2**62 (for ``"l2"`` with a
            rotation: distances to the first batch's mean), beyond which squared
            distances would overflow float32; ValueError otherwise.
        ids : array-like of int, shape (n,), optional
            Non-negative labels not live in the index; default
            ``n_slots + arange(n)`` (``n_slots = len(self) + n_deleted``: never
            the id of a slot, deleted or not). A removed id added again takes
            its own slot back.
        replace_deleted : bool
            As hnswlib's ``replace_deleted``: the new vectors take the slots of
            deleted ones while there are any (the rest are appended), so memory
            does not grow under deletions and additions. A reused slot's old
            neighbours re-select their links among their own and its (the old
            vector no longer counts), then the slot is linked in again as a new
            node of its level; reused slots are inserted one at a time.
        """
        replace_deleted = boolean(replace_deleted, "replace_deleted")
        x = matrix(vectors, "vectors", dim=self.dim, allow_empty=True)
        id_array = None if ids is None else _ids(ids, "ids", x.shape[0])
        if id_array is not None and id_array.size and id_array.min() < 0:
            raise ValueError("ids: must be non-negative (-1 marks missing results)")
        if x.shape[0] == 0:
            return
        # pca=True: the first batch fits the rotation in C++ (HNSWOptions::pca).
        self._index.add(x, id_array, self._num_threads, replace_deleted)

    def mark_deleted(self, ids: Any) -> None:
        """Exclude ids from results; they still guide the search through the graph.
        ValueError for an id that is not in the index."""
        self._index.mark_deleted(_ids(ids, "ids"))

    def remove(self, ids: Any) -> int:
        """The protocol's remove, with hnswlib's semantics: :meth:`mark_deleted` of
        the live ones among `ids` (unknown or already removed ids are ignored);
        returns how many were removed. Their slots stay in the graph until
        ``add(..., replace_deleted=True)`` reuses them."""
        return int(self._index.remove(_ids(ids, "ids")))

    def reset(self) -> None:
        """Remove every vector, id and deletion mark (the options stay). A
        rotation fitted by ``pca`` goes too (the next :meth:`add` fits one
        again); a ``rotation`` given to the constructor stays."""
        self._index.reset()

    def get_items(self, ids: Any) -> np.ndarray:
        """The vectors of `ids` as added, shape (len(ids), dim), float32.

        Stored vectors are rotated back and the centre added again, so they
        equal what was added up to the float32 rounding of the rotation (a
        relative error of a few 1e-6 of the vectors' spread); ``"cosine"``
        stores, and returns, unit vectors. ValueError for an id that is not in
        the index or was removed.
        """
        return self._index.get_items(_ids(ids, "ids"))

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
        queries : array-like, shape (nq, dim)
            Numeric, converted to float32 as in :meth:`add`; nq = 0 gives
            empty results. A single vector is ``q.reshape(1, -1)``.
        k : int
            Neighbours per query, in [1, 2**63 - 1]; the results have
            ``min(k, len(self))`` columns.
        ef : int, optional
            Candidate-list size (accuracy / speed trade-off), in [1,
            ``MAX_EF``]; default ``ef_search``; at least ``k`` is used.
        allowed : array-like of int, optional
            Only these ids may be returned (unknown ids are ignored). A short
            list (at most ``ef * 2M`` ids) is searched exhaustively, hence exactly.
        return_stats : bool
            Also return ``{"distances": evaluations, "rejected": evaluations
            found beyond their bound}``.

        Returns
        -------
        distances : ndarray of float32, shape (nq, min(k, len(self)))
            Best first (for ``"ip"``: largest inner product first).
        ids : ndarray of int64, shape (nq, min(k, len(self)))
            -1 (with distance inf, or -inf for ``"ip"``) where fewer results
            exist (deletions, filter).
        """
        k = integer(k, "k", 1, INT64_MAX)
        ef_value = 0 if ef is None else integer(ef, "ef", 1, MAX_EF)
        return_stats = boolean(return_stats, "return_stats")
        q = matrix(queries, "queries", dim=self.dim, allow_empty=True)
        if self._index.slots == 0:
            raise ValueError("search: the index is empty (add vectors first)")
        allow = None if allowed is None else _ids(allowed, "allowed")
        d, i, stats = self._index.search(q, k, ef_value, allow, self._num_threads)
        return (d, i, stats) if return_stats else (d, i)

    def range_search(self, queries: Any, radius: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every vector found within `radius` of each query, in faiss's form.

        The criterion is :meth:`FlatIndex.range_search`'s: distance strictly
        below `radius` (``"l2"``: the squared distance; ``"cosine"``: 1 -
        cosine), for ``"ip"`` inner product strictly above it; distances as
        :meth:`search` reports them. Approximate, as faiss's ``IndexHNSW``:
        what the graph search finds. It runs with ``ef = max(ef_search, 32)``;
        while all ef candidates it returns are within the radius (there may
        be more), it runs again with twice the ef, until one falls outside,
        the search runs out of nodes, or ef reaches ``len(self)`` (or
        ``MAX_EF``). Recall therefore follows that of :meth:`search` at the ef
        reached; an empty index gives no results.

        Returns
        -------
        lims : ndarray of int64, shape (nq + 1,)
            The results of query ``i`` are ``[lims[i], lims[i + 1])``, best
            first (ties by id).
        distances : ndarray of float32, shape (lims[-1],)
        ids : ndarray of int64, shape (lims[-1],)
        """
        q = matrix(queries, "queries", dim=self.dim, allow_empty=True)
        r = real(radius, "radius", finite=False)
        if np.isnan(r):
            raise ValueError("radius: expected a number, got NaN")
        return self._index.range_search(q, r, self._num_threads)

    # ------------------------------------------------------------ persistence
    def save(self, path: PathLike) -> None:
        """Write the index to `path` (versioned and checksummed). The file is
        written next to `path` under a temporary name and renamed over it, so a
        failure leaves no partial file behind. The folder must exist
        (FileNotFoundError otherwise)."""
        self._index.save(output_file(path, "path"))

    @classmethod
    def load(cls, path: PathLike, num_threads: Optional[int] = None) -> "HNSWIndex":
        """Read an index written by :meth:`save`.

        Raises
        ------
        FileNotFoundError, IsADirectoryError, PermissionError
            If `path` does not exist, is a directory or cannot be read.
        ValueError
            If the file is truncated, corrupt (checksum), of another format
            version, not a keensight HNSW index, or holds what :meth:`add`
            never stores (non-finite or too large vectors, negative or
            duplicate ids, links out of range, a bad entry point, ...), even
            under a valid checksum. Versions 1 to 3 of the format are read.
        """
        p = input_file(path, "path")
        threads = _threads(num_threads)
        return cls._wrap(_core.HNSWIndex.load(p), threads)

    def to_bytes(self) -> bytes:
        """Exactly the bytes :meth:`save` writes (in memory; pickling goes through them)."""
        return self._index.to_bytes()

    @classmethod
    def from_bytes(cls, data: Any, num_threads: Optional[int] = None) -> "HNSWIndex":
        """An index from :meth:`to_bytes` (or a file's contents, format version 4),
        validated as :meth:`load` validates a file: ValueError otherwise."""
        threads = _threads(num_threads)
        return cls._wrap(_core.HNSWIndex.from_bytes(as_bytes(data)), threads)

    @classmethod
    def _wrap(cls, inner: Any, threads: int) -> "HNSWIndex":
        self = cls.__new__(cls)
        self._index = inner
        self._num_threads = threads
        return self

    def __reduce__(self) -> Tuple[Any, ...]:
        """Pickle and :func:`copy.deepcopy` through :meth:`to_bytes` (validated
        as :meth:`load` validates a file), with the thread setting."""
        return _hnsw_unpickle, (self.to_bytes(), self.num_threads)

    # ------------------------------------------------------------- properties
    def __len__(self) -> int:
        """Live vectors (stored and not deleted; :attr:`n_deleted` more keep slots)."""
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
        self._index.ef_search = integer(value, "ef_search", 1, MAX_EF)

    @property
    def early_termination(self) -> bool:
        return bool(self._index.early_termination)

    @early_termination.setter
    def early_termination(self, value: bool) -> None:
        self._index.early_termination = boolean(value, "early_termination")

    @property
    def granule(self) -> int:
        return int(self._index.granule)

    @property
    def num_threads(self) -> Optional[int]:
        return self._num_threads or None

    @num_threads.setter
    def num_threads(self, value: Optional[int]) -> None:
        self._num_threads = _threads(value)

    @property
    def rotation(self) -> Optional[np.ndarray]:
        """The stored rotation (rows = axes), or None."""
        return self._index.rotation()

    @property
    def pca_auto_choice(self) -> Optional[bool]:
        """With ``pca="auto"``: whether the rule kept the rotation (None before the first
        batch, and when pca was not "auto")."""
        if not self._index.pca_auto or self._index.slots == 0:
            return None
        return self.rotation is not None

    @property
    def n_deleted(self) -> int:
        return int(self._index.n_deleted)

    @property
    def ids(self) -> np.ndarray:
        """The live ids (int64), in slot order (insertion order unless slots were reused)."""
        return self._index.ids()

    @property
    def n_slots(self) -> int:
        """Slots in the graph: ``len(self) + n_deleted``."""
        return int(self._index.slots)

    @property
    def max_level(self) -> int:
        return int(self._index.max_level)

    def memory_usage(self) -> int:
        """Bytes held by the index (vectors, links, ids, locks, scratch buffers)."""
        return int(self._index.memory_usage())
