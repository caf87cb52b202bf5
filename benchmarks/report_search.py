"""Time the search workloads for keensight and its peers in one process and print the comparison.

    python benchmarks/report_search.py [--repeat N] [--threads 1|all|both] [--markdown] [--full]

Exact k-NN: 1-NN classification against faiss IndexFlatL2 on embeddings-like 1280-d vectors and
on Fashion-MNIST raw pixels (784-d, 60k train as the base), with the 1-NN accuracy of each;
PCA transform against scikit-learn. Each figure is the median of N timed calls after a warm-up,
peer and keensight alternating (order swapped every repeat). Ratio = peer ms / keensight ms
(higher is better); one-thread rows also give the ratio of process CPU times, steadier than wall
time when other jobs share the cores. ``--full`` uses all 10k queries (the BENCHMARKS.md sizes;
minutes per table).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import faiss
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keensight as ks  # noqa: E402
from keensight.search import PCA, FlatIndex, knn  # noqa: E402
from knn_data import embeddings, fashion_mnist, same_neighbour, thread_count  # noqa: E402
from report import render  # noqa: E402


def _time(fn):
    """(wall ms, process CPU ms) of one call."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - t) * 1e3, (time.process_time() - c) * 1e3


def _median_ms(fns, repeat: int):
    """Median wall ms of each of `fns`, interleaved call by call (after one warm-up call each).
    Also keeps the median process CPU times: on a machine shared with other jobs, a
    single-threaded run's CPU time is steadier than its wall time."""
    for fn in fns:
        fn()
    samples = [[] for _ in fns]
    for r in range(repeat):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            samples[i].append(_time(fns[i]))
    _median_ms.cpu = [statistics.median(c for _, c in s) for s in samples]
    return [statistics.median(w for w, _ in s) for s in samples]


def _cpu_note(threads: int) -> str:
    """Peer / keensight process CPU time of the last _median_ms, for one-thread runs."""
    if threads != 1:
        return ""
    peer, ours = _median_ms.cpu
    return f"; CPU-time ratio {peer / ours:.2f}"


def knn_rows(data, n_queries: int, repeat: int, target: str, threads: int):
    """One row: faiss IndexFlatL2 vs keensight FlatIndex (both hold the base already), 1-NN,
    with agreement and accuracy. (keensight.search.knn also checks the base for NaN on every
    call: ~1% more at 2k queries.)"""
    q, b = data.queries[:n_queries], data.base
    index = faiss.IndexFlatL2(b.shape[1])
    index.add(b)
    flat = FlatIndex(b.shape[1])
    flat.add(b)
    _, fi = index.search(q, 1)
    _, ki = flat.search(q, 1)
    np.testing.assert_array_equal(ki, knn(q, b, 1)[1])
    agree = same_neighbour(q, b, ki[:, 0], fi[:, 0])
    acc_f = float((data.base_labels[fi[:, 0]] == data.query_labels[:n_queries]).mean())
    acc_k = float((data.base_labels[ki[:, 0]] == data.query_labels[:n_queries]).mean())
    f_ms, k_ms = _median_ms([lambda: index.search(q, 1), lambda: flat.search(q, 1)], repeat)
    name = f"exact 1-NN, {data.name} ({len(q) // 1000 or len(q)}{'k' if len(q) >= 1000 else ''} x {len(b) // 1000}k)"
    note = f"accuracy {acc_k:.4f} (faiss {acc_f:.4f}), same neighbour or exact tie {agree:.4f}{_cpu_note(threads)}"
    return [name, "faiss IndexFlatL2 / FlatIndex", f"{f_ms:.1f}", f"{k_ms:.1f}", f"{f_ms / k_ms:.2f}", target, note]


def pca_row(data, n_components: int, repeat: int, threads: int):
    """PCA transform of the queries: scikit-learn (fitted on the same data) vs keensight."""
    from sklearn.decomposition import PCA as SkPCA

    sk = SkPCA(n_components=n_components, svd_solver="full").fit(data.base[:20_000])
    ours = PCA(n_components=n_components).fit(data.base[:20_000])
    x = data.queries
    err = float(np.abs(ours.transform(x) - sk.transform(x)).max() / np.abs(sk.transform(x)).max())
    s_ms, k_ms = _median_ms([lambda: sk.transform(x), lambda: ours.transform(x)], repeat)
    name = f"PCA transform {x.shape[1]} -> {n_components}, {data.name} ({len(x) // 1000}k rows)"
    return [name, "scikit-learn PCA", f"{s_ms:.2f}", f"{k_ms:.2f}", f"{s_ms / k_ms:.2f}", "",
            f"max rel. difference {err:.1e}{_cpu_note(threads)}"]


def table(threads, repeat: int, full: bool):
    header = ["workload", "peer", "peer ms", "keensight ms", "ratio", "target", "note"]
    rows = []
    n_queries = 10_000 if full else 2_000
    emb = embeddings(n_queries=n_queries)
    fm = fashion_mnist(n_queries=10_000)
    with thread_count(threads) as n:
        rows.append(knn_rows(emb, n_queries, repeat, ">= 1.0", n))
        if fm is not None:
            rows.append(knn_rows(fm, n_queries, repeat, ">= 1.0", n))
            rows.append(pca_row(fm, 64, max(repeat, 7), n))
        else:
            rows.append(["Fashion-MNIST", "", "", "", "", "", "not installed (dataset-fashion-mnist)"])
    return f"{n} thread{'s' if n > 1 else ''}", header, rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="timed calls per implementation (median)")
    p.add_argument("--threads", choices=["1", "all", "both"], default="both")
    p.add_argument("--markdown", action="store_true", help="print markdown tables")
    p.add_argument("--full", action="store_true", help="10k queries (BENCHMARKS.md sizes)")
    a = p.parse_args()
    info = ks.cpu_info()
    print(f"keensight {ks.__version__} ({info['active']}), faiss {faiss.__version__}, "
          f"NumPy {np.__version__}, median of {a.repeat}\n")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5:
        print(f"WARNING: load average {load:.2f}: other processes share the cores; "
              "the figures will be distorted\n")
    settings = [1, "all"] if a.threads == "both" else [1 if a.threads == "1" else "all"]
    for threads in settings:
        title, header, rows = table(threads, a.repeat, a.full)
        print(("### Exact k-NN and PCA, " if a.markdown else "") + title + "\n")
        print(render(header, rows, a.markdown, left=(0, 1, 6)) + "\n", flush=True)


if __name__ == "__main__":
    main()
