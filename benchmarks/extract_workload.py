"""The feature-extraction workload of ``../shared/BENCHMARKS.md``, shared by bench_extract.py
and report_extract.py: a folder of photos, the naive per-image pipeline, and keensight's
Extractor over the same files.

Photos: ``keensight.datasets.make_demo_folder`` (skimage / sklearn sample photos, augmented),
written at realistic sizes (640x480 to 1920x1080, a quarter portrait), 85% JPEG (quality 90)
and 15% PNG.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np

from keensight import extract, models
from keensight.datasets import make_demo_folder

SIZES = [(640, 480), (1024, 768), (1280, 720), (1920, 1080)]
PNG_FRACTION = 0.15


def photo_folder(root: Path, n_images: int = 200) -> List[Path]:
    """The benchmark photos (written once, reused while the count matches)."""
    marker = root / f".complete-{n_images}"
    if not marker.exists():
        per_class = -(-n_images // 7)
        make_demo_folder(root, n_per_class=per_class, sizes=SIZES, png_fraction=PNG_FRACTION, seed=0)
        marker.write_text("ok")
    files = sorted(p for p in root.rglob("*") if p.suffix in (".jpg", ".png"))
    return files[:n_images]


class Naive:
    """cv2.imread, cv2.resize (shorter side 256, INTER_LINEAR), centre crop 224, normalise in
    NumPy, one onnxruntime run per image. Accumulates time per stage."""

    def __init__(self, threads: int) -> None:
        import onnxruntime as ort

        spec = models.get_model_spec("efficientnet-lite0")
        self.spec = spec
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(models.get_model_path()), so, providers=["CPUExecutionProvider"])
        self.stages: Dict[str, float] = {"decode": 0.0, "preprocess": 0.0, "network": 0.0}

    def __call__(self, files: List[Path]) -> np.ndarray:
        out = []
        mean, std = np.float32(self.spec.mean), np.float32(self.spec.std)
        for f in files:
            t0 = time.perf_counter()
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            t1 = time.perf_counter()
            h, w = bgr.shape[:2]
            r = self.spec.resize
            size = (r * w // h, r) if h <= w else (r, r * h // w)
            img = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
            top, left = (img.shape[0] - 224) // 2, (img.shape[1] - 224) // 2
            img = img[top:top + 224, left:left + 224, ::-1].astype(np.float32)
            x = ((img - mean) / std).transpose(2, 0, 1)[None].copy()
            t2 = time.perf_counter()
            out.append(self.session.run(["embedding"], {"input": x})[0])
            t3 = time.perf_counter()
            self.stages["decode"] += t1 - t0
            self.stages["preprocess"] += t2 - t1
            self.stages["network"] += t3 - t2
        return np.concatenate(out)


class Keensight:
    """Extractor over paths (network on `backend`); measures the time spent in the fused C++
    preprocessing."""

    def __init__(self, threads: int, batch_size: int = 16, jpeg_draft: object = False,
                 backend: str = "auto") -> None:
        self.extractor = extract.Extractor(batch_size=batch_size, threads=threads, jpeg_draft=jpeg_draft,
                                           backend=backend)
        self.stages: Dict[str, float] = {"preprocess": 0.0}

    def __call__(self, files: List[Path]) -> np.ndarray:
        inner = extract._preprocess_into

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.stages["preprocess"] += time.perf_counter() - t

        extract._preprocess_into = timed
        try:
            return self.extractor(files)
        finally:
            extract._preprocess_into = inner


def all_cores() -> int:
    return os.cpu_count() or 1
