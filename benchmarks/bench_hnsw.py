"""HNSW vs hnswlib and faiss IndexHNSWFlat, side by side (M=16, ef_construction=200, 1 thread):
``python -m pytest benchmarks/bench_hnsw.py --benchmark-only``.

One group per (data, ef) holds every index's timing of the same query batch; recall@10 of each
is checked untimed and stored in ``extra_info``. Build is timed once per index (pedantic, one
round). The full recall-vs-QPS table with memory is ``benchmarks/report_hnsw.py``.
"""
import numpy as np
import pytest

import keensight
from ann_data import K, clustered, peers, recall_at_k

N_BASE = 20_000  # small enough to build every peer in seconds; report_hnsw.py runs 100k / 1M
EFS = (16, 32, 64)
FACTORIES = peers()
IDS = [f().name.replace(" ", "_") for f in FACTORIES]


@pytest.fixture(scope="module")
def data():
    return clustered(N_BASE, 128, n_queries=500, seed=1)


@pytest.fixture(scope="module")
def built(data):
    keensight.set_num_threads(1)
    out = {}
    for f in FACTORIES:
        index = f()
        index.build(data.base)
        out[index.name] = index
    yield out
    keensight.set_num_threads(0)


@pytest.mark.parametrize("ef", EFS)
@pytest.mark.parametrize("which", range(len(FACTORIES)), ids=IDS)
def test_search(benchmark, data, built, which, ef):
    index = list(built.values())[which]
    index.set_ef(ef)
    rec = recall_at_k(index.search(data.queries, K), data.truth)
    benchmark.group = f"HNSW search, clustered {N_BASE // 1000}k x 128, {len(data.queries)} queries, ef={ef}"
    benchmark.extra_info.update(recall_at_10=rec, queries=len(data.queries))
    benchmark(index.search, data.queries, K)


@pytest.mark.parametrize("which", range(len(FACTORIES)), ids=IDS)
def test_build(benchmark, data, which):
    keensight.set_num_threads(1)
    try:
        index = FACTORIES[which]()
        benchmark.group = f"HNSW build, clustered 10k x 128, M=16, ef_construction=200, 1 thread"
        benchmark.pedantic(index.build, args=(data.base[:10_000],), rounds=1, iterations=1)
        mem = index.memory_bytes()
        if mem is not None:
            benchmark.extra_info["memory_bytes"] = mem
    finally:
        keensight.set_num_threads(0)
