"""keensight.nn's functional operators against onnxruntime running the identical ONNX graph
(one node, or the node and its activation: Conv + Clip, Conv + Add + Relu, ...), built here
with onnx.helper, on random shapes (batch 1 and 3, channel counts that are not multiples of
the SIMD width, spatial sizes from 1x1 up, odd and even, strides 1 and 2, asymmetric and
TF-SAME padding, dilation, groups 1 / in between / C), at every dispatch level for the
core cases; thread-count and batch-size invariance (bit for bit); and bad input.

Tolerances are per output element, scaled by what float32 rounding can actually move:
a convolution output may differ from onnxruntime's by 1e-4 of sum |x * w| + |b| over the
taps that made it (computed by onnxruntime itself, running the same graph on |x|, |w|, |b|),
times the activation's Lipschitz bound; pools by 1e-5 of the pool of |x|; operations with
one rounding (max pool, relu / clip, add, mul, concat, flatten) must be exact.
"""
from __future__ import annotations

import functools
import math
import re
import zlib

import numpy as np
import pytest

import keensight
from keensight import _core
import keensight.nn as knn

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

OPSET = 17  # HardSwish needs 14; Softmax over one axis 13

ACTIVATIONS = ["relu", "relu6", "hardswish", "hardsigmoid", ("hardsigmoid", 0.3, 0.4),
               ("hardswish", 0.25, 0.5), "sigmoid", "swish", ("clip", -1.5, 2.5)]


def act_id(a):
    return a if isinstance(a, str) else "-".join(str(v) for v in a)


# ------------------------------------------------------------------------------------------
# onnxruntime: one small graph per case
# ------------------------------------------------------------------------------------------

def ort_run(nodes, feeds, inits=None, outputs=("y",)):
    """Run `nodes` in onnxruntime (one thread): `feeds` name -> array are the graph's inputs,
    `inits` name -> array its initializers; returns the named outputs."""
    inits = inits or {}
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape)) for k, v in feeds.items()],
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, None) for k in outputs],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # its shape-inference warnings about ceil-mode pools are expected
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    got = sess.run(list(outputs), {k: np.ascontiguousarray(v, np.float32) for k, v in feeds.items()})
    return got if len(outputs) > 1 else got[0]


_INF = math.inf


def act_params(act):
    """(kind, lo, hi, alpha, beta) of an activation argument, written from nn_api's table
    (not through the code under test)."""
    if act is None:
        return None
    if isinstance(act, str):
        return {"relu": ("clip", 0.0, _INF, 0, 0), "relu6": ("clip", 0.0, 6.0, 0, 0),
                "hardswish": ("hardswish", 0, 0, 1 / 6, 0.5), "hardsigmoid": ("hardsigmoid", 0, 0, 0.2, 0.5),
                "sigmoid": ("sigmoid", 0, 0, 0, 0), "swish": ("swish", 0, 0, 0, 0)}[act]
    kind = act[0]
    if kind == "clip":
        return ("clip", float(act[1]), float(act[2]), 0, 0)
    return (kind, 0, 0, float(act[1]), float(act[2]))


def act_nodes(act, inp, out, tag="a"):
    """ONNX nodes computing `act` from tensor `inp` into `out` (and their initializers)."""
    kind, lo, hi, alpha, beta = act_params(act)
    if kind == "clip":
        inits = {f"{tag}_lo": np.array(lo, np.float32)}
        names = [inp, f"{tag}_lo"]
        if hi != _INF:
            inits[f"{tag}_hi"] = np.array(hi, np.float32)
            names.append(f"{tag}_hi")
        if act == "relu":
            return [helper.make_node("Relu", [inp], [out])], {}
        return [helper.make_node("Clip", names, [out])], inits
    if kind == "hardsigmoid":
        return [helper.make_node("HardSigmoid", [inp], [out], alpha=alpha, beta=beta)], {}
    if kind == "hardswish":
        if act == "hardswish":  # ONNX HardSwish is alpha 1/6, beta 0.5
            return [helper.make_node("HardSwish", [inp], [out])], {}
        return [helper.make_node("HardSigmoid", [inp], [f"{tag}_hs"], alpha=alpha, beta=beta),
                helper.make_node("Mul", [inp, f"{tag}_hs"], [out])], {}
    if kind == "sigmoid":
        return [helper.make_node("Sigmoid", [inp], [out])], {}
    if kind == "swish":
        return [helper.make_node("Sigmoid", [inp], [f"{tag}_s"]),
                helper.make_node("Mul", [inp, f"{tag}_s"], [out])], {}
    raise AssertionError(act)


def act_lipschitz(act):
    """A bound on |f'|: an error e before the activation is at most L e after it."""
    if act is None:
        return 1.0
    kind, lo, hi, alpha, beta = act_params(act)
    if kind == "hardswish":  # d/dx x clamp(ax + b) = 2ax + b inside, up to 2 - b at the top
        return max(1.0, abs(2 - beta), abs(beta))
    return max(1.0, abs(alpha))


def act_float64(act, y):
    """The activation from its definition, in float64 (for the standalone checks)."""
    y = np.asarray(y, np.float64)
    if act is None:
        return y
    kind, lo, hi, alpha, beta = act_params(act)
    if kind == "clip":
        return np.clip(y, lo, hi)
    if kind == "hardsigmoid":
        return np.clip(y * alpha + beta, 0, 1)
    if kind == "hardswish":
        return y * np.clip(y * alpha + beta, 0, 1)
    sig = 1 / (1 + np.exp(-y))
    return sig if kind == "sigmoid" else y * sig


def exp_based(act):
    return act is not None and act_params(act)[0] in ("sigmoid", "swish")


def case_rng(*key):
    """A generator seeded by a test case (not by the dispatch level), so the data and the
    onnxruntime reference of a case are made once and shared by every level."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def assert_within(got, ref, bound, what):
    """|got - ref| <= bound elementwise (NaN where ref has NaN); a failure says where and by
    how much, as a multiple of the bound."""
    got = np.asarray(got)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, onnxruntime {ref.shape}"
    assert got.dtype == np.float32, f"{what}: dtype {got.dtype}"
    nan_ref, nan_got = np.isnan(ref), np.isnan(got)
    assert (nan_ref == nan_got).all(), f"{what}: NaN at {np.argwhere(nan_ref != nan_got)[:5].tolist()}"
    ok = ~nan_ref
    err = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    err[~ok] = 0
    bad = err > bound
    if bad.any():
        idx = np.unravel_index(np.argmax(np.where(bad, err / np.maximum(bound, 1e-300), 0)), err.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {err.size} outputs beyond tolerance; worst at {tuple(map(int, idx))}: "
            f"got {got[idx]!r}, onnxruntime {ref[idx]!r}, |diff| {err[idx]:.3g} vs bound {bound[idx]:.3g} "
            f"(max |diff| overall {err.max():.3g}, max |ref| {np.abs(ref[ok]).max() if ok.any() else 0:.3g})")


def bitwise_equal(a, b, what, signed_zero=True):
    """Equal bit for bit (NaN matching NaN); `signed_zero=False`: 0.0 == -0.0 (for numpy, whose
    maximum(-0.0, 0) is +0.0 where keensight's clamp and onnxruntime's Relu keep -0.0)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, f"{what}: shapes {a.shape} vs {b.shape}"
    assert a.dtype == np.float32, f"{what}: dtype {a.dtype}"
    same = (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))
    if not signed_zero:
        same |= (a == 0) & (b == 0)
    if not same.all():
        i = tuple(map(int, np.argwhere(~same)[0]))
        raise AssertionError(f"{what}: {int((~same).sum())} of {a.size} outputs differ; first at {i}: "
                             f"{a[i]!r} vs {b[i]!r}")


# ------------------------------------------------------------------------------------------
# Convolution: keensight's padding argument as ONNX attributes
# ------------------------------------------------------------------------------------------

def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def same_upper(size, k, s, d):
    """TF-SAME from its definition (ONNX auto_pad SAME_UPPER): out = ceil(size / s), the extra
    pad at the end."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def onnx_pads(padding, hw, khw, stride, dilation):
    """(attrs for the ONNX node): explicit pads (top, left, bottom, right) or auto_pad. ONNX
    Runtime refuses auto_pad SAME_* with dilation, so dilated "same" goes as explicit pads
    computed from the definition."""
    (h, w), (kh, kw), (sh, sw), (dh, dw) = hw, khw, pair(stride), pair(dilation)
    if isinstance(padding, str):
        if padding == "valid":
            return {"auto_pad": "VALID"}
        assert padding == "same"
        if dh == 1 and dw == 1:
            return {"auto_pad": "SAME_UPPER"}
        t, b = same_upper(h, kh, sh, dh)
        l, r = same_upper(w, kw, sw, dw)
        return {"pads": [t, l, b, r]}
    if isinstance(padding, int):
        return {"pads": [padding] * 4}
    if len(padding) == 2:
        return {"pads": [padding[0], padding[1], padding[0], padding[1]]}
    return {"pads": list(padding)}


def ort_conv(x, w, b, stride, padding, dilation, groups, act=None, residual=None):
    """onnxruntime's Conv (+ Add residual) (+ activation) of the same arguments."""
    (sh, sw), (dh, dw) = pair(stride), pair(dilation)
    attrs = onnx_pads(padding, x.shape[2:], w.shape[2:], stride, dilation)
    inits = {"w": w}
    ins = ["x", "w"]
    if b is not None:
        inits["b"] = b
        ins.append("b")
    nodes = [helper.make_node("Conv", ins, ["c"], strides=[sh, sw], dilations=[dh, dw], group=groups,
                              kernel_shape=list(w.shape[2:]), **attrs)]
    feeds = {"x": x}
    cur = "c"
    if residual is not None:
        feeds["r"] = residual
        nodes.append(helper.make_node("Add", ["c", "r"], ["cr"]))
        cur = "cr"
    if act is not None:
        more, more_inits = act_nodes(act, cur, "y")
        nodes += more
        inits.update(more_inits)
    else:
        nodes.append(helper.make_node("Identity", [cur], ["y"]))
    return ort_run(nodes, feeds, inits)


def conv_reference(x, w, b, stride, padding, dilation, groups, act=None, residual=None):
    """(onnxruntime's output, the per-output tolerance)."""
    ref = ort_conv(x, w, b, stride, padding, dilation, groups, act, residual)
    mag = ort_conv(np.abs(x), np.abs(w), None if b is None else np.abs(b), stride, padding, dilation, groups,
                   None, None if residual is None else np.abs(residual))
    bound = 1e-4 * act_lipschitz(act) * mag.astype(np.float64)
    if exp_based(act):  # sigmoid / swish: both sides approximate exp (a few ulp of the output)
        bound = bound + 4e-7 * (1 + np.abs(ref))
    return ref, bound


def random_conv(rng, n, c, h, w, o, kh, kw, groups, bias=True, out_std=1.0):
    """x ~ N(0, 1); w scaled so outputs have standard deviation about `out_std`."""
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    fan_in = (c // groups) * kh * kw
    wt = (rng.standard_normal((o, c // groups, kh, kw)) * out_std / math.sqrt(fan_in)).astype(np.float32)
    b = (rng.standard_normal(o) * 0.5 * out_std).astype(np.float32) if bias else None
    return x, wt, b


# (n, c, h, w, o, (kh, kw), stride, padding, dilation, groups): the core dense / grouped cases
CONV_CASES = [
    (1, 3, 16, 16, 32, (3, 3), 2, "same", 1, 1),           # the stem: 3 -> 32, SAME, one extra row/col
    (3, 5, 7, 7, 13, (3, 3), 1, 1, 1, 1),
    (1, 17, 15, 15, 40, (5, 5), 2, (1, 2, 2, 1), 1, 1),    # asymmetric (top, left, bottom, right)
    (3, 13, 8, 8, 17, (3, 3), 1, 2, 2, 1),                 # dilation 2
    (1, 12, 8, 7, 9, (3, 3), 2, (1, 0), 1, 3),             # groups in between, (ph, pw)
    (1, 40, 1, 1, 17, (1, 1), 1, 0, 1, 1),                 # 1x1 spatial
    (3, 1, 2, 3, 5, (3, 3), 1, 1, 1, 1),                   # 2x3 spatial, kernel larger than the input
    (1, 3, 16, 15, 5, (7, 7), 2, "same", 1, 1),            # 7x7
    (1, 5, 15, 16, 3, (3, 5), (2, 1), "same", (1, 2), 1),  # non-square everything, dilated SAME
    (1, 16, 8, 8, 16, (3, 3), 1, "valid", 1, 4),
    (1, 5, 7, 8, 10, (3, 3), 1, 1, 1, 5),                  # groups == C with channel multiplier 2
    (3, 8, 7, 7, 24, (1, 1), 2, 0, 1, 1),                  # strided 1x1
    (1, 3, 15, 15, 16, (3, 3), 2, 1, 1, 1),                # stem shape, odd input, symmetric
]


def case_id(case):
    return "x".join(map(str, case[:4])) + f"-o{case[4]}-k{case[5][0]}{case[5][1]}-s{case[6]}-p{case[7]}" \
        f"-d{case[8]}-g{case[9]}".replace(" ", "")


@functools.lru_cache(maxsize=None)
def conv_case(case):
    n, c, h, w, o, (kh, kw), stride, padding, dilation, groups = case
    x, wt, b = random_conv(case_rng("conv", case), n, c, h, w, o, kh, kw, groups)
    return (x, wt, b) + conv_reference(x, wt, b, stride, padding, dilation, groups)


@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_conv2d_matches_onnxruntime(isa, case):
    n, c, h, w, o, (kh, kw), stride, padding, dilation, groups = case
    x, wt, b, ref, bound = conv_case(case)
    got = knn.conv2d(x, wt, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    assert_within(got, ref, bound, f"conv2d {case} at {isa}")


def test_conv2d_without_bias_and_output_size_formula(rng):
    """No bias; and the output size is floor((W - K_eff + P_begin + P_end) / S) + 1."""
    for (h, w, k, s, pads, d) in [(15, 16, 3, 2, (0, 1, 2, 0), 1), (9, 8, 5, 3, (2, 2, 2, 2), 1),
                                  (11, 10, 3, 2, (1, 3, 0, 0), 2)]:
        x, wt, _ = random_conv(rng, 1, 5, h, w, 7, k, k, 1, bias=False)
        got = knn.conv2d(x, wt, None, stride=s, padding=pads, dilation=d)
        keff = (k - 1) * d + 1
        assert got.shape == (1, 7, (h - keff + pads[0] + pads[2]) // s + 1, (w - keff + pads[1] + pads[3]) // s + 1)
        ref, bound = conv_reference(x, wt, None, s, pads, d, 1)
        assert_within(got, ref, bound, f"conv2d no bias {h}x{w} k{k} s{s} {pads} d{d}")


def test_conv2d_padding_forms_agree(rng):
    """int p == (p, p) == (p, p, p, p); "valid" == 0; "same" at stride 1, odd k == k // 2."""
    x, wt, b = random_conv(rng, 1, 5, 9, 8, 6, 3, 3, 1)
    p1 = knn.conv2d(x, wt, b, padding=1)
    bitwise_equal(p1, knn.conv2d(x, wt, b, padding=(1, 1)), "padding (1, 1)")
    bitwise_equal(p1, knn.conv2d(x, wt, b, padding=(1, 1, 1, 1)), "padding (1, 1, 1, 1)")
    bitwise_equal(p1, knn.conv2d(x, wt, b, padding="same"), "padding 'same'")
    bitwise_equal(knn.conv2d(x, wt, b, padding=0), knn.conv2d(x, wt, b, padding="valid"), "padding 'valid'")
    # "same" at stride 2 on an even input pads only the bottom / right (TF-SAME), not (1, 1)
    x8, w8, b8 = random_conv(rng, 1, 3, 8, 8, 4, 3, 3, 1)
    same = knn.conv2d(x8, w8, b8, stride=2, padding="same")
    bitwise_equal(same, knn.conv2d(x8, w8, b8, stride=2, padding=(0, 0, 1, 1)), "SAME = (0, 0, 1, 1)")
    assert not np.array_equal(same, knn.conv2d(x8, w8, b8, stride=2, padding=1))


def test_conv2d_kernels_1_3_5_7(rng):
    for k in (1, 3, 5, 7):
        for stride in (1, 2):
            x, wt, b = random_conv(rng, 1, 13, 15, 16, 17, k, k, 1)
            ref, bound = conv_reference(x, wt, b, stride, k // 2, 1, 1)
            got = knn.conv2d(x, wt, b, stride=stride, padding=k // 2)
            assert_within(got, ref, bound, f"conv2d k{k} s{stride}")


def random_conv_case(seed, depthwise=False):
    """One random layer: channels from 1, 3, 5, 13, 17, 40 (and 12 / 24 for groups in
    between), sizes 1x1 to 16, kernels 1 / 3 / 5 / 7, stride 1 / 2, dilation 1 / 2, every
    padding form; redrawn until the kernel fits the padded input."""
    rng = np.random.default_rng(1000 + seed + (500 if depthwise else 0))
    while True:
        n = int(rng.choice([1, 3]))
        c = int(rng.choice([1, 3, 5, 12, 13, 17, 24, 40]))
        if depthwise:
            groups, o = c, c
        else:
            divisors = [g for g in range(1, c + 1) if c % g == 0]
            groups = int(rng.choice(divisors))
            o = groups * int(rng.choice([1, 2, 3])) if groups > 1 else int(rng.choice([1, 5, 13, 17, 40]))
        kh = int(rng.choice([1, 3, 5, 7]))
        kw = kh if rng.random() < 0.8 else int(rng.choice([1, 3, 5]))
        stride = (int(rng.choice([1, 2])),) * 2 if rng.random() < 0.8 else tuple(int(v) for v in rng.choice([1, 2], 2))
        dilation = 1 if rng.random() < 0.7 else int(rng.choice([1, 2]))
        h, w = (int(v) for v in rng.choice([1, 2, 3, 7, 8, 15, 16], 2))
        form = rng.integers(5)
        if form == 0:
            padding = "same"
        elif form == 1:
            padding = "valid"
        elif form == 2:
            padding = int(rng.integers(0, 4))
        elif form == 3:
            padding = tuple(int(v) for v in rng.integers(0, 4, 2))
        else:
            padding = tuple(int(v) for v in rng.integers(0, 4, 4))
        pads = onnx_pads(padding, (h, w), (kh, kw), stride, dilation).get("pads")
        if pads is None:  # auto_pad
            pads = [0, 0, 0, 0] if padding == "valid" else \
                list(same_upper(h, kh, stride[0], dilation)[::1]) + list(same_upper(w, kw, stride[1], dilation))
            pads = [pads[0], pads[2], pads[1], pads[3]]
        keff_h, keff_w = (kh - 1) * dilation + 1, (kw - 1) * dilation + 1
        if h + pads[0] + pads[2] >= keff_h and w + pads[1] + pads[3] >= keff_w:
            return n, c, h, w, o, (kh, kw), stride, padding, dilation, groups


@pytest.mark.parametrize("seed", range(48))
def test_conv2d_random_shapes(seed):
    """48 random layers (grouped and dense) against onnxruntime, at the start-up level."""
    case = random_conv_case(seed)
    x, wt, b, ref, bound = conv_case(case)
    n, c, h, w, o, (kh, kw), stride, padding, dilation, groups = case
    got = knn.conv2d(x, wt, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    assert_within(got, ref, bound, f"conv2d {case}")


@pytest.mark.parametrize("seed", range(48))
def test_depthwise_conv2d_random_shapes(seed):
    n, c, h, w, o, (kh, kw), stride, padding, dilation, groups = random_conv_case(seed, depthwise=True)
    case = (n, c, h, w, (kh, kw), stride, padding, dilation)
    x, wt, b, ref, bound = dw_case(case)
    got = knn.depthwise_conv2d(x, wt, b, stride=stride, padding=padding, dilation=dilation)
    assert_within(got, ref, bound, f"depthwise_conv2d {case}")


# ------------------------------------------------------------------------------------------
# Depthwise
# ------------------------------------------------------------------------------------------

# (n, c, h, w, (kh, kw), stride, padding, dilation)
DW_CASES = [
    (3, 13, 16, 16, (3, 3), 1, 1, 1),
    (1, 17, 15, 15, (3, 3), 2, "same", 1),
    (1, 40, 8, 8, (3, 3), 2, "same", 1),          # even input at stride 2: pad bottom / right only
    (1, 5, 7, 8, (5, 5), 1, 2, 1),
    (1, 13, 16, 15, (5, 5), 2, "same", 1),
    (3, 3, 15, 16, (5, 5), 2, (2, 1, 1, 2), 1),   # asymmetric
    (1, 1, 2, 3, (3, 3), 1, 1, 1),                # 2x3
    (1, 5, 1, 1, (3, 3), 1, 1, 1),                # 1x1 spatial: only the centre tap
    (1, 17, 8, 8, (3, 3), 1, 2, 2),               # dilation 2
    (1, 3, 7, 7, (7, 7), 1, 3, 1),                # 7x7: the general kernel
    (1, 12, 7, 7, (1, 1), 2, 0, 1),
    (3, 40, 15, 15, (3, 3), 1, "valid", 1),
    (1, 17, 16, 16, (5, 5), 1, "same", 1),
    (1, 24, 16, 15, (3, 3), 2, (1, 1, 0, 0), 1),  # pads at the top / left only
    (1, 32, 23, 29, (3, 3), 1, 1, 1),             # wider rows: several register tiles and a tail
    (1, 8, 9, 31, (5, 5), 2, (0, 2, 2, 0), 1),
    (1, 20, 6, 6, (3, 5), (1, 2), (1, 2), (2, 1)),  # non-square kernel, stride, dilation
    (1, 144, 56, 56, (3, 3), 2, "same", 1),        # MobileNet v2 sizes: rows split between threads
    (1, 97, 28, 28, (5, 5), 1, 2, 1),
]


@functools.lru_cache(maxsize=None)
def dw_case(case):
    n, c, h, w, (kh, kw), stride, padding, dilation = case
    x, wt, b = random_conv(case_rng("dw", case), n, c, h, w, c, kh, kw, c)
    return (x, wt, b) + conv_reference(x, wt, b, stride, padding, dilation, c)


@pytest.mark.parametrize("case", DW_CASES, ids=lambda c: "x".join(map(str, c[:4])) + f"-k{c[4]}-s{c[5]}-p{c[6]}-d{c[7]}")
def test_depthwise_conv2d_matches_onnxruntime(isa, case):
    n, c, h, w, (kh, kw), stride, padding, dilation = case
    x, wt, b, ref, bound = dw_case(case)
    got = knn.depthwise_conv2d(x, wt, b, stride=stride, padding=padding, dilation=dilation)
    assert_within(got, ref, bound, f"depthwise_conv2d {case} at {isa}")
    # the same layer as conv2d(groups=C)
    assert_within(knn.conv2d(x, wt, b, stride=stride, padding=padding, dilation=dilation, groups=c), ref, bound,
                  f"conv2d(groups=C) {case} at {isa}")


@pytest.mark.parametrize("case", [DW_CASES[i] for i in (0, 2, 4, 5, 8, 14)],
                         ids=lambda c: "x".join(map(str, c[:4])) + f"-k{c[4]}-s{c[5]}")
def test_depthwise_bit_identical_across_levels(rng, case):
    """kernels.hpp: a SIMD depthwise kernel does the scalar one's fused multiply-adds in the
    same order, so every level agrees with the scalar level bit for bit."""
    n, c, h, w, (kh, kw), stride, padding, dilation = case
    x, wt, b = random_conv(rng, n, c, h, w, c, kh, kw, c, out_std=4.0)
    before = _core.active_isa()
    try:
        results = {}
        for level in available_levels():
            _core.set_isa(level)
            results[level] = knn.depthwise_conv2d(x, wt, b, stride=stride, padding=padding, dilation=dilation,
                                                  activation="relu6")
    finally:
        _core.set_isa(before)
    for level, r in results.items():
        bitwise_equal(r, results["scalar"], f"depthwise {case}: {level} vs scalar")


def at_every_level(fn):
    """{level: fn()} for every level this machine runs, the start-up level restored."""
    before = _core.active_isa()
    try:
        out = {}
        for level in available_levels():
            _core.set_isa(level)
            out[level] = fn()
        return out
    finally:
        _core.set_isa(before)


def test_stem_and_activations_bit_identical_across_levels():
    """kernels.hpp: the direct stem convolution (3 -> 32, 3x3 stride 2) sums in one order at
    every level, and clip / hardsigmoid / hardswish are exact roundings at every level, so
    every level gives the scalar level's numbers, the sign of zero included."""
    rng = case_rng("stem-levels")
    x, wt, b = random_conv(rng, 1, 3, 17, 16, 32, 3, 3, 1, out_std=4.0)
    xa = activation_input(rng, (3, 19, 5, 7))
    acts = ["relu6", "hardswish", ("hardsigmoid", 0.3, 0.4), ("clip", -1.5, 2.5)]
    res = at_every_level(lambda: [knn.conv2d(x, wt, b, stride=2, padding="same", activation="relu6")] +
                         [knn.activation(xa, a) for a in acts])
    for level, r in res.items():
        for what, a, ref in zip(["stem"] + acts, r, res["scalar"]):
            bitwise_equal(a, ref, f"{what}: {level} vs scalar")


def available_levels():
    info = keensight.cpu_info()
    return [name for name in info["levels"] if name in info["compiled_levels"]]


# ------------------------------------------------------------------------------------------
# Pointwise (1x1 on the GEMM driver) with bias, activation and residual
# ------------------------------------------------------------------------------------------

# (n, c, h, w, o, weight ndim, bias, residual, activation)
PW_CASES = [
    (1, 3, 7, 7, 5, 2, True, False, None),
    (3, 17, 8, 8, 40, 2, True, False, "relu6"),
    (1, 40, 15, 15, 13, 4, False, False, None),
    (1, 96, 16, 16, 24, 2, True, True, None),        # MobileNet v2's projection + residual
    (3, 13, 1, 1, 17, 4, True, False, "relu"),
    (1, 1, 2, 3, 3, 2, True, False, None),
    (1, 144, 7, 7, 40, 4, True, True, "relu6"),
    (1, 300, 4, 5, 20, 2, True, False, None),        # K beyond a cache block
    (3, 24, 15, 16, 144, 2, True, False, "hardswish"),
    (1, 40, 16, 16, 40, 2, False, True, "relu"),     # residual, no bias
    (1, 24, 56, 56, 144, 2, True, False, "relu6"),   # MobileNet v2's expansion at 56x56: many GEMM blocks
]


@functools.lru_cache(maxsize=None)
def pw_case(case):
    n, c, h, w, o, wdim, bias, res, act = case
    rng = case_rng("pw", case)
    x, wt, b = random_conv(rng, n, c, h, w, o, 1, 1, 1, bias=bias, out_std=3.0)
    r = rng.standard_normal((n, o, h, w)).astype(np.float32) if res else None
    return (x, wt, b, r) + conv_reference(x, wt, b, 1, 0, 1, 1, act, r)


@pytest.mark.parametrize("case", PW_CASES, ids=lambda c: "x".join(map(str, c[:4])) + f"-o{c[4]}-w{c[5]}d"
                         f"{'-b' if c[6] else ''}{'-res' if c[7] else ''}-{act_id(c[8]) if c[8] else 'none'}")
def test_pointwise_conv2d_matches_onnxruntime(isa, case):
    """pointwise_conv2d (with the residual added before the activation) against Conv 1x1
    (+ Add) (+ activation)."""
    n, c, h, w, o, wdim, bias, res, act = case
    x, wt, b, r, ref, bound = pw_case(case)
    w_arg = wt[:, :, 0, 0] if wdim == 2 else wt
    got = knn.pointwise_conv2d(x, w_arg, b, activation=act, residual=r)
    assert_within(got, ref, bound, f"pointwise_conv2d {case} at {isa}")


# ------------------------------------------------------------------------------------------
# Every activation: fused into conv / depthwise / pointwise / dense / add, and standalone
# ------------------------------------------------------------------------------------------

FUSED_LAYERS = {  # op: (n, c, h, w, o, k, groups, conv_reference arguments)
    "conv": (3, 13, 9, 8, 17, 3, 1, dict(stride=1, padding=1, dilation=1, groups=1)),
    "depthwise": (3, 19, 9, 8, 19, 3, 19, dict(stride=2, padding="same", dilation=1, groups=19)),
    "pointwise": (3, 21, 7, 6, 35, 1, 1, dict(stride=1, padding=0, dilation=1, groups=1)),
}


@functools.lru_cache(maxsize=None)
def fused_case(op, act):
    n, c, h, w, o, k, groups, args = FUSED_LAYERS[op]
    x, wt, b = random_conv(case_rng("fused", op), n, c, h, w, o, k, k, groups, out_std=4.0)
    return (x, wt, b) + conv_reference(x, wt, b, act=act, **args)


@pytest.mark.parametrize("act", ACTIVATIONS, ids=act_id)
@pytest.mark.parametrize("op", ["conv", "depthwise", "pointwise"])
def test_activation_fused_into_conv(isa, op, act):
    """Conv (+ its activation) against Conv followed by the activation's ONNX node(s); the
    outputs span about +-8 so every piece of relu6 / hardswish / clip is exercised."""
    x, wt, b, ref, bound = fused_case(op, act)
    if op == "conv":
        got = knn.conv2d(x, wt, b, stride=1, padding=1, activation=act)
    elif op == "depthwise":
        got = knn.depthwise_conv2d(x, wt, b, stride=2, padding="same", activation=act)
    else:
        got = knn.pointwise_conv2d(x, wt, b, activation=act)
    assert_within(got, ref, bound, f"{op} + {act} at {isa}")


def activation_input(rng, shape):
    """Normal values spread to +-8 plus the break points of every activation, exactly."""
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    flat = x.reshape(-1)
    specials = np.array([0, -0.0, 3, -3, 6, -6, 2.5, -1.5, 1.25, -1.25, 2.5 / 3, 1e-30, -1e-30, 88, -88, 100,
                         -100, 30, -30], np.float32)
    n = min(specials.size, flat.size)
    flat[:n] = specials[:n]
    return x


def ort_activation(act, x):
    nodes, inits = act_nodes(act, "x", "y")
    return ort_run(nodes, {"x": x}, inits)


def activation_bound(act, x, exact):
    """How far a float32 activation of `x` may be from the float64 definition: two roundings
    in x * alpha + beta and one in the product (hardsigmoid / hardswish), an approximated exp
    (sigmoid / swish: a few ulp of the output, and at least 1e-7 absolute where the output is
    tiny); clip is exact."""
    kind, lo, hi, alpha, beta = act_params(act)
    eps = float(np.finfo(np.float32).eps)
    x = np.abs(np.asarray(x, np.float64))
    if kind == "clip":
        return np.zeros_like(x)
    if kind == "hardsigmoid":
        return 4 * eps * (x * abs(alpha) + abs(beta))
    if kind == "hardswish":
        return 4 * eps * x * (x * abs(alpha) + abs(beta) + 1)
    return 4 * eps * np.abs(exact) + 1e-7 * (1 if kind == "sigmoid" else np.minimum(x, 1))


@pytest.mark.parametrize("act", ACTIVATIONS, ids=act_id)
@functools.lru_cache(maxsize=None)
def activation_case(act, shape):
    x = activation_input(case_rng("act", shape), shape)
    ref = ort_activation(act, x)
    exact = act_float64(act, x)
    bound = activation_bound(act, x, exact)
    if act_params(act)[0] != "clip":
        assert_within(ref, exact.astype(np.float32), ort_bound(act, x, bound), f"onnxruntime's {act} vs the definition")
    return x, ref, exact, bound


@pytest.mark.parametrize("act", ACTIVATIONS, ids=act_id)
def test_activation_standalone(isa, act):
    """activation(x, kind) against the ONNX node(s), on shapes of every ndim >= 1: clip and
    relu exact; the others within the rounding of activation_bound of the float64
    definition, which onnxruntime meets too (so the definition here is onnxruntime's)."""
    for shape in [(3, 13, 7, 8), (1, 17, 1, 1), (37,), (5, 23), (2, 3, 5)]:
        x, ref, exact, bound = activation_case(act, shape)
        got = knn.activation(x, act)
        if act_params(act)[0] == "clip":
            bitwise_equal(got, ref, f"activation {act} {shape} at {isa}")
            continue
        assert_within(got, exact.astype(np.float32), bound, f"activation {act} {shape} vs float64 at {isa}")


def ort_bound(act, x, bound):
    """onnxruntime's own sigmoid is a rational approximation good to about 1e-7 absolute
    (which swish multiplies by |x|): its distance from the definition."""
    extra = 2e-7 * np.abs(x.astype(np.float64)) if act_params(act)[0] == "swish" else 0
    return 4 * bound + extra


def test_named_activation_functions(rng):
    """relu(x) ... swish(x) and hardsigmoid(x, alpha, beta) are activation(x, kind)."""
    x = activation_input(rng, (2, 5, 4, 3))
    for fn, kind in [(knn.relu, "relu"), (knn.relu6, "relu6"), (knn.hardswish, "hardswish"),
                     (knn.hardsigmoid, "hardsigmoid"), (knn.sigmoid, "sigmoid"), (knn.swish, "swish")]:
        bitwise_equal(fn(x), knn.activation(x, kind), f"{kind}(x)")
    # numpy's maximum(-0.0, 0) is +0.0 where the clamp (and onnxruntime) keep -0.0: values, not signs
    bitwise_equal(knn.hardsigmoid(x, alpha=0.3, beta=0.4), knn.activation(x, ("hardsigmoid", 0.3, 0.4)),
                  "hardsigmoid(x, 0.3, 0.4)")
    bitwise_equal(knn.relu(x), np.maximum(x, 0), "relu vs numpy", signed_zero=False)
    bitwise_equal(knn.relu6(x), np.clip(x, 0, 6), "relu6 vs numpy", signed_zero=False)


@pytest.mark.parametrize("act", ACTIVATIONS, ids=act_id)
def test_activation_nan_and_inf_as_onnxruntime(isa, act):
    """NaN propagates through every activation (clamps too, as onnxruntime's Clip / Relu), and
    +-inf goes where onnxruntime takes it (relu6(inf) = 6, sigmoid(-inf) = 0, swish(-inf) and
    hardswish(-inf) NaN as inf * 0), standalone and fused into a conv's epilogue."""
    x = np.array([np.nan, np.inf, -np.inf, np.nan, 2.0], np.float32)
    ref = ort_activation(act, x)
    got = knn.activation(x, act)
    bitwise_equal(got[:4], ref[:4], f"activation {act} of NaN / inf at {isa}")
    # a 1x1 conv with weight 1 passes the specials to the fused activation
    xc = np.tile(x[:4].reshape(1, 1, 2, 2), (2, 1, 1, 1))
    got = knn.conv2d(xc, np.ones((3, 1, 1, 1), np.float32), activation=act)
    bitwise_equal(got, np.broadcast_to(ref[:4].reshape(1, 1, 2, 2), (2, 3, 2, 2)), f"conv2d + {act} of NaN / inf at {isa}")
    got = knn.pointwise_conv2d(xc, np.ones((3, 1), np.float32), activation=act)
    bitwise_equal(got, np.broadcast_to(ref[:4].reshape(1, 1, 2, 2), (2, 3, 2, 2)), f"pointwise + {act} of NaN / inf at {isa}")


# ------------------------------------------------------------------------------------------
# Pools
# ------------------------------------------------------------------------------------------

def ort_pool(op, x, kernel, stride, padding, dilation=1, ceil_mode=False, count_include_pad=False):
    (kh, kw), (sh, sw) = pair(kernel), pair(stride if stride is not None else kernel)
    attrs = onnx_pads(padding, x.shape[2:], (kh, kw), (sh, sw), dilation)
    attrs.update(kernel_shape=[kh, kw], strides=[sh, sw], ceil_mode=int(ceil_mode))
    if op == "MaxPool":
        attrs["dilations"] = list(pair(dilation))
    else:
        attrs["count_include_pad"] = int(count_include_pad)
    return ort_run([helper.make_node(op, ["x"], ["y"], **attrs)], {"x": x})


# (n, c, h, w, kernel, stride, padding, ceil_mode)
POOL_CASES = [
    (1, 5, 16, 16, 2, 2, 0, False),
    (3, 13, 15, 15, 2, 2, 0, True),            # ceil mode: a last, partial window
    (1, 17, 15, 16, 3, 2, 1, False),
    (1, 17, 15, 16, 3, 2, 1, True),
    (1, 40, 8, 8, 3, 1, 1, False),
    (3, 5, 7, 8, 3, 2, (0, 1, 1, 0), True),    # asymmetric pads
    (1, 13, 9, 10, (2, 3), (1, 2), 0, False),  # non-square
    (1, 3, 1, 1, 1, 1, 0, False),              # 1x1
    (1, 5, 2, 3, 2, 2, 0, True),               # 2x3, ceil
    (1, 17, 7, 7, 7, 1, 0, False),             # the whole image
    (1, 24, 16, 15, 5, 3, 2, True),
    (1, 5, 4, 4, 3, 2, (0, 0, 2, 2), True),    # ceil mode where a last window would start in the padding
]


def pool_id(c):
    return "x".join(map(str, c[:4])) + f"-k{c[4]}-s{c[5]}-p{c[6]}{'-ceil' if c[7] else ''}".replace(" ", "")


@functools.lru_cache(maxsize=None)
def pool_case(op, case, count_include_pad):
    n, c, h, w, k, s, p, ceil = case
    x = case_rng("pool", case).standard_normal((n, c, h, w)).astype(np.float32)
    ref = ort_pool(op, x, k, s, p, 1, ceil, count_include_pad)
    mag = ort_pool(op, np.abs(x), k, s, p, 1, ceil, count_include_pad) if op == "AveragePool" else None
    return x, ref, mag


@pytest.mark.parametrize("case", POOL_CASES, ids=pool_id)
def test_max_pool2d_matches_onnxruntime(isa, case):
    n, c, h, w, k, s, p, ceil = case
    x, ref, _ = pool_case("MaxPool", case, False)
    got = knn.max_pool2d(x, k, stride=s, padding=p, ceil_mode=ceil)
    bitwise_equal(got, ref, f"max_pool2d {case} at {isa}")


@pytest.mark.parametrize("count_include_pad", [False, True])
@pytest.mark.parametrize("case", POOL_CASES, ids=pool_id)
def test_avg_pool2d_matches_onnxruntime(isa, case, count_include_pad):
    n, c, h, w, k, s, p, ceil = case
    x, ref, mag = pool_case("AveragePool", case, count_include_pad)
    got = knn.avg_pool2d(x, k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=count_include_pad)
    # at most 49 terms: float32 sums and one division move the mean by < 1e-5 of the mean of |x|
    assert_within(got, ref, 1e-5 * mag.astype(np.float64), f"avg_pool2d {case} cip={count_include_pad} at {isa}")


@pytest.mark.parametrize("seed", range(32))
def test_pools_random_shapes(seed):
    """Random max / average pools (kernel 1..5, stride 1..3, pads below the kernel, either
    ceil mode, either count_include_pad) against onnxruntime."""
    rng = np.random.default_rng(3000 + seed)
    while True:
        n, c = int(rng.choice([1, 3])), int(rng.choice([1, 3, 5, 13, 17, 40]))
        h, w = (int(v) for v in rng.choice([1, 2, 3, 7, 8, 15, 16], 2))
        kh, kw = (int(v) for v in rng.integers(1, 6, 2))
        stride = tuple(int(v) for v in rng.integers(1, 4, 2))
        pads = (int(rng.integers(0, kh)), int(rng.integers(0, kw)), int(rng.integers(0, kh)), int(rng.integers(0, kw)))
        if h + pads[0] + pads[2] >= kh and w + pads[1] + pads[3] >= kw:
            break
    ceil, cip = bool(rng.integers(2)), bool(rng.integers(2))
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    what = f"pool {x.shape} k{(kh, kw)} s{stride} p{pads} ceil={ceil}"
    bitwise_equal(knn.max_pool2d(x, (kh, kw), stride=stride, padding=pads, ceil_mode=ceil),
                  ort_pool("MaxPool", x, (kh, kw), stride, pads, 1, ceil), "max " + what)
    got = knn.avg_pool2d(x, (kh, kw), stride=stride, padding=pads, ceil_mode=ceil, count_include_pad=cip)
    ref = ort_pool("AveragePool", x, (kh, kw), stride, pads, 1, ceil, cip)
    mag = ort_pool("AveragePool", np.abs(x), (kh, kw), stride, pads, 1, ceil, cip).astype(np.float64)
    assert_within(got, ref, 1e-5 * mag, f"avg {what} cip={cip}")


@pytest.mark.parametrize("case", [(1, 13, 15, 16, 3, 1, 2, False), (1, 5, 16, 16, 3, 2, 2, True),
                                  (3, 17, 9, 9, 2, 2, 1, False)], ids=pool_id)
def test_max_pool2d_dilation(rng, case):
    n, c, h, w, k, s, p, ceil = case
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    got = knn.max_pool2d(x, k, stride=s, padding=p, dilation=2, ceil_mode=ceil)
    bitwise_equal(got, ort_pool("MaxPool", x, k, s, p, 2, ceil), f"max_pool2d dilation 2 {case}")


def test_pool_stride_defaults_to_kernel(rng):
    x = rng.standard_normal((1, 5, 9, 8)).astype(np.float32)
    bitwise_equal(knn.max_pool2d(x, 3), knn.max_pool2d(x, 3, stride=3), "max_pool2d stride None")
    bitwise_equal(knn.avg_pool2d(x, 2), knn.avg_pool2d(x, 2, stride=2), "avg_pool2d stride None")
    assert knn.max_pool2d(x, 3).shape == (1, 5, 3, 2)


def test_max_pool2d_propagates_nan(rng):
    """kernels.hpp: a NaN in a window makes its maximum NaN (numpy's np.max; onnxruntime
    1.32's MaxPool drops it, which is not what the contract follows), wherever in the
    window it sits."""
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    x[0, 1, 2, 3] = np.nan
    got = knn.max_pool2d(x, 2, stride=2)
    assert np.isnan(got[0, 1, 1, 1])
    for pos in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        xp = np.zeros((1, 1, 2, 2), np.float32)
        xp[(0, 0) + pos] = np.nan
        assert np.isnan(knn.max_pool2d(xp, 2)).all(), pos
        assert np.isnan(knn.max_pool2d(np.tile(xp, (1, 19, 1, 1)), 2)).all(), pos
    assert np.isfinite(np.delete(got.reshape(-1), np.ravel_multi_index((0, 1, 1, 1), got.shape))).all()


def test_pool_bit_identical_across_levels(rng):
    """kernels.hpp: max and average pools sum / compare in one order at every level."""
    x = rng.standard_normal((3, 23, 15, 16)).astype(np.float32)
    before = _core.active_isa()
    try:
        res = {}
        for level in available_levels():
            _core.set_isa(level)
            res[level] = (knn.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
                          knn.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
                          knn.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=True))
    finally:
        _core.set_isa(before)
    for level, r in res.items():
        for i, (a, b) in enumerate(zip(r, res["scalar"])):
            bitwise_equal(a, b, f"pool {i}: {level} vs scalar")


@functools.lru_cache(maxsize=None)
def global_pool_case(shape):
    x = (case_rng("gap", shape).standard_normal(shape) + 0.5).astype(np.float32)
    return x, ort_run([helper.make_node("GlobalAveragePool", ["x"], ["y"])], {"x": x})


@pytest.mark.parametrize("shape", [(1, 17, 16, 16), (3, 40, 7, 7), (1, 1, 1, 1), (3, 13, 2, 3), (1, 5, 15, 8)])
def test_global_avg_pool2d_matches_onnxruntime(isa, shape):
    x, ref = global_pool_case(shape)
    got = knn.global_avg_pool2d(x)
    assert got.shape == shape[:2] + (1, 1)
    mag = np.abs(x).astype(np.float64).mean(axis=(2, 3), keepdims=True)
    assert_within(got, ref, 1e-4 * mag, f"global_avg_pool2d {shape} at {isa}")


# ------------------------------------------------------------------------------------------
# Elementwise, concat, flatten, dense, softmax
# ------------------------------------------------------------------------------------------

def ort_binary(op, a, b, act):
    nodes = [helper.make_node(op, ["a", "b"], ["s"])]
    inits = {}
    if act is None:
        nodes.append(helper.make_node("Identity", ["s"], ["y"]))
    else:
        more, inits = act_nodes(act, "s", "y")
        nodes += more
    return ort_run(nodes, {"a": a, "b": b}, inits)


@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("shape,broadcast", [((3, 13, 7, 8), False), ((1, 17, 1, 1), False),
                                             ((3, 13, 7, 8), True), ((1, 40, 15, 16), True),
                                             ((1, 5, 2, 3), False)])
def test_add_mul_match_onnxruntime(isa, op, shape, broadcast):
    """add / mul, including b of (N, C, 1, 1) broadcast over H x W (squeeze-excitation):
    one rounding each, so exact."""
    rng = case_rng("binary", shape, broadcast)
    a = (rng.standard_normal(shape) * 4).astype(np.float32)
    b = (rng.standard_normal(shape[:2] + (1, 1) if broadcast else shape) * 4).astype(np.float32)
    fn = knn.add if op == "add" else knn.mul
    bitwise_equal(fn(a, b), ort_binary(op.capitalize(), a, b, None), f"{op} {shape} bcast={broadcast} at {isa}")
    bitwise_equal(fn(a, b, activation="relu6"), ort_binary(op.capitalize(), a, b, "relu6"),
                  f"{op} + relu6 {shape} bcast={broadcast} at {isa}")


@pytest.mark.parametrize("act", ACTIVATIONS, ids=act_id)
def test_add_mul_with_activation(isa, act):
    rng = case_rng("add-act", act)
    a = (rng.standard_normal((3, 13, 5, 6)) * 3).astype(np.float32)
    b = (rng.standard_normal((3, 13, 1, 1)) * 3).astype(np.float32)
    for op, fn in (("Add", knn.add), ("Mul", knn.mul)):
        got = fn(a, b, activation=act)
        ref = ort_binary(op, a, b, act)
        s = (a + b) if op == "Add" else (a * b)
        if act_params(act)[0] == "clip":
            bitwise_equal(got, ref, f"{op} + {act}")
        else:
            exact = act_float64(act, s)
            bound = activation_bound(act, s, exact)
            assert_within(ref, exact.astype(np.float32), ort_bound(act, s, bound), f"onnxruntime's {op} + {act}")
            assert_within(got, exact.astype(np.float32), bound, f"{op} + {act}")


def test_concat_matches_onnxruntime(rng):
    xs = [rng.standard_normal((3, c, 5, 7)).astype(np.float32) for c in (1, 13, 5, 40)]
    got = knn.concat(xs)
    ref = ort_run([helper.make_node("Concat", [f"x{i}" for i in range(4)], ["y"], axis=1)],
                  {f"x{i}": x for i, x in enumerate(xs)})
    bitwise_equal(got, ref, "concat")
    bitwise_equal(knn.concat(xs, axis=1), ref, "concat axis=1")
    bitwise_equal(knn.concat(xs[:1]), xs[0], "concat of one")


@pytest.mark.parametrize("shape", [(3, 13, 7, 8), (1, 40, 1, 1), (1, 5, 2, 3)])
def test_flatten_matches_onnxruntime(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    got = knn.flatten(x)
    assert got.shape == (shape[0], int(np.prod(shape[1:])))
    bitwise_equal(got, ort_run([helper.make_node("Flatten", ["x"], ["y"], axis=1)], {"x": x}), f"flatten {shape}")


@pytest.mark.parametrize("n,i,o,bias,act", [(1, 1280, 1000, True, None), (3, 17, 40, True, "relu"),
                                            (3, 40, 13, False, None), (1, 5, 1, True, "sigmoid"),
                                            (3, 300, 24, True, "hardswish")])
def test_dense_matches_onnxruntime_gemm(isa, n, i, o, bias, act):
    """dense(x, w, b) = Gemm(x, w, b, transB=1) (+ activation)."""
    rng = case_rng("dense", n, i, o)
    x = rng.standard_normal((n, i)).astype(np.float32)
    w = (rng.standard_normal((o, i)) * 3 / math.sqrt(i)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32) if bias else None

    def gemm(xv, wv, bv, a):
        ins, inits = ["x", "w"], {"w": wv}
        if bv is not None:
            ins.append("b")
            inits["b"] = bv
        nodes = [helper.make_node("Gemm", ins, ["g"], transB=1)]
        if a is None:
            nodes.append(helper.make_node("Identity", ["g"], ["y"]))
        else:
            more, more_inits = act_nodes(a, "g", "y")
            nodes += more
            inits.update(more_inits)
        return ort_run(nodes, {"x": xv}, inits)

    got = knn.dense(x, w, b, activation=act)
    ref = gemm(x, w, b, act)
    mag = gemm(np.abs(x), np.abs(w), None if b is None else np.abs(b), None).astype(np.float64)
    bound = 1e-4 * act_lipschitz(act) * mag + (4e-7 * (1 + np.abs(ref)) if exp_based(act) else 0)
    assert_within(got, ref, bound, f"dense {n}x{i} -> {o} {act}")


@pytest.mark.parametrize("n,c,spread", [(1, 1000, 3.0), (3, 13, 1.0), (3, 1, 1.0), (2, 40, 30.0)])
def test_softmax_matches_onnxruntime(isa, n, c, spread):
    rng = case_rng("softmax", n, c, spread)
    x = (rng.standard_normal((n, c)) * spread).astype(np.float32)
    x[0, 0] += 50  # a large shift: the max is subtracted first
    got = knn.softmax(x)
    ref = ort_run([helper.make_node("Softmax", ["x"], ["y"], axis=1)], {"x": x})
    x64 = x.astype(np.float64)
    exact = np.exp(x64 - x64.max(1, keepdims=True))
    exact /= exact.sum(1, keepdims=True)
    bound = 1e-5 * exact + 1e-7
    assert_within(ref, exact.astype(np.float32), bound, f"onnxruntime's softmax {n}x{c}")
    assert_within(got, exact.astype(np.float32), bound, f"softmax {n}x{c} vs float64")
    bitwise_equal(knn.softmax(x, axis=-1), got, "softmax axis=-1")


# ------------------------------------------------------------------------------------------
# Threads, batch size, input forms
# ------------------------------------------------------------------------------------------

def threaded_ops(rng):
    """(name, fn(x, threads) or fn(x)) for every op that takes threads, on one input each."""
    x, wt, b = random_conv(rng, 3, 13, 15, 16, 17, 3, 3, 1)
    dw = random_conv(rng, 3, 13, 15, 16, 13, 5, 5, 13)[1:]
    pw = random_conv(rng, 3, 13, 15, 16, 40, 1, 1, 1)[1:]
    return x, [
        ("conv2d", lambda v, t: knn.conv2d(v, wt, b, stride=2, padding="same", activation="relu6", threads=t)),
        ("conv2d grouped", lambda v, t: knn.conv2d(v, random_w_grouped, None, padding=1, groups=13, threads=t)),
        ("depthwise 5x5", lambda v, t: knn.depthwise_conv2d(v, dw[0], dw[1], padding=2, activation="swish", threads=t)),
        ("depthwise 3x3 s2", lambda v, t: knn.depthwise_conv2d(v, wt3, None, stride=2, padding="same", threads=t)),
        ("pointwise", lambda v, t: knn.pointwise_conv2d(v, pw[0], pw[1], activation="relu",
                                                        residual=np.tile(v[:, :4], (1, 10, 1, 1)), threads=t)),
        ("activation", lambda v, t: knn.activation(v, "hardswish", threads=t)),
    ]


random_w_grouped = np.random.default_rng(7).standard_normal((26, 1, 3, 3)).astype(np.float32)
wt3 = np.random.default_rng(8).standard_normal((13, 1, 3, 3)).astype(np.float32)


def test_results_do_not_depend_on_threads(isa, rng):
    x, ops = threaded_ops(rng)
    for name, fn in ops:
        one = fn(x, 1)
        for t in (2, 4, None):
            bitwise_equal(fn(x, t), one, f"{name}: threads={t} vs 1 at {isa}")
    # MobileNet-sized layers, where each thread gets many rows / GEMM blocks
    xl, wl, bl = random_conv(case_rng("threads-large"), 1, 48, 56, 56, 96, 1, 1, 1)
    dwl = random_conv(case_rng("threads-large-dw"), 1, 48, 56, 56, 48, 3, 3, 48)[1:]
    for name, fn in [("pointwise 56x56", lambda t: knn.pointwise_conv2d(xl, wl, bl, activation="relu6", threads=t)),
                     ("depthwise 56x56 s2", lambda t: knn.depthwise_conv2d(xl, dwl[0], dwl[1], stride=2,
                                                                           padding="same", threads=t)),
                     ("conv 3x3 56x56", lambda t: knn.conv2d(xl[:, :8], wl[:16, :8].repeat(3, 2).repeat(3, 3),
                                                             padding=1, threads=t))]:
        one = fn(1)
        for t in (2, 4):
            bitwise_equal(fn(t), one, f"{name}: threads={t} vs 1 at {isa}")


def test_untimed_ops_do_not_depend_on_the_package_thread_count(rng):
    """The ops without a threads argument run on the package default
    (keensight.set_num_threads): 1, 2 and 4 give the same bits."""
    x = rng.standard_normal((3, 21, 15, 16)).astype(np.float32)
    se = rng.standard_normal((3, 21, 1, 1)).astype(np.float32)
    ops = lambda: [knn.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),  # noqa: E731
                   knn.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False),
                   knn.global_avg_pool2d(x), knn.mul(x, se, activation="hardsigmoid"), knn.add(x, x),
                   knn.concat([x, x[:, :5]]), knn.flatten(x), knn.softmax(knn.flatten(x)[:, :50]),
                   knn.dense(knn.flatten(x), dense_w_big)]
    before = keensight.get_num_threads()
    try:
        keensight.set_num_threads(1)
        one = ops()
        for t in (2, 4):
            keensight.set_num_threads(t)
            for i, (a, b) in enumerate(zip(ops(), one)):
                bitwise_equal(a, b, f"op {i}: set_num_threads({t}) vs 1")
    finally:
        keensight.set_num_threads(before)


dense_w_big = np.random.default_rng(11).standard_normal((13, 21 * 15 * 16)).astype(np.float32) * 0.02


def test_results_do_not_depend_on_batch(rng):
    x, ops = threaded_ops(rng)
    untimed = [
        ("max_pool2d", lambda v, t: knn.max_pool2d(v, 3, stride=2, padding=1, ceil_mode=True)),
        ("avg_pool2d", lambda v, t: knn.avg_pool2d(v, 3, stride=2, padding=1, count_include_pad=True)),
        ("global_avg_pool2d", lambda v, t: knn.global_avg_pool2d(v)),
        ("add", lambda v, t: knn.add(v, v[:, :, :1, :1] * 0.5, activation="relu")),
        ("mul", lambda v, t: knn.mul(v, v)),
        ("flatten+dense+softmax", lambda v, t: knn.softmax(knn.dense(knn.flatten(v)[:, :100], dense_w, dense_b))),
    ]
    for name, fn in ops + untimed:
        whole = fn(x, 2)
        for i in range(len(x)):
            bitwise_equal(fn(x[i:i + 1], 2)[0], whole[i], f"{name}: image {i} alone vs in a batch of {len(x)}")


dense_w = np.random.default_rng(9).standard_normal((11, 100)).astype(np.float32) * 0.1
dense_b = np.random.default_rng(10).standard_normal(11).astype(np.float32)


def test_input_forms(rng):
    """float64 / float16 / lists are converted; non-contiguous and Fortran-order views give the
    contiguous array's result; inputs are not modified; outputs are new float32 arrays."""
    x, wt, b = random_conv(rng, 1, 5, 9, 10, 6, 3, 3, 1)
    ref = knn.conv2d(x, wt, b, padding=1)
    bitwise_equal(knn.conv2d(x.astype(np.float64), wt.astype(np.float64), b.astype(np.float64), padding=1), ref,
                  "float64 arguments")
    bitwise_equal(knn.conv2d(x.tolist(), wt.tolist(), b.tolist(), padding=1), ref, "lists")
    big = np.zeros((1, 10, 18, 20), np.float32)
    big[:, ::2, ::2, ::2] = x
    view = big[:, ::2, ::2, ::2]
    assert not view.flags.c_contiguous
    bitwise_equal(knn.conv2d(view, np.asfortranarray(wt), b, padding=1), ref, "strided view, Fortran weights")
    x16 = x.astype(np.float16)
    bitwise_equal(knn.conv2d(x16, wt, b, padding=1), knn.conv2d(x16.astype(np.float32), wt, b, padding=1), "float16")
    xc, wc = x.copy(), wt.copy()
    knn.conv2d(x, wt, b, padding=1, activation="relu")
    knn.activation(x, "relu")
    assert np.array_equal(x, xc) and np.array_equal(wt, wc), "an input was modified"
    y = knn.relu(x)
    assert y.dtype == np.float32 and not np.shares_memory(y, x)


def test_nan_in_weights_propagates(rng):
    """A NaN weight is allowed: the outputs of its channel are NaN (every window of an
    unpadded layer uses the tap), the other channels are onnxruntime's, nothing crashes."""
    x, wt, b = random_conv(rng, 3, 5, 8, 9, 7, 3, 3, 1)
    wt[2, 1, 1, 1] = np.nan
    got = knn.conv2d(x, wt, b)
    ref, bound = conv_reference(x, np.nan_to_num(wt), b, 1, 0, 1, 1)
    assert np.isnan(got[:, 2]).all()
    keep = [0, 1, 3, 4, 5, 6]
    assert_within(got[:, keep], ref[:, keep], bound[:, keep], "conv2d with a NaN weight, other channels")
    dw = random_conv(rng, 1, 6, 7, 7, 6, 3, 3, 6)[1]
    dw[4, 0, 0, 2] = np.nan
    got = knn.depthwise_conv2d(x[:1, :1].repeat(6, axis=1), dw)
    assert np.isnan(got[:, 4]).all() and np.isfinite(np.delete(got, 4, axis=1)).all()
    pw = rng.standard_normal((4, 5)).astype(np.float32)
    pw[1, 3] = np.nan
    got = knn.pointwise_conv2d(x, pw)
    assert np.isnan(got[:, 1]).all() and np.isfinite(np.delete(got, 1, axis=1)).all()
    xn = x.copy()
    xn[1, 0, 4, 4] = np.inf
    got = knn.conv2d(xn, np.abs(np.nan_to_num(wt)), np.abs(b))
    assert np.isposinf(got[1, :, 2:5, 2:5]).all() and np.isfinite(got[0]).all()


# ------------------------------------------------------------------------------------------
# Bad input: clear exceptions that name the argument
# ------------------------------------------------------------------------------------------

def raises_naming(exc, names, fn, *args, **kwargs):
    """fn(*args, **kwargs) raises `exc` and its message names one of `names` as the package
    does ("name: expected ...", "xs[1]: ...", or the name quoted): a bare word would let
    the "x" of "64 x 16001" pass for the argument x."""
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert any(re.search(rf"(^|[\s'\"`(,]){re.escape(n)}(\[\d+\])?[:'\"`]", msg) for n in names.split()), \
        f"{getattr(fn, '__name__', fn)}: {type(info.value).__name__}({msg!r}) does not name {names!r}"


X = np.zeros((1, 4, 8, 8), np.float32)
W = np.zeros((6, 4, 3, 3), np.float32)


def test_conv2d_rejects_mismatched_shapes():
    raises_naming(ValueError, "w x", knn.conv2d, X, np.zeros((6, 3, 3, 3), np.float32))        # channels
    raises_naming(ValueError, "groups", knn.conv2d, X, np.zeros((6, 1, 3, 3), np.float32), groups=3)  # 4 % 3
    raises_naming(ValueError, "groups w", knn.conv2d, X, np.zeros((5, 2, 3, 3), np.float32), groups=2)  # 5 % 2
    raises_naming(ValueError, "groups", knn.conv2d, X, W, groups=0)
    raises_naming(ValueError, "bias", knn.conv2d, X, W, np.zeros(5, np.float32))
    raises_naming(ValueError, "bias", knn.conv2d, X, W, np.zeros((6, 1), np.float32))
    raises_naming(ValueError, "w", knn.conv2d, X, np.zeros((6, 4, 3), np.float32))
    raises_naming(ValueError, "w", knn.conv2d, X, np.zeros((0, 4, 3, 3), np.float32))
    raises_naming(ValueError, "w", knn.conv2d, X, np.zeros((6, 4, 0, 3), np.float32))
    raises_naming(ValueError, "x", knn.conv2d, X[0], W)
    raises_naming(ValueError, "x", knn.conv2d, X[None], W)
    raises_naming(ValueError, "x", knn.conv2d, np.zeros((1, 4, 0, 8), np.float32), W, padding=1)
    raises_naming(ValueError, "x", knn.conv2d, np.zeros((0, 4, 8, 8), np.float32), W)  # empty batch
    raises_naming(ValueError, "x", knn.conv2d, np.zeros((1, 0, 8, 8), np.float32), np.zeros((6, 0, 3, 3)))


def test_conv2d_rejects_kernel_larger_than_padded_input():
    raises_naming(ValueError, "w x padding kernel", knn.conv2d, X[:, :, :2, :2], W)
    raises_naming(ValueError, "w x padding kernel", knn.conv2d, X[:, :, :3, :2], W, padding=(0, 0, 0, 0))
    raises_naming(ValueError, "w x padding kernel dilation", knn.conv2d, X[:, :, :5, :5], W, dilation=3)
    raises_naming(ValueError, "w x padding kernel dilation", knn.conv2d, X, W, dilation=2 ** 31)
    raises_naming(ValueError, "w x padding kernel", knn.conv2d, X[:, :, :1, :8], W, padding="valid")
    # one more pad row makes it fit
    assert knn.conv2d(X[:, :, :2, :2], W, padding=(1, 1, 0, 0)).shape == (1, 6, 1, 1)


def test_conv2d_rejects_bad_dtypes():
    for bad in (X.astype(np.int32), X.astype(np.complex64), X.astype(object), X.astype(bool), "x"):
        raises_naming(TypeError, "x", knn.conv2d, bad, W)
    for bad in (W.astype(np.int64), W.astype(np.complex128), W.astype(object)):
        raises_naming(TypeError, "w", knn.conv2d, X, bad)
    raises_naming(TypeError, "bias", knn.conv2d, X, W, np.zeros(6, np.complex64))
    raises_naming(TypeError, "x", knn.depthwise_conv2d, X.astype(np.int8), W[:4, :1])
    raises_naming(TypeError, "x", knn.pointwise_conv2d, X.astype(np.uint8), W[:, :, 0, 0])
    raises_naming(TypeError, "residual", knn.pointwise_conv2d, X, W[:, :, 0, 0],
                  residual=np.zeros((1, 6, 8, 8), np.complex64))


def test_conv2d_rejects_bad_stride_padding_dilation():
    for s in (0, -1, (1, 0), (2, -2)):
        raises_naming(ValueError, "stride", knn.conv2d, X, W, stride=s)
    raises_naming((ValueError, TypeError), "stride", knn.conv2d, X, W, stride=(1, 2, 3))
    raises_naming(TypeError, "stride", knn.conv2d, X, W, stride=1.5)
    for d in (0, -2, (1, 0)):
        raises_naming(ValueError, "dilation", knn.conv2d, X, W, dilation=d)
    for p in (-1, (1, -1), (0, 0, -1, 0), (1, 2, 3), "full", "SAME_LOWER"):
        raises_naming((ValueError, TypeError), "padding", knn.conv2d, X, W, padding=p)
    raises_naming(TypeError, "padding", knn.conv2d, X, W, padding=1.5)
    raises_naming((ValueError, TypeError), "threads", knn.conv2d, X, W, threads=-1)
    raises_naming(ValueError, "activation", knn.conv2d, X, W, activation="gelu")
    raises_naming(ValueError, "activation", knn.conv2d, X, W, activation=("clip", 2.0, 1.0))


def test_huge_outputs_are_refused_before_allocating():
    """Padding (or channels) that would make a multi-GB output: ValueError at once, never a
    MemoryError, an overflowed size or an attempt to allocate it."""
    x = np.ones((1, 1, 1, 1), np.float32)
    w = np.ones((64, 1, 1, 1), np.float32)
    raises_naming(ValueError, "padding", knn.conv2d, x, w, padding=8000)              # 64 x 16001^2 floats, 65 GB
    raises_naming(ValueError, "padding", knn.conv2d, x, w, padding=4000)              # 15 GiB: under 2^32 elements
    raises_naming(ValueError, "w", knn.conv2d, np.ones((64, 1, 100, 100), np.float32),
                  np.ones((2048, 1, 1, 1), np.float32))                               # 5 GiB from a 2.5 MB input
    raises_naming(ValueError, "padding x w", knn.conv2d, x, w, padding=2 ** 31)       # beyond int32
    raises_naming(ValueError, "padding x w", knn.conv2d, x, w, padding=2 ** 40)
    raises_naming(ValueError, "padding x w", knn.conv2d, x, w, padding=(0, 0, 2 ** 62, 2 ** 62))
    raises_naming(ValueError, "padding x w", knn.conv2d, x, np.ones((1 << 20, 1, 1, 1), np.float32), padding=50)
    raises_naming(ValueError, "padding x w", knn.depthwise_conv2d, x, w[:1], padding=(100000, 100000))
    raises_naming(ValueError, "padding x w", knn.depthwise_conv2d, np.ones((1, 1, 300, 300), np.float32), w[:1],
                  padding=(40000, 40000))
    # a stride past int32 is either refused or exact (one output pixel)
    try:
        got = knn.conv2d(X, W + 1, stride=2 ** 31)
    except ValueError as e:
        assert "stride" in str(e)
    else:
        bitwise_equal(got, knn.conv2d(X, W + 1, stride=100), "stride 2**31")


def test_pools_reject_bad_arguments():
    x = X
    raises_naming(TypeError, "x", knn.max_pool2d, x.astype(np.int32), 2)
    raises_naming(TypeError, "x", knn.avg_pool2d, x.astype(np.complex64), 2)
    raises_naming(TypeError, "x", knn.global_avg_pool2d, x.astype(object))
    raises_naming(ValueError, "x", knn.max_pool2d, x[0], 2)
    raises_naming(ValueError, "x", knn.global_avg_pool2d, x[0])
    raises_naming(ValueError, "x", knn.max_pool2d, np.zeros((0, 4, 8, 8), np.float32), 2)
    raises_naming(ValueError, "x", knn.avg_pool2d, np.zeros((0, 4, 8, 8), np.float32), 2)
    raises_naming(ValueError, "x", knn.global_avg_pool2d, np.zeros((0, 4, 8, 8), np.float32))
    for k in (0, -1, (2, 0)):
        raises_naming(ValueError, "kernel_size", knn.max_pool2d, x, k)
        raises_naming(ValueError, "kernel_size", knn.avg_pool2d, x, k)
    raises_naming(ValueError, "stride", knn.max_pool2d, x, 2, stride=0)
    raises_naming(ValueError, "stride", knn.avg_pool2d, x, 2, stride=-1)
    raises_naming(ValueError, "dilation", knn.max_pool2d, x, 2, dilation=0)
    # pads at least the kernel: windows entirely in the padding (onnxruntime refuses them too)
    raises_naming(ValueError, "padding", knn.max_pool2d, x, 2, padding=2)
    raises_naming(ValueError, "padding", knn.avg_pool2d, x, 3, padding=(0, 3))
    raises_naming(ValueError, "padding", knn.max_pool2d, x, 2, padding=-1)
    raises_naming(ValueError, "kernel_size kernel x padding", knn.max_pool2d, x, 9)
    raises_naming(ValueError, "kernel_size kernel x padding", knn.avg_pool2d, x, (2, 9), padding=(0, 0, 0, 0))
    raises_naming(ValueError, "kernel_size kernel x padding dilation", knn.max_pool2d, x, 3, dilation=4)
    raises_naming(TypeError, "ceil_mode", knn.max_pool2d, x, 2, ceil_mode="yes")
    raises_naming(TypeError, "count_include_pad", knn.avg_pool2d, x, 2, count_include_pad=None)


def test_elementwise_concat_dense_softmax_reject_bad_arguments():
    a = np.zeros((2, 3, 4, 5), np.float32)
    raises_naming(ValueError, "b", knn.add, a, np.zeros((2, 3, 4, 4), np.float32))
    raises_naming(ValueError, "b", knn.mul, a, np.zeros((2, 3, 1, 2), np.float32))
    raises_naming(ValueError, "b", knn.add, a, np.zeros((2, 4, 1, 1), np.float32))
    raises_naming(ValueError, "b", knn.add, a, np.zeros((1, 3, 1, 1), np.float32))   # not (N, C, 1, 1)
    raises_naming(TypeError, "a", knn.add, a.astype(np.int16), a)
    raises_naming(TypeError, "b", knn.mul, a, a.astype(np.complex64))
    raises_naming(ValueError, "a", knn.add, np.zeros((0, 3, 4, 5), np.float32), np.zeros((0, 3, 4, 5), np.float32))
    raises_naming(ValueError, "activation", knn.add, a, a, activation="tanh")
    raises_naming((ValueError, TypeError), "xs", knn.concat, [])
    raises_naming(ValueError, "xs", knn.concat, [a, np.zeros((2, 3, 4, 6), np.float32)])
    raises_naming(ValueError, "xs", knn.concat, [a, np.zeros((3, 3, 4, 5), np.float32)])
    raises_naming(ValueError, "xs", knn.concat, [a, a[0]])
    raises_naming(TypeError, "xs", knn.concat, [a, a.astype(np.int32)])
    raises_naming(ValueError, "axis", knn.concat, [a, a], axis=2)
    raises_naming(ValueError, "x", knn.flatten, a[0])
    raises_naming(TypeError, "x", knn.flatten, a.astype(np.complex64))
    x2 = np.zeros((2, 7), np.float32)
    raises_naming(ValueError, "w", knn.dense, x2, np.zeros((3, 8), np.float32))
    raises_naming(ValueError, "bias", knn.dense, x2, np.zeros((3, 7), np.float32), np.zeros(4, np.float32))
    raises_naming(ValueError, "x", knn.dense, a, np.zeros((3, 60), np.float32))
    raises_naming(TypeError, "w", knn.dense, x2, np.zeros((3, 7), np.int32))
    raises_naming(ValueError, "x", knn.dense, np.zeros((0, 7), np.float32), np.zeros((3, 7), np.float32))
    raises_naming(ValueError, "x", knn.softmax, a)
    raises_naming(TypeError, "x", knn.softmax, x2.astype(object))
    raises_naming(ValueError, "axis", knn.softmax, x2, axis=2)
    raises_naming(ValueError, "kind activation", knn.activation, a, "gelu")
    raises_naming(TypeError, "x", knn.activation, a.astype(np.int32), "relu")
    raises_naming(ValueError, "w x", knn.depthwise_conv2d, X, np.zeros((5, 1, 3, 3), np.float32))
    raises_naming(ValueError, "w", knn.depthwise_conv2d, X, np.zeros((4, 2, 3, 3), np.float32))
    raises_naming(ValueError, "w x", knn.pointwise_conv2d, X, np.zeros((6, 5), np.float32))
    raises_naming(ValueError, "w", knn.pointwise_conv2d, X, np.zeros((6, 4, 3, 3), np.float32))
    raises_naming(ValueError, "residual", knn.pointwise_conv2d, X, np.zeros((6, 4), np.float32),
                  residual=np.zeros((1, 6, 8, 7), np.float32))
