"""Time every filter workload for OpenCV and keensight in one process and print the comparison.

    python benchmarks/report.py [--repeat N] [--threads 1|all|both] [--markdown]

Each figure is the median of N timed calls after a warm-up; OpenCV and keensight calls alternate
(and swap order every repeat) so that drift hits both alike. Ratio = OpenCV ms / keensight ms
(higher is better); "x copy" is keensight's time as a multiple of a 1080p float32 copy.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import cv2

import keensight as ks
from workloads import THREADS, check_agree, copy_floor, thread_count, workloads


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def _median_ms(fns, repeat: int):
    """Median ms of each of `fns`, interleaved call by call."""
    for fn in fns:
        fn()  # warm-up
    samples = [[] for _ in fns]
    for r in range(repeat):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            samples[i].append(_time(fns[i]))
    return [statistics.median(s) for s in samples]


def table(threads, repeat: int):
    """Header and rows of one table, measured with `threads`."""
    header = ["workload", "OpenCV ms", "keensight ms", "ratio", "target", "keensight x copy"]
    rows = []
    with thread_count(threads) as n:
        (copy_ms,) = _median_ms([copy_floor()], max(repeat, 20))
        rows.append(["floor: 1080p float32 copy", "", f"{copy_ms:.3f}", "", "", "1.0"])
        for w in workloads():
            try:
                check_agree(w)
                ok = True
            except AssertionError as e:
                print(f"WRONG OUTPUT, not timed as a pass: {e}")
                ok = False
            cv_ms, ks_ms = _median_ms([w.opencv, w.keensight], repeat)
            ratio = f"{cv_ms / ks_ms:.2f}" + ("" if ok else " (wrong output)")
            rows.append([w.name, f"{cv_ms:.3f}", f"{ks_ms:.3f}", ratio, f">= {w.target}",
                         f"{ks_ms / copy_ms:.1f}"])
    return f"{n} thread{'s' if n > 1 else ''}", header, rows


def render(header, rows, markdown: bool, left=(0,)) -> str:
    """A markdown table, or aligned text columns (`left`: the left-aligned ones)."""
    if markdown:
        lines = [header, ["---"] * len(header)] + rows
        return "\n".join("| " + " | ".join(r) + " |" for r in lines)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]

    def fmt(r):
        return "  ".join(c.ljust(wd) if i in left else c.rjust(wd) for i, (c, wd) in enumerate(zip(r, widths)))

    return "\n".join([fmt(header), fmt(["-" * wd for wd in widths])] + [fmt(r) for r in rows])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=15, help="timed calls per implementation (median)")
    p.add_argument("--threads", choices=["1", "all", "both"], default="both")
    p.add_argument("--markdown", action="store_true", help="print markdown tables")
    a = p.parse_args()
    info = ks.cpu_info()
    print(f"keensight {ks.__version__} ({info['active']}), OpenCV {cv2.__version__}, "
          f"1920x1080 single-channel, median of {a.repeat}\n")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5:
        print(f"WARNING: load average {load:.2f}: other processes share the cores; "
              "the multi-threaded figures especially will be distorted\n")
    settings = THREADS if a.threads == "both" else [int(a.threads) if a.threads == "1" else "all"]
    for threads in settings:
        title, header, rows = table(threads, a.repeat)
        print(("### " if a.markdown else "") + title + "\n")
        print(render(header, rows, a.markdown) + "\n")


if __name__ == "__main__":
    main()
