"""Filters vs OpenCV, side by side: ``python -m pytest benchmarks/ --benchmark-only``.

One benchmark group per workload and thread setting holds the OpenCV and the keensight timing.
Every benchmark first checks (untimed) that keensight and OpenCV agree; none asserts on speed.
"""
import pytest

from workloads import THREADS, check_agree, copy_floor, thread_count, workloads

WORKLOADS = workloads()


@pytest.fixture(scope="module", params=THREADS, ids=lambda t: f"threads={t}")
def threads(request):
    with thread_count(request.param) as n:
        yield n


@pytest.mark.parametrize("impl", ["opencv", "keensight"])
@pytest.mark.parametrize("w", WORKLOADS, ids=[w.id for w in WORKLOADS])
def test_filter(benchmark, threads, w, impl):
    check_agree(w)
    benchmark.group = f"{w.name} | {threads} thread(s)"
    benchmark.extra_info["target_ratio"] = w.target
    benchmark(getattr(w, impl))


def test_copy_floor(benchmark):
    benchmark.group = "floor: 1080p float32 copy"
    benchmark(copy_floor())
