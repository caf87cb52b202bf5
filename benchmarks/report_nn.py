"""The CNN engine, keensight.nn vs onnxruntime on the same ONNX graphs, in one process.

    python benchmarks/report_nn.py [--repeat N] [--threads 1,2] [--batch 1,8] [--networks lite0,mnv2]
                                   [--sections peak,pointwise,networks,memory] [--clock wall|cpu]
                                   [--markdown] [--json out.json]

The short comparison (EfficientNet-Lite0, batch 1, 1 thread), also through the CLI:

    keensight bench --only report_nn --sections networks --networks lite0 --batch 1 --threads 1

peak       this CPU's single-thread FMA peak (independent FMA chains at the active ISA level,
           the best of ~1 ms runs: keensight._core._fma_peak_gflops), the "% of peak"
           denominator (times the thread count for t threads).
pointwise  1x1 convolution layers of MobileNet v2 and EfficientNet-Lite0 at batch 1 (bias, and
           ReLU6 after expansions): onnxruntime on a one-node Conv (+ Clip) graph vs keensight
           on the same graph imported as a prepared Network (weights packed once; the call
           converts NCHW in and out, as onnxruntime's reorders do), and that network's conv
           node alone (Network.profile, minimum over the repeats: the layer inside a network). Also timed: the functional
           keensight.nn.pointwise_conv2d (prepares a network every call) and the core GEMM
           driver alone on NHWC rows (no layout change, but it packs both operands every call).
networks   EfficientNet-Lite0 (the default model) and MobileNet v2 1.0 (random weights):
           onnxruntime (defaults, intra_op_num_threads = t) vs Network.from_onnx(model, threads=t).run(x).
memory     peak RSS growth of creating and running a Lite0 onnxruntime session vs a keensight
           Network (batch 1, 1 thread), each in a fresh subprocess (VmHWM after the run minus
           VmRSS after the imports, the high-water mark reset in between).

Figures are medians of --repeat calls after a warm-up (--clock cpu: of the calling thread's CPU
time in the 1-thread rows, for a loaded machine), the engines alternating in blocks of
three calls (order swapped every round). ratio = onnxruntime ms / keensight ms (higher is
better). GFLOP/s count 2 per multiply-add from the graph (Conv 2*O*Ho*Wo*kh*kw*C/groups,
Gemm 2*O*I). Outputs are compared first; a disagreement is printed and marks the row.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

import keensight as ks  # noqa: E402
import nn_workload as nw  # noqa: E402
from report import render  # noqa: E402

SECTIONS = ("peak", "pointwise", "networks", "memory")
NETWORKS = ("lite0", "mnv2")
NA = "n/a"


def _threads_label(t: int) -> str:
    return f"{t} thread{'s' if t > 1 else ''}"


def _pct(gflops: float, peak: float, threads: int) -> float:
    return 100.0 * gflops / (peak * threads)


def _checked(name: str, ref: np.ndarray, out: np.ndarray) -> Optional[float]:
    """The relative error of `out` against `ref`, printed when it exceeds the tolerance."""
    err = nw.max_relative_error(ref, out)
    if not err <= nw.TOLERANCE:
        print(f"WRONG OUTPUT ({name}): max |keensight - reference| / max |reference| = {err:.3g} "
              f"> {nw.TOLERANCE:g}; the row is marked")
    return err


# ------------------------------------------------------------------------------------------
# Pointwise layers
# ------------------------------------------------------------------------------------------

def pointwise_section(peak: float, threads_list: List[int], repeat: int, engine: bool, clock: str):
    l2 = nw.l2_bytes()
    tables, records = [], []
    for t in threads_list:
        header = ["layer", "K", "N", "HxW", "MFLOP", "in L2", "ORT ms", "ORT GFLOP/s", "ORT % peak",
                  "ks ms", "ks GFLOP/s", "ks % peak", "ratio", "target", "ks layer ms", "ks layer % peak",
                  "ks functional ms",
                  "core GEMM ms", "core GEMM % peak"]
        rows = []
        for layer in nw.POINTWISE_LAYERS:
            wl = nw.PointwiseWorkload(layer)
            ref = wl.reference()
            fns = [wl.onnxruntime(t)]
            ort_err = nw.max_relative_error(ref, fns[0]())
            if ort_err > 1e-3:
                print(f"note: onnxruntime differs from the float64 reference on {layer.id} by {ort_err:.2g}")
            wrong = False
            if engine:
                net_fn, fun_fn = wl.keensight_network(t), wl.keensight_functional(t)
                for name, fn in (("Network", net_fn), ("pointwise_conv2d", fun_fn)):
                    err = _checked(f"{layer.id} {name}", ref, fn())
                    wrong |= not err <= nw.TOLERANCE
                fns += [net_fn, fun_fn]
            gemm_fn = wl.core_gemm(t)
            gemm_err = nw.max_relative_error(ref[0].reshape(layer.n, -1).T, gemm_fn())
            if not gemm_err <= nw.TOLERANCE:
                print(f"WRONG OUTPUT ({layer.id} core GEMM): relative error {gemm_err:.3g}")
            fns.append(gemm_fn)
            ms = nw.median_ms(fns, repeat, clock=nw.clock_for(clock, t))
            ort_ms, gemm_ms = ms[0], ms[-1]
            ks_ms, fun_ms = (ms[1], ms[2]) if engine else (None, None)
            layer_ms = wl.layer_ms(net_fn, repeat) if engine else None
            gf = lambda m: layer.flops / (m * 1e6)  # noqa: E731  (ms -> GFLOP/s)
            in_l2 = l2 is not None and layer.working_set_bytes() <= l2
            target = ">= 80%" if layer.k >= 64 and in_l2 else ""
            rec = dict(layer=layer.id, name=layer.name, k=layer.k, n=layer.n, hw=layer.hw, threads=t,
                       clock=nw.clock_for(clock, t),
                       mflop=layer.flops / 1e6, working_set_bytes=layer.working_set_bytes(), in_l2=in_l2,
                       ort_ms=ort_ms, ort_gflops=gf(ort_ms), ks_ms=ks_ms,
                       ks_gflops=gf(ks_ms) if ks_ms else None,
                       ks_pct_peak=_pct(gf(ks_ms), peak, t) if ks_ms else None,
                       ratio=ort_ms / ks_ms if ks_ms else None, ks_functional_ms=fun_ms,
                       ks_layer_ms=layer_ms, ks_layer_pct_peak=_pct(gf(layer_ms), peak, t) if layer_ms else None,
                       core_gemm_ms=gemm_ms, core_gemm_pct_peak=_pct(gf(gemm_ms), peak, t),
                       ks_output_wrong=wrong, target_pct_peak=80.0 if target else None)
            records.append(rec)
            mark = " (wrong output)" if wrong else ""
            rows.append([layer.name, str(layer.k), str(layer.n), f"{layer.hw}^2", f"{layer.flops / 1e6:.1f}",
                         "yes" if in_l2 else "no", f"{ort_ms:.3f}", f"{gf(ort_ms):.1f}",
                         f"{_pct(gf(ort_ms), peak, t):.0f}%",
                         f"{ks_ms:.3f}" if ks_ms else NA, f"{gf(ks_ms):.1f}" if ks_ms else NA,
                         f"{rec['ks_pct_peak']:.0f}%" if ks_ms else NA,
                         (f"{rec['ratio']:.2f}" + mark) if ks_ms else NA, target,
                         f"{layer_ms:.3f}" if layer_ms else NA,
                         f"{rec['ks_layer_pct_peak']:.0f}%" if layer_ms else NA,
                         f"{fun_ms:.3f}" if fun_ms else NA, f"{gemm_ms:.3f}",
                         f"{rec['core_gemm_pct_peak']:.0f}%"])
        tables.append((f"Pointwise 1x1 layers, batch 1, {_threads_label(t)} ({nw.clock_for(clock, t)} clock)",
                       header, rows))
    return tables, records


# ------------------------------------------------------------------------------------------
# Networks
# ------------------------------------------------------------------------------------------

def networks_section(peak: float, threads_list: List[int], batches: List[int], repeat: int, engine: bool,
                     wanted: List[str], clock: str):
    tables, records, notes = [], [], []
    for net in [n for n in nw.network_models() if n.id in wanted]:
        flops = nw.flops_per_image(net.model)
        total = sum(flops.values())
        notes.append(f"{net.name}: {total / 2e6:.0f} M multiply-adds per image ({total / 1e9:.3f} GFLOP: "
                     + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in flops.items() if v) + ")"
                     + (f"; {net.note}" if net.note else ""))
        header = ["batch", "threads", "clock", "ORT ms/image", "ORT GFLOP/s", "ORT % peak", "ks ms/image",
                  "ks GFLOP/s", "ks % peak", "ratio", "target", "max rel. error"]
        rows = []
        for batch in batches:
            wl = nw.NetworkWorkload(net, batch)
            for t in threads_list:
                ort_fn = wl.onnxruntime(t)
                fns = [ort_fn]
                err, wrong = None, False
                if engine:
                    ks_fn = wl.keensight(t)
                    ref, out = ort_fn(), ks_fn()
                    errs = [_checked(f"{net.id} batch {batch} {name}", r, out[name])
                            for name, r in zip(wl.output_names(), ref)]
                    err = max(errs)
                    wrong = not err <= nw.TOLERANCE
                    fns.append(ks_fn)
                ms = nw.median_ms(fns, repeat, clock=nw.clock_for(clock, t))
                ort_img = ms[0] / batch
                ks_img = ms[1] / batch if engine else None
                gf = lambda m: total / (m * 1e6)  # noqa: E731  (ms per image -> GFLOP/s)
                target = f">= {net.target}" if batch == 1 and t == 1 else ""
                rec = dict(network=net.id, name=net.name, batch=batch, threads=t, clock=nw.clock_for(clock, t),
                           gflop_per_image=total / 1e9,
                           ort_ms_per_image=ort_img, ort_gflops=gf(ort_img),
                           ort_pct_peak=_pct(gf(ort_img), peak, t), ks_ms_per_image=ks_img,
                           ks_gflops=gf(ks_img) if ks_img else None,
                           ks_pct_peak=_pct(gf(ks_img), peak, t) if ks_img else None,
                           ratio=ort_img / ks_img if ks_img else None,
                           target_ratio=net.target if target else None, max_rel_error=err, ks_output_wrong=wrong)
                records.append(rec)
                rows.append([str(batch), str(t), nw.clock_for(clock, t), f"{ort_img:.2f}", f"{gf(ort_img):.1f}",
                             f"{rec['ort_pct_peak']:.0f}%",
                             f"{ks_img:.2f}" if ks_img else NA, f"{gf(ks_img):.1f}" if ks_img else NA,
                             f"{rec['ks_pct_peak']:.0f}%" if ks_img else NA,
                             (f"{rec['ratio']:.2f}" + (" (wrong output)" if wrong else "")) if ks_img else NA,
                             target, f"{err:.1e}" if err is not None else NA])
        tables.append((net.name, header, rows))
    return tables, records, notes


# ------------------------------------------------------------------------------------------
# Peak memory, each engine in a fresh subprocess
# ------------------------------------------------------------------------------------------

_MEMORY_SCRIPT = r"""
import json, sys
engine, path, batch, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import numpy as np
if engine == "onnxruntime":
    import onnxruntime as ort
else:
    import keensight.nn
    if engine == "keensight":
        import onnx  # from_onnx parses the file with onnx: its import is not the network's memory

def status():
    try:
        with open("/proc/self/status") as f:
            d = {k: int(v.split()[0]) * 1024 for k, _, v in (l.partition(":") for l in f) if k in ("VmRSS", "VmHWM")}
        return d
    except OSError:
        import resource
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss *= 1 if sys.platform == "darwin" else 1024
        return {"VmRSS": rss, "VmHWM": rss}

x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
try:  # reset the high-water mark to the current RSS (Linux >= 4.0), so imports do not count
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    reset = True
except OSError:
    reset = False
base = status()
if engine == "onnxruntime":
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    run = lambda: sess.run(None, {sess.get_inputs()[0].name: x})
elif engine == "keensight":
    net = keensight.nn.Network.from_onnx(path, threads=threads)
    run = lambda: net.run(x)
else:  # "keensight-load": a network saved by Network.save, loaded without onnx
    net = keensight.nn.Network.load(path)
    net.threads = threads
    run = lambda: net.run(x)
created = status()
for _ in range(3):
    run()
end = status()
print(json.dumps({"base_rss": base["VmRSS"], "created_rss": created["VmRSS"], "end_rss": end["VmRSS"],
                  "hwm": end["VmHWM"], "hwm_reset": reset}))
"""


def _measure_memory(engine: str, path: str, batch: int, threads: int) -> Dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, engine, path, str(batch), str(threads)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"memory measurement of {engine} failed:\n{done.stderr[-2000:]}")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    r["peak_growth"] = r["hwm"] - r["base_rss"]
    r["retained_growth"] = r["end_rss"] - r["base_rss"]
    return r


def memory_section(engine: bool, batch: int = 1, threads: int = 1, repeat: int = 3):
    """Peak RSS growth, the median of `repeat` fresh subprocesses per engine."""
    from keensight import models
    path = str(models.get_model_path())
    engines = ["onnxruntime"]
    tmp = None
    if engine:
        engines.append("keensight")
        if hasattr(ks.nn.Network, "save"):
            tmp = tempfile.TemporaryDirectory()
            saved = os.path.join(tmp.name, "lite0.ksnn")
            ks.nn.Network.from_onnx(path).save(saved)
            engines.append("keensight-load")
    header = ["engine", "peak RSS growth MiB", "RSS growth after 3 runs MiB", "ratio to ORT peak", "target"]
    rows, records = [], []
    mib = 1 / 2 ** 20
    peaks = {}
    try:
        for e in engines:
            runs = [_measure_memory(e, saved if e == "keensight-load" else path, batch, threads)
                    for _ in range(repeat)]
            peak = float(np.median([r["peak_growth"] for r in runs]))
            kept = float(np.median([r["retained_growth"] for r in runs]))
            peaks[e] = peak
            label = {"onnxruntime": "onnxruntime InferenceSession (defaults)",
                     "keensight": "keensight Network.from_onnx",
                     "keensight-load": "keensight Network.load (saved network, no onnx)"}[e]
            ratio = peak / peaks["onnxruntime"]
            records.append(dict(engine=e, batch=batch, threads=threads, peak_growth_bytes=peak,
                                retained_growth_bytes=kept, ratio_to_ort=ratio, hwm_reset=runs[0]["hwm_reset"]))
            rows.append([label, f"{peak * mib:.1f}", f"{kept * mib:.1f}", f"{ratio:.2f}",
                         "" if e == "onnxruntime" else "<= 1.0"])
    finally:
        if tmp is not None:
            tmp.cleanup()
    title = (f"Peak memory, EfficientNet-Lite0 (model file {os.path.getsize(path) * mib:.1f} MiB), "
             f"batch {batch}, {_threads_label(threads)}, median of {repeat} subprocesses")
    return [(title, header, rows)], records


# ------------------------------------------------------------------------------------------

def _int_list(text: str) -> List[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _names(text: str, choices) -> List[str]:
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in wanted if s not in choices]
    if bad or not wanted:
        raise argparse.ArgumentTypeError(f"expected some of {','.join(choices)}, got {text!r}")
    return wanted


def _sections(text: str) -> List[str]:
    return _names(text, SECTIONS)


def _networks(text: str) -> List[str]:
    return _names(text, NETWORKS)


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=21, help="timed calls per engine and row (median)")
    p.add_argument("--threads", type=_int_list, default=[1, 2], help="comma-separated thread counts (default 1,2)")
    p.add_argument("--batch", type=_int_list, default=[1, 8], help="network batch sizes (default 1,8)")
    p.add_argument("--sections", type=_sections, default=list(SECTIONS), help=f"some of {','.join(SECTIONS)}")
    p.add_argument("--networks", type=_networks, default=list(NETWORKS), help=f"some of {','.join(NETWORKS)}")
    p.add_argument("--clock", choices=nw.CLOCKS, default="wall",
                   help="wall: elapsed time; cpu: the calling thread's CPU time for the 1-thread rows (leaves "
                        "out the time other processes hold the core; multi-threaded rows stay on wall time)")
    p.add_argument("--markdown", action="store_true", help="print markdown tables")
    p.add_argument("--json", metavar="OUT.json", default=None, help="also write every figure to this file")
    a = p.parse_args(argv)

    engine = nw.has_engine()
    info = ks.cpu_info()
    load = nw.load_average()
    l2 = nw.l2_bytes()
    print(f"keensight {ks.__version__} ({info['active']}), onnxruntime {ort.__version__}, CPU: {nw.cpu_model()} "
          f"({nw.all_cores()} cores{f', L2 {l2 >> 10} KiB' if l2 else ''}), load average {load:.2f}, "
          f"median of {a.repeat}, {a.clock} clock\n")
    if load > 0.5:
        print(f"WARNING: load average {load:.2f}: other processes share the cores; the figures (the "
              "multi-threaded ones especially) are distorted\n")
    if not engine:
        print("NOTE: this keensight has no keensight.nn.Network yet: only onnxruntime is timed\n")
    doc: Dict[str, Any] = {"machine": {"cpu": nw.cpu_model(), "cores": nw.all_cores(), "l2_bytes": l2,
                                       "isa": info["active"], "load_average": load,
                                       "keensight": ks.__version__, "onnxruntime": ort.__version__},
                           "repeat": a.repeat, "clock": a.clock}
    heading = "### " if a.markdown else ""

    from keensight import _core
    peak = nw.fma_peak_gflops()
    doc["fma_peak_gflops_1thread"] = peak
    if "peak" in a.sections:
        print(f"{heading}FMA peak\n")
        print(f"{peak:.1f} GFLOP/s on one thread ({_core._fma_peak_kernel()}: independent FMA chains, best of "
              f"~1 ms runs); t threads: t x this\n")

    if "pointwise" in a.sections:
        tables, doc["pointwise"] = pointwise_section(peak, a.threads, a.repeat, engine, a.clock)
        for title, header, rows in tables:
            print(f"{heading}{title}\n\n{render(header, rows, a.markdown)}\n")
        print("ks = a prepared one-node keensight Network on the same ONNX graph (NCHW in and out); "
              "ks layer = its conv node alone (Network.profile, the minimum over the repeats: no layout "
              "change at the network's edges, as inside a network); "
              "ks functional = keensight.nn.pointwise_conv2d (prepares the network every call); "
              "core GEMM = keensight's core GEMM driver alone (_core._gemm_f32) on NHWC rows: no layout change, "
              "but it packs the activations and the weights every call. "
              "Target: >= 80% of peak for K >= 64 in cache.\n")

    if "networks" in a.sections:
        tables, doc["networks"], notes = networks_section(peak, a.threads, a.batch, a.repeat, engine,
                                                                 a.networks, a.clock)
        for title, header, rows in tables:
            print(f"{heading}{title}\n\n{render(header, rows, a.markdown)}\n")
        for note in notes:
            print(note)
        print()

    if "memory" in a.sections:
        tables, doc["memory"] = memory_section(engine)
        for title, header, rows in tables:
            print(f"{heading}{title}\n\n{render(header, rows, a.markdown)}\n")

    if a.json:
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"figures written to {a.json}")


if __name__ == "__main__":
    main()
