"""The Index protocol every keensight index follows (faiss's ``Index`` as the model).

=====================================  =================================================
``add(x, ids=None)``                   append vectors; ids are int64 labels, unique in
                                       the index (default: ``len(self) + arange(n)``)
``search(queries, k, allowed=None)``   ``(distances, ids)``, best first, ``-1`` (with
                                       distance inf, -inf for ``"ip"``) where fewer
                                       results exist; `allowed`: an id subset
``range_search(queries, radius)``      ``(lims, distances, ids)`` as faiss: the results
                                       of query ``i`` are ``[lims[i], lims[i + 1])``;
                                       distance ``< radius`` (similarity ``> radius``)
``remove(ids)``                        delete ids (unknown ones ignored); returns the
                                       number removed
``mark_deleted(ids)``                  exclude ids from results
``reset()``                            remove everything (dim and metric stay)
``get_items(ids)``                     the stored vectors of those ids, as added
``len(index)``, ``index.ids``          vectors stored, and their ids
``save(path)`` / ``load(path)``        the versioned, checksummed index file
``to_bytes()`` / ``from_bytes(data)``  the same bytes in memory (pickle goes through them)
=====================================  =================================================

Concurrency contract: searches may run from many threads at once, also while
another thread adds, removes or resets; a search sees the index before or after
such a write, never a part.
"""
from __future__ import annotations

import abc
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Tuple, TypeVar, Union

import numpy as np

__all__ = ["Index"]

PathLike = Union[str, "os.PathLike[str]"]
T = TypeVar("T")


def _from_bytes(cls: Any, data: bytes) -> Any:
    """Unpickling entry point of every :class:`Index`: ``cls.from_bytes(data)``."""
    return cls.from_bytes(data)


class Index(abc.ABC):
    """Abstract base of keensight's indexes: one protocol, as faiss's ``Index``.

    Subclasses implement the abstract methods; pickling and :func:`copy.deepcopy`
    come from :meth:`to_bytes` / :meth:`from_bytes`, so a pickle holds exactly the
    bytes :meth:`save` writes and is validated as a file is (a corrupt payload
    raises ValueError).
    """

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Length of every vector."""

    @property
    @abc.abstractmethod
    def metric(self) -> str:
        """The metric's name."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @property
    @abc.abstractmethod
    def ids(self) -> np.ndarray:
        """The ids of the stored vectors (int64), in storage order."""

    @abc.abstractmethod
    def add(self, x: Any, ids: Any = None) -> None:
        """Append the rows of `x`, labelled `ids` (default ``len(self) + arange(n)``)."""

    @abc.abstractmethod
    def search(self, queries: Any, k: int, allowed: Any = None) -> Tuple[np.ndarray, np.ndarray]:
        """``(distances, ids)`` of the `k` best stored vectors of every query."""

    @abc.abstractmethod
    def range_search(self, queries: Any, radius: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(lims, distances, ids)``: every stored vector within `radius` of each query."""

    @abc.abstractmethod
    def remove(self, ids: Any) -> int:
        """Delete `ids`; returns how many were in the index."""

    @abc.abstractmethod
    def mark_deleted(self, ids: Any) -> None:
        """Exclude `ids` from every later result."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Remove every vector."""

    @abc.abstractmethod
    def get_items(self, ids: Any) -> np.ndarray:
        """The stored vectors of `ids`, shape ``(len(ids), dim)``."""

    @abc.abstractmethod
    def save(self, path: PathLike) -> None:
        """Write the index file to `path` atomically."""

    @classmethod
    @abc.abstractmethod
    def load(cls: Any, path: PathLike) -> Any:
        """Read an index written by :meth:`save`."""

    @abc.abstractmethod
    def to_bytes(self) -> bytes:
        """The bytes :meth:`save` would write."""

    @classmethod
    @abc.abstractmethod
    def from_bytes(cls: Any, data: Any) -> Any:
        """An index from :meth:`to_bytes`' output (validated as :meth:`load` validates a file)."""

    def __reduce__(self) -> Tuple[Callable[..., Any], Tuple[Any, bytes]]:
        return _from_bytes, (type(self), self.to_bytes())


def ids_array(ids: Any, name: str, n: Any = None) -> np.ndarray:
    """`ids` as a 1-D C-contiguous int64 array (a scalar becomes one id), `n` of them if given.

    TypeError for non-integer ids; ValueError for another shape or values beyond int64.
    """
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


def as_bytes(data: Any, name: str = "data") -> bytes:
    """`data` (bytes, bytearray or memoryview) as bytes; TypeError otherwise."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"{name}: expected bytes, bytearray or memoryview, got {type(data).__name__}")


# An index whose C++ side writes only files gets its bytes through a file in a private
# temporary folder (created with mode 0700, removed afterwards). One place, so that an
# index gaining a C++ to_bytes swaps only these two calls.
def bytes_through_file(save: Callable[[str], None], suffix: str) -> bytes:
    """The bytes `save(path)` writes."""
    with tempfile.TemporaryDirectory(prefix="keensight-") as folder:
        path = os.path.join(folder, "index" + suffix)
        save(path)
        return Path(path).read_bytes()


def load_through_file(load: Callable[[str], T], data: Any, suffix: str) -> T:
    """`load(path)` of a file holding `data`."""
    data = as_bytes(data)
    with tempfile.TemporaryDirectory(prefix="keensight-") as folder:
        path = os.path.join(folder, "index" + suffix)
        with open(path, "wb") as f:
            f.write(data)
        return load(path)


# Pickles of HNSWIndex written before it had to_bytes held its file (any format
# version) and these arguments; they stay readable through a file in a private
# temporary folder. New pickles go through HNSWIndex.to_bytes / from_bytes.
def _hnsw_from_bytes(data: Any, num_threads: Any, pca: Any) -> Any:
    from ._hnsw import HNSWIndex
    if not isinstance(pca, bool):
        raise ValueError(f"HNSWIndex pickle: expected a bool pca flag, got {pca!r}")
    return load_through_file(lambda path: HNSWIndex.load(path, num_threads=num_threads), data, ".kshnsw")
