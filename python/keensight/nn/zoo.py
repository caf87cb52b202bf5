"""ONNX models built here with random weights, for tests and benchmarks.

:func:`mobilenet_v2_onnx` writes MobileNet v2 (Sandler et al. 2018, "MobileNetV2:
Inverted Residuals and Linear Bottlenecks", Table 2) the way PyTorch's exporter spells
torchvision's model: Conv without bias + BatchNormalization + Clip(0, 6), residual Add,
GlobalAveragePool, a Shape -> Gather -> Unsqueeze -> Concat -> Reshape flatten, Gemm.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

__all__ = ["MOBILENET_V2_SETTINGS", "mobilenet_v2_onnx"]

# (t, c, n, s): expansion factor, output channels, repeats, stride of the first repeat.
MOBILENET_V2_SETTINGS: Tuple[Tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's channel rounding: to a multiple of 8, never below 90% of `v`."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def mobilenet_v2_onnx(width: float = 1.0, resolution: int = 224, num_classes: int = 1000, seed: int = 0,
                      batch_norm: bool = True):
    """MobileNet v2 as an ``onnx.ModelProto`` (opset 13) with random weights.

    Parameters
    ----------
    width : float
        Width multiplier (> 0) applied to every layer's channels (rounded to a multiple
        of 8 as torchvision does); the 1280-channel head is not thinned below 1280.
    resolution : int
        Input height and width (>= 32); the input is (N, 3, resolution, resolution) with
        a dynamic batch N.
    num_classes : int
        Outputs of the final Gemm (>= 1).
    seed : int
        Seed of the weights: He-normal convolutions (std sqrt(2 / fan_in), sqrt(1 / fan_in)
        for the linear projections) and random
        batch-norm statistics (variance in [0.5, 1.5]), so activations stay O(1).
    batch_norm : bool
        Each Conv followed by a BatchNormalization node (PyTorch's export for training
        mode off but folding off); False gives Convs with biases instead.

    Returns
    -------
    onnx.ModelProto
        Input ``input``, output ``logits`` (N, num_classes).

    Examples
    --------
    >>> from keensight.nn.zoo import mobilenet_v2_onnx
    >>> m = mobilenet_v2_onnx(width=0.35, resolution=64, num_classes=10)
    >>> [o.name for o in m.graph.output]
    ['logits']
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if not (isinstance(width, (int, float)) and width > 0):
        raise ValueError(f"width: expected a positive number, got {width!r}")
    if not (isinstance(resolution, int) and resolution >= 32):
        raise ValueError(f"resolution: expected an int >= 32, got {resolution!r}")
    if not (isinstance(num_classes, int) and num_classes >= 1):
        raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
    rng = np.random.default_rng(seed)
    nodes: List = []
    inits: List = []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def conv_bn(x, name, cin, cout, k, stride, groups, relu6):
        fan_in = cin // groups * k * k
        # He et al. 2015: std sqrt(2 / fan_in) before a rectifier; sqrt(1 / fan_in) before the
        # linear projection, so the residual stream does not grow block after block
        w = rng.standard_normal((cout, cin // groups, k, k)) * np.sqrt((2.0 if relu6 else 1.0) / fan_in)
        ins = [x, const(f"{name}.weight", w.astype(np.float32))]
        if not batch_norm:
            ins.append(const(f"{name}.bias", (0.1 * rng.standard_normal(cout)).astype(np.float32)))
        y = f"{name}/conv"
        nodes.append(helper.make_node("Conv", ins, [y], name=f"{name}/Conv", kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[k // 2] * 4, group=groups,
                                      dilations=[1, 1]))
        if batch_norm:
            bn = [const(f"{name}.bn.{p}", v.astype(np.float32)) for p, v in (
                ("weight", rng.uniform(0.5, 1.5, cout)), ("bias", 0.1 * rng.standard_normal(cout)),
                ("running_mean", 0.1 * rng.standard_normal(cout)), ("running_var", rng.uniform(0.5, 1.5, cout)))]
            z = f"{name}/bn"
            nodes.append(helper.make_node("BatchNormalization", [y] + bn, [z], name=f"{name}/BatchNormalization",
                                          epsilon=1e-5, momentum=0.9))
            y = z
        if relu6:
            z = f"{name}/relu6"
            nodes.append(helper.make_node("Clip", [y, "const.zero", "const.six"], [z], name=f"{name}/Clip"))
            y = z
        return y

    const("const.zero", np.array(0.0, np.float32))
    const("const.six", np.array(6.0, np.float32))
    cin = _make_divisible(32 * width)
    x = conv_bn("input", "features.0", 3, cin, 3, 2, 1, True)
    layer = 1
    for t, c, n, s in MOBILENET_V2_SETTINGS:
        cout = _make_divisible(c * width)
        for i in range(n):
            stride = s if i == 0 else 1
            name = f"features.{layer}"
            hidden = cin * t
            y = x
            if t != 1:
                y = conv_bn(y, f"{name}.expand", cin, hidden, 1, 1, 1, True)
            y = conv_bn(y, f"{name}.dw", hidden, hidden, 3, stride, hidden, True)
            y = conv_bn(y, f"{name}.project", hidden, cout, 1, 1, 1, False)
            if stride == 1 and cin == cout:
                z = f"{name}/add"
                nodes.append(helper.make_node("Add", [x, y], [z], name=f"{name}/Add"))
                y = z
            x, cin = y, cout
            layer += 1
    head = _make_divisible(1280 * max(1.0, width))
    x = conv_bn(x, f"features.{layer}", cin, head, 1, 1, 1, True)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="GlobalAveragePool"))
    # torch.flatten / x.view(x.size(0), -1) as the exporter writes it
    nodes.append(helper.make_node("Shape", ["pool"], ["pool/shape"], name="Shape"))
    nodes.append(helper.make_node("Gather", ["pool/shape", const("const.axis0", np.array(0, np.int64))],
                                  ["pool/batch"], name="Gather", axis=0))
    nodes.append(helper.make_node("Unsqueeze", ["pool/batch", const("const.unsq_axes", np.array([0], np.int64))],
                                  ["pool/batch1"], name="Unsqueeze"))
    nodes.append(helper.make_node("Concat", ["pool/batch1", const("const.minus1", np.array([-1], np.int64))],
                                  ["pool/newshape"], name="Concat", axis=0))
    nodes.append(helper.make_node("Reshape", ["pool", "pool/newshape"], ["flat"], name="Reshape"))
    fc_w = (rng.standard_normal((num_classes, head)) * np.sqrt(1.0 / head)).astype(np.float32)
    fc_b = (0.01 * rng.standard_normal(num_classes)).astype(np.float32)
    nodes.append(helper.make_node("Gemm", ["flat", const("classifier.weight", fc_w), const("classifier.bias", fc_b)],
                                  ["logits"], name="Gemm", alpha=1.0, beta=1.0, transB=1))
    graph = helper.make_graph(
        nodes, "mobilenet_v2",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, resolution, resolution])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", num_classes])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="keensight.nn.zoo")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
