"""Principal component analysis: fitted with NumPy/LAPACK in float64, applied
(:meth:`PCA.transform`) by the blocked SIMD GEMM of the C++ core.

The fitted attributes follow scikit-learn's ``PCA(svd_solver="full")``,
including the sign convention (``svd_flip``: the largest-magnitude entry of
each component is positive), so components match scikit-learn's.
"""
from __future__ import annotations

import numbers
from typing import Any, Optional, Union

import numpy as np

from .. import _core
from .._validate import matrix as _matrix

from sklearn.base import TransformerMixin

from ._estimator import BaseEstimator, check_fitted, check_X


def _svd_flip_rows(vt: np.ndarray) -> np.ndarray:
    """scikit-learn's ``svd_flip(u_based_decision=False)``: make each row's largest |entry| positive."""
    rows = np.arange(vt.shape[0])
    signs = np.sign(vt[rows, np.argmax(np.abs(vt), axis=1)])
    signs[signs == 0] = 1.0
    return vt * signs[:, None]


class PCA(TransformerMixin, BaseEstimator):
    """Principal component analysis (scikit-learn compatible).

    Parameters
    ----------
    n_components : int, float or None
        Components to keep. None: ``min(n_samples, n_features)``. An int in
        ``[1, min(n_samples, n_features)]``. A float in (0, 1): the fewest
        components whose explained variance ratio adds up to more than it.
    whiten : bool
        Divide the projections by ``sqrt(explained_variance_)``, so each has
        unit variance on the training data.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
    components_ : ndarray of shape (n_components_, n_features)
        Principal axes, by decreasing explained variance; the largest-magnitude
        entry of each is positive (scikit-learn's sign convention).
    explained_variance_ : ndarray of shape (n_components_,)
        Variance along each axis (divided by n_samples - 1).
    explained_variance_ratio_ : ndarray of shape (n_components_,)
    singular_values_ : ndarray of shape (n_components_,)
    noise_variance_ : float
        Mean of the discarded components' variances (probabilistic PCA).
    n_components_ : int
    n_features_in_ : int
    n_samples_ : int

    Notes
    -----
    ``fit`` centres the data and takes an SVD in float64 (an eigendecomposition
    of the covariance when there are at least 10 times as many samples as
    features, at most 1000, as scikit-learn's "auto" does). ``transform``
    computes ``(x - mean_) @ components_.T`` in float32 with the C++ GEMM
    and returns float32.

    Examples
    --------
    >>> import numpy as np
    >>> from keensight.search import PCA
    >>> x = np.array([[0, 0], [1, 1], [2, 2], [3, 3.5]], dtype=np.float32)
    >>> pca = PCA(n_components=1).fit(x)
    >>> pca.components_.shape, round(float(pca.explained_variance_ratio_[0]), 3)
    ((1, 2), 0.997)
    >>> pca.transform(x).shape
    (4, 1)
    """

    def __init__(self, n_components: Optional[Union[int, float]] = None, whiten: bool = False) -> None:
        self.n_components = n_components
        self.whiten = whiten

    # -- fitting -----------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> "PCA":
        """Learn the principal axes of `X` (shape (n_samples, n_features)). Returns self."""
        x = check_X(self, X, reset=True).astype(np.float64)
        n, d = x.shape
        if n < 2:
            raise ValueError(f"X: PCA needs at least 2 samples, got n_samples = {n}")
        if not isinstance(self.whiten, (bool, np.bool_)):
            raise TypeError(f"whiten: expected a bool, got {type(self.whiten).__name__}")
        limit = min(n, d)
        nc = self.n_components
        if nc is not None and (isinstance(nc, bool) or not isinstance(nc, numbers.Real)):
            raise TypeError(f"n_components: expected None, an int or a float in (0, 1), got {nc!r}")
        if isinstance(nc, numbers.Integral) and not 1 <= nc <= limit:
            raise ValueError(f"n_components: expected 1..min(n_samples, n_features)={limit}, got {nc}")
        if nc is not None and not isinstance(nc, numbers.Integral) and not 0.0 < float(nc) < 1.0:
            raise ValueError(f"n_components: a float must lie in (0, 1), got {nc}")

        mean = x.mean(axis=0)
        if d <= 1000 and n >= 10 * d:
            # The covariance route, as scikit-learn's "covariance_eigh": d x d instead of n x d.
            xc = x - mean
            cov = xc.T @ xc / (n - 1)
            values, vectors = np.linalg.eigh(cov)
            variance = np.clip(values[::-1], 0.0, None)
            vt = vectors[:, ::-1].T
            singular = np.sqrt(variance * (n - 1))
        else:
            _, singular, vt = np.linalg.svd(x - mean, full_matrices=False)
            variance = singular ** 2 / (n - 1)
        vt = _svd_flip_rows(vt)
        total = variance.sum()
        ratio = variance / total if total > 0 else np.zeros_like(variance)

        if nc is None:
            k = limit
        elif isinstance(nc, numbers.Integral):
            k = int(nc)
        else:
            k = int(np.searchsorted(np.cumsum(ratio), float(nc), side="right")) + 1
            k = min(k, limit)

        self.mean_ = mean
        self.components_ = np.ascontiguousarray(vt[:k])
        self.explained_variance_ = variance[:k].copy()
        self.explained_variance_ratio_ = ratio[:k].copy()
        self.singular_values_ = singular[:k].copy()
        self.noise_variance_ = float(variance[k:limit].mean()) if k < limit else 0.0
        self.n_components_ = k
        self.n_features_in_ = d
        self.n_samples_ = n
        self._prepare()
        return self

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # transform computes and returns float32
        return tags

    def _prepare(self) -> None:
        """float32 copies that transform hands to the C++ kernel."""
        self._mean32 = np.ascontiguousarray(self.mean_, dtype=np.float32)
        self._components32 = np.ascontiguousarray(self.components_, dtype=np.float32)
        if self.whiten:
            scale = np.sqrt(self.explained_variance_)
            scale[scale < np.finfo(np.float64).eps] = np.finfo(np.float64).eps  # as scikit-learn
            self._scale32 = (1.0 / scale).astype(np.float32)
        else:
            self._scale32 = None

    def _check_fitted(self) -> None:
        check_fitted(self, "components_")
        if not hasattr(self, "_components32"):  # e.g. attributes set by hand or unpickled by an older version
            self._prepare()

    # -- applying ----------------------------------------------------------------
    def transform(self, X: Any) -> np.ndarray:
        """Project `X` (shape (n, n_features)) on the components: float32 (n, n_components_)."""
        self._check_fitted()
        x = check_X(self, X, reset=False, allow_empty=True, check_finite=False)
        z = _core.pca_transform(x, self._mean32, self._components32, self._scale32)
        # A NaN or infinity in X makes its row of z non-finite (inf * 0 is NaN), and z
        # is n_components_ wide instead of n_features_in_: the check costs less here.
        if z.size and not (np.isfinite(z.min()) and np.isfinite(z.max())):
            raise ValueError("X: contains NaN or infinity (or values too large for float32)")
        return z

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """``fit(X).transform(X)``."""
        return self.fit(X).transform(X)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Map projections (shape (n, n_components_)) back to the input space: float32 (n, n_features)."""
        self._check_fitted()
        if hasattr(X, "tocsr"):
            raise TypeError("X: PCA does not support sparse input; pass a dense array (X.toarray())")
        z = _matrix(X, "X", allow_empty=True)
        if z.shape[1] != self.n_components_:
            raise ValueError(f"X: expected {self.n_components_} columns (n_components_), got {z.shape[1]}")
        components = self.components_
        if self.whiten:
            components = np.sqrt(self.explained_variance_)[:, None] * components
        return (z.astype(np.float64) @ components + self.mean_).astype(np.float32)
