"""Feature extraction vs the naive loop: ``python -m pytest benchmarks/bench_extract.py --benchmark-only``.

One group holds the pipelines over the same 48 photos (all cores): the naive loop and the
Extractor with either backend; none asserts on speed.
report_extract.py prints the full comparison (200 photos, images/s, preprocessing share).
"""
import tempfile
from pathlib import Path

import pytest

from extract_workload import Keensight, Naive, all_cores, photo_folder

FILES = photo_folder(Path(tempfile.gettempdir()) / "keensight-bench-photos", 200)[::4][:48]


@pytest.mark.parametrize("impl", ["naive", "onnxruntime", "keensight"])
def test_extract(benchmark, impl):
    # "onnxruntime" / "keensight": the Extractor with that backend running the network.
    run = Naive(all_cores()) if impl == "naive" else Keensight(all_cores(), backend=impl)
    run(FILES[:4])
    benchmark.group = f"EfficientNet-Lite0 features of {len(FILES)} photos | all cores"
    benchmark.extra_info["target_ratio"] = 1.5
    benchmark.pedantic(run, args=(FILES,), rounds=3, iterations=1)
