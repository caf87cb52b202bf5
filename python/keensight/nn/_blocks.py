"""MobileNet building blocks with weights prepared once (one small Network each)."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import _validate
from ._functional import _float_array, _images
from ._graph import Graph, Node, activation_tuple
from ._network import Network

__all__ = ["SeparableBlock", "InvertedResidual"]


def _weight(w: Any, name: str, shape_hint: str) -> np.ndarray:
    a = _float_array(w, name)
    if a.ndim == 2:
        a = a.reshape(a.shape + (1, 1))
    if a.ndim != 4 or 0 in a.shape:
        raise ValueError(f"{name}: expected a weight of shape {shape_hint}, got {a.shape}")
    return a


def _bias(b: Any, name: str, n: int) -> Optional[np.ndarray]:
    if b is None:
        return None
    a = _float_array(b, name, 1)
    if a.shape[0] != n:
        raise ValueError(f"{name}: expected {n} values, got {a.shape[0]}")
    return a


def _conv_node(x: str, y: str, w: np.ndarray, b: Optional[np.ndarray], stride: int, act: Any,
               groups: int = 1, residual: Optional[str] = None) -> Node:
    k = w.shape[2]
    pad = (k - 1) // 2
    weights = {"w": w} if b is None else {"w": w, "b": b}
    inputs = [x] if residual is None else [x, residual]
    return Node("conv", inputs, y, attrs={"stride": (stride, stride), "pads": (pad, pad, pad, pad),
                                          "dilation": (1, 1), "groups": groups, "activation": act},
                weights=weights, name=y)


class _Block:
    _net: Optional[Network] = None

    def __init__(self) -> None:
        self._nets: dict = {}

    def _network(self, shape: tuple) -> Network:
        net = self._nets.get(shape)
        if net is None:
            net = Network(self._graph(shape), threads=self.threads)
            self._nets[shape] = net
        return net

    def __call__(self, x: Any) -> np.ndarray:
        """Run the block on (N, C, H, W) float32 images; returns (N, C_out, H', W')."""
        x = _images(x)
        return self._network(tuple(x.shape[1:])).run(x)["y"]

    run = __call__


class SeparableBlock(_Block):
    """MobileNet v1's depthwise-separable block: 3x3 depthwise (stride s) + activation,
    then 1x1 pointwise + activation (Howard et al. 2017, Fig. 3), batch norm folded.

    Parameters
    ----------
    dw_w : (C, 1, k, k); dw_b : (C,) or None
    pw_w : (O, C) or (O, C, 1, 1); pw_b : (O,) or None
    stride : 1 or 2; padding is (k - 1) / 2 on every side.
    activation : the activation after both convolutions (default relu6).
    """

    def __init__(self, dw_w: Any, dw_b: Any, pw_w: Any, pw_b: Any, stride: int = 1, activation: Any = "relu6",
                 *, threads: Optional[int] = None) -> None:
        super().__init__()
        self.dw_w = _weight(dw_w, "dw_w", "(C, 1, k, k)")
        c = self.dw_w.shape[0]
        if self.dw_w.shape[1] != 1 or self.dw_w.shape[2] != self.dw_w.shape[3] or self.dw_w.shape[2] % 2 == 0:
            raise ValueError(f"dw_w: expected a depthwise weight (C, 1, k, k) with odd k, got {self.dw_w.shape}")
        self.dw_b = _bias(dw_b, "dw_b", c)
        self.pw_w = _weight(pw_w, "pw_w", "(O, C) or (O, C, 1, 1)")
        if self.pw_w.shape[1:] != (c, 1, 1):
            raise ValueError(f"pw_w: expected shape (O, {c}) or (O, {c}, 1, 1), got {self.pw_w.shape}")
        self.pw_b = _bias(pw_b, "pw_b", self.pw_w.shape[0])
        self.stride = _validate.integer(stride, "stride", low=1, high=2)
        self.activation = activation_tuple(activation, "activation")
        self.threads = threads

    def _graph(self, shape: tuple) -> Graph:
        c = self.dw_w.shape[0]
        if shape[0] != c:
            raise ValueError(f"x: expected {c} channels, got {shape[0]}")
        nodes = [_conv_node("x", "dw", self.dw_w, self.dw_b, self.stride, self.activation, groups=c),
                 _conv_node("dw", "y", self.pw_w, self.pw_b, 1, self.activation)]
        return Graph(inputs={"x": shape}, nodes=nodes, outputs=["y"])


class InvertedResidual(_Block):
    """MobileNet v2's bottleneck residual block (Sandler et al. 2018, Table 1): 1x1
    expansion by t + ReLU6, 3x3 depthwise stride s + ReLU6, linear 1x1 projection, and
    the input added when stride is 1 and the channels agree. Batch norm folded.

    Parameters
    ----------
    expand_w : (C*t, C) or (C*t, C, 1, 1), or None for t = 1; expand_b : (C*t,) or None
    dw_w : (C*t, 1, 3, 3); dw_b
    project_w : (O, C*t) or (O, C*t, 1, 1); project_b
    stride : 1 or 2
    """

    def __init__(self, expand_w: Any, expand_b: Any, dw_w: Any, dw_b: Any, project_w: Any, project_b: Any,
                 stride: int = 1, *, threads: Optional[int] = None) -> None:
        super().__init__()
        self.dw_w = _weight(dw_w, "dw_w", "(C*t, 1, k, k)")
        hidden = self.dw_w.shape[0]
        if self.dw_w.shape[1] != 1 or self.dw_w.shape[2] != self.dw_w.shape[3] or self.dw_w.shape[2] % 2 == 0:
            raise ValueError(f"dw_w: expected a depthwise weight (C*t, 1, k, k) with odd k, got {self.dw_w.shape}")
        self.dw_b = _bias(dw_b, "dw_b", hidden)
        if expand_w is None:
            self.expand_w, self.expand_b = None, None
            self.in_channels = hidden
        else:
            self.expand_w = _weight(expand_w, "expand_w", "(C*t, C) or (C*t, C, 1, 1)")
            if self.expand_w.shape[0] != hidden or self.expand_w.shape[2:] != (1, 1):
                raise ValueError(f"expand_w: expected shape ({hidden}, C) (the depthwise channels first), "
                                 f"got {self.expand_w.shape}")
            self.expand_b = _bias(expand_b, "expand_b", hidden)
            self.in_channels = self.expand_w.shape[1]
        self.project_w = _weight(project_w, "project_w", "(O, C*t) or (O, C*t, 1, 1)")
        if self.project_w.shape[1:] != (hidden, 1, 1):
            raise ValueError(f"project_w: expected shape (O, {hidden}), got {self.project_w.shape}")
        self.project_b = _bias(project_b, "project_b", self.project_w.shape[0])
        self.stride = _validate.integer(stride, "stride", low=1, high=2)
        self.threads = threads

    @property
    def residual(self) -> bool:
        """Whether the input is added to the projection (stride 1, same channels)."""
        return self.stride == 1 and self.project_w.shape[0] == self.in_channels

    def _graph(self, shape: tuple) -> Graph:
        if shape[0] != self.in_channels:
            raise ValueError(f"x: expected {self.in_channels} channels, got {shape[0]}")
        relu6 = activation_tuple("relu6")
        nodes = []
        src = "x"
        if self.expand_w is not None:
            nodes.append(_conv_node("x", "expand", self.expand_w, self.expand_b, 1, relu6))
            src = "expand"
        nodes.append(_conv_node(src, "dw", self.dw_w, self.dw_b, self.stride, relu6, groups=self.dw_w.shape[0]))
        nodes.append(_conv_node("dw", "y", self.project_w, self.project_b, 1, None,
                                residual="x" if self.residual else None))
        return Graph(inputs={"x": shape}, nodes=nodes, outputs=["y"])
