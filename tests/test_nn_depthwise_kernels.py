"""The depthwise convolution kernels of keensight.nn (cpp/src/nn/depthwise_*.cpp) through
their private binding _nn_depthwise, against onnxruntime running the same layer: a one-node
ONNX graph Conv(group=C) (+ the activation) built with onnx.helper, NCHW there, NHWC here,
at every dispatch level; then bad input, which must raise, never crash."""
from __future__ import annotations

import numpy as np
import pytest

from keensight import _core

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

# (kind, lo, hi, alpha, beta) of the binding, and the ONNX nodes computing the same from "t".
INF = float("inf")
ACTIVATIONS = {
    "none": ((0, -INF, INF, 1 / 6, 0.5), lambda: []),
    "relu": ((1, 0.0, INF, 1 / 6, 0.5), lambda: [helper.make_node("Relu", ["t"], ["y"])]),
    "relu6": ((1, 0.0, 6.0, 1 / 6, 0.5), lambda: [helper.make_node("Clip", ["t", "lo", "hi"], ["y"])]),
    "hardsigmoid": ((3, 0.0, 0.0, 0.2, 0.5),
                    lambda: [helper.make_node("HardSigmoid", ["t"], ["y"], alpha=0.2, beta=0.5)]),
    "hardswish": ((2, 0.0, 0.0, 1 / 6, 0.5), lambda: [helper.make_node("HardSwish", ["t"], ["y"])]),
    "sigmoid": ((4, 0.0, 0.0, 1 / 6, 0.5), lambda: [helper.make_node("Sigmoid", ["t"], ["y"])]),
    "swish": ((5, 0.0, 0.0, 1 / 6, 0.5), lambda: [helper.make_node("Sigmoid", ["t"], ["sg"]),
                                                  helper.make_node("Mul", ["t", "sg"], ["y"])]),
}


def ort_depthwise(x_nchw, w, b, stride, pads, dilation, act="none"):
    """onnxruntime's Conv(group=C) (+ activation) on an NCHW batch."""
    n, c, h, wd = x_nchw.shape
    kh, kw = w.shape[2:]
    extra = ACTIVATIONS[act][1]()
    conv_out = "t" if extra else "y"
    nodes = [helper.make_node("Conv", ["x", "w", "b"], [conv_out], group=c, kernel_shape=[kh, kw],
                              strides=list(stride), pads=list(pads), dilations=list(dilation))] + extra
    inits = [helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel()),
             helper.make_tensor("b", TensorProto.FLOAT, b.shape, b),
             helper.make_tensor("lo", TensorProto.FLOAT, [], [0.0]),
             helper.make_tensor("hi", TensorProto.FLOAT, [], [6.0])]
    graph = helper.make_graph(nodes, "dw", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, c, h, wd])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x_nchw})[0]


def ours(x_nchw, w, b, stride, pads, dilation, act="none", level=None, num_threads=0):
    """keensight on each image of the batch, NHWC, back to NCHW."""
    outs = [_core._nn_depthwise(np.ascontiguousarray(img.transpose(1, 2, 0)), w, b, stride, pads, dilation,
                                ACTIVATIONS[act][0], level, num_threads) for img in x_nchw]
    return np.stack([o.transpose(2, 0, 1) for o in outs])


def assert_matches_ort(x, w, b, stride, pads, dilation, act):
    want = ort_depthwise(x, w, b, stride, pads, dilation, act)
    got = ours(x, w, b, stride, pads, dilation, act)
    assert got.shape == want.shape
    # The scale of each output: sum |x w| over its taps + |b| (the same conv on magnitudes).
    magnitude = ort_depthwise(np.abs(x), np.abs(w), np.abs(b), stride, pads, dilation)
    err = np.abs(got.astype(np.float64) - want)
    bound = 1e-4 * np.maximum(magnitude, 1e-6)
    worst = np.unravel_index(np.argmax(err / bound), err.shape)
    assert np.all(err <= bound), (f"max error {err[worst]:.3g} at {worst} (bound {bound[worst]:.3g}): "
                                  f"got {got[worst]}, onnxruntime {want[worst]}")


# (batch, C, H, W, kh, kw, stride, pads (top, left, bottom, right), dilation)
SHAPES = [
    (1, 1, 1, 1, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),
    (3, 7, 2, 3, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),
    (1, 17, 9, 10, 3, 3, (2, 2), (0, 0, 1, 1), (1, 1)),  # TF-SAME at stride 2: pads after only
    (1, 33, 11, 11, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1)),
    (3, 24, 8, 7, 3, 3, (1, 1), (0, 2, 1, 0), (1, 1)),
    (1, 40, 12, 12, 5, 5, (1, 1), (2, 2, 2, 2), (1, 1)),
    (1, 19, 13, 14, 5, 5, (2, 2), (1, 1, 2, 2), (1, 1)),  # Lite0's SAME 5x5 stride 2
    (3, 5, 2, 3, 5, 5, (1, 1), (2, 2, 2, 2), (1, 1)),
    (1, 9, 7, 6, 5, 5, (2, 2), (5, 0, 3, 4), (1, 1)),
    (1, 13, 15, 9, 3, 3, (1, 1), (2, 2, 2, 2), (2, 2)),  # dilation 2
    (1, 6, 10, 11, 5, 5, (2, 1), (4, 4, 4, 4), (2, 2)),
    (1, 21, 9, 9, 7, 7, (1, 1), (3, 3, 3, 3), (1, 1)),  # kernel 7
    (3, 11, 6, 8, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1)),  # kernel 1
    (1, 16, 8, 8, 1, 1, (2, 2), (1, 0, 0, 1), (1, 1)),
    (1, 32, 14, 14, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),
    (1, 48, 20, 19, 3, 5, (1, 2), (1, 2, 1, 2), (1, 1)),  # rectangular kernel, mixed strides
    (1, 10, 4, 4, 3, 3, (3, 3), (1, 1, 1, 1), (1, 1)),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:6])) + f"_s{s[6][0]}{s[6][1]}")
def test_matches_onnxruntime_at_every_level(isa, rng, shape):
    n, c, h, wd, kh, kw, stride, pads, dilation = shape
    x = rng.standard_normal((n, c, h, wd), dtype=np.float32)
    w = rng.standard_normal((c, 1, kh, kw), dtype=np.float32)
    b = rng.standard_normal(c, dtype=np.float32)
    for act in ("none", "relu6"):
        assert_matches_ort(x, w, b, stride, pads, dilation, act)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_activations_match_onnxruntime(isa, rng, act):
    # 3x3 and 5x5 at strides 1 and 2 (the fixed-shape kernels) and a dilated one (dwconv_any).
    for k, stride, pads, dilation in ((3, 1, (1, 1, 1, 1), 1), (3, 2, (0, 0, 1, 1), 1), (5, 1, (2, 2, 2, 2), 1),
                                      (5, 2, (1, 1, 2, 2), 1), (3, 1, (2, 2, 2, 2), 2)):
        c = int(rng.integers(1, 41))
        x = 3 * rng.standard_normal((1, c, 9, 12), dtype=np.float32)
        w = rng.standard_normal((c, 1, k, k), dtype=np.float32)
        b = rng.standard_normal(c, dtype=np.float32)
        assert_matches_ort(x, w, b, (stride, stride), pads, (dilation, dilation), act)


def test_explicit_level_and_threads_agree(rng):
    x = rng.standard_normal((1, 37, 30, 29), dtype=np.float32)
    w = rng.standard_normal((37, 1, 3, 3), dtype=np.float32)
    b = rng.standard_normal(37, dtype=np.float32)
    info = _core.cpu_info()
    levels = [lv for lv in info["levels"] if lv in info["compiled_levels"]]
    ref = ours(x, w, b, (1, 1), (1, 1, 1, 1), (1, 1), "relu6", level="scalar", num_threads=1)
    for level in levels:
        for threads in (1, 2, 3):
            got = ours(x, w, b, (1, 1), (1, 1, 1, 1), (1, 1), "relu6", level=level, num_threads=threads)
            # Same fused multiply-adds in the same order at every level: bit for bit.
            np.testing.assert_array_equal(got, ref, err_msg=f"level {level}, {threads} threads")


def test_no_bias_is_zero_bias(rng):
    x = rng.standard_normal((5, 6, 19), dtype=np.float32)
    w = rng.standard_normal((19, 1, 3, 3), dtype=np.float32)
    np.testing.assert_array_equal(_core._nn_depthwise(x, w, None, (1, 1), (1, 1, 1, 1)),
                                  _core._nn_depthwise(x, w, np.zeros(19, np.float32), (1, 1), (1, 1, 1, 1)))


def good_args():
    x = np.zeros((6, 6, 4), np.float32)
    w = np.zeros((4, 1, 3, 3), np.float32)
    return dict(x=x, w=w, bias=np.zeros(4, np.float32), stride=(1, 1), pads=(1, 1, 1, 1), dilation=(1, 1),
                act=(1, 0.0, 6.0, 1 / 6, 0.5))


@pytest.mark.parametrize("change, error, match", [
    (dict(x=np.zeros((6, 6, 4))), TypeError, "x: expected dtype float32"),
    (dict(x=[[[0.0]]]), TypeError, "x: expected a numpy array"),
    (dict(x=np.zeros((6, 6), np.float32)), ValueError, "x: expected a 3-D array"),
    (dict(x=np.zeros((0, 6, 4), np.float32)), ValueError, "input: expected a non-empty image"),
    (dict(w=np.zeros((5, 1, 3, 3), np.float32)), ValueError, "w: expected shape"),
    (dict(w=np.zeros((4, 2, 3, 3), np.float32)), ValueError, "w: expected shape"),
    (dict(w=np.zeros((4, 1, 3), np.float32)), ValueError, "w: expected a 4-D array"),
    (dict(w=np.zeros((4, 1, 0, 3), np.float32)), ValueError, "kernel: expected sizes >= 1"),
    (dict(w=np.zeros((4, 1, 9, 9), np.float32)), ValueError, "larger than the padded input"),
    (dict(bias=np.zeros(3, np.float32)), ValueError, "bias: expected 4 values"),
    (dict(bias=np.zeros(4, np.int32)), TypeError, "bias: expected dtype float32"),
    (dict(stride=(0, 1)), ValueError, "stride"),
    (dict(stride=(1,)), ValueError, "stride: expected 2 values"),
    (dict(stride=(1.0, 1.0)), TypeError, "stride: expected ints"),
    (dict(stride=(True, 1)), TypeError, "stride: expected ints"),
    (dict(stride=2), TypeError, "stride: expected a tuple"),
    (dict(pads=(1, 1, 1)), ValueError, "pads: expected 4 values"),
    (dict(pads=(-1, 0, 0, 0)), ValueError, "pads: expected values >= 0"),
    (dict(pads=(2**40, 0, 0, 0)), ValueError, "out of range"),
    (dict(dilation=(0, 1)), ValueError, "dilation"),
    (dict(act=(9, 0.0, 6.0, 0.1, 0.5)), ValueError, "act: kind"),
    (dict(act=(1, 6.0, 0.0, 0.1, 0.5)), ValueError, "lo <= hi"),
    (dict(act=(1, 0.0, 6.0)), ValueError, "act: expected 5 values"),
    (dict(act=(1, "a", 6.0, 0.1, 0.5)), TypeError, "act lo: expected a number"),
    (dict(level="avx9000"), ValueError, "avx9000"),
    (dict(level=3), TypeError, "level"),
])
def test_bad_input_raises(change, error, match):
    args = good_args()
    args.update(change)
    with pytest.raises(error, match=match):
        _core._nn_depthwise(**args)


def test_good_args_run():
    out = _core._nn_depthwise(**good_args())
    assert out.shape == (6, 6, 4) and out.dtype == np.float32 and not out.any()


def test_non_contiguous_input_is_accepted(rng):
    x = rng.standard_normal((8, 8, 10), dtype=np.float32)
    w = rng.standard_normal((10, 1, 3, 3), dtype=np.float32)
    view = np.asfortranarray(x)
    np.testing.assert_array_equal(_core._nn_depthwise(view, w, None, (1, 1), (1, 1, 1, 1)),
                                  _core._nn_depthwise(x, w, None, (1, 1), (1, 1, 1, 1)))


def test_numpy_scalars_are_accepted(rng):
    x = rng.standard_normal((5, 5, 3), dtype=np.float32)
    w = rng.standard_normal((3, 1, 3, 3), dtype=np.float32)
    want = _core._nn_depthwise(x, w, None, (1, 1), (1, 1, 1, 1), (1, 1), (1, 0.0, 6.0, 0.2, 0.5))
    got = _core._nn_depthwise(x, w, None, (np.int64(1), np.int32(1)), [np.int8(1)] * 4, (1, 1),
                              (np.int64(1), np.float32(0), np.float64(6), 0.2, 0.5))
    np.testing.assert_array_equal(got, want)
