"""Savchenko's sequential three-way decisions over PCA granules."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .. import _core
from .. import _validate as v
from ._estimator import BaseEstimator, ClassifierMixin, check_fitted, check_X, labels_to_indices, vote
from ._pca import PCA


@dataclass
class SequentialStats:
    """Per-query work of :meth:`SequentialClassifier.predict_stats`.

    Attributes
    ----------
    labels : ndarray
        The predictions.
    levels : ndarray of int64
        Granules used (1 .. ``n_levels_``).
    components : ndarray of int64
        Principal components used (``m`` times the granules, at most all).
    evaluations : ndarray of int64
        Reference-granule distances computed (the first granule of every
        reference, then only references of classes still in play whose partial
        distance, a lower bound of the later ones, can still make them the
        class's nearest).
    terms : ndarray of int64
        Coordinate terms summed; exhaustive 1-NN sums ``n_train * n_features``. The
        first granule runs as one GEMM for a block of queries and keeps only each
        class's best value, so a query that goes on to granule 2 sums its first
        granule again for the references still in play; those terms are counted.
    """

    labels: np.ndarray
    levels: np.ndarray
    components: np.ndarray
    evaluations: np.ndarray
    terms: np.ndarray
    exhaustive_terms: int

    @property
    def mean_components(self) -> float:
        return float(self.components.mean())

    @property
    def work_fraction(self) -> float:
        """Mean coordinate terms per query as a fraction of exhaustive search."""
        return float(self.terms.mean()) / float(self.exhaustive_terms)


class SequentialClassifier(ClassifierMixin, BaseEstimator):
    """Nearest-neighbour classifier with sequential three-way decisions over PCA granules.

    Fit: PCA of the training features (every component, ordered by explained
    variance); the transformed training set is the reference set. Predict, per
    query: granule ``l`` holds the first ``l * m`` components; distances to the
    references accumulate granule by granule; after each granule every class
    whose best distance exceeds ``delta`` times the leader's is rejected and its
    references are never touched again; the query stops when one class is left
    or at the last granule, and the leader (or the vote of the ``n_neighbors``
    nearest surviving references) is the prediction. A. V. Savchenko,
    "Sequential three-way decisions in multi-category image recognition with
    deep features based on distance factor", Information Sciences 489 (2019).

    Parameters
    ----------
    m : int
        Principal components per granule (the lecture uses 32 or 64).
    delta : float or None
        Rejection threshold on the ratio of a class's distance to the leader's
        (> 1; ``inf`` never rejects and gives exact 1-NN on the PCA features).
        None: fitted on a stratified validation split as the smallest value
        whose validation accuracy is within `delta_tolerance` of exhaustive
        1-NN on that split.
    n_neighbors : int
        1: the leader. k > 1: majority vote of the k nearest surviving
        references (ties: the class of the nearest among the tied).
    metric : {"l2", "l1"}
        Additive distance per component; "l2" is squared Euclidean.
    whiten : bool
        Scale the components to unit variance.
    delta_tolerance : float
        Accuracy (as a fraction) the fitted delta may lose on validation.
    validation_fraction : float
        Share of the training set held out to fit delta (the final model uses all).
    random_state : int
        Seed of the validation split.

    Notes
    -----
    Thread safety: a fitted classifier may predict from several threads at
    once (the C++ index is read-only; each call has its own buffers); `fit`
    must not run while another thread uses the same object.

    Attributes
    ----------
    classes_ : ndarray
    pca_ : PCA
    delta_ : float
        The delta in use (given or fitted).
    n_levels_ : int
        Granules per query at most.

    Examples
    --------
    >>> import numpy as np
    >>> from keensight.search import SequentialClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 1, (50, 16)), rng.normal(4, 1, (50, 16))]
    >>> y = np.repeat([0, 1], 50)
    >>> clf = SequentialClassifier(m=4, delta=2.0).fit(X, y)
    >>> clf.predict([[4.0] * 16, [0.0] * 16]).tolist()
    [1, 0]
    """

    def __init__(self, m: int = 32, delta: Optional[float] = None, n_neighbors: int = 1,
                 metric: str = "l2", whiten: bool = False, delta_tolerance: float = 0.005,
                 validation_fraction: float = 0.2, random_state: int = 0) -> None:
        self.m = m
        self.delta = delta
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.whiten = whiten
        self.delta_tolerance = delta_tolerance
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    # -- fitting ----------------------------------------------------------
    def _check_params(self) -> None:
        v.positive_int(self.m, "m")
        v.positive_int(self.n_neighbors, "n_neighbors")
        if self.metric not in ("l2", "l1"):
            raise ValueError(f"metric: expected 'l2' or 'l1' (additive over components), got {self.metric!r}")
        if self.delta is not None:
            d = v.real(self.delta, "delta", finite=False)
            if not d >= 1.0:
                raise ValueError(f"delta: expected a number >= 1 (inf: never reject), got {self.delta}")
        tol = v.real(self.delta_tolerance, "delta_tolerance")
        if not 0.0 <= tol < 1.0:
            raise ValueError("delta_tolerance: expected a fraction in [0, 1)")
        frac = v.real(self.validation_fraction, "validation_fraction")
        if not 0.0 < frac < 1.0:
            raise ValueError("validation_fraction: expected a fraction in (0, 1)")

    def _index(self, Z: np.ndarray, y_idx: np.ndarray, projection: Optional[PCA] = None) -> Any:
        """The C++ index over references `Z`; with `projection`, it takes queries in the
        input space and projects each only on the components its granules use."""
        if projection is None:
            return _core.SequentialIndex(Z, y_idx.astype(np.int64), len(self.classes_), int(self.m),
                                         self.metric)
        projection._check_fitted()
        return _core.SequentialIndex(Z, y_idx.astype(np.int64), len(self.classes_), int(self.m),
                                     self.metric, projection._mean32, projection._components32,
                                     projection._scale32)

    def fit(self, X: Any, y: Any) -> "SequentialClassifier":
        """Fit the PCA and store the transformed references; fit delta if not given."""
        self._check_params()
        X = check_X(self, X, reset=True)
        self.classes_, y_idx = labels_to_indices(y, len(X))
        self.n_features_in_ = X.shape[1]
        self.pca_ = PCA(whiten=self.whiten).fit(X)
        Z = self.pca_.transform(X)
        self._y_ = y_idx
        self.delta_ = float(self.delta) if self.delta is not None else self._fit_delta(Z, y_idx)
        self.index_ = self._index(Z, y_idx, self.pca_)
        self.n_levels_ = int(self.index_.n_levels)
        return self

    def _fit_delta(self, Z: np.ndarray, y_idx: np.ndarray) -> float:
        """Smallest delta on a geometric grid whose accuracy on a stratified
        validation split stays within `delta_tolerance` of exhaustive 1-NN."""
        rng = np.random.default_rng(self.random_state)
        val = np.zeros(len(Z), bool)
        for c in range(len(self.classes_)):
            members = np.flatnonzero(y_idx == c)
            n_val = int(round(len(members) * self.validation_fraction))
            if len(members) - n_val < 1:
                n_val = len(members) - 1
            val[rng.choice(members, n_val, replace=False)] = True
        if not val.any():
            self.delta_validation_ = None
            return math.inf
        train = ~val
        index = self._index(Z[train], y_idx[train])
        y_train, y_val = y_idx[train], y_idx[val]
        Zval = np.ascontiguousarray(Z[val])

        def accuracy(delta: float) -> float:
            out = index.predict(Zval, delta, int(self.n_neighbors))
            return float(np.mean(self._decide(out[0], out[2], y_train) == y_val))

        full = accuracy(math.inf)
        grid = [1.0 + 0.05 * 1.25 ** i for i in range(25)]  # 1.05 .. ~13
        chosen = math.inf
        for delta in grid:
            if accuracy(delta) >= full - self.delta_tolerance - 1e-12:
                chosen = delta
                break
        self.delta_validation_ = {"exhaustive_accuracy": full, "delta": chosen}
        return chosen

    # -- pickling ---------------------------------------------------------
    # The C++ index is not pickled: its references (and the fitted PCA, labels and
    # delta) are, and the index is rebuilt from them, exactly as fit built it.
    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())  # (object.__getstate__ returns __dict__ itself)
        index = state.pop("index_", None)
        if index is not None:
            state["_references_"] = index.references()
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        references = state.pop("_references_", None)
        super().__setstate__(state)
        if references is not None:
            try:
                self.index_ = self._index(v.matrix(references, "references"), np.asarray(self._y_, np.int64),
                                          self.pca_)
            except (TypeError, AttributeError, IndexError) as exc:
                raise ValueError(f"SequentialClassifier: the pickled state is inconsistent ({exc})") from None
            if self.index_.n_levels != self.n_levels_:
                raise ValueError("SequentialClassifier: the pickled state is inconsistent (granules)")

    # -- prediction -------------------------------------------------------
    def _decide(self, class_d: np.ndarray, nn_i: np.ndarray, y_ref: np.ndarray) -> np.ndarray:
        if int(self.n_neighbors) == 1:  # the leader; ties: the lower reference index, as 1-NN
            return y_ref[nn_i[:, 0]]
        return vote(nn_i, y_ref, len(self.classes_))[0]

    def _run(self, X: Any) -> tuple:
        check_fitted(self, "index_")
        # The index applies the PCA itself, query by query and granule by granule,
        # and rejects NaN and infinity (they reach every projected coordinate).
        X = check_X(self, X, reset=False, check_finite=False)
        return self.index_.predict(X, self.delta_, int(self.n_neighbors))

    def predict(self, X: Any) -> np.ndarray:
        """Class of each row of `X`."""
        out = self._run(X)
        return self.classes_[self._decide(out[0], out[2], self._y_)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Share of each class among the `n_neighbors` nearest surviving references
        (one-hot on the leader for ``n_neighbors=1``); rejected classes get 0."""
        out = self._run(X)
        return vote(out[2], self._y_, len(self.classes_))[1]

    def predict_stats(self, X: Any) -> SequentialStats:
        """Predictions with the work each query took (granules, components, distances)."""
        class_d, _, nn_i, levels, comps, evals, terms = self._run(X)
        labels = self.classes_[self._decide(class_d, nn_i, self._y_)]
        return SequentialStats(labels, levels, comps, evals, terms,
                               exhaustive_terms=len(self._y_) * int(self.index_.dim))
