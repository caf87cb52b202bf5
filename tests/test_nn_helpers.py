"""keensight.nn.fold_batch_norm and same_padding: against a direct float64 convolution and
batch norm, and against onnxruntime's auto_pad=SAME_UPPER."""
from __future__ import annotations

import numpy as np
import pytest

from keensight.nn import fold_batch_norm, same_padding


def conv2d(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """ONNX Conv in float64, written from its definition: cross-correlation of NCHW `x` with
    OIHW `w`, pads (top, left, bottom, right) as ONNX orders them."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    assert c == cg * groups and o % groups == 0
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    ho = (h + pads[0] + pads[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wd + pads[1] + pads[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, ho, wo))
    og = o // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                r0, c0 = i * dilation[0], j * dilation[1]
                patch = xp[:, g * cg:(g + 1) * cg, r0:r0 + stride[0] * (ho - 1) + 1:stride[0],
                           c0:c0 + stride[1] * (wo - 1) + 1:stride[1]]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, w[g * og:(g + 1) * og, :, i, j])
    if b is not None:
        out += np.asarray(b, np.float64)[None, :, None, None]
    return out


def batch_norm(y, gamma, beta, mean, var, eps):
    """Inference batch norm over the channels of NCHW `y`, float64."""
    r = lambda v: np.asarray(v, np.float64)[None, :, None, None]  # noqa: E731
    return (y - r(mean)) / np.sqrt(r(var) + eps) * r(gamma) + r(beta)


# ------------------------------------------------------------------------------------------
# same_padding
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size,k,s,d,expected", [
    (224, 3, 2, 1, (0, 1)),   # EfficientNet's stem: one extra column at the right only
    (112, 3, 1, 1, (1, 1)),
    (112, 3, 2, 1, (0, 1)),
    (56, 5, 2, 1, (1, 2)),
    (14, 5, 1, 1, (2, 2)),
    (7, 1, 1, 1, (0, 0)),
    (15, 3, 2, 1, (1, 1)),    # odd input: symmetric
    (14, 3, 1, 2, (2, 2)),    # dilation 2: an effective 5x5 kernel
    (10, 3, 4, 1, (0, 1)),
    (5, 1, 3, 1, (0, 0)),     # stride larger than the kernel: no padding needed
    (1, 7, 1, 1, (3, 3)),
])
def test_same_padding_values(size, k, s, d, expected):
    assert same_padding(size, k, s, d) == expected


def test_same_padding_gives_ceil_size_over_stride(rng):
    for _ in range(500):
        size, k, s, d = (int(rng.integers(1, 40)), int(rng.integers(1, 8)), int(rng.integers(1, 5)),
                         int(rng.integers(1, 4)))
        before, after = same_padding(size, k, s, d)
        assert 0 <= before <= after <= before + 1
        out = (size + before + after - d * (k - 1) - 1) // s + 1
        assert out == -(-size // s), (size, k, s, d)
        # the least padding that gives that output: one less would lose the last sample
        if before + after:
            assert (size + before + after - 1 - d * (k - 1) - 1) // s + 1 < out or \
                (size + before + after - 1 - d * (k - 1) - 1) < (out - 1) * s


@pytest.mark.parametrize("size,k,s,d", [(224, 3, 2, 1), (56, 5, 2, 1), (15, 5, 2, 1), (14, 3, 1, 1),
                                        (13, 3, 1, 2), (17, 3, 3, 2), (9, 4, 2, 1), (6, 1, 2, 1)])
def test_same_padding_equals_onnxruntime_same_upper(rng, size, k, s, d):
    """Explicit pads from same_padding give onnxruntime's auto_pad=SAME_UPPER output: the
    same size and the same values (and those of the direct convolution, which also checks
    the dilated cases onnxruntime's auto_pad does not take)."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    # a rectangular input: the two axes get their own pads
    h, wd = size, size + 3
    w = rng.standard_normal((3, 2, k, k)).astype(np.float32)
    x = rng.standard_normal((1, 2, h, wd)).astype(np.float32)

    def run(**attrs):
        node = helper.make_node("Conv", ["x", "w"], ["y"], strides=[s, s], dilations=[d, d], **attrs)
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                  initializer=[numpy_helper.from_array(w, "w")])
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        m.ir_version = 8
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    top, bottom = same_padding(h, k, s, d)
    left, right = same_padding(wd, k, s, d)
    explicit = run(pads=[top, left, bottom, right])
    assert explicit.shape == (1, 3, -(-h // s), -(-wd // s))
    if d == 1:  # onnxruntime refuses auto_pad SAME_* with dilation ("Dilation not supported")
        same_upper = run(auto_pad="SAME_UPPER")
        assert same_upper.shape == explicit.shape
        np.testing.assert_allclose(explicit, same_upper, rtol=1e-6, atol=1e-6)
    ref = conv2d(x, w, stride=(s, s), pads=(top, left, bottom, right), dilation=(d, d))
    np.testing.assert_allclose(explicit, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("args,error,match", [
    ((0, 3, 1), ValueError, "size"),
    ((5, 0, 1), ValueError, "kernel"),
    ((5, 3, 0), ValueError, "stride"),
    ((5, 3, 1, 0), ValueError, "dilation"),
    ((5.0, 3, 1), TypeError, "size: expected an int"),
    ((5, True, 1), TypeError, "kernel: expected an int"),
])
def test_same_padding_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        same_padding(*args)


# ------------------------------------------------------------------------------------------
# fold_batch_norm
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("groups,bias,stride,eps", [(1, False, 2, 1e-3), (1, True, 1, 1e-5), (4, True, 2, 1e-5),
                                                    (12, False, 1, 1e-3)])
def test_fold_batch_norm_equals_conv_then_batch_norm(rng, groups, bias, stride, eps):
    c, o, k = 12, 12 if groups == 12 else 8, 3
    w = rng.standard_normal((o, c // groups, k, k)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32) if bias else None
    gamma, beta, mean = (rng.standard_normal(o).astype(np.float32) for _ in range(3))
    var = rng.uniform(0.01, 3.0, o).astype(np.float32)
    var[0] = 0.0  # a dead channel, as the Lite0 checkpoint has: eps keeps it finite
    x = rng.standard_normal((2, c, 9, 9))
    pads = (1, 1, 1, 1)
    unfolded = batch_norm(conv2d(x, w, b, (stride, stride), pads, groups=groups), gamma, beta, mean, var, eps)
    wf, bf = fold_batch_norm(w, b, gamma, beta, mean, var, eps=eps)
    assert wf.dtype == bf.dtype == np.float32 and wf.shape == w.shape and bf.shape == (o,)
    folded = conv2d(x, wf, bf, (stride, stride), pads, groups=groups)
    # float32 rounding of the folded weights: ~6e-8 relative per term
    scale = np.abs(unfolded).max()
    np.testing.assert_allclose(folded, unfolded, rtol=1e-5, atol=1e-5 * scale)
    # and the folded values are the float64 formula rounded once
    s = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    np.testing.assert_array_equal(wf, (w * s[:, None, None, None]).astype(np.float32))
    b64 = np.zeros(o) if b is None else b.astype(np.float64)
    np.testing.assert_array_equal(bf, ((b64 - mean) * s + beta).astype(np.float32))


def test_fold_batch_norm_other_layouts(rng):
    # a dense layer (out, in): BN(x @ W.T + b) == x @ W'.T + b'
    w = rng.standard_normal((5, 7))
    b = rng.standard_normal(5)
    gamma, beta, mean = rng.standard_normal((3, 5))
    var = rng.uniform(0.1, 2, 5)
    x = rng.standard_normal((4, 7))
    ref = (x @ w.T + b - mean) / np.sqrt(var + 1e-5) * gamma + beta
    wf, bf = fold_batch_norm(w, b, gamma, beta, mean, var)
    np.testing.assert_allclose(x @ wf.T.astype(np.float64) + bf, ref, rtol=1e-5, atol=1e-5)


def test_fold_batch_norm_in_onnxruntime(rng):
    """The folded Conv equals onnxruntime's Conv + BatchNormalization of the same graph."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    o, c = 6, 3
    w = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    gamma, beta, mean = (rng.standard_normal(o).astype(np.float32) for _ in range(3))
    var = rng.uniform(0.05, 2.0, o).astype(np.float32)
    x = rng.standard_normal((1, c, 10, 10)).astype(np.float32)
    init = [numpy_helper.from_array(a, n) for a, n in
            ((w, "w"), (b, "b"), (gamma, "g"), (beta, "beta"), (mean, "m"), (var, "v"))]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["y", "g", "beta", "m", "v"], ["z"], epsilon=1e-3)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], initializer=init)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # no folding of its own
    z = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    wf, bf = fold_batch_norm(w, b, gamma, beta, mean, var, eps=1e-3)
    np.testing.assert_allclose(conv2d(x, wf, bf, pads=(1, 1, 1, 1)), z, rtol=1e-4, atol=1e-4 * np.abs(z).max())


def test_fold_batch_norm_bad_arguments():
    w = np.ones((3, 2, 1, 1))
    ok = dict(b=None, gamma=np.ones(3), beta=np.zeros(3), mean=np.zeros(3), var=np.ones(3))

    def call(w=w, **kw):
        return fold_batch_norm(w, **dict(ok, **kw))

    with pytest.raises(ValueError, match=r"gamma: expected shape \(3,\)"):
        call(gamma=np.ones(4))
    with pytest.raises(ValueError, match=r"b: expected shape \(3,\)"):
        call(b=np.ones((3, 1)))
    with pytest.raises(ValueError, match="mean: contains NaN"):
        call(mean=np.array([0, np.nan, 0]))
    with pytest.raises(ValueError, match="var: variances must be >= 0, channel 1"):
        call(var=np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="eps: var \\+ eps must be > 0"):
        call(var=np.array([1.0, 0.0, 1.0]), eps=0.0)
    with pytest.raises(ValueError, match="eps: expected a number >= 0"):
        call(eps=-1e-5)
    with pytest.raises(TypeError, match="eps: expected a number"):
        call(eps="1e-5")
    with pytest.raises(ValueError, match="w: expected a weight with the output channels first"):
        call(w=np.ones(3))
    with pytest.raises(TypeError, match="w: expected a real numeric array"):
        call(w=np.array([["a"]]))
    with pytest.raises(TypeError, match="beta: expected a real numeric array"):
        call(beta=["a", "b", "c"])
    with pytest.raises(ValueError, match="w: scaled by gamma"):
        call(w=np.full((3, 2, 1, 1), 1e30), var=np.full(3, 1e-30), eps=0.0)


def test_the_lite0_converter_uses_them():
    from keensight import _lite0

    assert _lite0.fold_batch_norm is fold_batch_norm and _lite0.same_padding is same_padding
