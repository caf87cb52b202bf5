"""scikit-learn plumbing shared by the classifiers: base classes, label
encoding, neighbour voting, the fitted check."""
from __future__ import annotations

import warnings
from typing import Any, Tuple

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: F401  (re-exported)
from sklearn.exceptions import NotFittedError
from sklearn.utils.multiclass import check_classification_targets

__all__ = ["BaseEstimator", "ClassifierMixin", "check_fitted", "labels_to_indices", "vote"]


def check_fitted(estimator: Any, attribute: str) -> None:
    if not hasattr(estimator, attribute):
        raise NotFittedError(f"This {type(estimator).__name__} instance is not fitted yet; "
                             "call 'fit' with appropriate arguments first.")


def labels_to_indices(y: Any, n_samples: int, classification: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """(classes_, index of each sample's class); y must be 1-D, one label per row and,
    with `classification`, hold class labels (scikit-learn's rule: continuous floats
    such as 0.5 are refused)."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y: expected a 1-D array of labels, got shape {y.shape}")
    if len(y) != n_samples:
        raise ValueError(f"y: expected {n_samples} labels (one per row of X), got {len(y)}")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("y: contains NaN or inf")
    try:
        if classification:
            with warnings.catch_warnings():
                # "more unique classes than half the samples": normal for 1-NN galleries
                # with one photo per identity.
                warnings.simplefilter("ignore", UserWarning)
                check_classification_targets(y)
    except ValueError as exc:
        raise ValueError(f"y: expected class labels (ints, strings, or floats with integral values), "
                         f"got continuous values ({exc})") from None
    classes, indices = np.unique(y, return_inverse=True)
    return classes, indices.astype(np.int64)


def vote(neighbors: np.ndarray, labels: np.ndarray, n_classes: int) -> Tuple[np.ndarray, np.ndarray]:
    """Majority vote of each row of neighbour indices (-1: no neighbour).

    Returns (class index per row, class shares per row). Ties go to the class of
    the nearest neighbour among the tied classes (rows are sorted nearest first).
    """
    valid = neighbors >= 0
    lab = np.where(valid, labels[np.where(valid, neighbors, 0)], 0)
    counts = np.zeros((len(neighbors), n_classes), np.float64)
    rows = np.repeat(np.arange(len(neighbors)), neighbors.shape[1])
    np.add.at(counts, (rows, lab.ravel()), valid.ravel().astype(np.float64))
    best = counts.max(axis=1)
    is_best = valid & (counts[np.arange(len(neighbors))[:, None], lab] == best[:, None])
    first = np.argmax(is_best, axis=1)
    winner = lab[np.arange(len(neighbors)), first]
    totals = counts.sum(axis=1, keepdims=True)
    return winner, counts / np.maximum(totals, 1.0)
