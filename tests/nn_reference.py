"""A plain NumPy interpreter of keensight's graph IR (keensight.nn._graph), for tests only.

Written from the IR's definitions (the docstring of ``_graph.py``) and ONNX's operator
definitions, in float64, with no code shared with the importer or the engine: the
importer's output run here must equal onnxruntime running the original model.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import numpy as np


def apply_activation(x: np.ndarray, act) -> np.ndarray:
    if act is None:
        return x
    kind, lo, hi, alpha, beta = act
    if kind == "clip":
        return np.clip(x, lo, hi)
    if kind == "hardsigmoid":
        return np.clip(alpha * x + beta, 0.0, 1.0)
    if kind == "hardswish":
        return x * np.clip(alpha * x + beta, 0.0, 1.0)
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if kind == "swish":
        return x / (1.0 + np.exp(-x))
    raise ValueError(f"unknown activation kind {kind!r}")


def pool_out_size(size, k, s, d, pb, pe, ceil_mode):
    """ONNX / PyTorch pooling output size: a ceil-mode window may not start in the end padding."""
    span = size + pb + pe - ((k - 1) * d + 1)
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + pb:
        out -= 1
    return out


def conv(x, w, b, stride, pads, dilation, groups):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    t, l, bt, r = pads
    xp = np.pad(x, ((0, 0), (0, 0), (t, bt), (l, r)))
    oh = (h + t + bt - ((kh - 1) * dh + 1)) // sh + 1
    ow = (wd + l + r - ((kw - 1) * dw + 1)) // sw + 1
    xg = xp.reshape(n, groups, cg, xp.shape[2], xp.shape[3])
    wg = w.reshape(groups, o // groups, cg, kh, kw)
    out = np.zeros((n, groups, o // groups, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = xg[:, :, :, i * dh: i * dh + (oh - 1) * sh + 1: sh, j * dw: j * dw + (ow - 1) * sw + 1: sw]
            out += np.einsum("ngchw,goc->ngohw", patch, wg[:, :, :, i, j])
    out = out.reshape(n, o, oh, ow)
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def pool(x, kernel, stride, pads, dilation, ceil_mode, kind, count_include_pad=False):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    t, l, bt, r = pads
    oh = pool_out_size(h, kh, sh, dh, t, bt, ceil_mode)
    ow = pool_out_size(w, kw, sw, dw, l, r, ceil_mode)
    # extra room at the end for ceil-mode windows that run past the end padding
    eb = max(0, (oh - 1) * sh + (kh - 1) * dh + 1 - (h + t + bt))
    er = max(0, (ow - 1) * sw + (kw - 1) * dw + 1 - (w + l + r))
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (t, bt + eb), (l, r + er)), constant_values=fill)
    # 1 where a window element counts: real pixels, plus the pads if count_include_pad
    inside = np.zeros((1, 1) + xp.shape[2:])
    if count_include_pad:
        inside[..., : h + t + bt, : w + l + r] = 1
    else:
        inside[..., t: t + h, l: l + w] = 1
    acc = np.full((n, c, oh, ow), -np.inf) if kind == "max" else np.zeros((n, c, oh, ow))
    count = np.zeros((1, 1, oh, ow))
    for i in range(kh):
        for j in range(kw):
            sl = (slice(None), slice(None), slice(i * dh, i * dh + (oh - 1) * sh + 1, sh),
                  slice(j * dw, j * dw + (ow - 1) * sw + 1, sw))
            if kind == "max":
                acc = np.maximum(acc, xp[sl])
            else:
                acc = acc + xp[sl]
                count = count + inside[sl]
    return acc if kind == "max" else acc / count


def run(graph, x: np.ndarray, outputs: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
    """Run `graph` on the batch `x` (N, C, H, W); returns float32 arrays in ONNX shapes."""
    (name, chw), = graph.inputs.items()
    x = np.asarray(x, dtype=np.float64)
    assert x.shape[1:] == tuple(chw), (x.shape, chw)
    n = x.shape[0]
    env = {name: x}
    for node in graph.nodes:
        ins = [env[i] for i in node.inputs]
        a, wt = node.attrs, node.weights
        act = a.get("activation")
        w64 = {k: v.astype(np.float64) for k, v in wt.items()}
        if node.op == "conv":
            y = conv(ins[0], w64["w"], w64.get("b"), a["stride"], a["pads"], a["dilation"], a["groups"])
            if len(ins) > 1:
                y = y + ins[1]
        elif node.op == "max_pool":
            y = pool(ins[0], a["kernel"], a["stride"], a["pads"], a["dilation"], a["ceil_mode"], "max")
        elif node.op == "avg_pool":
            y = pool(ins[0], a["kernel"], a["stride"], a["pads"], (1, 1), a["ceil_mode"], "avg",
                     a["count_include_pad"])
        elif node.op == "global_avg_pool":
            y = ins[0].mean(axis=(2, 3), keepdims=True)
        elif node.op == "activation":
            y = ins[0]
        elif node.op == "add":
            y = ins[0] + ins[1]
        elif node.op == "mul":
            y = ins[0] * ins[1]
        elif node.op == "channel_affine":
            shape = (1, -1) + (1,) * (ins[0].ndim - 2)
            y = ins[0]
            if "scale" in w64:
                y = y * w64["scale"].reshape(shape)
            if "shift" in w64:
                y = y + w64["shift"].reshape(shape)
        elif node.op == "concat":
            y = np.concatenate(ins, axis=1)
        elif node.op == "flatten":
            y = ins[0].reshape(n, -1)
        elif node.op == "dense":
            y = ins[0].reshape(n, -1) @ w64["w"].T
            if "b" in w64:
                y = y + w64["b"]
        elif node.op == "softmax":
            z = ins[0] - ins[0].max(axis=1, keepdims=True)
            e = np.exp(z)
            y = e / e.sum(axis=1, keepdims=True)
        else:
            raise ValueError(f"unknown IR op {node.op!r}")
        y = apply_activation(y, act)
        # a vector is stored (C,); a feature map (C, H, W): keep them in their natural rank
        env[node.output] = y
    names = list(graph.outputs) if outputs is None else list(outputs)
    return {k: env[k].reshape((n,) + tuple(graph.shapes[k])).astype(np.float32) for k in names}
