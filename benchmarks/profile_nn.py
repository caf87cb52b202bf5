"""Where the time goes, block by block: keensight.nn vs onnxruntime on one network, 1 thread.

    python benchmarks/profile_nn.py [--network lite0|mnv2] [--repeat 40] [--markdown]

keensight: Network.profile (per node, the plan a run uses: a fused bottleneck's time lands on
its first node); onnxruntime: its session profiler (per node kernel time). Each node's figure
is its minimum over --repeat runs (a run that another process interrupts is only ever slower,
so the minimum is the load-independent figure on a shared machine); nodes are summed per
block (the first component of the ONNX node name: "block3", "features.3"). FLOPs from the
keensight graph (2 per multiply-add); ratio = onnxruntime ms / keensight ms.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
import tempfile
from typing import Dict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import onnxruntime as ort  # noqa: E402

import keensight as ks  # noqa: E402
import nn_workload as nw  # noqa: E402
from report import render  # noqa: E402


def block_of(name: str) -> str:
    """The block a node belongs to: the first component of its name, without onnxruntime's
    suffixes and the role inside a bottleneck (expand / dw / project)."""
    first = re.sub(r"_nchwc.*$|_token.*$", "", name.split("/")[0])
    return re.sub(r"\.(expand|dw|project).*$", "", first)


def ort_node_minima(net: nw.NetworkModel, x, repeat: int) -> Dict[str, float]:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tempfile.gettempdir(), "keensight-ort-profile")
    sess = ort.InferenceSession(net.model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    for _ in range(repeat + 1):
        sess.run(None, {net.input_name: x})
    path = sess.end_profiling()
    try:
        with open(path) as f:
            events = json.load(f)
    finally:
        os.remove(path)
    durations = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            durations[e["name"][:-len("_kernel_time")]].append(e["dur"] / 1e3)
    return {k: min(v[1:] or v) for k, v in durations.items()}  # the first run warms up


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--network", choices=["lite0", "mnv2"], default="lite0")
    p.add_argument("--repeat", type=int, default=40)
    p.add_argument("--markdown", action="store_true")
    a = p.parse_args()
    net = next(n for n in nw.network_models() if n.id == a.network)
    wl = nw.NetworkWorkload(net, 1)
    peak = nw.fma_peak_gflops()
    print(f"{net.name}, batch 1, 1 thread; CPU: {nw.cpu_model()}, load average {nw.load_average():.2f}; "
          f"FMA peak {peak:.1f} GFLOP/s; node minima over {a.repeat} runs\n")

    knet = ks.nn.Network.from_onnx(net.model, threads=1)
    graph = knet.graph
    runs = [knet.profile(wl.x, repeats=1) for _ in range(a.repeat)]
    ks_ms = [min(r[i]["ms"] for r in runs) for i in range(len(runs[0]))]
    ort_ms = ort_node_minima(net, wl.x, a.repeat)

    blocks: Dict[str, list] = collections.OrderedDict()  # block -> [ks ms, flops, layers]
    for node, ms in zip(graph.nodes, ks_ms):
        b = blocks.setdefault(block_of(node.name or node.output), [0.0, 0.0, []])
        b[0] += ms
        if node.op == "conv":
            o, c_per_group, kh, kw = node.weights["w"].shape
            shape = graph.shapes[node.output]
            groups = node.attrs.get("groups", 1)
            b[1] += 2.0 * o * shape[-2] * shape[-1] * kh * kw * c_per_group
            kind = (f"dw{kh}x{kw}/{node.attrs['stride'][0]}" if groups > 1 else
                    "pw" if kh == kw == 1 else f"conv{kh}x{kw}/{node.attrs['stride'][0]}")
            b[2].append(f"{kind} {c_per_group * groups}->{o}@{shape[-1]}")
        elif node.op == "dense":
            o, i = node.weights["w"].shape
            b[1] += 2.0 * o * i
            b[2].append(f"dense {i}->{o}")
        else:
            b[2].append(node.op)
    ort_blocks: Dict[str, float] = collections.defaultdict(float)
    for name, ms in ort_ms.items():
        ort_blocks[block_of(name)] += ms

    header = ["block", "layers", "MFLOP", "keensight ms", "ks % peak", "ORT ms", "ORT % peak", "ratio"]
    rows = []
    pct = lambda f, ms: f"{100 * f / (ms * 1e6) / peak:.0f}%" if f and ms else ""  # noqa: E731
    for b, (ms, f, layers) in blocks.items():
        om = ort_blocks.get(b)
        rows.append([b, " ".join(layers), f"{f / 1e6:.1f}", f"{ms:.3f}", pct(f, ms),
                     f"{om:.3f}" if om is not None else "", pct(f, om) if om else "",
                     f"{om / ms:.2f}" if om and ms else ""])
    unmatched = {k: v for k, v in ort_blocks.items() if k not in blocks}
    total_ks, total_ort = sum(ks_ms), sum(ort_blocks.values())
    rows.append(["total", "", f"{sum(b[1] for b in blocks.values()) / 1e6:.1f}", f"{total_ks:.3f}", "",
                 f"{total_ort:.3f}", "", f"{total_ort / total_ks:.2f}"])
    print(render(header, rows, a.markdown, left=(0, 1)) + "\n")
    if unmatched:
        print("onnxruntime nodes outside the blocks (in its total): "
              + ", ".join(f"{k} {v:.3f} ms" for k, v in unmatched.items()))


if __name__ == "__main__":
    main()
