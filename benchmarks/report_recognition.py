"""Lecture-style recognition table: classifier, accuracy %, ms per query.

Fashion-MNIST (the Debian package ``dataset-fashion-mnist``) as raw pixels and
as EfficientNet-Lite0 embeddings (1280-d, computed once with keensight's
Extractor and cached), recognised by: exhaustive 1-NN (scikit-learn brute
force, faiss IndexFlatL2, keensight exact k-NN), 1-NN on PCA features, and the
SequentialClassifier (Savchenko's sequential three-way decisions, m = 32 / 64,
delta fitted on a validation split), plus the HNSW index. Ratios are peer time
over SequentialClassifier time, single-threaded as BENCHMARKS.md asks.

    OPENBLAS_NUM_THREADS=1 python benchmarks/report_recognition.py [--features raw|lite0|both]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
from typing import Callable, List, Optional, Tuple

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import keensight  # noqa: E402
from keensight._files import atomic_write  # noqa: E402
from keensight.datasets import load_fashion_mnist  # noqa: E402
from keensight.search import PCA, HNSWIndex, SequentialClassifier, knn  # noqa: E402

def fashion_mnist() -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    try:
        xtr, ytr, xte, yte = load_fashion_mnist()
    except FileNotFoundError as e:
        sys.exit(str(e))
    return xtr, ytr.astype(np.int64), xte, yte.astype(np.int64)


def lite0_embeddings(images: np.ndarray, tag: str) -> np.ndarray:
    """EfficientNet-Lite0 embeddings of 28x28 gray images, cached on disk."""
    cache = pathlib.Path(os.environ.get("KEENSIGHT_CACHE", pathlib.Path.home() / ".cache" / "keensight"))
    path = cache / "bench" / f"fashion_lite0_{tag}_{len(images)}.npy"
    if path.exists():
        return np.load(path)
    from keensight.extract import Extractor
    extractor = Extractor(batch_size=64)
    start = time.perf_counter()
    feats = np.concatenate([extractor(list(images[i:i + 512])) for i in range(0, len(images), 512)])
    print(f"  embedded {len(images)} images in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: np.save(f, feats))
    return feats


def timed(fn: Callable[[], np.ndarray], repeat: int) -> Tuple[np.ndarray, float]:
    best = np.inf
    out = None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def run(name: str, Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, yte: np.ndarray,
        repeat: int, with_sklearn: bool) -> List[Tuple[str, float, float]]:
    rows: List[Tuple[str, float, float]] = []
    nq = len(Xte)

    def add(label: str, pred: np.ndarray, seconds: float) -> None:
        rows.append((label, 100.0 * float(np.mean(pred == yte)), 1e3 * seconds / nq))

    if with_sklearn:
        from sklearn.neighbors import KNeighborsClassifier as SkKNN
        sk = SkKNN(1, algorithm="brute", n_jobs=1).fit(Xtr, ytr)
        pred, t = timed(lambda: sk.predict(Xte), 1)
        add("1-NN, scikit-learn brute force", pred, t)
    try:
        import faiss
        faiss.omp_set_num_threads(1)
        index = faiss.IndexFlatL2(Xtr.shape[1])
        index.add(Xtr)
        pred, t = timed(lambda: ytr[index.search(Xte, 1)[1][:, 0]], repeat)
        add("1-NN, faiss IndexFlatL2", pred, t)
    except ImportError:
        pass
    pred, t = timed(lambda: ytr[knn(Xte, Xtr, 1)[1][:, 0]], repeat)
    add("1-NN, keensight exact k-NN", pred, t)

    pca = PCA().fit(Xtr)
    Ztr, Zte = pca.transform(Xtr), pca.transform(Xte)
    pred, t = timed(lambda: ytr[knn(Zte, Ztr, 1)[1][:, 0]], repeat)
    add("1-NN on PCA features, keensight exact k-NN", pred, t)
    exact_pca = t
    try:
        import faiss
        index = faiss.IndexFlatL2(Ztr.shape[1])
        index.add(Ztr)
        _, faiss_pca = timed(lambda: index.search(Zte, 1), repeat)
    except ImportError:
        faiss_pca = None

    for m in (32, 64):
        clf = SequentialClassifier(m=m).fit(Xtr, ytr)
        stats, t = timed(lambda: clf.predict_stats(Xte), repeat)
        label = (f"SequentialClassifier m={m}, delta={clf.delta_:.3f} "
                 f"({stats.mean_components:.0f} of {Xtr.shape[1]} components, "
                 f"{100 * stats.work_fraction:.1f}% of the terms)")
        rows.append((label, 100.0 * float(np.mean(stats.labels == yte)), 1e3 * t / nq))
        rows[-1] = rows[-1] + (exact_pca / t, (faiss_pca / t) if faiss_pca else None)

    hnsw = HNSWIndex(Xtr.shape[1], "l2", M=16, ef_construction=200, pca=True)
    hnsw.add(Xtr)
    for ef in (16, 64):
        pred, t = timed(lambda: ytr[hnsw.search(Xte, 1, ef=ef)[1][:, 0]], repeat)
        add(f"1-NN, keensight HNSW (M=16, ef={ef}, PCA-rotated)", pred, t)
    return rows


def print_table(title: str, rows: List[tuple]) -> None:
    print(f"\n### {title}\n")
    print("| classifier | accuracy % | ms per query | vs exact 1-NN (PCA) | vs faiss (PCA) |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        extra = ["", ""]
        if len(row) > 3:
            extra = [f"{row[3]:.1f}x", f"{row[4]:.1f}x" if row[4] else ""]
        print(f"| {row[0]} | {row[1]:.2f} | {row[2]:.3f} | {extra[0]} | {extra[1]} |")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", choices=["raw", "lite0", "both"], default="raw")
    parser.add_argument("--queries", type=int, default=2000, help="test images used as queries")
    parser.add_argument("--train", type=int, default=60000, help="training images (references)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sklearn", action="store_true", help="also time scikit-learn brute force (slow)")
    args = parser.parse_args(argv)
    keensight.set_num_threads(1)
    xtr, ytr, xte, yte = fashion_mnist()
    xtr, ytr, xte, yte = xtr[:args.train], ytr[:args.train], xte[:args.queries], yte[:args.queries]
    print(f"keensight {keensight.__version__} ({keensight.cpu_info()['active']}), 1 thread, "
          f"Fashion-MNIST {len(xtr)} references, {len(xte)} queries, best of {args.repeat}")
    if args.features in ("raw", "both"):
        Xtr = xtr.reshape(len(xtr), -1).astype(np.float32) / 255.0
        Xte = xte.reshape(len(xte), -1).astype(np.float32) / 255.0
        print_table("Fashion-MNIST raw pixels (784-d)", run("raw", Xtr, ytr, Xte, yte, args.repeat, args.sklearn))
    if args.features in ("lite0", "both"):
        Xtr = lite0_embeddings(xtr, "train")
        Xte = lite0_embeddings(xte, "test")
        print_table("Fashion-MNIST EfficientNet-Lite0 embeddings (1280-d)",
                    run("lite0", Xtr, ytr, Xte, yte, args.repeat, args.sklearn))


if __name__ == "__main__":
    main()
