"""Depthwise convolution + bias + ReLU6, keensight vs onnxruntime, one thread, batch 1.

    python benchmarks/report_depthwise.py [--repeat 15] [--markdown] [--level avx512]

The shapes: MobileNet v2's 3x3 depthwise layers (C, H=W, stride; pads 1 as torchvision's)
and EfficientNet-Lite0's 5x5 ones (read from its ONNX graph: TF-SAME pads, asymmetric
(1, 1, 2, 2) at stride 2). onnxruntime (intra_op_num_threads=1) runs a one-node graph
Conv(group=C) + Clip(0, 6) on NCHW data; keensight runs the same layer on the same
values in NHWC (the engine's layout inside a network), bias and ReLU6 fused. Calls
alternate between the two, repeat by repeat; figures are medians (the ratio of the
best times is printed too: on a shared machine it is the one least moved by preemption). GFLOP/s counts
2 * C * OH * OW * kh * kw floating-point operations per call.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keensight as ks  # noqa: E402
from keensight import _core  # noqa: E402
from report import render  # noqa: E402

# (label, C, H = W, k, stride, pads (top, left, bottom, right))
MOBILENET_V2 = [("mnv2", c, hw, 3, s, (1, 1, 1, 1)) for c, hw, s in
                [(32, 112, 1), (96, 112, 2), (144, 56, 1), (144, 56, 2), (192, 28, 1), (384, 14, 1),
                 (576, 14, 2), (960, 7, 1)]]
# EfficientNet-Lite0's 5x5 depthwise layers (distinct shapes of the model's Conv nodes
# with group > 1 and a 5x5 kernel).
LITE0_5X5 = [("lite0", 144, 56, 5, 2, (1, 1, 2, 2)), ("lite0", 240, 28, 5, 1, (2, 2, 2, 2)),
             ("lite0", 480, 14, 5, 1, (2, 2, 2, 2)), ("lite0", 672, 14, 5, 1, (2, 2, 2, 2)),
             ("lite0", 672, 14, 5, 2, (1, 1, 2, 2)), ("lite0", 1152, 7, 5, 1, (2, 2, 2, 2))]

RELU6 = (1, 0.0, 6.0, 1.0 / 6.0, 0.5)  # (kind = clip, lo, hi, alpha, beta)


def ort_session(c, hw, k, stride, pads, w, b):
    """onnxruntime, one thread, on the one-node graph Conv(group=C) -> Clip(0, 6)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel()),
             helper.make_tensor("b", TensorProto.FLOAT, b.shape, b),
             helper.make_tensor("lo", TensorProto.FLOAT, [], [0.0]),
             helper.make_tensor("hi", TensorProto.FLOAT, [], [6.0])]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["t"], group=c, kernel_shape=[k, k], strides=[stride, stride],
                              pads=list(pads)),
             helper.make_node("Clip", ["t", "lo", "hi"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "dw", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def per_call(fn, min_seconds=0.002):
    """Calls per timing so that one timing lasts about min_seconds."""
    t = time.perf_counter()
    fn()
    dt = max(time.perf_counter() - t, 1e-7)
    return max(1, int(min_seconds / dt))


def measure(row, repeat, level, rng):
    _, c, hw, k, stride, pads = row
    x_nchw = rng.standard_normal((1, c, hw, hw), dtype=np.float32)
    x_nhwc = np.ascontiguousarray(x_nchw[0].transpose(1, 2, 0))
    w = rng.standard_normal((c, 1, k, k), dtype=np.float32)
    b = rng.standard_normal(c, dtype=np.float32)
    sess = ort_session(c, hw, k, stride, pads, w, b)
    run_ort = lambda: sess.run(None, {"x": x_nchw})  # noqa: E731
    run_ks = lambda: _core._nn_depthwise(x_nhwc, w, b, (stride, stride), pads, None, RELU6, level, 1)  # noqa: E731
    want = run_ort()[0][0].transpose(1, 2, 0)
    got = run_ks()
    assert np.allclose(got, want, rtol=1e-4, atol=1e-4), "keensight and onnxruntime disagree"
    n = max(per_call(run_ort), per_call(run_ks))
    times = ([], [])
    for r in range(repeat):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for i in order:
            fn = (run_ort, run_ks)[i]
            t = time.perf_counter()
            for _ in range(n):
                fn()
            times[i].append((time.perf_counter() - t) / n)
    t_ort, t_ks = statistics.median(times[0]), statistics.median(times[1])
    best_ratio = min(times[0]) / min(times[1])
    oh = got.shape[0]
    flop = 2.0 * c * oh * got.shape[1] * k * k
    return t_ort, t_ks, flop, oh, best_ratio


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=15, help="timings per implementation and shape (median)")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.add_argument("--level", default=None, help="keensight ISA level (default: the active one)")
    a = p.parse_args()
    ks.set_num_threads(1)
    info = ks.cpu_info()
    level = a.level or info["active"]
    load_before = os.getloadavg()[0]
    print(f"keensight {ks.__version__} ({level}) vs onnxruntime {ort.__version__}, 1 thread, batch 1, "
          f"median of {a.repeat}; load average {load_before:.2f}\n")
    rng = np.random.default_rng(0)
    header = ["model", "C", "H=W", "k", "stride", "OH", "onnxruntime us", "keensight us", "ratio",
              "ratio of best times", "ORT GFLOP/s", "keensight GFLOP/s"]
    rows, ratios = [], {"mnv2": [], "lite0": []}
    for row in MOBILENET_V2 + LITE0_5X5:
        t_ort, t_ks, flop, oh, best_ratio = measure(row, a.repeat, level, rng)
        ratios[row[0]].append(t_ort / t_ks)
        rows.append([row[0], str(row[1]), str(row[2]), f"{row[3]}x{row[3]}", str(row[4]), str(oh),
                     f"{t_ort * 1e6:.1f}", f"{t_ks * 1e6:.1f}", f"{t_ort / t_ks:.2f}", f"{best_ratio:.2f}",
                     f"{flop / t_ort / 1e9:.1f}", f"{flop / t_ks / 1e9:.1f}"])
    print(render(header, rows, a.markdown, left=(0,)))
    print()
    for name, r in ratios.items():
        geo = math.exp(sum(math.log(v) for v in r) / len(r))
        print(f"{name}: geometric-mean ratio {geo:.2f}, lowest {min(r):.2f} (onnxruntime time / keensight time)")
    print(f"load average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
