"""k-NN classification over any keensight index, and set aggregation."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from .. import _validate as v
from .._numeric import l2_normalize
from ._estimator import BaseEstimator, ClassifierMixin, check_fitted, check_X, labels_to_indices, vote

_BACKENDS = ("flat", "hnsw")


class KNeighborsClassifier(ClassifierMixin, BaseEstimator):
    """k-nearest-neighbour classifier over a keensight index.

    Parameters
    ----------
    n_neighbors : int
        Neighbours that vote (ties: the class of the nearest among the tied).
    metric : str
        ``"l2"``, ``"ip"``, ``"cosine"`` (any backend), ``"l1"``, ``"chi2"`` (flat).
    backend : {"flat", "hnsw"}
        Exact search (:class:`FlatIndex`) or the approximate :class:`HNSWIndex`.
    index_params : dict, optional
        Keyword arguments of the index (e.g. ``{"M": 16, "ef_construction": 200}``).
    ef : int, optional
        HNSW search breadth (default: the index's).

    Examples
    --------
    >>> import numpy as np
    >>> from keensight.search import KNeighborsClassifier
    >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    >>> KNeighborsClassifier(n_neighbors=1).fit(X, ["a", "a", "b", "b"]).predict([[4.0, 4.5]]).tolist()
    ['b']
    """

    def __init__(self, n_neighbors: int = 1, metric: str = "l2", backend: str = "flat",
                 index_params: Optional[Dict[str, Any]] = None, ef: Optional[int] = None) -> None:
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.backend = backend
        self.index_params = index_params
        self.ef = ef

    def fit(self, X: Any, y: Any) -> "KNeighborsClassifier":
        v.positive_int(self.n_neighbors, "n_neighbors")
        if self.backend not in _BACKENDS:
            raise ValueError(f"backend: expected one of {_BACKENDS}, got {self.backend!r}")
        X = check_X(self, X, reset=True)
        self.classes_, self._y_ = labels_to_indices(y, len(X))
        self.n_features_in_ = X.shape[1]
        params = dict(self.index_params or {})
        if self.backend == "flat":
            from ._flat import FlatIndex
            self.index_ = FlatIndex(X.shape[1], self.metric, **params)
        else:
            from ._hnsw import HNSWIndex
            self.index_ = HNSWIndex(X.shape[1], self.metric, **params)
        self.index_.add(X)
        return self

    def kneighbors(self, X: Any, n_neighbors: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """(distances, indices) of the nearest training rows, nearest first: at most
        as many columns as there are training rows (``min(n_neighbors, n_samples)``)."""
        check_fitted(self, "index_")
        k = v.positive_int(self.n_neighbors if n_neighbors is None else n_neighbors, "n_neighbors")
        X = check_X(self, X, reset=False)
        if self.backend == "hnsw" and self.ef is not None:
            return self.index_.search(X, k, ef=self.ef)
        return self.index_.search(X, k)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Share of each class among the neighbours."""
        neighbors = self.kneighbors(X)[1]
        return vote(neighbors, self._y_, len(self.classes_))[1]

    def predict(self, X: Any) -> np.ndarray:
        """Majority class of the neighbours of each row."""
        neighbors = self.kneighbors(X)[1]
        return self.classes_[vote(neighbors, self._y_, len(self.classes_))[0]]


def aggregate(features: Any, groups: Any, method: str = "mean",
              normalize: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Pool the feature vectors of each group (the frames of a video, the photos
    of one identity) into one descriptor.

    Parameters
    ----------
    features : array_like, shape (n, d)
    groups : array_like, shape (n,)
        Group label of each row.
    method : {"mean", "max"}
        Average pooling (the usual choice for set-based recognition) or max pooling.
    normalize : bool
        L2-normalise each pooled vector (zero vectors stay zero).

    Returns
    -------
    (group_ids, pooled) : the sorted unique groups and a (n_groups, d) float32 array.

    Examples
    --------
    >>> from keensight.search import aggregate
    >>> ids, pooled = aggregate([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]], ["a", "a", "b"])
    >>> ids.tolist(), pooled.astype(float).round(3).tolist()
    (['a', 'b'], [[0.707, 0.707], [0.6, 0.8]])
    """
    X = v.matrix(features, "features")
    if method not in ("mean", "max"):
        raise ValueError(f"method: expected 'mean' or 'max', got {method!r}")
    ids, index = labels_to_indices(groups, len(X), classification=False)
    pooled = np.zeros((len(ids), X.shape[1]), np.float64)
    if method == "mean":
        np.add.at(pooled, index, X)
        pooled /= np.bincount(index, minlength=len(ids))[:, None]
    else:
        pooled[:] = -np.inf
        np.maximum.at(pooled, index, X)
    if normalize:
        pooled = l2_normalize(pooled, axis=1)
    return ids, pooled.astype(np.float32)
