"""Time keensight's nn ops kernels against onnxruntime on the same one-node graphs, 1 thread.

    python benchmarks/report_nn_ops.py [--repeat N]

Workloads: MaxPool 3x3 stride 2 (112x112x64, pads 1), GlobalAveragePool 7x7x1280
(EfficientNet-Lite0's head), the 3 -> 32 channel 3x3 stride-2 stem Conv at 224x224 with
TF-SAME pads (0, 0, 1, 1), plain and followed by Clip(0, 6) (ReLU6, which onnxruntime fuses
into its Conv). keensight runs on the NHWC image its engine keeps; onnxruntime on the NCHW
graph. Each figure is the median of N calls, the two alternating call by call after a warm-up.
Ratio = onnxruntime ms / keensight ms (higher is better); GFLOP/s counts a multiply-add as 2.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import keensight
from keensight import _core

RELU6 = (1, 0.0, 6.0, 1 / 6, 0.5)
NONE = (0, -np.inf, np.inf, 1 / 6, 0.5)


def session(nodes, x_shape, initializers=()):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.asarray(v, np.float32), n) for n, v in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def median_ms(fns, repeat):
    for fn in fns:
        fn()
    samples = [[] for _ in fns]
    for r in range(repeat):
        for i in (range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))):
            t = time.perf_counter()
            fns[i]()
            samples[i].append((time.perf_counter() - t) * 1e3)
    return [statistics.median(s) for s in samples]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    keensight.set_num_threads(1)
    rng = np.random.default_rng(0)
    rows = []

    # MaxPool 3x3 s2
    x = rng.uniform(-1, 1, (112, 112, 64)).astype(np.float32)
    xn = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    s = session([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
                xn.shape)
    peer, ours = median_ms([lambda: s.run(None, {"x": xn}),
                            lambda: _core._nn_pool("max", x, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False, False)],
                           args.repeat)
    rows.append(("MaxPool 3x3 s2, 112x112x64", peer, ours, None))

    # GlobalAveragePool 7x7x1280
    x = rng.uniform(0, 6, (7, 7, 1280)).astype(np.float32)
    xn = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    s = session([helper.make_node("GlobalAveragePool", ["x"], ["y"])], xn.shape)
    peer, ours = median_ms([lambda: s.run(None, {"x": xn}), lambda: _core._nn_global_avg_pool(x)], args.repeat)
    rows.append(("GlobalAveragePool 7x7x1280", peer, ours, None))

    # The stem
    x = rng.uniform(-2, 2, (224, 224, 3)).astype(np.float32)
    xn = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    w = rng.normal(0, 0.3, (32, 3, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.3, 32).astype(np.float32)
    flop = 2.0 * 112 * 112 * 32 * 27
    def conv(out):
        return helper.make_node("Conv", ["x", "w", "b"], [out], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1])
    for name, nodes, act, inits in (
            ("Conv stem 3->32 3x3 s2, 224x224", [conv("y")], NONE, []),
            ("Conv stem + ReLU6 (Clip)", [conv("t"), helper.make_node("Clip", ["t", "lo", "hi"], ["y"])], RELU6,
             [("lo", 0.0), ("hi", 6.0)])):
        s = session(nodes, xn.shape, [("w", w), ("b", b)] + inits)
        peer, ours = median_ms([lambda: s.run(None, {"x": xn}),
                                lambda: _core._nn_conv_direct(x, w, b, (2, 2), (0, 0, 1, 1), (1, 1), act)],
                               args.repeat)
        rows.append((name, peer, ours, flop))

    print(f"keensight {keensight.__version__}, ISA {_core.active_isa()}, onnxruntime {ort.__version__}, 1 thread, "
          f"median of {args.repeat}")
    print(f"| workload | onnxruntime ms | keensight ms | ratio | keensight GFLOP/s | onnxruntime GFLOP/s |")
    print("|---|---|---|---|---|---|")
    for name, peer, ours, flop in rows:
        g = f"{flop / ours / 1e6:.1f} | {flop / peer / 1e6:.1f}" if flop else "- | -"
        print(f"| {name} | {peer:.4f} | {ours:.4f} | {peer / ours:.2f} | {g} |")


if __name__ == "__main__":
    main()
