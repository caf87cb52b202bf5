"""The graph a keensight Network runs: a list of keensight operators (not ONNX ones).

The ONNX importer (``_onnx.py``) lowers an ONNX model to a :class:`Graph`: constants
folded, batch norm folded into convolutions, activation chains recognised and fused
into the operator before them, residual adds fused into the convolution that
produces one of their inputs. ``Network`` turns a Graph into the C++ engine's plan,
and ``Network.save`` stores the Graph (so a saved network loads without onnx).

Tensors are named (ONNX names); every tensor is per image either a feature map of
(C, H, W) or a vector of (C,) (stored as C x 1 x 1). Operators and their fields
(weights are float32 arrays in ONNX layouts; every op has ``inputs`` and ``output``):

=================  ===============================================================
op                 attrs / weights
=================  ===============================================================
conv               weights ``w`` (O, I/groups, kh, kw), ``b`` (O,) or absent;
                   attrs ``stride`` (sh, sw), ``pads`` (top, left, bottom, right),
                   ``dilation`` (dh, dw), ``groups``, ``activation``; optional
                   second input: the residual added before the activation
max_pool           ``kernel`` (kh, kw), ``stride``, ``pads``, ``dilation``, ``ceil_mode``
avg_pool           ``kernel``, ``stride``, ``pads``, ``ceil_mode``, ``count_include_pad``
global_avg_pool    -
activation         ``activation``
add, mul           two inputs, equal shapes or the second (C, 1, 1) broadcast over
                   H x W; ``activation`` applied to the result
channel_affine     y = x * scale + shift per channel: weights ``scale`` (C,) and/or
                   ``shift`` (C,) (a scalar is stored repeated); ``activation``
concat             inputs on the channel axis
flatten            (C, H, W) -> (C * H * W,) in ONNX (C-major) order
dense              weights ``w`` (O, I), ``b`` (O,) or absent; ``activation``;
                   y = x w^T + b (ONNX Gemm with transB=1, alpha = beta = 1)
softmax            over the channels of a vector
=================  ===============================================================

``activation`` is None or a tuple ``(kind, lo, hi, alpha, beta)`` with kind one of
"clip" (bounds lo, hi; relu is (0, inf), relu6 (0, 6)), "hardswish", "hardsigmoid"
(alpha, beta), "sigmoid", "swish" (see :func:`activation_tuple`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

OPS = ("conv", "max_pool", "avg_pool", "global_avg_pool", "activation", "add", "mul",
       "channel_affine", "concat", "flatten", "dense", "softmax")

ACTIVATION_KINDS = ("none", "clip", "hardswish", "hardsigmoid", "sigmoid", "swish")

Activation = Optional[Tuple[str, float, float, float, float]]


def activation_tuple(value: Any, name: str = "activation") -> Activation:
    """An activation argument as the graph's tuple (or None).

    Accepts None / "none", "relu", "relu6", "hardswish" (ONNX HardSwish: alpha 1/6,
    beta 0.5), "hardsigmoid" (ONNX HardSigmoid's defaults: alpha 0.2, beta 0.5),
    "sigmoid", "swish" (x * sigmoid(x), also "silu"),
    ("clip", lo, hi), ("hardsigmoid", alpha, beta), ("hardswish", alpha, beta), or a
    full 5-tuple.
    """
    inf = math.inf
    if value is None:
        return None
    if isinstance(value, str):
        key = value.lower()
        table = {"none": None, "relu": ("clip", 0.0, inf, 1 / 6, 0.5),
                 "relu6": ("clip", 0.0, 6.0, 1 / 6, 0.5),
                 "hardswish": ("hardswish", -inf, inf, 1 / 6, 0.5),
                 "hardsigmoid": ("hardsigmoid", -inf, inf, 0.2, 0.5),
                 "sigmoid": ("sigmoid", -inf, inf, 1 / 6, 0.5),
                 "swish": ("swish", -inf, inf, 1 / 6, 0.5), "silu": ("swish", -inf, inf, 1 / 6, 0.5)}
        if key not in table:
            raise ValueError(f"{name}: expected one of {sorted(table)} or a tuple, got {value!r}")
        return table[key]
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], str):
        kind = value[0].lower()
        if kind not in ACTIVATION_KINDS:
            raise ValueError(f"{name}: unknown activation kind {value[0]!r}; expected one of {ACTIVATION_KINDS}")
        nums = [float(v) for v in value[1:]]
        if kind == "none":
            return None
        if kind == "clip" and len(nums) == 2:
            lo, hi = nums
            if math.isnan(lo) or math.isnan(hi) or lo > hi:
                raise ValueError(f"{name}: clip bounds must satisfy lo <= hi, got {lo}, {hi}")
            return ("clip", lo, hi, 1 / 6, 0.5)
        if kind in ("hardswish", "hardsigmoid") and len(nums) == 2:
            return (kind, -inf, inf, nums[0], nums[1])
        if len(nums) == 4:
            return (kind, nums[0], nums[1], nums[2], nums[3])
        if not nums and kind != "clip":
            return activation_tuple(kind, name)
    raise ValueError(f"{name}: expected None, a name such as 'relu6', ('clip', lo, hi) or "
                     f"('hardsigmoid', alpha, beta), got {value!r}")


class UnsupportedOperatorError(ValueError):
    """An ONNX operator (or attribute) the engine does not run; the message names the
    operator type and the node."""


@dataclasses.dataclass
class Node:
    """One keensight operator: ``op`` (see the module docstring), input tensor names,
    the output tensor name, attributes and float32 weights."""
    op: str
    inputs: List[str]
    output: str
    attrs: Dict[str, Any] = dataclasses.field(default_factory=dict)
    weights: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    name: str = ""  # the ONNX node it came from (for messages)


@dataclasses.dataclass
class Graph:
    """Inputs (name -> (C, H, W) of one image), nodes in execution order, outputs (names),
    and the ONNX shape of every tensor without its batch axis (for the arrays returned:
    ``(C,)`` for a vector, ``(C, H, W)`` for a feature map, or another reshape of them)."""
    inputs: Dict[str, Tuple[int, int, int]]
    nodes: List[Node]
    outputs: List[str]
    shapes: Dict[str, Tuple[int, ...]] = dataclasses.field(default_factory=dict)

    def tensor_names(self) -> Sequence[str]:
        names = list(self.inputs)
        names += [n.output for n in self.nodes]
        return names
