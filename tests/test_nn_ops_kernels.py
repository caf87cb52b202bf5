"""The nn ops kernels (pools, elementwise ops with fused activations, channel affine,
global average pool, the direct stem convolution) against onnxruntime running the same
one-node ONNX graphs, at every ISA level (the `isa` fixture) and through the explicit
`level=` table; bad inputs to the private bindings raise clear exceptions.

The bindings take one NHWC image (H, W, C); ONNX takes NCHW (1, C, H, W): the tests
transpose at the edge."""
from __future__ import annotations

import math

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from keensight import _core  # noqa: E402

INF = math.inf
# (kind, lo, hi, alpha, beta) as nn::Activation (kind: 0 none, 1 clip, 2 hardswish,
# 3 hardsigmoid, 4 sigmoid, 5 swish).
NONE = (0, -INF, INF, 1 / 6, 0.5)
RELU = (1, 0.0, INF, 1 / 6, 0.5)
RELU6 = (1, 0.0, 6.0, 1 / 6, 0.5)
HARDSWISH = (2, -INF, INF, 1 / 6, 0.5)  # ONNX HardSwish: alpha 1/6, beta 0.5
HARDSIGMOID = (3, -INF, INF, 0.2, 0.5)  # ONNX HardSigmoid defaults
SIGMOID = (4, -INF, INF, 1 / 6, 0.5)
SWISH = (5, -INF, INF, 1 / 6, 0.5)


# ------------------------------------------------------------------------------------------
# onnxruntime on a one-node (or few-node) graph
# ------------------------------------------------------------------------------------------

def run_onnx(nodes, inputs, initializers=(), opset=19):
    """Runs the graph of `nodes` in onnxruntime (1 thread) on `inputs` (name -> array);
    its one output is named 'y'."""
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(a.shape)) for name, a in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.asarray(v, dtype=np.float32), name) for name, v in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(["y"], inputs)[0]


def to_nchw(x_hwc):
    return np.ascontiguousarray(x_hwc.transpose(2, 0, 1)[None])


def to_hwc(y_nchw):
    assert y_nchw.shape[0] == 1
    return np.ascontiguousarray(y_nchw[0].transpose(1, 2, 0))


def assert_close(got, want, rtol=1e-4):
    assert got.shape == want.shape, (got.shape, want.shape)
    atol = rtol * 1e-2 * max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def image(rng, h, w, c, lo=-3.0, hi=3.0):
    return rng.uniform(lo, hi, size=(h, w, c)).astype(np.float32)


# ------------------------------------------------------------------------------------------
# MaxPool / AveragePool
# ------------------------------------------------------------------------------------------

# (H, W, C, kernel, strides, pads (top, left, bottom, right), dilations, ceil_mode)
MAX_POOL_CASES = [
    (112, 112, 16, (3, 3), (2, 2), (0, 0, 1, 1), (1, 1), False),  # TF-SAME 3x3 s2
    (9, 11, 40, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False),
    (8, 8, 17, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), False),
    (7, 6, 5, (3, 2), (1, 2), (2, 0, 1, 1), (1, 1), False),  # asymmetric pads
    (10, 9, 3, (3, 3), (1, 1), (0, 1, 2, 0), (2, 2), False),  # dilation 2
    (9, 10, 33, (2, 3), (2, 3), (0, 1, 0, 2), (2, 1), True),  # dilation, ceil mode
    (4, 4, 8, (2, 2), (2, 2), (0, 0, 1, 1), (1, 1), True),  # ceil: the last window would start in the pad
    (5, 7, 1, (3, 3), (2, 2), (1, 0, 1, 0), (1, 1), True),
    (1, 1, 20, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), False),  # 1x1
    (2, 3, 9, (2, 2), (1, 1), (1, 1, 1, 1), (1, 1), False),  # 2x3
    (6, 13, 24, (5, 4), (3, 2), (2, 3, 1, 0), (1, 1), True),
]


@pytest.mark.parametrize("case", MAX_POOL_CASES, ids=lambda c: "x".join(map(str, c[:3])) + f"-k{c[3]}s{c[4]}p{c[5]}d{c[6]}c{int(c[7])}")
def test_max_pool_matches_onnxruntime(isa, rng, case):
    h, w, c, kernel, strides, pads, dilations, ceil_mode = case
    x = image(rng, h, w, c)
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=list(kernel), strides=list(strides),
                            pads=[pads[0], pads[1], pads[2], pads[3]], dilations=list(dilations),
                            ceil_mode=int(ceil_mode))
    want = to_hwc(run_onnx([node], {"x": to_nchw(x)}))
    got = _core._nn_pool("max", x, kernel, strides, pads, dilations, ceil_mode, False)
    np.testing.assert_array_equal(got, want)  # a maximum is exact
    np.testing.assert_array_equal(_core._nn_pool("max", x, kernel, strides, pads, dilations, ceil_mode, False,
                                                 level=isa), want)


# (H, W, C, kernel, strides, pads, ceil_mode)
AVG_POOL_CASES = [
    (14, 14, 19, (3, 3), (1, 1), (1, 1, 1, 1), False),
    (9, 11, 40, (3, 3), (2, 2), (0, 0, 1, 1), False),
    (7, 6, 5, (3, 2), (1, 2), (2, 0, 1, 1), False),
    (5, 7, 16, (3, 3), (2, 2), (1, 0, 1, 0), True),
    (4, 4, 8, (2, 2), (2, 2), (0, 0, 1, 1), True),
    (8, 9, 33, (4, 3), (3, 2), (1, 2, 2, 1), True),
    (1, 1, 3, (1, 1), (1, 1), (0, 0, 0, 0), False),
    (2, 3, 9, (2, 2), (1, 1), (1, 1, 1, 1), False),
    (7, 7, 64, (7, 7), (1, 1), (0, 0, 0, 0), False),
]


@pytest.mark.parametrize("count_include_pad", [False, True])
@pytest.mark.parametrize("case", AVG_POOL_CASES, ids=lambda c: "x".join(map(str, c[:3])) + f"-k{c[3]}s{c[4]}p{c[5]}c{int(c[6])}")
def test_avg_pool_matches_onnxruntime(isa, rng, case, count_include_pad):
    h, w, c, kernel, strides, pads, ceil_mode = case
    x = image(rng, h, w, c)
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=list(kernel), strides=list(strides),
                            pads=list(pads), ceil_mode=int(ceil_mode), count_include_pad=int(count_include_pad))
    want = to_hwc(run_onnx([node], {"x": to_nchw(x)}))
    got = _core._nn_pool("average", x, kernel, strides, pads, (1, 1), ceil_mode, count_include_pad, level=isa)
    assert_close(got, want)


def test_pool_result_does_not_depend_on_thread_count(rng):
    x = image(rng, 57, 31, 24)
    before = _core.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            _core.set_num_threads(threads)
            results.append((_core._nn_pool("average", x, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), True, False),
                            _core._nn_pool("max", x, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), False, False)))
    finally:
        _core.set_num_threads(before)
    for avg, mx in results[1:]:
        np.testing.assert_array_equal(avg, results[0][0])
        np.testing.assert_array_equal(mx, results[0][1])


def test_max_pool_edge_values(isa):
    # An all-(-inf) window gives -inf; a NaN in the window gives NaN.
    x = np.full((3, 3, 18), -np.inf, dtype=np.float32)
    x[1, 1, 5] = np.nan
    x[2, 2, 7] = 3.0
    got = _core._nn_pool("max", x, (3, 3), (3, 3), (0, 0, 0, 0), (1, 1), False, False, level=isa)
    assert got.shape == (1, 1, 18)
    assert np.isnan(got[0, 0, 5]) and got[0, 0, 7] == 3.0
    assert np.all(got[0, 0, [c for c in range(18) if c not in (5, 7)]] == -np.inf)


# ------------------------------------------------------------------------------------------
# GlobalAveragePool, Add, Mul, channel broadcast, activations
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(7, 7, 1280), (1, 1, 5), (2, 3, 17), (14, 14, 40)])
def test_global_avg_pool_matches_onnxruntime(isa, rng, shape):
    x = image(rng, *shape, lo=0.0, hi=6.0)
    node = helper.make_node("GlobalAveragePool", ["x"], ["y"])
    want = run_onnx([node], {"x": to_nchw(x)}).reshape(-1)
    assert_close(_core._nn_global_avg_pool(x, level=isa), want)
    assert_close(_core._nn_global_avg_pool(x), want)


ACTIVATION_GRAPHS = {
    # name: (our act tuple, nodes from 't' to 'y', initializers)
    "none": (NONE, [helper.make_node("Identity", ["t"], ["y"])], []),
    "relu": (RELU, [helper.make_node("Relu", ["t"], ["y"])], []),
    "relu6": (RELU6, [helper.make_node("Clip", ["t", "lo", "hi"], ["y"])], [("lo", 0.0), ("hi", 6.0)]),
    "clip": ((1, -1.5, 2.25, 1 / 6, 0.5), [helper.make_node("Clip", ["t", "lo", "hi"], ["y"])],
             [("lo", -1.5), ("hi", 2.25)]),
    "hardswish": (HARDSWISH, [helper.make_node("HardSwish", ["t"], ["y"])], []),
    "hardsigmoid": (HARDSIGMOID, [helper.make_node("HardSigmoid", ["t"], ["y"], alpha=0.2, beta=0.5)], []),
    "sigmoid": (SIGMOID, [helper.make_node("Sigmoid", ["t"], ["y"])], []),
    "swish": (SWISH, [helper.make_node("Sigmoid", ["t"], ["sig"]), helper.make_node("Mul", ["t", "sig"], ["y"])], []),
}


@pytest.mark.parametrize("act_name", list(ACTIVATION_GRAPHS))
@pytest.mark.parametrize("op", ["add", "mul", "activate"])
def test_elementwise_matches_onnxruntime(isa, rng, op, act_name):
    act, act_nodes, inits = ACTIVATION_GRAPHS[act_name]
    a = rng.uniform(-8, 8, size=(3, 5, 37)).astype(np.float32)
    b = rng.uniform(-2, 2, size=a.shape).astype(np.float32)
    if op == "activate":
        nodes = [helper.make_node("Identity", ["a"], ["t"])] + act_nodes
        want = run_onnx(nodes, {"a": a}, inits)
        got = _core._nn_elementwise("activate", a, None, act, level=isa)
    else:
        nodes = [helper.make_node(op.capitalize(), ["a", "b"], ["t"])] + act_nodes
        want = run_onnx(nodes, {"a": a, "b": b}, inits)
        got = _core._nn_elementwise(op, a, b, act, level=isa)
    assert_close(got, want)


@pytest.mark.parametrize("act_name", ["none", "relu6", "hardswish", "sigmoid", "swish"])
@pytest.mark.parametrize("op", ["Mul", "Add"])
def test_channel_broadcast_matches_onnxruntime(isa, rng, op, act_name):
    # Squeeze-excitation: x (1, C, H, W) * s (1, C, 1, 1), and a per-channel shift.
    act, act_nodes, inits = ACTIVATION_GRAPHS[act_name]
    h, w, c = 6, 5, 43
    x = image(rng, h, w, c)
    s = rng.uniform(0, 1, size=c).astype(np.float32)
    nodes = [helper.make_node(op, ["x", "s"], ["t"])] + act_nodes
    want = to_hwc(run_onnx(nodes, {"x": to_nchw(x), "s": s.reshape(1, c, 1, 1)}, inits))
    scale, shift = (s, None) if op == "Mul" else (None, s)
    got = _core._nn_channel_affine(x, scale, shift, act, level=isa)
    assert_close(got, want)


def test_channel_affine_scale_and_shift(isa, rng):
    x = image(rng, 4, 3, 21)
    scale = rng.uniform(-2, 2, size=21).astype(np.float32)
    shift = rng.uniform(-1, 1, size=21).astype(np.float32)
    nodes = [helper.make_node("Mul", ["x", "s"], ["m"]), helper.make_node("Add", ["m", "b"], ["t"]),
             helper.make_node("HardSwish", ["t"], ["y"])]
    want = to_hwc(run_onnx(nodes, {"x": to_nchw(x), "s": scale.reshape(1, -1, 1, 1), "b": shift.reshape(1, -1, 1, 1)}))
    assert_close(_core._nn_channel_affine(x, scale, shift, HARDSWISH, level=isa), want)


# ------------------------------------------------------------------------------------------
# Conv: the direct stem
# ------------------------------------------------------------------------------------------

# (H, W, in_c, out_c, kernel, strides, pads, dilations)
CONV_CASES = [
    (224, 224, 3, 32, (3, 3), (2, 2), (0, 0, 1, 1), (1, 1)),  # EfficientNet / MobileNet stem, TF-SAME
    (17, 23, 3, 32, (3, 3), (2, 2), (0, 0, 1, 1), (1, 1)),
    (5, 6, 3, 32, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    (3, 3, 3, 16, (3, 3), (2, 2), (0, 0, 1, 1), (1, 1)),
    (1, 1, 3, 24, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    (9, 8, 1, 8, (5, 5), (1, 1), (2, 1, 0, 3), (2, 1)),  # dilation, asymmetric pads
    (11, 13, 2, 40, (3, 3), (3, 1), (1, 0, 2, 1), (1, 2)),
    (12, 7, 4, 37, (4, 4), (2, 3), (0, 1, 1, 2), (1, 1)),  # 64 taps, out_c not a multiple of 8
    (6, 9, 7, 5, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
]


@pytest.mark.parametrize("act_name", ["none", "relu6", "hardswish", "swish"])
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[0]}x{c[1]}x{c[2]}-{c[3]}-k{c[4]}s{c[5]}p{c[6]}d{c[7]}")
def test_conv_direct_matches_onnxruntime(isa, rng, case, act_name):
    h, w, in_c, out_c, kernel, strides, pads, dilations = case
    act, act_nodes, inits = ACTIVATION_GRAPHS[act_name]
    x = image(rng, h, w, in_c, lo=-2.0, hi=2.0)
    wt = rng.normal(0, 0.5, size=(out_c, in_c) + kernel).astype(np.float32)
    bias = rng.normal(0, 0.5, size=out_c).astype(np.float32)
    conv = helper.make_node("Conv", ["x", "w", "b"], ["t"], kernel_shape=list(kernel), strides=list(strides),
                            pads=list(pads), dilations=list(dilations))
    want = to_hwc(run_onnx([conv] + act_nodes, {"x": to_nchw(x)}, [("w", wt), ("b", bias)] + inits))
    got = _core._nn_conv_direct(x, wt, bias, strides, pads, dilations, act, level=isa)
    assert_close(got, want)


def test_conv_direct_without_bias_and_thread_count(rng):
    x = image(rng, 61, 47, 3)
    wt = rng.normal(0, 0.5, size=(32, 3, 3, 3)).astype(np.float32)
    conv = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1])
    want = to_hwc(run_onnx([conv], {"x": to_nchw(x)}, [("w", wt)]))
    before = _core.get_num_threads()
    try:
        outs = []
        for threads in (1, 2, 3):
            _core.set_num_threads(threads)
            outs.append(_core._nn_conv_direct(x, wt, None, (2, 2), (0, 0, 1, 1), (1, 1), NONE))
    finally:
        _core.set_num_threads(before)
    assert_close(outs[0], want)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_non_contiguous_input_is_read_correctly(rng):
    big = image(rng, 10, 12, 6)
    x = big[::2, 1::2, :3]  # strided view
    got = _core._nn_pool("max", x, (2, 2), (1, 1), (0, 0, 0, 0), (1, 1), False, False)
    want = _core._nn_pool("max", np.ascontiguousarray(x), (2, 2), (1, 1), (0, 0, 0, 0), (1, 1), False, False)
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------------------------------
# Bad inputs: clear exceptions, never a crash
# ------------------------------------------------------------------------------------------

X = np.zeros((5, 6, 3), dtype=np.float32)
W = np.zeros((8, 3, 3, 3), dtype=np.float32)


@pytest.mark.parametrize("call, error, message", [
    (lambda: _core._nn_pool("max", X.astype(np.float64), (2, 2), (1, 1), (0, 0, 0, 0), (1, 1), False, False),
     TypeError, "float32"),
    (lambda: _core._nn_pool("max", X[0], (2, 2), (1, 1), (0, 0, 0, 0), (1, 1), False, False), ValueError, "3-D"),
    (lambda: _core._nn_pool("min", X, (2, 2), (1, 1), (0, 0, 0, 0), (1, 1), False, False), ValueError, "kind"),
    (lambda: _core._nn_pool("max", X, (7, 2), (1, 1), (0, 0, 0, 0), (1, 1), False, False), ValueError,
     "larger than the padded input"),
    (lambda: _core._nn_pool("max", X, (2, 2), (0, 1), (0, 0, 0, 0), (1, 1), False, False), ValueError, "stride"),
    (lambda: _core._nn_pool("max", X, (2, 2), (1, 1), (2, 0, 0, 0), (1, 1), False, False), ValueError, "pads[0]"),
    (lambda: _core._nn_pool("max", X, (2, 2), (1, 1), (0, 0, 0), (1, 1), False, False), ValueError, "pads"),
    (lambda: _core._nn_pool("max", X, (2, 2), (1, 1), (0, 0, 0, -1), (1, 1), False, False), ValueError, "pads"),
    (lambda: _core._nn_pool("max", X, "ab", (1, 1), (0, 0, 0, 0), (1, 1), False, False), TypeError, "kernel"),
    (lambda: _core._nn_pool("max", X, (2, 2), (1, 1), (0, 0, 0, 0), (1, 1), False, False, level="sse9"),
     ValueError, ""),
    (lambda: _core._nn_pool("max", np.zeros((0, 4, 3), np.float32), (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), False, False),
     ValueError, "height"),
    (lambda: _core._nn_pool("max", X, (2, 2), (1, 1), (0, 0, 0, 0), (10 ** 7, 1), False, False), ValueError,
     "dilation"),
    (lambda: _core._nn_global_avg_pool(np.zeros((0, 3, 2), np.float32)), ValueError, "non-empty"),
    (lambda: _core._nn_global_avg_pool([[1.0]]), TypeError, "numpy array"),
    (lambda: _core._nn_elementwise("add", X, X[:, :, :2].copy(), NONE), ValueError, "shape"),
    (lambda: _core._nn_elementwise("sub", X, X, NONE), ValueError, "op"),
    (lambda: _core._nn_elementwise("activate", X, X, NONE), ValueError, "None"),
    (lambda: _core._nn_elementwise("add", X, X, (9, 0, 0, 0, 0)), ValueError, "kind"),
    (lambda: _core._nn_elementwise("add", X, X, (1, 0, 0)), TypeError, "act"),
    (lambda: _core._nn_elementwise("add", X, X, (1, 6.0, 0.0, 0.0, 0.0)), ValueError, "lo <= hi"),
    (lambda: _core._nn_channel_affine(X, np.ones(4, np.float32), None, NONE), ValueError, "scale"),
    (lambda: _core._nn_channel_affine(X, None, np.ones(3, np.float64), NONE), TypeError, "shift"),
    (lambda: _core._nn_conv_direct(X, W[:, :2].copy(), None, (2, 2), (0, 0, 1, 1), (1, 1), NONE), ValueError,
     "input channels"),
    (lambda: _core._nn_conv_direct(X, np.zeros((8, 3, 5, 5), np.float32), None, (1, 1), (2, 2, 2, 2), (1, 1), NONE),
     ValueError, "<= 64"),
    (lambda: _core._nn_conv_direct(X, W, np.zeros(7, np.float32), (2, 2), (0, 0, 1, 1), (1, 1), NONE), ValueError,
     "bias"),
    (lambda: _core._nn_conv_direct(X, W[0], None, (2, 2), (0, 0, 1, 1), (1, 1), NONE), ValueError, "4-D"),
    (lambda: _core._nn_conv_direct(X, np.zeros((8, 3, 7, 1), np.float32), None, (1, 1), (0, 0, 0, 0), (1, 1), NONE),
     ValueError, "larger than the padded input"),
    (lambda: _core._nn_conv_direct(X, W, None, (2, 2), (0, 0, 1, 1), (1, 1), NONE, level=3), TypeError, "level"),
])
def test_bad_inputs_raise_clear_errors(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)
