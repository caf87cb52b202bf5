"""The ONNX importer (keensight.nn._onnx.graph_from_onnx) against onnxruntime.

Each model is imported, the resulting IR graph is run by the independent NumPy
interpreter in tests/nn_reference.py, and every tensor the graph keeps under an ONNX
name (outputs and intermediates) must equal onnxruntime's value of that tensor in the
original model (1e-4 relative) and have its ONNX shape.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import nn_reference
from keensight.nn._onnx import UnsupportedOperatorError, graph_from_onnx
from keensight.nn.zoo import MOBILENET_V2_SETTINGS, mobilenet_v2_onnx

F = TensorProto.FLOAT


def model_of(nodes, in_shape, out_names, inits=(), opset=13, in_name="x"):
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(inits).items()]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info(in_name, F, list(in_shape))],
                              [helper.make_tensor_value_info(o, F, None) for o in out_names], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    # the checker wants a shape on every output: take the ones ONNX's shape inference finds
    inferred = onnx.shape_inference.infer_shapes(m)
    types = {v.name: v.type for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for o in m.graph.output:
        if not o.type.tensor_type.HasField("shape"):
            if o.name in types and types[o.name].tensor_type.HasField("shape"):
                o.type.CopyFrom(types[o.name])
            else:
                o.type.tensor_type.shape.SetInParent()
                o.type.tensor_type.shape.dim.add()
    return m


def ort_all(model, x, names):
    """onnxruntime's values of `names` (graph outputs or intermediates) of `model` on x."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(helper.make_tensor_value_info(n, F, None))
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = s.run(names, {s.get_inputs()[0].name: x})
    return dict(zip(names, outs))


def check(model, batches=(1, 3), input_shape=None, keep=None, rng=None, scale=1.0):
    """Import, run the IR in NumPy, compare every ONNX-named tensor with onnxruntime."""
    g = graph_from_onnx(model, input_shape=input_shape, keep=keep)
    rng = rng or np.random.default_rng(0)
    (in_name, chw), = g.inputs.items()
    onnx_names = {o for n in model.graph.node for o in n.output}
    names = [t for t in g.tensor_names() if t in onnx_names]
    assert set(g.outputs) <= set(names)
    for n in batches:
        x = (scale * rng.standard_normal((n,) + tuple(chw))).astype(np.float32)
        want = ort_all(model, x, names)
        got = nn_reference.run(g, x, outputs=names)
        for t in names:
            assert got[t].shape == want[t].shape, (t, got[t].shape, want[t].shape)
            assert g.shapes[t] == want[t].shape[1:]
            tol = 1e-4 * max(1.0, float(np.abs(want[t]).max()))
            np.testing.assert_allclose(got[t], want[t], rtol=1e-4, atol=tol, err_msg=t)
    return g


def ops(g):
    return [n.op for n in g.nodes]


def rand(rng, *shape, s=1.0):
    return (s * rng.standard_normal(shape)).astype(np.float32)


# ------------------------------------------------------------------ convolutions
CONV_CASES = [
    # cin, cout, groups, k, stride, pads or auto_pad, dilation, bias, h, w
    (3, 5, 1, 3, 1, (1, 1, 1, 1), 1, True, 7, 6),
    (3, 5, 1, 3, 2, (0, 0, 1, 1), 1, True, 8, 9),
    (6, 6, 6, 3, 1, (1, 1, 1, 1), 1, True, 5, 5),
    (6, 12, 6, 5, 2, (2, 2, 2, 2), 1, False, 9, 8),
    (6, 4, 2, 3, 1, (0, 1, 2, 0), 1, True, 4, 5),
    (5, 7, 1, 1, 1, (0, 0, 0, 0), 1, True, 1, 1),
    (5, 7, 1, 1, 2, (0, 0, 0, 0), 1, False, 2, 3),
    (4, 4, 4, 3, 1, (2, 2, 2, 2), 2, True, 6, 7),
    (4, 6, 2, 3, 2, "SAME_UPPER", 1, True, 7, 8),
    (4, 6, 1, 3, 2, "SAME_LOWER", 1, True, 7, 8),
    (4, 6, 1, 3, 1, "VALID", 2, True, 7, 8),
    (3, 9, 3, (1, 3), (2, 1), (0, 1, 0, 1), 1, True, 5, 6),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_conv(case, rng):
    cin, cout, groups, k, stride, pads, dil, bias, h, w = case
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    attrs = dict(group=groups, strides=[sh, sw], dilations=[dil, dil], kernel_shape=[kh, kw])
    if isinstance(pads, str):
        attrs["auto_pad"] = pads
    else:
        attrs["pads"] = list(pads)
    inits = {"W": rand(rng, cout, cin // groups, kh, kw)}
    ins = ["x", "W"]
    if bias:
        inits["B"] = rand(rng, cout)
        ins.append("B")
    m = model_of([helper.make_node("Conv", ins, ["y"], name="conv", **attrs)], ["N", cin, h, w], ["y"], inits)
    g = check(m, rng=rng)
    assert ops(g) == ["conv"] and g.nodes[0].attrs["groups"] == groups


def test_conv_dynamic_spatial_needs_input_shape(rng):
    m = model_of([helper.make_node("Conv", ["x", "W"], ["y"], name="c", pads=[1, 1, 1, 1])],
                 ["N", 3, "H", "W"], ["y"], {"W": rand(rng, 4, 3, 3, 3)})
    with pytest.raises(ValueError, match="input_shape"):
        graph_from_onnx(m)
    g = check(m, input_shape=(3, 5, 7), rng=rng)
    assert g.inputs == {"x": (3, 5, 7)}
    with pytest.raises(ValueError, match="input_shape"):
        graph_from_onnx(m, input_shape=(4, 5, 7))  # disagrees with the static C = 3
    with pytest.raises(ValueError, match="input_shape"):
        graph_from_onnx(m, input_shape=(3, 5))


def conv_bn_nodes(rng, cin, cout, name="c", src="x", groups=1, k=3):
    inits = {f"{name}.W": rand(rng, cout, cin // groups, k, k, s=0.5),
             f"{name}.g": rng.uniform(0.5, 1.5, cout).astype(np.float32),
             f"{name}.b": rand(rng, cout, s=0.1), f"{name}.m": rand(rng, cout, s=0.1),
             f"{name}.v": rng.uniform(0.5, 1.5, cout).astype(np.float32)}
    nodes = [helper.make_node("Conv", [src, f"{name}.W"], [f"{name}.conv"], name=f"{name}/conv", group=groups,
                              pads=[k // 2] * 4),
             helper.make_node("BatchNormalization", [f"{name}.conv", f"{name}.g", f"{name}.b", f"{name}.m",
                                                     f"{name}.v"], [f"{name}.bn"], name=f"{name}/bn",
                              epsilon=1e-3)]
    return nodes, inits


def test_batch_norm_folds_into_conv(rng):
    nodes, inits = conv_bn_nodes(rng, 4, 6)
    m = model_of(nodes, ["N", 4, 5, 6], ["c.bn"], inits)
    g = check(m, rng=rng)
    assert ops(g) == ["conv"] and g.nodes[0].output == "c.bn"
    assert "c.conv" not in g.tensor_names()  # fused away: documented as not requestable
    g = check(m, keep=["c.conv"], rng=rng)  # asked for: stays, the batch norm is an affine
    assert ops(g) == ["conv", "channel_affine"]


def test_batch_norm_without_conv_is_an_affine(rng):
    c = 5
    inits = {"g": rng.uniform(0.5, 1.5, c).astype(np.float32), "b": rand(rng, c), "m": rand(rng, c),
             "v": rng.uniform(0.5, 1.5, c).astype(np.float32)}
    m = model_of([helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], name="bn")],
                 ["N", c, 3, 4], ["y"], inits)
    assert ops(check(m, rng=rng)) == ["channel_affine"]


def test_batch_norm_folds_into_gemm(rng):
    k, o = 6, 5
    inits = {"B": rand(rng, o, k), "C": rand(rng, o), "g": rng.uniform(0.5, 1.5, o).astype(np.float32),
             "b": rand(rng, o), "m": rand(rng, o), "v": rng.uniform(0.5, 1.5, o).astype(np.float32)}
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("Gemm", ["f", "B", "C"], ["d"], transB=1),
             helper.make_node("BatchNormalization", ["d", "g", "b", "m", "v"], ["y"])]
    assert ops(check(model_of(nodes, ["N", k, 1, 1], ["y"], inits), rng=rng)) == ["flatten", "dense"]


def test_batch_norm_negative_variance_names_node(rng):
    nodes, inits = conv_bn_nodes(rng, 2, 3)
    inits["c.v"] = np.array([1.0, -1.0, 1.0], np.float32)
    m = model_of(nodes, ["N", 2, 4, 4], ["c.bn"], inits)
    with pytest.raises(ValueError, match="c/bn"):
        graph_from_onnx(m)


# ------------------------------------------------------------------ activations
ACTIVATION_NODES = [
    ("Relu", {}, [], 13, ("clip", 0.0, math.inf)),
    ("Clip", {}, [0.0, 6.0], 13, ("clip", 0.0, 6.0)),
    ("Clip", {}, [-1.0, None], 13, ("clip", -1.0, math.inf)),
    ("Clip", {"min": 0.0, "max": 6.0}, [], 6, ("clip", 0.0, 6.0)),
    ("Clip", {"max": 0.5}, [], 6, ("clip", -math.inf, 0.5)),
    ("HardSwish", {}, [], 14, ("hardswish",)),
    ("HardSigmoid", {}, [], 13, ("hardsigmoid", -math.inf, math.inf, 0.2, 0.5)),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, [], 13, ("hardsigmoid", -math.inf, math.inf, 0.3, 0.4)),
    ("Sigmoid", {}, [], 13, ("sigmoid",)),
]


def act_node(op, attrs, bounds, src, out, inits):
    ins = [src]
    for i, b in enumerate(bounds):
        if b is None:
            ins.append("")
        else:
            inits[f"{out}.b{i}"] = np.array(b, np.float32)
            ins.append(f"{out}.b{i}")
    return helper.make_node(op, ins, [out], name=f"{out}/{op}", **attrs)


@pytest.mark.parametrize("after_conv", [False, True])
@pytest.mark.parametrize("case", ACTIVATION_NODES, ids=[f"{c[0]}{i}" for i, c in enumerate(ACTIVATION_NODES)])
def test_activation(case, after_conv, rng):
    op, attrs, bounds, opset, want = case
    inits = {}
    nodes = []
    src = "x"
    if after_conv:
        inits.update(W=rand(rng, 4, 3, 3, 3), B=rand(rng, 4))
        nodes.append(helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1]))
        src = "c"
    nodes.append(act_node(op, attrs, bounds, src, "y", inits))
    m = model_of(nodes, ["N", 3, 5, 4], ["y"], inits, opset=opset)
    g = check(m, rng=rng, scale=4.0)
    assert ops(g) == (["conv"] if after_conv else ["activation"])
    act = g.nodes[-1].attrs["activation"]
    assert act[:len(want)] == pytest.approx(want)


# The exporters' spellings of hard-swish, hard-sigmoid and swish: each must become one
# conv with that activation (and equal onnxruntime).
def chain(kind, src, out, inits):
    def c(v, name):
        inits[name] = np.array(v, np.float32)
        return name
    p = out + "."
    n = helper.make_node
    if kind == "hswish_clip_div":       # x * Clip(x + 3, 0, 6) / 6 (PaddlePaddle, old PyTorch)
        return [n("Add", [src, c(3.0, p + "3")], [p + "a"]), n("Clip", [p + "a", c(0.0, p + "0"), c(6.0, p + "6")],
                                                                [p + "c"]),
                n("Mul", [src, p + "c"], [p + "m"]), n("Div", [p + "m", c(6.0, p + "d")], [out])]
    if kind == "hswish_relu6_mul":      # x * Relu6(x + 3) * (1/6)
        return [n("Add", [c(3.0, p + "3"), src], [p + "a"]), n("Clip", [p + "a", c(0.0, p + "0"), c(6.0, p + "6")],
                                                                [p + "c"]),
                n("Mul", [p + "c", src], [p + "m"]), n("Mul", [p + "m", c(1 / 6, p + "s")], [out])]
    if kind == "hswish_gate_div":       # x * (Clip(x + 3, 0, 6) / 6)
        return [n("Add", [src, c(3.0, p + "3")], [p + "a"]), n("Clip", [p + "a", c(0.0, p + "0"), c(6.0, p + "6")],
                                                                [p + "c"]),
                n("Div", [p + "c", c(6.0, p + "d")], [p + "h"]), n("Mul", [src, p + "h"], [out])]
    if kind == "hswish_hardsigmoid":    # HardSigmoid(x) * x
        return [n("HardSigmoid", [src], [p + "h"], alpha=1 / 6, beta=0.5), n("Mul", [p + "h", src], [out])]
    if kind == "hsigmoid_clip_div":     # Clip(x + 3, 0, 6) / 6
        return [n("Add", [src, c(3.0, p + "3")], [p + "a"]), n("Clip", [p + "a", c(0.0, p + "0"), c(6.0, p + "6")],
                                                                [p + "c"]),
                n("Div", [p + "c", c(6.0, p + "d")], [out])]
    if kind == "hsigmoid_relu6_mul":    # Relu6(x + 3) * (1/6)
        return [n("Add", [src, c(3.0, p + "3")], [p + "a"]), n("Clip", [p + "a", c(0.0, p + "0"), c(6.0, p + "6")],
                                                                [p + "c"]),
                n("Mul", [p + "c", c(1 / 6, p + "s")], [out])]
    if kind == "swish":                 # x * Sigmoid(x)
        return [n("Sigmoid", [src], [p + "s"]), n("Mul", [src, p + "s"], [out])]
    if kind == "relu":
        return [n("Relu", [src], [out])]
    raise AssertionError(kind)


CHAINS = {"hswish_clip_div": ("hardswish", 1 / 6, 0.5), "hswish_relu6_mul": ("hardswish", 1 / 6, 0.5),
          "hswish_gate_div": ("hardswish", 1 / 6, 0.5), "hswish_hardsigmoid": ("hardswish", 1 / 6, 0.5),
          "hsigmoid_clip_div": ("hardsigmoid", 1 / 6, 0.5), "hsigmoid_relu6_mul": ("hardsigmoid", 1 / 6, 0.5),
          "swish": ("swish", None, None)}


@pytest.mark.parametrize("after_conv", [False, True])
@pytest.mark.parametrize("kind", sorted(CHAINS))
def test_activation_chains_are_recognised(kind, after_conv, rng):
    inits = {}
    nodes = []
    src = "x"
    if after_conv:
        inits.update(W=rand(rng, 4, 3, 3, 3), B=rand(rng, 4))
        nodes.append(helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1]))
        src = "c"
    nodes += chain(kind, src, "y", inits)
    m = model_of(nodes, ["N", 3, 6, 5], ["y"], inits)
    g = check(m, rng=rng, scale=3.0)
    assert ops(g) == (["conv"] if after_conv else ["activation"])
    act = g.nodes[-1].attrs["activation"]
    want = CHAINS[kind]
    assert act[0] == want[0]
    if want[1] is not None:
        assert act[3:] == pytest.approx(want[1:], rel=1e-6)
    assert g.nodes[-1].output == "y"


def test_chain_inner_tensors_kept_on_request(rng):
    inits = {"W": rand(rng, 4, 3, 3, 3)}
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1])]
    nodes += chain("hswish_clip_div", "c", "y", inits)
    m = model_of(nodes, ["N", 3, 6, 5], ["y"], inits)
    g = graph_from_onnx(m)
    assert "y.c" not in g.tensor_names() and "c" not in g.tensor_names()
    g = check(m, keep=["y.c", "c"], rng=rng, scale=3.0)
    assert {"y.c", "c"} <= set(g.tensor_names())


def test_relu_is_clip_zero_inf_and_relu6_is_clip(rng):
    inits = {"W": rand(rng, 4, 3, 1, 1), "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Conv", ["r", "W2"], ["c2"]), helper.make_node("Clip", ["c2", "lo", "hi"], ["y"])]
    inits["W2"] = rand(rng, 4, 4, 1, 1)
    g = check(model_of(nodes, ["N", 3, 2, 3], ["y"], inits), rng=rng, scale=4.0)
    assert [n.attrs["activation"][:3] for n in g.nodes] == [("clip", 0.0, math.inf), ("clip", 0.0, 6.0)]


# ------------------------------------------------------------------ elementwise
@pytest.mark.parametrize("op,const_first", [("Add", False), ("Add", True), ("Sub", False), ("Sub", True),
                                             ("Mul", False), ("Mul", True), ("Div", False)])
@pytest.mark.parametrize("cshape", [(), (1,), (5, 1, 1), (1, 5, 1, 1)])
def test_binary_with_constant(op, cshape, const_first, rng):
    # (constant / tensor is rejected: test_errors)
    c = (rng.uniform(0.5, 2.0, cshape) * rng.choice([-1, 1], cshape)).astype(np.float32)
    ins = ["k", "x"] if const_first else ["x", "k"]
    m = model_of([helper.make_node(op, ins, ["y"], name="op")], ["N", 5, 3, 4], ["y"], {"k": c})
    assert ops(check(m, rng=rng)) == ["channel_affine"]


def test_constant_ops_after_conv_fold_into_it(rng):
    inits = {"W": rand(rng, 5, 3, 3, 3), "B": rand(rng, 5), "s": rand(rng, 1, 5, 1, 1),
             "t": rand(rng, 5, 1, 1), "d": np.array(2.0, np.float32)}
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c", "s"], ["m"]), helper.make_node("Sub", ["m", "t"], ["a"]),
             helper.make_node("Div", ["a", "d"], ["q"]), helper.make_node("Relu", ["q"], ["y"])]
    g = check(model_of(nodes, ["N", 3, 4, 4], ["y"], inits), rng=rng)
    assert ops(g) == ["conv"] and g.nodes[0].attrs["activation"][:3] == ("clip", 0.0, math.inf)


def test_vector_affine_after_matmul_is_the_bias(rng):
    inits = {"Wm": rand(rng, 6, 4), "b": rand(rng, 4)}
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "Wm"], ["mm"]),
             helper.make_node("Add", ["mm", "b"], ["y"])]
    g = check(model_of(nodes, ["N", 6, 1, 1], ["y"], inits), rng=rng)
    assert ops(g) == ["flatten", "dense"] and "b" in g.nodes[1].weights


@pytest.mark.parametrize("op", ["Add", "Mul", "Sub"])
@pytest.mark.parametrize("shapes", [((4, 3, 5), (4, 3, 5)), ((4, 3, 5), (4, 1, 1)), ((4, 1, 1), (4, 3, 5))])
def test_binary_of_two_tensors(op, shapes, rng):
    sa, sb = shapes
    inits = {"Wa": rand(rng, sa[0], 2, 1, 1), "Wb": rand(rng, sb[0], 2, 1, 1)}
    nodes = []
    for name, s in (("a", sa), ("b", sb)):
        src = "x" if s[1:] == (3, 5) else "p"
        nodes.append(helper.make_node("Conv", [src, "W" + name], [name + "c"]))
        nodes.append(helper.make_node("Relu", [name + "c"], [name]))
    nodes.insert(0, helper.make_node("GlobalAveragePool", ["x"], ["p"]))
    nodes.append(helper.make_node(op, ["a", "b"], ["y"], name="binary"))
    g = check(model_of(nodes, ["N", 2, 3, 5], ["y"], inits), rng=rng)
    assert ("add" if op != "Mul" else "mul") in ops(g)


def test_residual_add_fuses_into_conv(rng):
    inits = {"W1": rand(rng, 6, 6, 1, 1), "W2": rand(rng, 6, 6, 3, 3, s=0.3), "B2": rand(rng, 6)}
    for order in (0, 1):
        nodes = [helper.make_node("Conv", ["x", "W1"], ["a"]), helper.make_node("Relu", ["a"], ["r"]),
                 helper.make_node("Conv", ["r", "W2", "B2"], ["c"], pads=[1, 1, 1, 1]),
                 helper.make_node("Add", ["r", "c"] if order else ["c", "r"], ["s"]),
                 helper.make_node("Clip", ["s", "lo", "hi"], ["y"])]
        inits.update(lo=np.array(0.0, np.float32), hi=np.array(6.0, np.float32))
        g = check(model_of(nodes, ["N", 6, 5, 4], ["y"], inits), rng=rng, scale=2.0)
        assert ops(g) == ["conv", "conv"]
        assert g.nodes[1].inputs == ["r", "r"] and g.nodes[1].output == "y"
        assert g.nodes[1].attrs["activation"][:3] == ("clip", 0.0, 6.0)


def test_residual_kept_tensor_is_not_fused(rng):
    inits = {"W": rand(rng, 3, 3, 1, 1)}
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"]), helper.make_node("Add", ["c", "x"], ["y"])]
    m = model_of(nodes, ["N", 3, 2, 2], ["y"], inits)
    assert ops(check(m, rng=rng)) == ["conv"]
    assert ops(check(m, keep=["c"], rng=rng)) == ["conv", "add"]


def test_squeeze_excitation(rng):
    c, r = 8, 2
    inits = {"W1": rand(rng, r, c, 1, 1), "B1": rand(rng, r), "W2": rand(rng, c, r, 1, 1), "B2": rand(rng, c)}
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]),
             helper.make_node("Conv", ["p", "W1", "B1"], ["s1"]), helper.make_node("Relu", ["s1"], ["s1r"]),
             helper.make_node("Conv", ["s1r", "W2", "B2"], ["s2"]),
             helper.make_node("HardSigmoid", ["s2"], ["s"], alpha=0.2, beta=0.5),
             helper.make_node("Mul", ["x", "s"], ["y"])]
    g = check(model_of(nodes, ["N", c, 5, 6], ["y"], inits), rng=rng, scale=3.0)
    assert ops(g) == ["global_avg_pool", "conv", "conv", "mul"]
    assert g.nodes[2].attrs["activation"][0] == "hardsigmoid"


# ------------------------------------------------------------------ pools and shapes
POOLS = [
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2])),
    ("MaxPool", dict(kernel_shape=[3, 2], strides=[2, 1], ceil_mode=1)),
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 1, 1, 0], ceil_mode=1)),
    ("MaxPool", dict(kernel_shape=[2, 2], dilations=[2, 2])),
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    ("AveragePool", dict(kernel_shape=[2, 3], strides=[1, 2], pads=[0, 1, 1, 0])),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER")),
]


@pytest.mark.parametrize("hw", [(7, 8), (6, 5)])
@pytest.mark.parametrize("case", POOLS, ids=[str(i) for i in range(len(POOLS))])
def test_pool(case, hw, rng):
    op, attrs = case
    m = model_of([helper.make_node(op, ["x"], ["y"], name="pool", **attrs)], ["N", 3] + list(hw), ["y"])
    assert ops(check(m, rng=rng)) == ["max_pool" if op == "MaxPool" else "avg_pool"]


@pytest.mark.parametrize("op,attrs,inits,opset,want", [
    ("GlobalAveragePool", {}, {}, 13, ["global_avg_pool"]),
    ("GlobalMaxPool", {}, {}, 13, ["max_pool"]),
    ("ReduceMean", dict(axes=[2, 3], keepdims=1), {}, 13, ["global_avg_pool"]),
    ("ReduceMean", dict(axes=[-1, -2], keepdims=0), {}, 13, ["global_avg_pool", "flatten"]),
    ("ReduceMean", dict(keepdims=1), {"axes": np.array([2, 3], np.int64)}, 18, ["global_avg_pool"]),
])
def test_global_pools(op, attrs, inits, opset, want, rng):
    ins = ["x"] + list(inits)
    m = model_of([helper.make_node(op, ins, ["y"], **attrs)], ["N", 4, 3, 5], ["y"], inits, opset=opset)
    assert ops(check(m, rng=rng)) == want


def test_flatten_reshape_squeeze(rng):
    cases = [
        ([helper.make_node("Flatten", ["x"], ["y"], axis=1)], {}, 13, (4, 3, 2)),
        ([helper.make_node("Flatten", ["x"], ["y"], axis=-3)], {}, 13, (4, 3, 2)),
        ([helper.make_node("Reshape", ["x", "s"], ["y"])], {"s": np.array([0, -1], np.int64)}, 13, (4, 3, 2)),
        ([helper.make_node("Reshape", ["x", "s"], ["y"])], {"s": np.array([-1, 24], np.int64)}, 13, (4, 3, 2)),
        ([helper.make_node("Squeeze", ["x", "a"], ["y"])], {"a": np.array([2, 3], np.int64)}, 13, (4, 1, 1)),
        ([helper.make_node("Squeeze", ["x"], ["y"], axes=[-1, -2])], {}, 11, (4, 1, 1)),
    ]
    for nodes, inits, opset, shape in cases:
        g = check(model_of(nodes, ["N", *shape], ["y"], inits, opset=opset), rng=rng)
        assert ops(g) == ["flatten"] and g.shapes["y"] == (int(np.prod(shape)),)


def test_reshape_leading_one_of_a_batch_one_model(rng):
    m = model_of([helper.make_node("Reshape", ["x", "s"], ["y"])], [1, 4, 3, 2], ["y"],
                 {"s": np.array([1, -1], np.int64)})
    check(m, batches=(1,), rng=rng)
    g = graph_from_onnx(m)
    x = rand(rng, 3, 4, 3, 2)  # the engine runs any batch: the leading 1 is the batch axis
    np.testing.assert_array_equal(nn_reference.run(g, x)["y"], x.reshape(3, -1))


def test_shape_subgraphs_keep_the_batch_symbolic(rng):
    # PyTorch: x.view(x.size(0), -1) after a global pool
    torch_style = [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Shape", ["p"], ["sh"]),
                   helper.make_node("Gather", ["sh", "i0"], ["n"], axis=0),
                   helper.make_node("Unsqueeze", ["n", "ax"], ["n1"]),
                   helper.make_node("Concat", ["n1", "m1"], ["ns"], axis=0),
                   helper.make_node("Reshape", ["p", "ns"], ["y"])]
    inits = {"i0": np.array(0, np.int64), "ax": np.array([0], np.int64), "m1": np.array([-1], np.int64)}
    g = check(model_of(torch_style, ["N", 5, 3, 4], ["y"], inits), rng=rng)
    assert ops(g) == ["global_avg_pool", "flatten"]
    # PaddlePaddle: Shape -> Cast(int32) -> Slice -> Cast(int64) -> Concat -> Reshape
    paddle_style = [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Shape", ["p"], ["sh"]),
                    helper.make_node("Cast", ["sh"], ["sh32"], to=TensorProto.INT32),
                    helper.make_node("Slice", ["sh32", "st", "en", "axs"], ["sl"]),
                    helper.make_node("Cast", ["sl"], ["sl64"], to=TensorProto.INT64),
                    helper.make_node("Concat", ["sl64", "c"], ["ns"], axis=-1),
                    helper.make_node("Reshape", ["p", "ns"], ["y"])]
    inits = {"st": np.array([0], np.int32), "en": np.array([1], np.int32), "axs": np.array([0], np.int32),
             "c": np.array([5], np.int64)}
    g = check(model_of(paddle_style, ["N", 5, 3, 4], ["y"], inits, opset=11), rng=rng)
    assert ops(g) == ["global_avg_pool", "flatten"]
    # C * H * W computed from the shape (no batch involved) folds to a constant
    mul_style = [helper.make_node("Shape", ["x"], ["sh"]),
                 helper.make_node("Slice", ["sh", "st", "en"], ["chw"]),
                 helper.make_node("ReduceProd", ["chw"], ["k"], keepdims=1),
                 helper.make_node("Concat", ["m1", "k"], ["ns"], axis=0),
                 helper.make_node("Reshape", ["x", "ns"], ["y"])]
    inits = {"st": np.array([1], np.int64), "en": np.array([4], np.int64), "m1": np.array([-1], np.int64)}
    g = check(model_of(mul_style, ["N", 5, 3, 4], ["y"], inits), rng=rng)
    assert ops(g) == ["flatten"]


def test_constant_folding(rng):
    # Constant, ConstantOfShape, Range, Cast, Unsqueeze, Concat, Mul, Sub, Reshape of constants
    n = helper.make_node
    nodes = [n("Constant", [], ["k"], value=numpy_helper.from_array(np.array([2.0, 3.0, 4.0], np.float32))),
             n("ConstantOfShape", ["shp"], ["ones"], value=numpy_helper.from_array(np.array([1.0], np.float32))),
             n("Range", ["r0", "r1", "r2"], ["rng"]), n("Cast", ["rng"], ["rngf"], to=TensorProto.FLOAT),
             n("Mul", ["k", "ones"], ["k2"]), n("Sub", ["k2", "rngf"], ["k3"]),
             n("Reshape", ["k3", "s3"], ["k4"]), n("Mul", ["x", "k4"], ["y"])]
    inits = {"shp": np.array([3], np.int64), "r0": np.array(0, np.int64), "r1": np.array(3, np.int64),
             "r2": np.array(1, np.int64), "s3": np.array([1, 3, 1, 1], np.int64)}
    g = check(model_of(nodes, ["N", 3, 2, 2], ["y"], inits), rng=rng)
    assert ops(g) == ["channel_affine"]
    np.testing.assert_allclose(g.nodes[0].weights["scale"], [2.0, 2.0, 2.0])


def test_graph_input_that_is_an_initializer(rng):
    w = rand(rng, 4, 3, 1, 1)
    m = model_of([helper.make_node("Conv", ["x", "W"], ["y"])], ["N", 3, 2, 2], ["y"], {"W": w})
    m.graph.input.append(helper.make_tensor_value_info("W", F, [4, 3, 1, 1]))
    m.ir_version = 3
    m.opset_import[0].version = 9
    assert ops(check(m, rng=rng)) == ["conv"]


def test_gemm(rng):
    k, o = 6, 4
    for trans_b in (0, 1):
        for cshape in [None, (o,), (1, o), ()]:
            b = rand(rng, o, k) if trans_b else rand(rng, k, o)
            inits = {"B": b}
            ins = ["f", "B"]
            if cshape is not None:
                inits["C"] = rand(rng, *cshape)
                ins.append("C")
            nodes = [helper.make_node("Flatten", ["x"], ["f"]),
                     helper.make_node("Gemm", ins, ["y"], transB=trans_b, alpha=0.7, beta=1.3)]
            g = check(model_of(nodes, ["N", k, 1, 1], ["y"], inits), rng=rng)
            assert ops(g) == ["flatten", "dense"] and g.nodes[1].weights["w"].shape == (o, k)


def test_softmax_concat_identity_dropout(rng):
    inits = {"W1": rand(rng, 3, 2, 1, 1), "W2": rand(rng, 5, 2, 3, 3), "B": rand(rng, 8, 7)}
    nodes = [helper.make_node("Conv", ["x", "W1"], ["a"]), helper.make_node("Conv", ["x", "W2"], ["b"], pads=[1] * 4),
             helper.make_node("Concat", ["a", "b"], ["cat"], axis=1),
             helper.make_node("Identity", ["cat"], ["cat_id"]),
             helper.make_node("GlobalAveragePool", ["cat_id"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]), helper.make_node("Dropout", ["f"], ["fd"]),
             helper.make_node("MatMul", ["fd", "B"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["prob"], axis=-1),
             helper.make_node("Identity", ["prob"], ["out"])]
    g = check(model_of(nodes, ["N", 2, 4, 3], ["out", "logits"], inits), rng=rng)
    assert ops(g) == ["conv", "conv", "concat", "global_avg_pool", "flatten", "dense", "softmax"]
    assert g.outputs == ["out", "logits"] and g.nodes[-1].output == "out"
    # opset 11 Softmax: axis defaults to 1, which is the last axis of (N, C)
    m = model_of([helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("Softmax", ["f"], ["y"])],
                 ["N", 4, 1, 1], ["y"], opset=11)
    assert ops(check(m, rng=rng)) == ["flatten", "softmax"]


def test_pad_becomes_conv_padding(rng):
    inits = {"W": rand(rng, 4, 3, 3, 3), "p": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)}
    nodes = [helper.make_node("Pad", ["x", "p"], ["xp"]),
             helper.make_node("Conv", ["xp", "W"], ["y"], strides=[2, 2], pads=[1, 0, 0, 0])]
    g = check(model_of(nodes, ["N", 3, 6, 7], ["y"], inits), rng=rng)
    assert ops(g) == ["conv"] and g.nodes[0].attrs["pads"] == (2, 2, 2, 1)


# ------------------------------------------------------------------ outputs= / keep
def test_keep_unknown_or_constant_is_an_error(rng):
    m = model_of([helper.make_node("Relu", ["x"], ["y"])], ["N", 3, 2, 2], ["y"])
    with pytest.raises(ValueError, match="nope"):
        graph_from_onnx(m, keep=["nope"])
    m = model_of([helper.make_node("Add", ["a", "b"], ["k"]), helper.make_node("Add", ["x", "k"], ["y"])],
                 ["N", 3, 2, 2], ["y"], {"a": np.float32(1), "b": np.float32(2)})
    with pytest.raises(ValueError, match="constant"):
        graph_from_onnx(m, keep=["k"])


def test_every_surviving_name_is_an_onnx_tensor_or_internal(rng):
    g = graph_from_onnx(mobilenet_v2_onnx(width=0.35, resolution=64, num_classes=10))
    m = mobilenet_v2_onnx(width=0.35, resolution=64, num_classes=10)
    onnx_names = {o for n in m.graph.node for o in n.output} | {"input"}
    assert all(t in onnx_names or "#" in t for t in g.tensor_names())


# ------------------------------------------------------------------ errors
def test_errors():
    def single(op, attrs=None, inits=None, shape=("N", 3, 4, 4), ins=None, opset=13, name="bad"):
        inits = inits or {}
        return model_of([helper.make_node(op, ins or ["x"] + list(inits), ["y"], name=name, **(attrs or {}))],
                        list(shape), ["y"], inits, opset=opset)

    with pytest.raises(UnsupportedOperatorError) as e:
        graph_from_onnx(single("LeakyRelu", name="lrelu_7"))
    assert "LeakyRelu" in str(e.value) and "lrelu_7" in str(e.value) and "node 0" in str(e.value)
    assert e.value.op_type == "LeakyRelu" and e.value.node_name == "lrelu_7" and e.value.index == 0
    assert isinstance(e.value, ValueError)
    w3 = np.zeros((2, 3, 1, 1, 1), np.float32)
    m = model_of([helper.make_node("Conv", ["x", "W"], ["y"], name="conv3d")], ["N", 3, 4, 4, 4], ["y"], {"W": w3})
    with pytest.raises(ValueError, match="rank 5|conv3d"):
        graph_from_onnx(m)
    m = model_of([helper.make_node("Unsqueeze", ["x", "a"], ["x5"]),
                  helper.make_node("Conv", ["x5", "W"], ["y"], name="conv3d")], ["N", 3, 4, 4], ["y"],
                 {"W": w3, "a": np.array([4], np.int64)})
    with pytest.raises(ValueError, match="Unsqueeze"):
        graph_from_onnx(m)
    flat = [helper.make_node("Flatten", ["x"], ["f"])]
    m = model_of(flat + [helper.make_node("Gemm", ["f", "B"], ["y"], name="fc", transA=1)], ["N", 3, 1, 1], ["y"],
                 {"B": np.zeros((1, 3), np.float32)})
    with pytest.raises(ValueError, match="fc.*transA"):
        graph_from_onnx(m)
    with pytest.raises(ValueError, match="padme.*reflect"):
        graph_from_onnx(single("Pad", dict(mode="reflect"), {"p": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)},
                               name="padme"))
    with pytest.raises(ValueError, match="sm.*feature map"):
        graph_from_onnx(single("Softmax", dict(axis=1), name="sm"))
    with pytest.raises(ValueError, match="dv.*constant divided"):
        graph_from_onnx(single("Div", ins=["k", "x"], inits={"k": np.float32(2)}, name="dv"))
    with pytest.raises(ValueError, match="ad.*per-channel"):
        graph_from_onnx(single("Add", inits={"k": np.ones((3, 4, 4), np.float32)}, name="ad"))
    with pytest.raises(ValueError, match="rs.*not supported"):
        graph_from_onnx(single("Reshape", inits={"s": np.array([0, 3, 16], np.int64)}, name="rs"))
    with pytest.raises(ValueError, match="fixes the batch"):
        graph_from_onnx(single("Reshape", inits={"s": np.array([2, -1], np.int64)}, name="rs"))
    with pytest.raises(ValueError, match="cv.*larger than the padded input"):
        graph_from_onnx(single("Conv", inits={"W": np.zeros((2, 3, 5, 5), np.float32)}, name="cv"))
    with pytest.raises(ValueError, match="cv.*group"):
        graph_from_onnx(single("Conv", dict(group=2), inits={"W": np.zeros((2, 2, 1, 1), np.float32)}, name="cv"))
    with pytest.raises(ValueError, match="sq.*axes"):  # would squeeze the batch axis of a batch of 1
        graph_from_onnx(single("Squeeze", shape=("N", 3, 1, 1), name="sq"))
    with pytest.raises(ValueError, match="fl.*axis"):
        graph_from_onnx(single("Flatten", dict(axis=2), name="fl"))
    with pytest.raises(ValueError, match="cl.*lo <= hi"):
        graph_from_onnx(single("Clip", inits={"a": np.float32(2), "b": np.float32(1)}, name="cl"))
    with pytest.raises(ValueError, match="rm.*spatial"):
        graph_from_onnx(single("ReduceMean", dict(axes=[1]), name="rm"))
    with pytest.raises(ValueError, match="mp.*Indices|mp.*index output"):
        m = model_of([helper.make_node("MaxPool", ["x"], ["y", "idx"], name="mp", kernel_shape=[2, 2])],
                     ["N", 3, 4, 4], ["y", "idx"])
        m.graph.output[1].type.tensor_type.elem_type = TensorProto.INT64
        graph_from_onnx(m)
    with pytest.raises(ValueError, match="one image input"):
        two = model_of([helper.make_node("Add", ["x", "z"], ["y"])], ["N", 3, 4, 4], ["y"])
        two.graph.input.append(helper.make_tensor_value_info("z", F, ["N", 3, 4, 4]))
        graph_from_onnx(two)
    with pytest.raises(ValueError, match="rank"):
        graph_from_onnx(model_of([helper.make_node("Relu", ["x"], ["y"])], ["N", 3], ["y"]))
    with pytest.raises(ValueError, match="constant"):
        graph_from_onnx(model_of([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["a", "a"], ["y"])],
                                 ["N", 3, 4, 4], ["y", "r"], {"a": np.float32(1)}))
    with pytest.raises(ValueError, match="checker"):
        graph_from_onnx(model_of([helper.make_node("Relu", ["nothere"], ["y"])], ["N", 3, 4, 4], ["y"]))
    m = model_of([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Tanh", ["r"], ["y"], name="t")],
                 ["N", 3, 4, 4], ["y"])
    with pytest.raises(UnsupportedOperatorError, match=r"Tanh node 't' \(node 1\)"):
        graph_from_onnx(m)
    m = model_of([helper.make_node("Relu", ["x"], ["r"]),
                  helper.make_node("Conv", ["x", "r"], ["y"], name="dynw")], ["N", 3, 1, 1], ["y"])
    with pytest.raises(ValueError, match="dynw.*constant"):
        graph_from_onnx(m)
    with pytest.raises(ValueError, match="ct.*float32"):
        graph_from_onnx(single("Cast", dict(to=TensorProto.INT64), name="ct"))
    with pytest.raises(TypeError, match="path_or_model"):
        graph_from_onnx(42)
    with pytest.raises(ValueError, match="no such file"):
        graph_from_onnx("/nonexistent/model.onnx")


def test_load_from_path(tmp_path, rng):
    m = model_of([helper.make_node("Relu", ["x"], ["y"])], ["N", 3, 2, 2], ["y"])
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    assert ops(graph_from_onnx(p)) == ops(graph_from_onnx(str(p))) == ["activation"]
    p.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not an ONNX model|checker"):
        graph_from_onnx(p)


# ------------------------------------------------------------------ whole networks
def test_mobilenet_v2_zoo(rng):
    m = mobilenet_v2_onnx(width=1.0, resolution=224, num_classes=1000, seed=0)
    g = check(m, batches=(1, 2), rng=rng)
    # every Conv + BatchNormalization (+ Clip) is one conv; every residual Add fused into a conv
    n_blocks = sum(n for _, _, n, _ in MOBILENET_V2_SETTINGS)
    n_residual = sum(n - 1 for _, c, n, s in MOBILENET_V2_SETTINGS) - 0  # repeats after the first
    assert ops(g).count("conv") == 1 + sum(n * (3 if t != 1 else 2) for t, _, n, _ in MOBILENET_V2_SETTINGS) + 1
    assert sum(len(n.inputs) == 2 for n in g.nodes if n.op == "conv") == n_residual
    assert ops(g)[-3:] == ["global_avg_pool", "flatten", "dense"]
    assert n_blocks == 17
    x = rand(rng, 2, 3, 224, 224)
    out = ort_all(m, x, ["logits"])["logits"]
    assert 0.1 < float(np.abs(out).std()) < 100  # He init keeps the activations O(1)


@pytest.mark.parametrize("width,resolution,bn", [(0.35, 96, True), (0.5, 64, False)])
def test_mobilenet_v2_zoo_variants(width, resolution, bn, rng):
    m = mobilenet_v2_onnx(width=width, resolution=resolution, num_classes=7, seed=3, batch_norm=bn)
    g = check(m, batches=(3,), rng=rng)
    assert set(ops(g)) == {"conv", "global_avg_pool", "flatten", "dense"}


def test_efficientnet_lite0(rng):
    from keensight.models import get_model_path
    path = get_model_path()
    g = check(onnx.load(str(path)), batches=(1, 2), rng=rng)
    assert set(ops(g)) == {"conv", "global_avg_pool", "flatten", "dense"}
    assert g.outputs == ["embedding", "logits"]
    assert sum(len(n.inputs) == 2 for n in g.nodes if n.op == "conv") == 9  # the residual Adds


def test_ppocr_mobilenet_v3_classifier(ppocr_cls_model_path, rng):
    model = onnx.load(str(ppocr_cls_model_path))
    with pytest.raises(ValueError, match="input_shape"):
        graph_from_onnx(model)
    g = check(model, batches=(1, 3), input_shape=(3, 48, 192), rng=rng)
    kinds = [n.attrs["activation"][0] for n in g.nodes if n.attrs.get("activation")]
    assert kinds.count("hardswish") == 18  # every x * Clip(x + 3, 0, 6) / 6 recognised
    assert kinds.count("hardsigmoid") == 9  # the squeeze-excitation gates
    assert ops(g).count("conv") == 53 and "channel_affine" not in ops(g) and "add" not in ops(g)
    assert ops(g)[-3:] == ["flatten", "dense", "softmax"]
    assert g.outputs == ["save_infer_model/scale_0.tmp_1"]


def test_ppocr_every_tensor_requestable_with_keep(ppocr_cls_model_path, rng):
    # keep = every computed tensor of the ONNX graph: nothing is fused away, all of them equal
    # onnxruntime (the import without fusion is correct too)
    from keensight.nn._onnx import _Importer, _load
    model = onnx.load(str(ppocr_cls_model_path))
    probe = _Importer(_load(model), (3, 48, 192), None)
    probe.run()
    computed = [o for n in model.graph.node for o in n.output if o and o not in probe.consts and o not in probe.syms]
    assert len(computed) == 234  # 548 nodes less Constant, the shape subgraph, bias reshapes
    g = check(model, batches=(2,), input_shape=(3, 48, 192), keep=computed, rng=rng)
    assert set(computed) <= set(g.tensor_names())
    assert "channel_affine" in ops(g)  # the batch norms stay separate when their input is kept


def random_graph(rng, n_nodes=12, c=4, hw=(5, 6)):
    """A random DAG of convs, batch norms, activations, constant arithmetic and two-tensor
    add / mul on (N, c, h, w) tensors; tensors get several readers at random."""
    n = helper.make_node
    inits, nodes, tensors = {}, [], ["x"]
    for i in range(n_nodes):
        kind = rng.choice(["conv", "conv", "bn", "relu", "clip", "hsig", "sig", "addc", "mulc", "divc", "add",
                           "mul", "hswish"])
        # prefer recent tensors, so chains form, but reuse older ones too
        a = tensors[max(0, len(tensors) - 1 - int(rng.geometric(0.5)) + 1)]
        b = tensors[int(rng.integers(len(tensors)))]
        t = f"t{i}"
        if kind == "conv":
            k = int(rng.choice([1, 3]))
            inits[t + ".W"] = rand(rng, c, c, k, k, s=1 / np.sqrt(c * k * k))
            inits[t + ".B"] = rand(rng, c, s=0.1)
            nodes.append(n("Conv", [a, t + ".W", t + ".B"], [t], pads=[k // 2] * 4))
        elif kind == "bn":
            for p, v in (("g", rng.uniform(0.5, 1.5, c)), ("b", 0.1 * rng.standard_normal(c)),
                         ("m", 0.1 * rng.standard_normal(c)), ("v", rng.uniform(0.5, 1.5, c))):
                inits[f"{t}.{p}"] = v.astype(np.float32)
            nodes.append(n("BatchNormalization", [a] + [f"{t}.{p}" for p in "gbmv"], [t]))
        elif kind == "relu":
            nodes.append(n("Relu", [a], [t]))
        elif kind == "clip":
            inits[t + ".lo"], inits[t + ".hi"] = np.float32(rng.uniform(-1, 0)), np.float32(rng.uniform(0.5, 6))
            nodes.append(n("Clip", [a, t + ".lo", t + ".hi"], [t]))
        elif kind == "hsig":
            nodes.append(n("HardSigmoid", [a], [t], alpha=float(rng.uniform(0.1, 0.3)), beta=0.5))
        elif kind == "sig":
            nodes.append(n("Sigmoid", [a], [t]))
        elif kind in ("addc", "mulc", "divc"):
            shape = [(), (c, 1, 1), (1, c, 1, 1)][int(rng.integers(3))]
            inits[t + ".k"] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
            op = {"addc": "Add", "mulc": "Mul", "divc": "Div"}[kind]
            nodes.append(n(op, [a, t + ".k"] if rng.random() < 0.5 or op == "Div" else [t + ".k", a], [t]))
        elif kind in ("add", "mul"):
            nodes.append(n(kind.capitalize(), [a, b], [t]))
        else:
            nodes += chain(str(rng.choice(["hswish_clip_div", "hswish_relu6_mul", "hswish_gate_div", "swish"])),
                           a, t, inits)
        tensors.append(t)
    outputs = sorted({tensors[-1]} | {t for t in tensors[1:] if rng.random() < 0.15})
    return model_of(nodes, ["N", c, *hw], outputs, inits), tensors[1:]


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_fuse_correctly(seed):
    rng = np.random.default_rng(seed)
    m, tensors = random_graph(rng)
    keep = [t for t in tensors if rng.random() < 0.2] if seed % 2 else None
    g = check(m, batches=(2,), keep=keep, rng=rng, scale=2.0)
    assert set(keep or ()) <= set(g.tensor_names())


# ------------------------------------------------------------------ through the engine
def engine_check(model, input_shape=None, batches=(1, 3), rng=None, scale=1.0, intermediates=True):
    """keensight.nn.Network.from_onnx(model).run(x) equals onnxruntime (outputs and, with
    outputs=, every ONNX-named tensor the import keeps)."""
    from keensight.nn import Network
    net = Network.from_onnx(model, input_shape=input_shape)
    rng = rng or np.random.default_rng(0)
    onnx_names = {o for n in model.graph.node for o in n.output}
    names = [t for t in net.graph.tensor_names() if t in onnx_names] if intermediates else list(net.output_names)
    for n in batches:
        x = (scale * rng.standard_normal((n,) + tuple(net.input_shape))).astype(np.float32)
        want = ort_all(model, x, names)
        got = net.run(x, outputs=names)
        for t in names:
            assert got[t].shape == want[t].shape, (t, got[t].shape, want[t].shape)
            tol = 1e-4 * max(1.0, float(np.abs(want[t]).max()))
            np.testing.assert_allclose(got[t], want[t], rtol=1e-4, atol=tol, err_msg=t)
    return net


@pytest.mark.parametrize("kind", sorted(CHAINS))
def test_engine_activation_chains(kind, rng):
    inits = {"W": rand(rng, 4, 3, 3, 3), "B": rand(rng, 4)}
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1])]
    nodes += chain(kind, "c", "y", inits)
    engine_check(model_of(nodes, ["N", 3, 6, 5], ["y"], inits), rng=rng, scale=3.0)


@pytest.mark.parametrize("case", CONV_CASES[:6] + CONV_CASES[8:], ids=lambda c: str(c[:6]))
def test_engine_conv(case, rng):
    cin, cout, groups, k, stride, pads, dil, bias, h, w = case
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    attrs = dict(group=groups, strides=[sh, sw], dilations=[dil, dil], kernel_shape=[kh, kw])
    if isinstance(pads, str):
        attrs["auto_pad"] = pads
    else:
        attrs["pads"] = list(pads)
    inits = {"W": rand(rng, cout, cin // groups, kh, kw)}
    if bias:
        inits["B"] = rand(rng, cout)
    m = model_of([helper.make_node("Conv", ["x"] + list(inits), ["y"], name="conv", **attrs)],
                 ["N", cin, h, w], ["y"], inits)
    engine_check(m, rng=rng)


@pytest.mark.parametrize("case", POOLS, ids=[str(i) for i in range(len(POOLS))])
def test_engine_pool(case, rng):
    op, attrs = case
    m = model_of([helper.make_node(op, ["x"], ["y"], name="pool", **attrs)], ["N", 3, 7, 8], ["y"])
    engine_check(m, rng=rng)


def test_engine_mobilenet_v2(rng):
    engine_check(mobilenet_v2_onnx(width=1.0, resolution=224, seed=0), batches=(1, 2), rng=rng)
    engine_check(mobilenet_v2_onnx(width=0.5, resolution=96, num_classes=10, seed=1, batch_norm=False),
                 batches=(3,), rng=rng)


def test_engine_efficientnet_lite0(rng):
    from keensight.models import get_model_path
    engine_check(onnx.load(str(get_model_path())), batches=(1, 2), rng=rng)


def test_engine_ppocr_mobilenet_v3_classifier(ppocr_cls_model_path, rng):
    net = engine_check(onnx.load(str(ppocr_cls_model_path)), input_shape=(3, 48, 192), batches=(1, 3), rng=rng)
    assert net.output_names == ["save_infer_model/scale_0.tmp_1"]


def test_engine_outputs_fused_away_are_returned(rng):
    # outputs= names a tensor the import fused away (a conv output before its batch norm, the
    # inside of a hard-swish chain): the network re-imports with it kept
    from keensight.nn import Network
    nodes, inits = conv_bn_nodes(rng, 3, 4)
    nodes += chain("hswish_clip_div", "c.bn", "y", inits)
    m = model_of(nodes, ["N", 3, 6, 5], ["y"], inits)
    net = Network.from_onnx(m)
    x = rand(rng, 2, 3, 6, 5, s=3.0)
    names = ["c.conv", "y.c", "y"]
    want = ort_all(m, x, names)
    got = net.run(x, outputs=names)
    for t in names:
        np.testing.assert_allclose(got[t], want[t], rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(want[t]).max())))
