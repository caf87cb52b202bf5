"""Exact k-NN and PCA vs faiss / NumPy / scikit-learn, side by side, one thread:
``python -m pytest benchmarks/bench_search.py --benchmark-only``.

One benchmark group per workload holds the peers' and keensight's timings. Every benchmark first
checks (untimed) that keensight finds the same neighbours as the peer; none asserts on speed.
Sizes are reduced to keep a pytest-benchmark run short; report_search.py runs the full ones.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy / faiss load their BLAS

import numpy as np  # noqa: E402
import pytest  # noqa: E402

faiss = pytest.importorskip("faiss")

from keensight.search import PCA, FlatIndex, knn  # noqa: E402
from knn_data import embeddings, fashion_mnist, numpy_1nn, same_neighbour, thread_count  # noqa: E402

EMB = embeddings(n=20_000, n_queries=500)
FM = fashion_mnist(n_queries=500)
DATA = [EMB] + ([FM] if FM is not None else [])


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with thread_count(1):
        yield


@pytest.mark.parametrize("impl", ["faiss", "numpy", "keensight", "keensight_flatindex"])
@pytest.mark.parametrize("data", DATA, ids=lambda d: d.name.split()[0])
def test_knn_1nn(benchmark, data, impl):
    q, b = data.queries, data.base
    index = faiss.IndexFlatL2(b.shape[1])
    index.add(b)
    truth = index.search(q, 1)[1][:, 0]
    flat = FlatIndex(b.shape[1])
    flat.add(b)
    run = {
        "faiss": lambda: index.search(q, 1)[1][:, 0],
        "numpy": lambda: numpy_1nn(q, b),
        "keensight": lambda: knn(q, b, 1)[1][:, 0],
        "keensight_flatindex": lambda: flat.search(q, 1)[1][:, 0],
    }[impl]
    assert same_neighbour(q, b, run(), truth) == 1.0
    benchmark.group = f"exact 1-NN, {data.name}, {len(q)} x {len(b)} | 1 thread"
    benchmark.extra_info["target_ratio_vs_faiss"] = 1.0
    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("impl", ["faiss", "keensight"])
def test_knn_10nn(benchmark, impl):
    q, b = EMB.queries, EMB.base
    index = faiss.IndexFlatL2(b.shape[1])
    index.add(b)
    truth = index.search(q, 10)[1]
    run = {"faiss": lambda: index.search(q, 10)[1], "keensight": lambda: knn(q, b, 10)[1]}[impl]
    assert (run() == truth).mean() > 0.99
    benchmark.group = f"exact 10-NN, {EMB.name}, {len(q)} x {len(b)} | 1 thread"
    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("impl", ["sklearn", "keensight"])
@pytest.mark.skipif(FM is None, reason="Fashion-MNIST not installed")
def test_pca_transform(benchmark, impl):
    decomposition = pytest.importorskip("sklearn.decomposition")
    x = FM.base[:10_000]
    sk = decomposition.PCA(n_components=64, svd_solver="full").fit(x)
    ours = PCA(n_components=64).fit(x)
    np.testing.assert_allclose(ours.transform(FM.queries), sk.transform(FM.queries), rtol=1e-3,
                               atol=1e-3 * np.abs(sk.transform(FM.queries)).max())
    run = {"sklearn": lambda: sk.transform(FM.base[:10_000]), "keensight": lambda: ours.transform(FM.base[:10_000])}[impl]
    benchmark.group = "PCA transform 784 -> 64, 10k rows | 1 thread"
    benchmark(run)
