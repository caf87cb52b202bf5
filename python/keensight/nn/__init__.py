"""keensight.nn: keensight's CNN inference engine (NCHW float32 at the edges, ONNX layouts).

- :class:`Network`: an ONNX graph (:meth:`Network.from_onnx`) or a graph of keensight
  operators, prepared once (weights packed, buffers planned) and run on batches;
  any intermediate tensor can be returned (``run(x, outputs=[...])``); save / load.
- Operators as functions: :func:`conv2d`, :func:`depthwise_conv2d`,
  :func:`pointwise_conv2d`, pools, activations, :func:`add` / :func:`mul`,
  :func:`concat`, :func:`flatten`, :func:`dense`, :func:`softmax`.
- Blocks: :class:`SeparableBlock` (MobileNet v1), :class:`InvertedResidual` (MobileNet v2).
- Helpers: :func:`fold_batch_norm`, :func:`same_padding`.

Inside, activations are NHWC; 1x1 convolutions are GEMMs on the core driver with bias,
clamp and residual in the epilogue, depthwise 3x3 / 5x5 run register-blocked kernels,
every kernel per ISA level on the core dispatch (``KEENSIGHT_ISA``).
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from .. import _validate

__all__ = ["fold_batch_norm", "same_padding", "Network", "Graph", "Node", "UnsupportedOperatorError",
           "SeparableBlock", "InvertedResidual", "conv2d", "depthwise_conv2d", "pointwise_conv2d", "max_pool2d",
           "avg_pool2d", "global_avg_pool2d", "activation", "relu", "relu6", "hardswish", "hardsigmoid", "sigmoid",
           "swish", "add", "mul", "concat", "flatten", "dense", "softmax"]


def _channel_vector(value: Any, name: str, n: int) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {a.dtype}")
    if a.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},) (one value per output channel of w), got {a.shape}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or infinity")
    return a


def fold_batch_norm(w: Any, b: Optional[Any], gamma: Any, beta: Any, mean: Any, var: Any,
                    eps: float = 1e-5) -> Tuple[np.ndarray, np.ndarray]:
    """Fold inference-mode batch norm into the convolution (or dense layer) before it.

    ``BN(conv(x, w) + b) = conv(x, w') + b'`` with, per output channel o,
    ``s = gamma / sqrt(var + eps)``, ``w'[o] = w[o] * s[o]`` and
    ``b' = (b - mean) * s + beta`` (batch norm with its running statistics: Ioffe &
    Szegedy 2015, Algorithm 2, step 11). Computed in float64, returned as float32.

    Parameters
    ----------
    w : array_like, shape (O, I/groups, kH, kW)
        The convolution weight in ONNX layout OIHW (any layout with the output
        channels first works: OIW, OIDHW, or a dense layer's (O, I)).
    b : array_like, shape (O,), or None
        The convolution's bias; None for none (zero).
    gamma, beta, mean, var : array_like, shape (O,)
        Batch norm's scale, shift, running mean and running variance (ONNX
        BatchNormalization's ``scale``, ``B``, ``input_mean``, ``input_var``).
        Finite; ``var >= 0``.
    eps : float
        Batch norm's epsilon, >= 0 with ``var + eps > 0`` (default 1e-5, the ONNX and
        PyTorch default; TensorFlow's is 1e-3).

    Returns
    -------
    (w', b') : tuple of ndarray of float32
        The folded weight, shaped as `w`, and the bias, shape (O,).

    Raises
    ------
    TypeError, ValueError
        Naming the argument: non-numeric input, shapes that disagree with the output
        channels of `w`, NaN or infinity, a negative variance, ``var + eps == 0``.

    Examples
    --------
    >>> import numpy as np
    >>> from keensight.nn import fold_batch_norm
    >>> w = np.ones((2, 1, 1, 1), np.float32)
    >>> wf, bf = fold_batch_norm(w, None, gamma=[2.0, 1.0], beta=[0.5, 0.0],
    ...                          mean=[1.0, 0.0], var=[4.0, 1.0], eps=0.0)
    >>> wf.ravel().tolist(), bf.tolist()
    ([1.0, 1.0], [-0.5, 0.0])
    """
    wa = np.asarray(w)
    if wa.dtype.kind not in "biuf":
        raise TypeError(f"w: expected a real numeric array, got dtype {wa.dtype}")
    if wa.ndim < 2 or wa.shape[0] == 0:
        raise ValueError(f"w: expected a weight with the output channels first (OIHW), got shape {wa.shape}")
    n_out = wa.shape[0]
    w64 = wa.astype(np.float64)
    if not np.isfinite(w64).all():
        raise ValueError("w: contains NaN or infinity")
    bias = np.zeros(n_out) if b is None else _channel_vector(b, "b", n_out)
    gamma, beta, mean, var = (_channel_vector(v, n, n_out) for v, n in
                              ((gamma, "gamma"), (beta, "beta"), (mean, "mean"), (var, "var")))
    eps = _validate.real(eps, "eps")
    if eps < 0:
        raise ValueError(f"eps: expected a number >= 0, got {eps}")
    if (var < 0).any():
        raise ValueError(f"var: variances must be >= 0, channel {int(np.argmax(var < 0))} is "
                         f"{var[var < 0][0]}")
    if (var + eps <= 0).any():
        raise ValueError(f"eps: var + eps must be > 0, channel {int(np.argmax(var + eps <= 0))} has var 0 "
                         "and eps is 0")
    scale = gamma / np.sqrt(var + eps)
    w_folded = w64 * scale.reshape((-1,) + (1,) * (wa.ndim - 1))
    b_folded = (bias - mean) * scale + beta
    with np.errstate(over="ignore"):
        out = w_folded.astype(np.float32), b_folded.astype(np.float32)
    if not (np.isfinite(out[0]).all() and np.isfinite(out[1]).all()):
        raise ValueError("w: scaled by gamma / sqrt(var + eps) it overflows float32")
    return out


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> Tuple[int, int]:
    """Padding before and after one spatial axis under TensorFlow's "SAME" rule.

    The output has ``ceil(size / stride)`` samples; the padding that takes,
    ``max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)``, is split
    with the smaller half before, so an odd total pads one more at the bottom/right.
    This is ONNX's ``auto_pad="SAME_UPPER"`` (and TensorFlow's ``padding="SAME"``,
    ``tf.nn.convolution``); PyTorch's ``padding="same"`` differs for stride > 1.

    Parameters
    ----------
    size : int
        Input length along the axis, >= 1.
    kernel, stride, dilation : int
        The convolution's (or pool's) kernel size, stride and dilation, >= 1.

    Returns
    -------
    (before, after) : tuple of int
        ONNX puts them at ``pads[axis]`` and ``pads[axis + n_spatial]``.

    Examples
    --------
    >>> from keensight.nn import same_padding
    >>> same_padding(224, kernel=3, stride=2)   # EfficientNet's stem: one column on the right
    (0, 1)
    >>> same_padding(56, kernel=5, stride=2)
    (1, 2)
    >>> same_padding(14, kernel=3, stride=1, dilation=2)
    (2, 2)
    """
    size = _validate.positive_int(size, "size")
    kernel = _validate.positive_int(kernel, "kernel")
    stride = _validate.positive_int(stride, "stride")
    dilation = _validate.positive_int(dilation, "dilation")
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


from ._graph import Graph, Node, UnsupportedOperatorError  # noqa: E402
from ._network import Network  # noqa: E402
from ._functional import (activation, add, avg_pool2d, concat, conv2d, dense, depthwise_conv2d, flatten,  # noqa: E402
                          global_avg_pool2d, hardsigmoid, hardswish, max_pool2d, mul, pointwise_conv2d, relu, relu6,
                          sigmoid, softmax, swish)
from ._blocks import InvertedResidual, SeparableBlock  # noqa: E402
