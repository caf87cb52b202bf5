"""The package's one softmax and one L2 normalisation.

Every module that turns logits into probabilities (``keensight classify``,
:mod:`keensight.profile`) or scales vectors to unit length (the Extractor's
``normalize=``, the CLI's feature files, :func:`keensight.search.aggregate`, the cosine
HNSW rotation) calls these, so the same input gives the same numbers everywhere.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["softmax", "l2_normalize"]

_F64 = np.finfo(np.float64)
# Sums of squares below this lose bits to subnormal squares; above _F64.max they overflow.
# Rows outside [_SUMSQ_LOW, inf) are normed again after scaling by their largest entry.
_SUMSQ_LOW = 1e-290


def _float_array(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {a.dtype}")
    return a


def _axis(axis: Any, ndim: int, name: str = "axis") -> int:
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(axis).__name__}")
    if not -ndim <= int(axis) < ndim:
        raise ValueError(f"{name}: {int(axis)} is out of range for an array of {ndim} dimension(s)")
    return int(axis) % ndim


def softmax(x: Any, axis: int = -1) -> np.ndarray:
    """Softmax along `axis`, computed in float64: ``exp(x - max) / sum(exp(x - max))``.

    Subtracting the largest entry first keeps ``exp`` from overflowing, so logits of any
    finite size work (``[1e30, 0]`` gives ``[1, 0]``).

    Parameters
    ----------
    x : array_like
        Real numbers (any float, int or bool dtype), at least 1-D; an empty `axis`
        gives an empty result.
    axis : int
        The axis that sums to 1 (default the last).

    Returns
    -------
    ndarray of float64, the shape of `x`
        The probabilities. Non-finite entries follow the limits of the formula:
        ``-inf`` gets probability 0; when a slice holds ``+inf`` entries they share
        the whole mass equally and every other entry gets 0; a slice holding NaN, or
        only ``-inf`` entries (no limit exists), is NaN throughout.

    Examples
    --------
    >>> from keensight._numeric import softmax
    >>> softmax([0.0, 0.0]).tolist()
    [0.5, 0.5]
    >>> softmax([[1e30, 0.0, -float("inf")]]).tolist()
    [[1.0, 0.0, 0.0]]
    """
    a = _float_array(x, "x")
    if a.ndim == 0:
        raise ValueError("x: expected at least one dimension, got a scalar")
    ax = _axis(axis, a.ndim)
    z = a.astype(np.float64)  # a copy: the work below is in place
    if z.shape[ax] == 0:
        return z
    top = z.max(axis=ax, keepdims=True)  # NaN when the slice has a NaN
    posinf = np.isposinf(top)
    if posinf.any():
        # The limit of softmax as those entries grow without bound: +inf entries share 1.
        z = np.where(posinf, np.where(np.isposinf(z), 0.0, -np.inf), z)
        top = np.where(posinf, 0.0, top)
    with np.errstate(invalid="ignore"):  # -inf - -inf: a slice of -inf only, NaN by the rule
        z -= top
    np.exp(z, out=z)
    z /= z.sum(axis=ax, keepdims=True)
    return z


def l2_normalize(x: Any, axis: int = -1, eps: float = 0.0) -> np.ndarray:
    """Each vector along `axis` divided by its Euclidean norm (or by `eps`, if larger).

    The norm is accumulated in float64 (and rescaled by the vector's largest entry when
    the sum of squares would overflow or fall into subnormals); the division runs in the
    output dtype by that norm rounded to it, so each entry is within 1 ulp of the exact
    quotient (float64 when the float32 denominator would overflow or be subnormal).

    Parameters
    ----------
    x : array_like
        Real numbers, at least 1-D. float64 stays float64; float32 and float16 give
        float32; integers and bool give float64.
    axis : int
        The axis the vectors lie along (default the last).
    eps : float
        Smallest denominator, >= 0. With the default 0 every nonzero vector comes out
        with norm 1 (to rounding; subnormal entries included) and a zero vector stays
        zero. With ``eps > 0`` a vector shorter than `eps` is divided by `eps` and comes
        out shorter than 1 (PyTorch's ``F.normalize`` rule, there with eps=1e-12).

    Returns
    -------
    ndarray, the shape of `x`
        The normalised vectors. A vector holding NaN or ``±inf`` has no direction to
        keep: it comes out NaN throughout.

    Examples
    --------
    >>> from keensight._numeric import l2_normalize
    >>> l2_normalize([[3.0, 4.0], [0.0, 0.0]]).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """
    a = _float_array(x, "x")
    if a.ndim == 0:
        raise ValueError("x: expected at least one dimension, got a scalar")
    ax = _axis(axis, a.ndim)
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.integer, np.floating)):
        raise TypeError(f"eps: expected a number, got {type(eps).__name__}")
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps: expected a finite number >= 0, got {eps}")
    dtype = np.dtype(np.float32) if a.dtype.kind == "f" and a.itemsize <= 4 else np.dtype(np.float64)
    v = np.moveaxis(a, ax, -1)
    shape = v.shape
    rows = v.reshape(-1, shape[-1]) if v.size else np.empty((int(np.prod(shape[:-1])), shape[-1]), a.dtype)
    sumsq = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        redo = np.flatnonzero(~(sumsq >= _SUMSQ_LOW) | np.isinf(sumsq))  # NaN, inf, tiny or zero
    denom = np.maximum(np.sqrt(sumsq), eps)
    denom[redo] = 1.0  # placeholders: those rows are written below
    info = np.finfo(dtype)
    if dtype == np.float64:
        out = rows.astype(np.float64) / denom[:, None]
    else:
        # Divided in float32 (no float64 copy of a large input) while the denominator is a
        # float32 normal number; other rows are divided in float64.
        safe = (denom >= info.tiny) & (denom <= info.max)
        with np.errstate(over="ignore"):  # the unsafe denominators are redone below
            out = rows.astype(np.float32) / denom.astype(np.float32)[:, None]
        if not safe.all():
            bad = np.flatnonzero(~safe)
            out[bad] = (rows[bad].astype(np.float64) / denom[bad, None]).astype(np.float32)
    if redo.size:
        out[redo] = _normalize_rescaled(rows[redo].astype(np.float64), eps)
    return np.moveaxis(out.reshape(shape), -1, ax)


def _normalize_rescaled(r: np.ndarray, eps: float) -> np.ndarray:
    """:func:`l2_normalize` of rows whose sum of squares is not a normal float64 (zero,
    subnormal, beyond float64's range, or non-finite): each row is first divided by its
    largest magnitude, so the sum of squares lies in [1, width] and the quotient is
    formed without ever computing the (possibly unrepresentable) norm itself."""
    finite = np.isfinite(r).all(axis=1)
    r = np.where(finite[:, None], r, 0.0)
    big = np.abs(r).max(axis=1) if r.shape[1] else np.zeros(len(r))
    y = r / np.where(big > 0, big, 1.0)[:, None]
    n = np.sqrt(np.einsum("ij,ij->i", y, y))
    with np.errstate(over="ignore"):
        shorter_than_eps = big * n < eps  # big * n may overflow to inf: then it is not
    out = y / np.where(n > 0, n, 1.0)[:, None]
    if shorter_than_eps.any():
        out[shorter_than_eps] = r[shorter_than_eps] / eps
    out[~finite] = np.nan
    return out
