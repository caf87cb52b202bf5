"""keensight.nn.SeparableBlock (MobileNet v1) and InvertedResidual (MobileNet v2) against
onnxruntime running the equivalent Conv / Clip / Add graph, stride 1 and 2, expansion t = 1
and 6, with and without the residual.

The blocks pad their depthwise convolution by (k - 1) / 2 on every side (PyTorch's
MobileNets, not TF-SAME). The tolerance of a chain of L convolutions: L * 1e-4 of the
chain run on |x| with |weights|, |biases| and no activations (every error a layer makes, or
receives, is carried by at most that linear chain; relu6 is 1-Lipschitz)."""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest

import keensight.nn as knn
from test_nn_ops import act_lipschitz, act_nodes, assert_within, bitwise_equal, case_rng, ort_run

from onnx import helper  # noqa: E402  (test_nn_ops skips the module without onnx)


def conv_node(inp, out, w, b, stride, groups, inits, tag):
    k = w.shape[2]
    inits[f"{tag}_w"] = w
    ins = [inp, f"{tag}_w"]
    if b is not None:
        inits[f"{tag}_b"] = b
        ins.append(f"{tag}_b")
    pad = (k - 1) // 2
    return helper.make_node("Conv", ins, [out], kernel_shape=[k, k], strides=[stride, stride],
                            pads=[pad] * 4, group=groups)


def ort_chain(x, layers, residual, absolute=False):
    """onnxruntime on Conv (+ activation) layers, then Add of the input when `residual`;
    `layers` is a list of (w, b, stride, groups, activation). `absolute`: every tensor |.|
    and no activations (the magnitude the tolerance scales with)."""
    nodes, inits = [], {}
    cur = "x"
    for i, (w, b, stride, groups, act) in enumerate(layers):
        if absolute:
            w, b, act = np.abs(w), None if b is None else np.abs(b), None
        out = f"c{i}"
        nodes.append(conv_node(cur, out, w, b, stride, groups, inits, f"l{i}"))
        if act is not None:
            more, more_inits = act_nodes(act, out, f"a{i}", tag=f"a{i}")
            nodes += more
            inits.update(more_inits)
            out = f"a{i}"
        cur = out
    if residual:
        nodes.append(helper.make_node("Add", [cur, "x"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", [cur], ["y"]))
    return ort_run(nodes, {"x": np.abs(x) if absolute else x}, inits)


def chain_reference(x, layers, residual):
    ref = ort_chain(x, layers, residual)
    mag = ort_chain(x, layers, residual, absolute=True).astype(np.float64)
    lip = math.prod(act_lipschitz(a) for *_, a in layers)
    return ref, len(layers) * 1e-4 * lip * mag


def weights(rng, o, i, k, std=1.0):
    return (rng.standard_normal((o, i, k, k)) * std / math.sqrt(i * k * k)).astype(np.float32)


def biases(rng, o, std=0.5):
    return (rng.standard_normal(o) * std).astype(np.float32)


# (n, c, h, w, o, stride, k, activation, bias)
SEPARABLE_CASES = [
    (1, 32, 16, 16, 64, 1, 3, "relu6", True),
    (3, 13, 15, 15, 40, 2, 3, "relu6", True),
    (1, 17, 16, 16, 17, 2, 3, "relu", False),      # even input at stride 2: symmetric pad 1
    (1, 5, 7, 8, 13, 1, 5, "relu6", True),
    (3, 40, 8, 7, 24, 2, 5, "hardswish", True),
    (1, 3, 2, 3, 5, 1, 3, ("clip", -1.0, 2.0), True),
    (1, 24, 1, 1, 8, 2, 3, "relu6", True),
    # the engine runs a depthwise + pointwise pair fused over strips of rows only when the
    # depthwise input exceeds 1 MiB (network.cpp kFuseAboveFloats): these do
    (1, 72, 60, 61, 40, 1, 3, "relu6", True),
    (3, 96, 56, 56, 24, 2, 3, "relu6", True),
]


@pytest.mark.parametrize("case", SEPARABLE_CASES,
                         ids=lambda c: "x".join(map(str, c[:4])) + f"-o{c[4]}-s{c[5]}-k{c[6]}-{c[7]}"
                         f"{'' if c[8] else '-nobias'}".replace(" ", "").replace("'", ""))
def test_separable_block_matches_onnxruntime(case):
    n, c, h, w, o, stride, k, act, bias = case
    rng = case_rng("separable", case)
    x = (rng.standard_normal((n, c, h, w)) * 2).astype(np.float32)
    dw_w, dw_b = weights(rng, c, 1, k, 4.0), biases(rng, c) if bias else None
    pw_w, pw_b = weights(rng, o, c, 1, 2.0), biases(rng, o) if bias else None
    kw = {} if act == "relu6" else {"activation": act}
    block = knn.SeparableBlock(dw_w, dw_b, pw_w[:, :, 0, 0], pw_b, stride=stride, **kw)
    ref, bound = chain_reference(x, [(dw_w, dw_b, stride, c, act), (pw_w, pw_b, 1, 1, act)], residual=False)
    got = block(x)
    assert_within(got, ref, bound, f"SeparableBlock {case}")
    # 4-D pointwise weights are the same block; a second call reuses the prepared network
    block4 = knn.SeparableBlock(dw_w, dw_b, pw_w, pw_b, stride=stride, **kw)
    bitwise_equal(block4(x), got, "SeparableBlock with (O, C, 1, 1) weights")
    bitwise_equal(block(x), got, "SeparableBlock called twice")


# (n, c, h, w, t, o, stride)
INVERTED_CASES = [
    (1, 24, 15, 15, 1, 24, 1),   # t = 1, residual
    (1, 32, 16, 16, 1, 16, 1),   # t = 1, no residual (MobileNet v2's first block)
    (3, 16, 8, 8, 1, 24, 2),     # t = 1, stride 2
    (1, 24, 15, 16, 6, 24, 1),   # t = 6, residual
    (3, 13, 7, 8, 6, 13, 1),     # odd channels, residual
    (1, 24, 16, 16, 6, 32, 2),   # t = 6, stride 2, even input
    (1, 5, 15, 15, 6, 17, 2),
    (3, 17, 1, 1, 6, 17, 1),     # 1x1 spatial, residual
    (1, 40, 2, 3, 6, 40, 2),     # stride 2 on 2x3: no residual
]

# Expanded tensors above the engine's 1 MiB fusion threshold: run fused over strips of
# rows (several strips, the last one partial), at every dispatch level.
FUSED_INVERTED_CASES = [
    (1, 24, 56, 56, 6, 24, 1),   # 144 x 56 x 56 expanded, residual
    (3, 24, 56, 56, 6, 32, 2),   # stride 2
    (1, 17, 57, 50, 6, 17, 1),   # odd sizes and channels, residual
    (1, 96, 56, 56, 1, 24, 1),   # t = 1: depthwise + projection fused
]


def inverted_case(case):
    n, c, h, w, t, o, stride = case
    rng = case_rng("inverted", case)
    hidden = c * t
    x = (rng.standard_normal((n, c, h, w)) * 2).astype(np.float32)
    ex_w = weights(rng, hidden, c, 1, 4.0) if t != 1 else None
    ex_b = biases(rng, hidden) if t != 1 else None
    dw_w, dw_b = weights(rng, hidden, 1, 3, 4.0), biases(rng, hidden)
    pr_w, pr_b = weights(rng, o, hidden, 1, 1.0), biases(rng, o)
    return x, ex_w, ex_b, dw_w, dw_b, pr_w, pr_b


def inverted_layers(case):
    n, c, h, w, t, o, stride = case
    x, ex_w, ex_b, dw_w, dw_b, pr_w, pr_b = inverted_case(case)
    return ([] if ex_w is None else [(ex_w, ex_b, 1, 1, "relu6")]) + \
        [(dw_w, dw_b, stride, c * t, "relu6"), (pr_w, pr_b, 1, 1, None)]


@functools.lru_cache(maxsize=None)
def inverted_reference(case):
    n, c, h, w, t, o, stride = case
    return chain_reference(inverted_case(case)[0], inverted_layers(case), stride == 1 and c == o)


def check_inverted(case, what):
    n, c, h, w, t, o, stride = case
    x, ex_w, ex_b, dw_w, dw_b, pr_w, pr_b = inverted_case(case)
    residual = stride == 1 and c == o
    block = knn.InvertedResidual(None if ex_w is None else ex_w[:, :, 0, 0], ex_b, dw_w, dw_b, pr_w[:, :, 0, 0],
                                 pr_b, stride=stride)
    assert block.residual == residual
    ref, bound = inverted_reference(case)
    assert_within(block(x), ref, bound, f"InvertedResidual {case} {what}")
    return ref


@pytest.mark.parametrize("case", INVERTED_CASES, ids=lambda c: "x".join(map(str, c[:4])) + f"-t{c[4]}-o{c[5]}-s{c[6]}")
def test_inverted_residual_matches_onnxruntime(case):
    ref = check_inverted(case, "")
    n, c, h, w, t, o, stride = case
    if stride == 1 and c == o:  # the residual is really there: without it the result is different
        plain = ort_chain(inverted_case(case)[0], inverted_layers(case), False)
        assert np.abs(plain - ref).max() > 0.1


@pytest.mark.parametrize("case", FUSED_INVERTED_CASES,
                         ids=lambda c: "x".join(map(str, c[:4])) + f"-t{c[4]}-o{c[5]}-s{c[6]}")
def test_fused_inverted_residual_matches_onnxruntime(isa, case):
    check_inverted(case, f"(fused strips) at {isa}")


def test_blocks_threads_and_batch_invariance():
    x, ex_w, ex_b, dw_w, dw_b, pr_w, pr_b = inverted_case((3, 24, 15, 16, 6, 24, 1))
    ref = knn.InvertedResidual(ex_w, ex_b, dw_w, dw_b, pr_w, pr_b, threads=1)(x)
    for t in (2, 4):
        got = knn.InvertedResidual(ex_w, ex_b, dw_w, dw_b, pr_w, pr_b, threads=t)(x)
        bitwise_equal(got, ref, f"InvertedResidual threads={t} vs 1")
    block = knn.InvertedResidual(ex_w, ex_b, dw_w, dw_b, pr_w, pr_b, stride=2)
    whole = block(x)
    for i in range(3):
        bitwise_equal(block(x[i:i + 1])[0], whole[i], f"InvertedResidual image {i} alone vs in a batch")
    big = inverted_case((3, 24, 56, 56, 6, 24, 1))
    ref = knn.InvertedResidual(*big[1:], threads=1)(big[0])
    for t in (2, 4):
        bitwise_equal(knn.InvertedResidual(*big[1:], threads=t)(big[0]), ref, f"fused InvertedResidual threads={t}")
    rng = case_rng("separable-threads")
    xs = rng.standard_normal((3, 13, 16, 15)).astype(np.float32)
    args = (weights(rng, 13, 1, 3, 4.0), biases(rng, 13), weights(rng, 20, 13, 1), biases(rng, 20))
    ref = knn.SeparableBlock(*args, stride=2, threads=1)(xs)
    bitwise_equal(knn.SeparableBlock(*args, stride=2, threads=2)(xs), ref, "SeparableBlock threads=2 vs 1")
    for i in range(3):
        bitwise_equal(knn.SeparableBlock(*args, stride=2)(xs[i:i + 1])[0], ref[i], f"SeparableBlock image {i}")


def test_blocks_reject_bad_arguments():
    from test_nn_ops import raises_naming
    rng = case_rng("bad blocks")
    dw, pw = weights(rng, 8, 1, 3), weights(rng, 16, 8, 1)
    x = np.zeros((1, 8, 6, 6), np.float32)
    raises_naming(ValueError, "x", knn.SeparableBlock(dw, None, pw, None), np.zeros((1, 7, 6, 6), np.float32))
    raises_naming(ValueError, "x", knn.SeparableBlock(dw, None, pw, None), x[0])
    raises_naming(TypeError, "x", knn.SeparableBlock(dw, None, pw, None), x.astype(np.complex64))
    raises_naming(ValueError, "pw_w", knn.SeparableBlock, dw, None, weights(rng, 16, 9, 1), None)
    raises_naming(ValueError, "dw_w", knn.SeparableBlock, weights(rng, 8, 2, 3), None, pw, None)
    raises_naming(ValueError, "dw_w", knn.SeparableBlock, weights(rng, 8, 1, 4), None, pw, None)
    raises_naming(ValueError, "dw_b", knn.SeparableBlock, dw, np.zeros(7, np.float32), pw, None)
    raises_naming(ValueError, "stride", knn.SeparableBlock, dw, None, pw, None, stride=0)
    raises_naming(ValueError, "activation", knn.SeparableBlock, dw, None, pw, None, activation="gelu")
    hid = weights(rng, 48, 1, 3)
    raises_naming(ValueError, "expand_w", knn.InvertedResidual, weights(rng, 40, 8, 1), None, hid, None,
                  weights(rng, 8, 48, 1), None)
    raises_naming(ValueError, "project_w", knn.InvertedResidual, weights(rng, 48, 8, 1), None, hid, None,
                  weights(rng, 8, 40, 1), None)
    raises_naming(ValueError, "stride", knn.InvertedResidual, None, None, dw, None, pw, None, stride=-1)
    raises_naming(ValueError, "x", knn.InvertedResidual(weights(rng, 48, 8, 1), None, hid, None,
                                                        weights(rng, 8, 48, 1), None), np.zeros((1, 9, 5, 5)))
