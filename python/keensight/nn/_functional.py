"""The engine's operators as NumPy functions on NCHW float32 arrays.

Each call builds a one-node :class:`Network` (weights packed, buffers planned) and
runs it, so these functions exercise exactly the code a whole network runs; for
repeated calls on one layer build a Network once instead.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _validate
from ._graph import Graph, Node, activation_tuple
from ._network import Network

__all__ = ["conv2d", "depthwise_conv2d", "pointwise_conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool2d",
           "activation", "relu", "relu6", "hardswish", "hardsigmoid", "sigmoid", "swish", "add", "mul", "concat",
           "flatten", "dense", "softmax", "conv_padding"]

Padding = Union[int, str, Sequence[int]]


def _float_array(x: Any, name: str, ndim: Optional[int] = None) -> np.ndarray:
    # Floats only (float16 / float64 converted), as the nn API states: an integer array
    # here is most likely an undecoded image or a mistaken index array, and converting
    # it silently would hide that.
    a = np.asarray(x)
    if a.dtype.kind != "f":
        raise TypeError(f"{name}: expected a float32 array (other float dtypes are converted), got dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got {a.ndim} dimensions {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float32)


def _images(x: Any, name: str = "x") -> np.ndarray:
    a = _float_array(x, name)
    if a.ndim != 4:
        raise ValueError(f"{name}: expected an (N, C, H, W) array, got {a.ndim} dimensions {a.shape}")
    if a.shape[0] == 0 or 0 in a.shape[1:]:
        raise ValueError(f"{name}: expected a non-empty (N, C, H, W) array, got shape {a.shape}")
    return a


def _pair(v: Any, name: str, low: int = 1) -> Tuple[int, int]:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name}: expected an int or an (h, w) pair, got {v!r}")
        a, b = (_validate.integer(t, name, low=low) for t in v)
        return a, b
    a = _validate.integer(v, name, low=low)
    return a, a


def conv_padding(padding: Padding, size: Tuple[int, int], kernel: Tuple[int, int], stride: Tuple[int, int],
                 dilation: Tuple[int, int], name: str = "padding") -> Tuple[int, int, int, int]:
    """Explicit (top, left, bottom, right) pads from a padding argument.

    ``padding``: an int (all sides), an (ph, pw) pair (symmetric), four values in ONNX
    ``pads`` order (top, left, bottom, right), ``"same"`` (TensorFlow SAME = ONNX
    ``auto_pad="SAME_UPPER"``: ceil(size / stride) outputs, the odd pixel at the
    bottom / right) or ``"valid"`` (no padding).
    """
    from . import same_padding

    if isinstance(padding, str):
        key = padding.lower()
        if key == "valid":
            return (0, 0, 0, 0)
        if key in ("same", "same_upper"):
            t, b = same_padding(size[0], kernel[0], stride[0], dilation[0])
            l, r = same_padding(size[1], kernel[1], stride[1], dilation[1])
            return (t, l, b, r)
        raise ValueError(f"{name}: expected 'same', 'valid', an int, a pair or four values, got {padding!r}")
    if isinstance(padding, (tuple, list)):
        vals = [_validate.integer(v, name, low=0) for v in padding]
        if len(vals) == 2:
            return (vals[0], vals[1], vals[0], vals[1])
        if len(vals) == 4:
            return (vals[0], vals[1], vals[2], vals[3])
        raise ValueError(f"{name}: expected 2 or 4 values (ONNX pads: top, left, bottom, right), got {len(vals)}")
    p = _validate.integer(padding, name, low=0)
    return (p, p, p, p)


# The most a functional call allocates for its result (float32 elements, 4 GiB): a
# larger output is a mistaken padding or shape, refused before anything is allocated.
MAX_OUTPUT_ELEMENTS = 1 << 30


def _check_conv_output(n: int, c: int, h: int, w: int, w_shape: Tuple[int, ...], stride: Tuple[int, int],
                       pads: Tuple[int, int, int, int], dilation: Tuple[int, int]) -> None:
    """The kernel fits the padded input and the output is not absurdly large, with messages
    naming the argument at fault (w, padding, x)."""
    o, _, kh, kw = w_shape
    keff = ((kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1)
    padded = (h + pads[0] + pads[2], w + pads[1] + pads[3])
    if keff[0] > padded[0] or keff[1] > padded[1]:
        raise ValueError(f"w: the {kh}x{kw} kernel with dilation {dilation} spans {keff[0]}x{keff[1]} pixels, more "
                         f"than the padded input's {padded[0]}x{padded[1]} (x is {h}x{w}, padding {pads})")
    oh = (padded[0] - keff[0]) // stride[0] + 1
    ow = (padded[1] - keff[1]) // stride[1] + 1
    if n * o * oh * ow > MAX_OUTPUT_ELEMENTS:
        name = "padding" if oh * ow > h * w else ("w" if o > c else "x")
        raise ValueError(f"{name}: the output would be {n} x {o} x {oh} x {ow} float32 "
                         f"({n * o * oh * ow * 4 / 2 ** 30:.1f} GiB), more than the "
                         f"{MAX_OUTPUT_ELEMENTS * 4 // 2 ** 30} GiB a call may allocate")


def _network(inputs: dict, nodes: List[Node], output: str, threads: Optional[int]) -> Network:
    return Network(Graph(inputs={k: tuple(int(v) for v in s) for k, s in inputs.items()}, nodes=nodes,
                         outputs=[output]), threads=threads)


def _conv(x: Any, w: Any, bias: Any, stride: Any, padding: Padding, dilation: Any, groups: int, activation: Any,
          residual: Any, threads: Optional[int], depthwise: bool = False) -> np.ndarray:
    x = _images(x)
    w = _float_array(w, "w", 4)
    n, c, h, wd = x.shape
    groups = _validate.integer(groups, "groups", low=1)
    if depthwise:
        if w.shape[1] != 1 or w.shape[0] != c:
            raise ValueError(f"w: expected a depthwise weight of shape ({c}, 1, kh, kw) for {c} input channels, "
                             f"got {w.shape}")
        groups = c
    if c % groups:
        raise ValueError(f"groups: {groups} does not divide the {c} input channels")
    if w.shape[0] % groups:
        raise ValueError(f"groups: {groups} does not divide the {w.shape[0]} output channels of w")
    if w.shape[1] * groups != c:
        raise ValueError(f"w: expected {c // groups} input channels per group (shape (O, {c // groups}, kh, kw)), "
                         f"got {w.shape}")
    if 0 in w.shape:
        raise ValueError(f"w: expected a non-empty weight, got shape {w.shape}")
    stride = _pair(stride, "stride")
    dilation = _pair(dilation, "dilation")
    pads = conv_padding(padding, (h, wd), (w.shape[2], w.shape[3]), stride, dilation)
    _check_conv_output(n, c, h, wd, w.shape, stride, pads, dilation)
    weights = {"w": w}
    if bias is not None:
        b = _float_array(bias, "bias", 1)
        if b.shape[0] != w.shape[0]:
            raise ValueError(f"bias: expected {w.shape[0]} values (one per output channel), got {b.shape[0]}")
        weights["b"] = b
    node = Node("conv", ["x"], "y", attrs={"stride": stride, "pads": pads, "dilation": dilation, "groups": groups,
                                           "activation": activation_tuple(activation, "activation")}, weights=weights)
    if residual is None:
        return _network({"x": (c, h, wd)}, [node], "y", threads).run(x)["y"]
    r = _images(residual, "residual")
    if r.shape[0] != n:
        raise ValueError(f"residual: expected {n} images (the batch of x), got {r.shape[0]}")
    node.inputs.append("r")
    try:
        net = _network({"x": (c, h, wd), "r": r.shape[1:]}, [node], "y", threads)
    except ValueError as e:
        raise ValueError(f"residual: {e}") from None
    return net.run({"x": x, "r": r})["y"]


def conv2d(x: Any, w: Any, bias: Any = None, stride: Any = 1, padding: Padding = 0, dilation: Any = 1,
           groups: int = 1, activation: Any = None, *, threads: Optional[int] = None) -> np.ndarray:
    """2-D convolution (ONNX Conv) with fused bias and activation.

    Parameters
    ----------
    x : array_like, (N, C, H, W) float32
    w : array_like, (O, C / groups, kh, kw)
    bias : array_like (O,) or None
    stride, dilation : int or (h, w)
    padding : int, (ph, pw), (top, left, bottom, right), "same" or "valid"
    groups : int, dividing C and O
    activation : None, "relu", "relu6", "hardswish", "hardsigmoid", "sigmoid", "swish" or a tuple
    threads : int or None (the package default)

    Returns
    -------
    ndarray, (N, O, OH, OW) float32 with ``OH = floor((H + top + bottom - ((kh - 1) * dh + 1)) / sh) + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from keensight.nn import conv2d
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> conv2d(x, np.ones((1, 1, 2, 2), np.float32), stride=2)[0, 0].tolist()
    [[10.0, 18.0], [42.0, 50.0]]
    """
    return _conv(x, w, bias, stride, padding, dilation, groups, activation, None, threads)


def depthwise_conv2d(x: Any, w: Any, bias: Any = None, stride: Any = 1, padding: Padding = 0, dilation: Any = 1,
                     activation: Any = None, *, threads: Optional[int] = None) -> np.ndarray:
    """Depthwise convolution: one (kh, kw) filter per channel, ``w`` of shape (C, 1, kh, kw) as ONNX.

    Register-blocked kernels for 3x3 and 5x5 at stride 1 and 2; bias and activation fused.
    """
    return _conv(x, w, bias, stride, padding, dilation, 1, activation, None, threads, depthwise=True)


def pointwise_conv2d(x: Any, w: Any, bias: Any = None, activation: Any = None, residual: Any = None, *,
                     threads: Optional[int] = None) -> np.ndarray:
    """1x1 convolution as one GEMM over the pixels, bias, residual add and activation fused.

    ``w``: (O, C) or (O, C, 1, 1); ``residual``: (N, O, H, W), added before the activation.
    """
    wa = _float_array(w, "w")
    if wa.ndim == 2:
        wa = wa.reshape(wa.shape + (1, 1))
    if wa.ndim != 4 or wa.shape[2:] != (1, 1):
        raise ValueError(f"w: expected an (O, C) or (O, C, 1, 1) weight, got shape {wa.shape}")
    return _conv(x, wa, bias, 1, 0, 1, 1, activation, residual, threads)


def _pool(op: str, x: Any, kernel_size: Any, stride: Any, padding: Padding, dilation: Any, ceil_mode: bool,
          count_include_pad: bool) -> np.ndarray:
    x = _images(x)
    n, c, h, w = x.shape
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else _pair(stride, "stride")
    dilation = _pair(dilation, "dilation")
    pads = conv_padding(padding, (h, w), kernel, stride, dilation)
    if max(pads[0], pads[2]) >= kernel[0] or max(pads[1], pads[3]) >= kernel[1]:
        # a window could lie entirely in the padding (ONNX Runtime refuses such pads too)
        raise ValueError(f"padding: pads (top, left, bottom, right) = {pads} must be smaller than the kernel {kernel}")
    for axis, size, k, d, p0, p1 in ((0, h, kernel[0], dilation[0], pads[0], pads[2]),
                                     (1, w, kernel[1], dilation[1], pads[1], pads[3])):
        if (k - 1) * d + 1 > size + p0 + p1:
            raise ValueError(f"kernel_size: the window {kernel} with dilation {dilation} spans {(k - 1) * d + 1} "
                             f"pixels, more than the padded input's {size + p0 + p1} along axis {axis + 2}")
    attrs = {"kernel": kernel, "stride": stride, "pads": pads,
             "ceil_mode": _validate.boolean(ceil_mode, "ceil_mode")}
    if op == "max_pool":
        attrs["dilation"] = dilation
    else:
        if dilation != (1, 1):
            raise ValueError("dilation: average pooling takes no dilation")
        attrs["count_include_pad"] = _validate.boolean(count_include_pad, "count_include_pad")
    return _network({"x": (c, h, w)}, [Node(op, ["x"], "y", attrs=attrs)], "y", None).run(x)["y"]


def max_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Padding = 0, dilation: Any = 1,
               ceil_mode: bool = False) -> np.ndarray:
    """Max pooling (ONNX MaxPool): padding positions never win; ``stride`` defaults to the kernel."""
    return _pool("max_pool", x, kernel_size, stride, padding, dilation, ceil_mode, False)


def avg_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Padding = 0, ceil_mode: bool = False,
               count_include_pad: bool = False) -> np.ndarray:
    """Average pooling (ONNX AveragePool), ``count_include_pad`` as ONNX."""
    return _pool("avg_pool", x, kernel_size, stride, padding, 1, ceil_mode, count_include_pad)


def global_avg_pool2d(x: Any) -> np.ndarray:
    """Mean over H x W per channel: (N, C, H, W) -> (N, C, 1, 1)."""
    x = _images(x)
    c, h, w = x.shape[1:]
    return _network({"x": (c, h, w)}, [Node("global_avg_pool", ["x"], "y")], "y", None).run(x)["y"]


def activation(x: Any, kind: Any, *, threads: Optional[int] = None) -> np.ndarray:
    """An activation on an array of any shape (computed as one vector)."""
    a = _float_array(x, "x")
    if a.size == 0:
        raise ValueError("x: expected a non-empty array")
    act = activation_tuple(kind, "kind")
    flat = a.reshape(1, a.size, 1, 1)
    y = _network({"x": (a.size, 1, 1)}, [Node("activation", ["x"], "y", attrs={"activation": act})], "y",
                 threads).run(flat)["y"]
    return y.reshape(a.shape)


def relu(x: Any) -> np.ndarray:
    """max(x, 0)."""
    return activation(x, "relu")


def relu6(x: Any) -> np.ndarray:
    """min(max(x, 0), 6)."""
    return activation(x, "relu6")


def hardswish(x: Any) -> np.ndarray:
    """x * clamp(x / 6 + 1/2, 0, 1) (ONNX HardSwish)."""
    return activation(x, "hardswish")


def hardsigmoid(x: Any, alpha: float = 0.2, beta: float = 0.5) -> np.ndarray:
    """clamp(alpha * x + beta, 0, 1) (ONNX HardSigmoid's defaults)."""
    return activation(x, ("hardsigmoid", _validate.real(alpha, "alpha"), _validate.real(beta, "beta")))


def sigmoid(x: Any) -> np.ndarray:
    """1 / (1 + exp(-x))."""
    return activation(x, "sigmoid")


def swish(x: Any) -> np.ndarray:
    """x * sigmoid(x) (SiLU)."""
    return activation(x, "swish")


def _binary(op: str, a: Any, b: Any, activation: Any) -> np.ndarray:
    a = _images(a, "a")
    b = _images(b, "b")
    n, c, h, w = a.shape
    if b.shape[0] != n:
        raise ValueError(f"b: expected {n} images (the batch of a), got {b.shape[0]}")
    if b.shape[1:] != a.shape[1:] and b.shape[1:] != (c, 1, 1):
        raise ValueError(f"b: expected shape {a.shape} or ({n}, {c}, 1, 1) (broadcast over H, W), got {b.shape}")
    node = Node(op, ["a", "b"], "y", attrs={"activation": activation_tuple(activation, "activation")})
    net = _network({"a": a.shape[1:], "b": b.shape[1:]}, [node], "y", None)
    return net.run({"a": a, "b": b})["y"]


def add(a: Any, b: Any, activation: Any = None) -> np.ndarray:
    """a + b, b of a's shape or (N, C, 1, 1); the activation fused."""
    return _binary("add", a, b, activation)


def mul(a: Any, b: Any, activation: Any = None) -> np.ndarray:
    """a * b, b of a's shape or (N, C, 1, 1) (squeeze-excitation); the activation fused."""
    return _binary("mul", a, b, activation)


def concat(xs: Sequence[Any], axis: int = 1) -> np.ndarray:
    """Concatenation on the channel axis (axis 1) of (N, C_i, H, W) arrays."""
    if _validate.integer(axis, "axis") not in (1, -3):
        raise ValueError(f"axis: only the channel axis (1) is supported, got {axis}")
    if isinstance(xs, np.ndarray) or not isinstance(xs, (list, tuple)) or not xs:
        raise TypeError("xs: expected a non-empty list of (N, C, H, W) arrays")
    arrays = [_images(x, f"xs[{i}]") for i, x in enumerate(xs)]
    n, _, h, w = arrays[0].shape
    for i, a in enumerate(arrays):
        if a.shape[0] != n or a.shape[2:] != (h, w):
            raise ValueError(f"xs[{i}]: expected shape ({n}, C, {h}, {w}), got {a.shape}")
    names = [f"x{i}" for i in range(len(arrays))]
    net = _network({k: a.shape[1:] for k, a in zip(names, arrays)}, [Node("concat", names, "y")], "y", None)
    return net.run(dict(zip(names, arrays)))["y"]


def flatten(x: Any) -> np.ndarray:
    """(N, C, H, W) -> (N, C * H * W) in C-major order (ONNX Flatten, axis 1)."""
    x = _images(x)
    c, h, w = x.shape[1:]
    y = _network({"x": (c, h, w)}, [Node("flatten", ["x"], "y")], "y", None).run(x)["y"]
    return y.reshape(y.shape[0], -1)


def _vectors(x: Any, name: str = "x") -> np.ndarray:
    a = _float_array(x, name)
    if a.ndim != 2 or 0 in a.shape:
        raise ValueError(f"{name}: expected a non-empty (N, features) array, got shape {a.shape}")
    return a


def dense(x: Any, w: Any, bias: Any = None, activation: Any = None, *,
          threads: Optional[int] = None) -> np.ndarray:
    """Fully connected layer: ``x @ w.T + bias`` (ONNX Gemm, transB = 1), x (N, I), w (O, I)."""
    x = _vectors(x)
    w = _float_array(w, "w", 2)
    if w.shape[1] != x.shape[1] or w.shape[0] == 0:
        raise ValueError(f"w: expected shape (O, {x.shape[1]}) for inputs of {x.shape[1]} features, got {w.shape}")
    weights = {"w": w}
    if bias is not None:
        b = _float_array(bias, "bias", 1)
        if b.shape[0] != w.shape[0]:
            raise ValueError(f"bias: expected {w.shape[0]} values, got {b.shape[0]}")
        weights["b"] = b
    node = Node("dense", ["x"], "y", attrs={"activation": activation_tuple(activation, "activation")},
                weights=weights)
    net = _network({"x": (x.shape[1], 1, 1)}, [node], "y", threads)
    return net.run(x.reshape(x.shape + (1, 1)))["y"].reshape(x.shape[0], w.shape[0])


def softmax(x: Any, axis: int = 1) -> np.ndarray:
    """Softmax over the features of (N, C) rows (ONNX Softmax, axis 1 / -1)."""
    x = _vectors(x)
    if _validate.integer(axis, "axis") not in (1, -1):
        raise ValueError(f"axis: only the feature axis (1) of an (N, C) array is supported, got {axis}")
    net = _network({"x": (x.shape[1], 1, 1)}, [Node("softmax", ["x"], "y")], "y", None)
    return net.run(x.reshape(x.shape + (1, 1)))["y"].reshape(x.shape)
