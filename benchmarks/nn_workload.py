"""The CNN-engine workloads of ``../shared/BENCHMARKS.md``, defined once for bench_nn.py and
report_nn.py: pointwise (1x1) convolution layers of MobileNet v2 and EfficientNet-Lite0, and
whole networks (EfficientNet-Lite0, the default model; MobileNet v2 1.0 with random weights),
each run by onnxruntime and by keensight.nn on the same ONNX graph.

Everything is float32 NCHW at the edges, as both engines take it. onnxruntime runs with its
defaults (all graph optimisations, the CPU execution provider) and intra_op_num_threads set;
keensight runs ``Network.from_onnx(model, threads=t)``. FLOPs are counted from the ONNX graph
(2 per multiply-add: Conv 2*O*Ho*Wo*kh*kw*C/groups, Gemm/MatMul 2*O*I), per image.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import keensight as ks

OPSET = 13


# ------------------------------------------------------------------------------------------
# The machine
# ------------------------------------------------------------------------------------------

def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else platform.processor())."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def l2_bytes() -> Optional[int]:
    """Size of the L2 cache of cpu0 (Linux sysfs), None if unknown."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in sorted(os.listdir(base)):
            d = os.path.join(base, entry)
            with open(os.path.join(d, "level")) as f:
                if f.read().strip() != "2":
                    continue
            with open(os.path.join(d, "size")) as f:
                text = f.read().strip()
            mult = {"K": 1 << 10, "M": 1 << 20}.get(text[-1], 1)
            return int(text.rstrip("KM")) * mult
    except (OSError, ValueError):
        pass
    return None


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def all_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def fma_peak_gflops(seconds: float = 0.5) -> float:
    """This CPU's single-thread FMA peak at the active ISA level (the best of ~1 ms runs of
    independent FMA chains: keensight._core._fma_peak_gflops)."""
    from keensight import _core
    return _core._fma_peak_gflops(None, seconds)


def has_engine() -> bool:
    """Whether this keensight has the CNN engine (keensight.nn.Network)."""
    return hasattr(ks.nn, "Network")


# ------------------------------------------------------------------------------------------
# Timing: engines alternate in blocks of calls, the order swapped every round
# ------------------------------------------------------------------------------------------

CLOCKS = ("wall", "cpu")


def clock_for(clock: str, threads: int) -> str:
    """The clock a row is timed with: "cpu" (the calling thread's CPU time) only means the
    call's duration when the call runs on the calling thread alone (1 thread)."""
    return "cpu" if clock == "cpu" and threads == 1 else "wall"


def median_ms(fns: Sequence[Callable[[], object]], repeat: int, block: int = 8, clock: str = "wall") -> List[float]:
    """Median ms of a call of each of `fns`, over `repeat` calls each after one warm-up call.

    Calls run in blocks of `block` timed calls per function, the functions' order reversed
    every round, so that drift in the machine's load hits all alike. Each block starts with
    two untimed calls: one engine's idle thread pool keeps spinning for a while after its
    last call (onnxruntime's and OpenMP's threads spin before they sleep) and would
    otherwise take a core from the other engine's first calls (measured: keensight at 2
    threads, batch 1, 9.0 ms/image interleaved call by call with onnxruntime against 4.2
    ms alone).
    clock "wall": time.perf_counter; "cpu": time.thread_time, the calling thread's CPU time,
    which leaves out the time other processes hold the core (for single-threaded calls on a
    loaded machine; a multi-threaded call's helpers are not counted, so never for those).
    """
    now = {"wall": time.perf_counter, "cpu": time.thread_time}[clock]
    for fn in fns:
        fn()
    samples: List[List[float]] = [[] for _ in fns]
    r = 0
    while min(len(s) for s in samples) < repeat:
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            fns[i]()
            fns[i]()
            for _ in range(block):
                t = now()
                fns[i]()
                samples[i].append((now() - t) * 1e3)
        r += 1
    return [float(np.median(s[:max(repeat, 1)])) for s in samples]


# ------------------------------------------------------------------------------------------
# FLOPs from the ONNX graph
# ------------------------------------------------------------------------------------------

def with_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """A copy of `model` with the batch axis of every graph input and output fixed."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for v in list(m.graph.input) + list(m.graph.output):
        dims = v.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_param")
            dims[0].dim_value = batch
    return m


def flops_per_image(model: onnx.ModelProto) -> Dict[str, float]:
    """FLOPs of one image by op kind ("conv 1x1", "conv depthwise", "conv other", "dense"),
    2 per multiply-add, from the shapes ONNX shape inference gives at batch 1."""
    m = onnx.shape_inference.infer_shapes(with_batch(model, 1))
    shapes: Dict[str, Tuple[int, ...]] = {}
    for v in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        shapes[v.name] = tuple(d.dim_value for d in v.type.tensor_type.shape.dim)
    inits = {t.name: tuple(t.dims) for t in m.graph.initializer}
    out: Dict[str, float] = {"conv 1x1": 0.0, "conv depthwise": 0.0, "conv other": 0.0, "dense": 0.0}
    for node in m.graph.node:
        if node.op_type == "Conv":
            o, c_per_group, kh, kw = inits[node.input[1]]
            _, _, ho, wo = shapes[node.output[0]]
            groups = next((a.i for a in node.attribute if a.name == "group"), 1)
            f = 2.0 * o * ho * wo * kh * kw * c_per_group
            kind = ("conv 1x1" if kh == kw == 1 and groups == 1 else
                    "conv depthwise" if c_per_group == 1 and groups > 1 else "conv other")
            out[kind] += f
        elif node.op_type in ("Gemm", "MatMul"):
            w = inits.get(node.input[1])
            if w is not None and len(w) == 2:
                out["dense"] += 2.0 * w[0] * w[1]
    return out


# ------------------------------------------------------------------------------------------
# Pointwise layers
# ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PointwiseLayer:
    id: str
    name: str              # where the layer is (network, block, role)
    k: int                 # input channels (the GEMM's K)
    n: int                 # output channels
    hw: int                # output height = width
    relu6: bool            # expansions and the head end in ReLU6, projections are linear

    @property
    def flops(self) -> float:
        return 2.0 * self.k * self.n * self.hw * self.hw

    def working_set_bytes(self) -> int:
        """Input + output + weights, float32."""
        return 4 * (self.k * self.hw * self.hw + self.n * self.hw * self.hw + self.k * self.n)


# Real 1x1 layers at 224 x 224 input (Sandler et al. 2018, Table 2, for MobileNet v2 1.0;
# Tan & Le 2019 / the TF-Lite EfficientNet-Lite0 for the Lite0 rows).
POINTWISE_LAYERS = [
    PointwiseLayer("mnv2_b1_proj", "MobileNet v2 block 1 project 32->16 @112", 32, 16, 112, False),
    PointwiseLayer("mnv2_b2_exp", "MobileNet v2 block 2 expand 16->96 @112", 16, 96, 112, True),
    PointwiseLayer("mnv2_b3_exp", "MobileNet v2 block 3 expand 24->144 @56", 24, 144, 56, True),
    PointwiseLayer("mnv2_b3_proj", "MobileNet v2 block 3 project 144->24 @56", 144, 24, 56, False),
    PointwiseLayer("lite0_s4_exp", "Lite0 stage 4 expand 40->240 @28", 40, 240, 28, True),
    PointwiseLayer("mnv2_b7_proj", "MobileNet v2 block 7 project 192->64 @14", 192, 64, 14, False),
    PointwiseLayer("mnv2_b8_exp", "MobileNet v2 block 8 expand 64->384 @14", 64, 384, 14, True),
    PointwiseLayer("mnv2_b8_proj", "MobileNet v2 block 8 project 384->64 @14", 384, 64, 14, False),
    PointwiseLayer("mnv2_b12_exp", "MobileNet v2 block 12 expand 96->576 @14", 96, 576, 14, True),
    PointwiseLayer("mnv2_b15_proj", "MobileNet v2 block 15 project 960->160 @7", 960, 160, 7, False),
    PointwiseLayer("lite0_s7_proj", "Lite0 stage 7 project 1152->320 @7", 1152, 320, 7, False),
    PointwiseLayer("head_1280", "head 320->1280 @7 (MobileNet v2, Lite0)", 320, 1280, 7, True),
]


def _relu6_node(src: str, dst: str) -> List[onnx.NodeProto]:
    return [helper.make_node("Clip", [src, "clip_lo", "clip_hi"], [dst])]


def _clip_bounds() -> List[onnx.TensorProto]:
    return [numpy_helper.from_array(np.array(0.0, np.float32), "clip_lo"),
            numpy_helper.from_array(np.array(6.0, np.float32), "clip_hi")]


class PointwiseWorkload:
    """One 1x1 layer, batch `batch`: random input, He-scaled weights, small biases."""

    def __init__(self, layer: PointwiseLayer, batch: int = 1, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.layer, self.batch = layer, batch
        self.x = rng.standard_normal((batch, layer.k, layer.hw, layer.hw), dtype=np.float32)
        self.w = (rng.standard_normal((layer.n, layer.k), dtype=np.float32) * np.sqrt(2.0 / layer.k)).astype(np.float32)
        self.b = (0.1 * rng.standard_normal(layer.n)).astype(np.float32)
        # The same layer in the layout of an NHWC network's activations: (H*W, K) rows.
        self.x_rows = np.ascontiguousarray(self.x[0].reshape(layer.k, -1).T)

    def onnx_model(self) -> onnx.ModelProto:
        L = self.layer
        inits = [numpy_helper.from_array(self.w.reshape(L.n, L.k, 1, 1), "w"),
                 numpy_helper.from_array(self.b, "b")]
        nodes = [helper.make_node("Conv", ["x", "w", "b"], ["conv" if L.relu6 else "y"], kernel_shape=[1, 1])]
        if L.relu6:
            nodes += _relu6_node("conv", "y")
            inits += _clip_bounds()
        graph = helper.make_graph(
            nodes, L.id,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", L.k, L.hw, L.hw])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", L.n, L.hw, L.hw])], inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])

    def reference(self) -> np.ndarray:
        y = np.einsum("ok,nkp->nop", self.w, self.x.reshape(self.batch, self.layer.k, -1)) + self.b[:, None]
        if self.layer.relu6:
            y = np.clip(y, 0.0, 6.0)
        return y.reshape(self.batch, self.layer.n, self.layer.hw, self.layer.hw)

    # Each returns a zero-argument callable that runs the layer once.
    def onnxruntime(self, threads: int) -> Callable[[], np.ndarray]:
        sess = ort_session(self.onnx_model(), threads)
        feed = {"x": self.x}
        return lambda: sess.run(None, feed)[0]

    def keensight_network(self, threads: int) -> Callable[[], np.ndarray]:
        """The layer as a prepared one-node Network (weights packed once), NCHW in and out."""
        net = ks.nn.Network.from_onnx(self.onnx_model(), threads=threads)
        run = lambda: net.run(self.x)["y"]  # noqa: E731
        run.network = net  # type: ignore[attr-defined]  (for layer_ms)
        return run

    def layer_ms(self, run: Callable[[], np.ndarray], repeat: int) -> float:
        """The conv node's own time inside the one-node Network of keensight_network (no
        layout change at the edges): the minimum over `repeat` Network.profile runs."""
        net = run.network  # type: ignore[attr-defined]
        return min(sum(r["ms"] for r in net.profile(self.x, repeats=1) if r["op"] == "conv") for _ in range(repeat))

    def keensight_functional(self, threads: int) -> Callable[[], np.ndarray]:
        """keensight.nn.pointwise_conv2d: prepares a one-node network every call."""
        act = "relu6" if self.layer.relu6 else None
        return lambda: ks.nn.pointwise_conv2d(self.x, self.w, self.b, activation=act, threads=threads)

    def core_gemm(self, threads: int) -> Callable[[], np.ndarray]:
        """The core GEMM driver alone on NHWC rows, batch 1: clamp(x_rows @ w.T + b). No layout
        change (a 1x1 layer inside an NHWC network), but the private binding packs both
        operands every call, the weights included."""
        from keensight import _core
        lo, hi = (0.0, 6.0) if self.layer.relu6 else (None, None)
        return lambda: _core._gemm_f32(self.x_rows, self.w, bias=self.b, lo=lo, hi=hi, num_threads=threads)


# ------------------------------------------------------------------------------------------
# Networks
# ------------------------------------------------------------------------------------------

# MobileNet v2 1.0 (Sandler et al. 2018, Table 2): bottleneck stages (t, c, n, s).
MOBILENET_V2_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)]


def _mobilenet_v2_onnx_local(seed: int = 0, n_classes: int = 1000) -> onnx.ModelProto:
    """MobileNet v2 1.0 at 224 x 224 with random weights, batch norm already folded (conv
    biases): stem 3x3/2 -> 32, the bottlenecks of MOBILENET_V2_STAGES (1x1 expand + ReLU6,
    3x3 depthwise stride s + ReLU6, linear 1x1 projection, residual add when stride 1 and
    channels match), 1x1 -> 1280 + ReLU6, global average pool, flatten, dense -> classes."""
    rng = np.random.default_rng(seed)
    nodes: List[onnx.NodeProto] = []
    inits: List[onnx.TensorProto] = _clip_bounds()
    count = [0]

    def conv(x: str, c_in: int, c_out: int, k: int, stride: int, groups: int, relu6: bool) -> str:
        i = count[0]
        count[0] += 1
        fan_in = c_in // groups * k * k
        w = (rng.standard_normal((c_out, c_in // groups, k, k)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = (0.05 * rng.standard_normal(c_out)).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, f"conv{i}.w"), numpy_helper.from_array(b, f"conv{i}.b")])
        y = f"conv{i}"
        nodes.append(helper.make_node("Conv", [x, f"conv{i}.w", f"conv{i}.b"], [y], kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[k // 2] * 4, group=groups))
        if relu6:
            nodes.append(helper.make_node("Clip", [y, "clip_lo", "clip_hi"], [y + ".relu6"]))
            y += ".relu6"
        return y

    x, c = conv("input", 3, 32, 3, 2, 1, True), 32
    for t, c_out, n, s in MOBILENET_V2_STAGES:
        for j in range(n):
            stride = s if j == 0 else 1
            h = conv(x, c, c * t, 1, 1, 1, True) if t != 1 else x
            h = conv(h, c * t, c * t, 3, stride, c * t, True)
            h = conv(h, c * t, c_out, 1, 1, 1, False)
            if stride == 1 and c == c_out:
                nodes.append(helper.make_node("Add", [x, h], [h + ".add"]))
                h += ".add"
            x, c = h, c_out
    x = conv(x, c, 1280, 1, 1, 1, True)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"]))
    nodes.append(helper.make_node("Flatten", ["pool"], ["embedding"], axis=1))
    w = (rng.standard_normal((n_classes, 1280)) * np.sqrt(1.0 / 1280)).astype(np.float32)
    inits.extend([numpy_helper.from_array(w, "fc.w"),
                  numpy_helper.from_array(np.zeros(n_classes, np.float32), "fc.b")])
    nodes.append(helper.make_node("Gemm", ["embedding", "fc.w", "fc.b"], ["logits"], transB=1))
    graph = helper.make_graph(
        nodes, "mobilenet_v2_1.0_random",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", n_classes])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def mobilenet_v2_onnx() -> Tuple[onnx.ModelProto, str]:
    """MobileNet v2 1.0 with random weights: keensight.nn.zoo's builder when this keensight
    has it, else the benchmark's own (same architecture). Returns (model, which builder)."""
    try:
        from keensight.nn import zoo  # type: ignore[attr-defined]
        return zoo.mobilenet_v2_onnx(), "keensight.nn.zoo.mobilenet_v2_onnx"
    except (ImportError, AttributeError):
        return _mobilenet_v2_onnx_local(), "benchmarks/nn_workload.py"


@dataclass
class NetworkModel:
    id: str
    name: str
    model: onnx.ModelProto
    path: Optional[str]     # the file (memory measurements load it in a subprocess), or None
    target: float           # BENCHMARKS.md's ratio at batch 1, 1 thread
    note: str = ""

    @property
    def input_name(self) -> str:
        return self.model.graph.input[0].name

    def input_chw(self) -> Tuple[int, int, int]:
        dims = self.model.graph.input[0].type.tensor_type.shape.dim
        return tuple(d.dim_value for d in dims[1:])  # type: ignore[return-value]


def network_models() -> List[NetworkModel]:
    from keensight import models
    lite0_path = str(models.get_model_path())
    mnv2, builder = mobilenet_v2_onnx()
    return [NetworkModel("lite0", "EfficientNet-Lite0", onnx.load(lite0_path), lite0_path, 1.2),
            NetworkModel("mnv2", "MobileNet v2 1.0 (random weights)", mnv2, None, 1.3, f"built by {builder}")]


def ort_session(model: onnx.ModelProto, threads: int):
    """An onnxruntime session with its defaults (all graph optimisations) on `threads` threads."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


class NetworkWorkload:
    """One network at one batch size: the same random input for both engines."""

    def __init__(self, net: NetworkModel, batch: int, seed: int = 0) -> None:
        self.net, self.batch = net, batch
        rng = np.random.default_rng(seed)
        self.x = rng.standard_normal((batch,) + net.input_chw(), dtype=np.float32)

    def onnxruntime(self, threads: int) -> Callable[[], list]:
        sess = ort_session(self.net.model, threads)
        feed = {self.net.input_name: self.x}
        return lambda: sess.run(None, feed)

    def keensight(self, threads: int) -> Callable[[], dict]:
        network = ks.nn.Network.from_onnx(self.net.model, threads=threads)
        return lambda: network.run(self.x)

    def output_names(self) -> List[str]:
        return [o.name for o in self.net.model.graph.output]


def max_relative_error(ref: np.ndarray, out: np.ndarray) -> float:
    """max |out - ref| / max |ref| (inf when the shapes differ)."""
    ref, out = np.asarray(ref, np.float64), np.asarray(out, np.float64)
    if ref.shape != out.shape:
        return float("inf")
    return float(np.max(np.abs(out - ref)) / max(float(np.max(np.abs(ref))), 1e-30))


TOLERANCE = 1e-4  # relative to the output's largest magnitude (issue 12's test tolerance)
