"""Recall@10 vs QPS of keensight's HNSWIndex, hnswlib and faiss IndexHNSWFlat, one thread.

    python benchmarks/report_hnsw.py [--data clustered fashion] [--large] [--efs 16 32 64 128]
                                     [--repeat 5] [--no-memory] [--markdown]

Every index is built here with M=16, ef_construction=200 and one thread (build time: CPU seconds
of the building thread, robust to other load on the machine); then for each ef the query batch
is searched by every index in turn, alternating the order every repeat, and the best and median
of the repeats are kept (QPS from CPU time). Memory: the growth of the resident set while one
index is built in a fresh child process (``--no-memory`` skips it). Ratios are peer / keensight
at the first ef where each reaches recall@10 >= 0.95 (BENCHMARKS.md: QPS ratio >= 1.3, build
time ratio >= 1.0, memory no larger). "keensight (default)" is HNSWIndex at its default
parameters (pca="auto": the rotation where benchmarks/report_hnsw_pca.py found it pays).
Data: clustered (power-law spread, 128-d), decaying (Gaussian classes whose scale decays linearly,
256-d) and Fashion-MNIST raw pixels.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ann_data as ad  # noqa: E402

TARGET_RECALL = 0.95


def _threads_one() -> None:
    import keensight
    keensight.set_num_threads(1)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _rss_bytes() -> int:
    """Resident set size after handing freed heap memory back to the OS (glibc keeps freed
    blocks otherwise, so build-time temporaries would count as index memory)."""
    import ctypes
    import gc
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(which: int, base_path: str) -> None:
    """Child process: print the RSS growth of building index `which` on the saved base."""
    _threads_one()
    base = np.load(base_path)
    index = ad.peers()[which]()
    for module in ("keensight.search", "hnswlib", "faiss"):  # imports are not index memory
        try:
            __import__(module)
        except ImportError:
            pass
    # Nor are OpenBLAS / LAPACK's process-wide work buffers, touched by the first calls of the size
    # the PCA fit makes (a d x d product of tall matrices, a d x d eigh): made here on dummy data.
    # A tiny warm-up leaves them to the fit and counts ~3.5 MB of them as index memory at 784-d.
    dim = base.shape[1]
    warm = np.ones((4096, dim))
    np.linalg.eigh(warm.T @ warm + np.eye(dim))
    del warm
    before = _rss_bytes()
    index.build(base)
    print(json.dumps({"rss_bytes": _rss_bytes() - before, "reported": index.memory_bytes()}))


def measure_memory(n_indexes: int, base: np.ndarray) -> List[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "base.npy")
        np.save(path, base)
        out = []
        for which in range(n_indexes):
            r = subprocess.run([sys.executable, __file__, "--memory-child", str(which), path],
                               capture_output=True, text=True, check=True)
            out.append(json.loads(r.stdout.strip().splitlines()[-1]))
        return out


def run(ds: ad.Dataset, efs: List[int], repeat: int, memory: bool, markdown: bool) -> None:
    _threads_one()
    indexes = [f() for f in ad.peers()]
    build_s: Dict[str, float] = {}
    for index in indexes:
        t = time.process_time()
        index.build(ds.base)
        build_s[index.name] = time.process_time() - t
        print(f"  built {index.name}: {build_s[index.name]:.1f} s", file=sys.stderr, flush=True)

    nq = len(ds.queries)
    rows = []  # (ef, name, recall, best qps, median qps)
    for ef in efs:
        for index in indexes:
            index.set_ef(ef)
        recalls = {ix.name: ad.recall_at_k(ix.search(ds.queries, ad.K), ds.truth) for ix in indexes}
        samples: Dict[str, List[float]] = {ix.name: [] for ix in indexes}
        for r in range(repeat):
            for ix in (indexes if r % 2 == 0 else indexes[::-1]):
                t = time.process_time()
                ix.search(ds.queries, ad.K)
                samples[ix.name].append(time.process_time() - t)
        for ix in indexes:
            rows.append((ef, ix.name, recalls[ix.name], nq / min(samples[ix.name]),
                         nq / statistics.median(samples[ix.name])))

    mem = measure_memory(len(indexes), ds.base) if memory else [None] * len(indexes)

    # Table: one row per ef, per index recall and QPS.
    names = [ix.name for ix in indexes]
    header = ["ef"] + [f"{n} recall / QPS" for n in names]
    table = []
    for ef in efs:
        cells = [str(ef)]
        for n in names:
            (_, _, rec, best, med), = [r for r in rows if r[0] == ef and r[1] == n]
            cells.append(f"{rec:.3f} / {med:,.0f}")
        table.append(cells)
    print(f"\n### {ds.name}: {len(ds.base):,} base, {nq:,} queries, k={ad.K}, 1 thread "
          f"(QPS: median of {repeat})\n")
    print(_render(header, table, markdown))

    # Summary: QPS at the first ef reaching the target recall; build; memory.
    def at_target(name):
        ok = [r for r in rows if r[1] == name and r[2] >= TARGET_RECALL]
        return ok[0] if ok else None

    ks = names[0]
    ks_row = at_target(ks)
    header2 = ["index", f"ef @ recall>={TARGET_RECALL}", "recall", "QPS (median)", "QPS ratio ks/peer",
               "build s (CPU)", "build ratio peer/ks", "memory MB (RSS growth)", "memory / keensight"]
    table2 = []
    for i, n in enumerate(names):
        r = at_target(n)
        m = mem[i]["rss_bytes"] / 2**20 if mem[i] else None
        m_ks = mem[0]["rss_bytes"] / 2**20 if mem[0] else None
        table2.append([
            n, str(r[0]) if r else "-", f"{r[2]:.3f}" if r else "-", f"{r[4]:,.0f}" if r else "-",
            f"{ks_row[4] / r[4]:.2f}" if (r and ks_row) else "-",
            f"{build_s[n]:.1f}", f"{build_s[n] / build_s[ks]:.2f}",
            f"{m:.1f}" if m is not None else "-", f"{m / m_ks:.2f}" if m is not None else "-",
        ])
    reported = [m["reported"] for m in mem if m and m.get("reported")]
    print()
    print(_render(header2, table2, markdown))
    print("\n(QPS ratio: keensight's QPS / the row's QPS at each one's target ef; build and memory "
          "ratios: the row's / keensight's.)")
    if reported:
        print(f"keensight memory_usage() after the build: {reported[0] / 2**20:.1f} MB")


def _render(header, rows, markdown: bool) -> str:
    if markdown:
        lines = [header, ["---"] * len(header)] + rows
        return "\n".join("| " + " | ".join(r) + " |" for r in lines)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [header] + rows)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-child":
        memory_child(int(sys.argv[2]), sys.argv[3])
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", choices=["clustered", "decaying", "fashion"],
                   default=["clustered", "decaying", "fashion"])
    p.add_argument("--large", action="store_true", help="clustered 1M x 128 instead of 100k x 128")
    p.add_argument("--efs", nargs="+", type=int, default=[10, 16, 24, 32, 48, 64, 96, 128])
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--markdown", action="store_true")
    a = p.parse_args()
    import keensight
    versions = [f"keensight {keensight.__version__} ({keensight.cpu_info()['active']})"]
    for mod in ("hnswlib", "faiss"):
        try:
            __import__(mod)
            from importlib.metadata import version
            versions.append(f"{mod} {version(mod if mod != 'faiss' else 'faiss-cpu')}")
        except Exception:
            versions.append(f"{mod} not installed")
    print(", ".join(versions) + f"; M={ad.M}, ef_construction={ad.EF_CONSTRUCTION}")
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > 1.0:
        print(f"WARNING: load average {os.getloadavg()[0]:.2f}: figures are noisier than usual")
    for name in a.data:
        if name == "clustered":
            ds = ad.clustered(1_000_000 if a.large else 100_000, 128, n_queries=a.queries)
        elif name == "decaying":
            ds = ad.gaussian_classes(100_000, 256, decaying=True, n_queries=a.queries)
        else:
            ds = ad.fashion_mnist(n_queries=a.queries)
            if ds is None:
                print(f"Fashion-MNIST not found under {ad.FASHION_DIR}: skipped")
                continue
        run(ds, a.efs, a.repeat, not a.no_memory, a.markdown)


if __name__ == "__main__":
    main()
