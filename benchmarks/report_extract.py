"""Feature extraction, keensight Extractor vs the naive loop, in one process.

    python benchmarks/report_extract.py [--images 200] [--repeat 3] [--dir DIR] [--threads all|1|both]

All pipelines turn the same folder of JPEG/PNG photos into EfficientNet-Lite0 embeddings.
The naive loop: cv2.imread, cv2.resize, normalise in NumPy, one onnxruntime run per image.
keensight: Extractor (batches of 16, decoding on a thread pool, up to min(cores, 4) batches
through the network side by side, fused C++ resize/crop/normalise), the network run by
onnxruntime or by keensight's own engine (backend="keensight"), each with full decoding (the
default) and with JPEG draft decoding (jpeg_draft=2.0: libjpeg decodes large JPEGs at 1/2..1/8
scale, keeping twice the resize length). Runs alternate (and reverse their order every
repeat); figures are medians. "preprocess share": time in resize+crop+normalise+layout over
the whole run's wall time (naive: cv2.resize + NumPy); keensight runs up to min(cores, 4)
batches side by side, so its share is the fused C++ call's summed time over streams x wall time.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keensight as ks  # noqa: E402
from extract_workload import Keensight, Naive, all_cores, photo_folder  # noqa: E402
from report import render  # noqa: E402


# The Extractor's rows: (backend, jpeg_draft).
VARIANTS = [("onnxruntime", False), ("onnxruntime", 2.0), ("keensight", False), ("keensight", 2.0)]


def measure(threads: int, files, repeat: int):
    cv2.setNumThreads(threads)
    ks.set_num_threads(threads)
    impls = [Naive(threads)] + [Keensight(threads, backend=b, jpeg_draft=d) for b, d in VARIANTS]
    warm = files[:16]
    for impl in impls:
        impl(warm)
    for impl in impls:
        for k in impl.stages:
            impl.stages[k] = 0.0
    times = [[] for _ in impls]
    for r in range(repeat):
        order = list(range(len(impls)))
        order = order if r % 2 == 0 else order[::-1]
        for i in order:
            t = time.perf_counter()
            impls[i](files)
            times[i].append(time.perf_counter() - t)
    med = [statistics.median(t) for t in times]
    total = [sum(t) for t in times]
    return med, total, [impl.stages for impl in impls], impls[1].extractor.streams_


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "keensight-bench-photos")
    p.add_argument("--threads", choices=["1", "all", "both"], default="all")
    p.add_argument("--markdown", action="store_true")
    a = p.parse_args()
    files = photo_folder(a.dir, a.images)
    n_png = sum(f.suffix == ".png" for f in files)
    info = ks.cpu_info()
    print(f"keensight {ks.__version__} ({info['active']}), OpenCV {cv2.__version__}, EfficientNet-Lite0, "
          f"{len(files)} photos ({len(files) - n_png} JPEG, {n_png} PNG, 640x480..1920x1080), "
          f"median of {a.repeat}\n")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5:
        print(f"WARNING: load average {load:.2f}: other processes share the cores\n")
    settings = {"1": [1], "all": [all_cores()], "both": [1, all_cores()]}[a.threads]
    for threads in settings:
        med, total, stages, streams = measure(threads, files, a.repeat)
        n = len(files)
        t_naive, sum_naive, st_naive = med[0], total[0], stages[0]
        header = ["pipeline", "images/s", "ms/image", "ratio", "target", "preprocess share", "decode share"]
        rows = [["naive loop", f"{n / t_naive:.1f}", f"{1e3 * t_naive / n:.2f}", "1.00", "",
                 f"{100 * st_naive['preprocess'] / sum_naive:.1f}%", f"{100 * st_naive['decode'] / sum_naive:.1f}%"]]
        for (backend, draft), t, summed, st in zip(VARIANTS, med[1:], total[1:], stages[1:]):
            # keensight runs `streams` batches side by side, each preprocessing on its own share
            # of the cores: its share is that of the streams' timelines (summed call time / streams).
            share = 100 * st["preprocess"] / (summed * streams)
            name = f"Extractor, {backend} backend" + (", jpeg_draft=2.0" if draft else "")
            rows.append([name, f"{n / t:.1f}", f"{1e3 * t / n:.2f}", f"{t_naive / t:.2f}",
                         ">= 1.5" if not draft else "", f"{share:.1f}%" + (" (target < 10%)" if not draft else ""),
                         "overlapped"])
        print(("### " if a.markdown else "") + f"{threads} thread{'s' if threads > 1 else ''}\n")
        print(render(header, rows, a.markdown) + "\n")

if __name__ == "__main__":
    main()
