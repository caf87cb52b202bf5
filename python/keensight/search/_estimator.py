"""scikit-learn plumbing shared by the classifiers: base classes, label
encoding, neighbour voting, the fitted check."""
from __future__ import annotations

import warnings
from typing import Any, Tuple

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: F401  (re-exported)
from sklearn.exceptions import DataConversionWarning, NotFittedError
from sklearn.utils.multiclass import check_classification_targets

from .. import _validate

__all__ = ["BaseEstimator", "ClassifierMixin", "check_fitted", "check_X", "labels_to_indices", "vote"]


def check_X(estimator: Any, X: Any, *, reset: bool, allow_empty: bool = False,
            check_finite: bool = True) -> np.ndarray:
    """`X` as the C-contiguous float32 matrix the C++ core takes, refused in scikit-learn's
    words where its estimator checks expect them (sparse input, complex values, a 1-D
    array, no samples or features, another number of features than in fit); object
    arrays of numbers are converted. ``reset=False`` checks ``n_features_in_``."""
    name = type(estimator).__name__
    if hasattr(X, "tocsr") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(f"X: {name} does not support sparse input; pass a dense array (X.toarray())")
    a = np.asarray(X)
    if a.dtype.kind == "c":
        raise ValueError("X: Complex data not supported")
    if a.dtype.kind == "O":
        a = a.astype(np.float64)  # TypeError naming the first non-number
    if a.ndim == 1:
        raise ValueError(f"X: expected a 2-D array, got a 1-D array of shape {a.shape}. Reshape your data "
                         "with X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single sample.")
    if a.ndim == 2 and a.shape[1] == 0:
        raise ValueError(f"X: 0 feature(s) (shape={a.shape}) while a minimum of 1 is required.")
    if a.ndim == 2 and a.shape[0] == 0 and not allow_empty:
        raise ValueError(f"X: 0 sample(s) (shape={a.shape}) while a minimum of 1 is required.")
    if not reset and a.ndim == 2 and a.shape[1] != estimator.n_features_in_:
        raise ValueError(f"X has {a.shape[1]} features, but {name} is expecting "
                         f"{estimator.n_features_in_} features as input (X: expected {estimator.n_features_in_} columns, "
                         "as in fit).")
    return _validate.matrix(a, "X", allow_empty=allow_empty, check_finite=check_finite)


def check_fitted(estimator: Any, attribute: str) -> None:
    if not hasattr(estimator, attribute):
        raise NotFittedError(f"This {type(estimator).__name__} instance is not fitted yet; "
                             "call 'fit' with appropriate arguments first.")


def labels_to_indices(y: Any, n_samples: int, classification: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """(classes_, index of each sample's class); y must be 1-D, one label per row and,
    with `classification`, hold class labels (scikit-learn's rule: continuous floats
    such as 0.5 are refused)."""
    if y is None:
        raise ValueError("y: this estimator requires y to be passed, but the target y is None")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected; it is used as y.ravel()",
                      DataConversionWarning, stacklevel=3)
        y = y.ravel()
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
