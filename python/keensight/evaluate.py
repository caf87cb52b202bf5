"""The gallery/query evaluation of classifiers over image features (the lecture's table).

:func:`evaluate` is the protocol ``keensight evaluate`` prints: stratified random splits
of labelled features into a gallery (fitted) and queries (predicted); for each
classifier the accuracy on the queries and the prediction time per query, as the median
of warm calls. It returns the table as data (:class:`Evaluation`).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _validate

__all__ = ["evaluate", "Evaluation", "EvaluationRow", "default_classifiers", "TIMED_CALLS"]

# Timed predictions per classifier and split: the first call (which also gives the
# accuracy) warms caches, thread pools and lazy set-up; the median of the rest is reported.
TIMED_CALLS = 5

Classifiers = Union[Sequence[Tuple[str, Any]], Callable[[int, int], Sequence[Tuple[str, Any]]]]


@dataclass(frozen=True)
class EvaluationRow:
    """One classifier's line of the table.

    Attributes
    ----------
    classifier : str
        Its name.
    accuracy : float
        Share of the queries classified correctly, in [0, 1], mean over the splits.
    accuracy_std : float
        Standard deviation of the accuracy over the splits (NumPy's ``std``, ddof=0).
    ms_per_query : float
        Milliseconds of ``predict`` per query image: per split, the median of the
        warm calls divided by the number of queries; mean over the splits.
    split_accuracies, split_ms_per_query : tuple of float
        The same, split by split.
    """

    classifier: str
    accuracy: float
    accuracy_std: float
    ms_per_query: float
    split_accuracies: Tuple[float, ...]
    split_ms_per_query: Tuple[float, ...]


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` measured.

    Attributes
    ----------
    rows : tuple of EvaluationRow
        One per classifier, in the order they were given.
    n_images, n_features : int
        Rows and columns of the features evaluated.
    classes : list
        The distinct labels, sorted.
    test_size : float
        Share of each class used as queries.
    repeats, seed : int
        Number of splits; split r used ``random_state = seed + r``.
    timed_calls : int
        Warm ``predict`` calls timed per classifier and split.
    failed : list of (str, str)
        Images of a folder that could not be read (path relative to the folder,
        message); empty for features given as an array.
    """

    rows: Tuple[EvaluationRow, ...]
    n_images: int
    n_features: int
    classes: List[Any]
    test_size: float
    repeats: int
    seed: int
    timed_calls: int
    failed: List[Tuple[str, str]] = field(default_factory=list)

    def to_dicts(self) -> List[Dict[str, Any]]:
        """The rows as plain dicts (for JSON or ``pandas.DataFrame``)."""
        return [{"classifier": r.classifier, "accuracy": r.accuracy, "accuracy_std": r.accuracy_std,
                 "ms_per_query": r.ms_per_query} for r in self.rows]


def default_classifiers(n_features: int, n_gallery: int, m: int = 32) -> List[Tuple[str, Any]]:
    """The lecture's comparison: a linear SVM, exhaustive 1-NN, 1-NN on PCA features,
    sequential three-way decisions over PCA granules of `m` components, and an
    approximate (HNSW) 1-NN; new, unfitted estimators."""
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    from .search import PCA, KNeighborsClassifier, SequentialClassifier

    n_pca = min(64, n_features, n_gallery)
    return [
        ("SVM (linear, scikit-learn)", LinearSVC(C=1.0)),
        ("1-NN, exhaustive", KNeighborsClassifier(1)),
        (f"1-NN on {n_pca} PCA components", make_pipeline(PCA(n_components=n_pca), KNeighborsClassifier(1))),
        (f"SequentialClassifier (m={m})", SequentialClassifier(m=m)),
        ("1-NN, HNSW (M=16, ef=64)", KNeighborsClassifier(1, backend="hnsw", ef=64)),
    ]


class SplitError(ValueError):
    """The labels cannot be split into a stratified gallery and query set at the
    requested `test_size` (too few images per class); `reason` is scikit-learn's word."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def image_files(root: Union[str, "os.PathLike[str]"]) -> List[Path]:
    """Image files under `root` (recursively, by extension, hidden entries skipped), sorted."""
    from .extract import IMAGE_EXTENSIONS

    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def label_of(relative_path: str) -> str:
    """The sub-folder a file sits in (its class label); "" for files at the top level."""
    parts = relative_path.split("/")
    return parts[0] if len(parts) > 1 else ""


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median milliseconds of `repeat` calls of `fn` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def _folder_features(folder: Path, extractor: Any) -> Tuple[np.ndarray, np.ndarray, List[Tuple[str, str]]]:
    from .extract import Extractor

    files = image_files(folder)
    if not files:
        raise ValueError(f"features: the folder {folder} holds no images")
    ex = Extractor(normalize=True) if extractor is None else extractor
    if not callable(getattr(ex, "extract", None)):
        raise TypeError(f"extractor: expected a keensight.Extractor, got {type(ex).__name__}")
    res = ex.extract([str(f) for f in files])
    feats = res.features if isinstance(res.features, np.ndarray) else res.features[ex.outputs_[0]]
    rel = [files[i].relative_to(folder).as_posix() for i in res.indices]
    failed = [(files[i].relative_to(folder).as_posix(), msg) for i, msg in res.errors]
    if not rel:
        raise ValueError(f"features: no image of {folder} could be read")
    return feats, np.asarray([label_of(r) for r in rel]), failed


def _classifier_maker(classifiers: Any, m: int) -> Callable[[int, int], Sequence[Tuple[str, Any]]]:
    """`classifiers` as a function (n_features, n_gallery) -> new (name, estimator) pairs."""
    if classifiers is None:
        return lambda n_features, n_gallery: default_classifiers(n_features, n_gallery, m)
    if callable(classifiers):
        return classifiers
    if isinstance(classifiers, (str, bytes)) or not isinstance(classifiers, Sequence):
        raise TypeError("classifiers: expected a sequence of (name, estimator) pairs or a function "
                        f"(n_features, n_gallery) -> pairs, got {type(classifiers).__name__}")
    pairs = _checked_pairs(classifiers)
    from sklearn.base import clone

    def fresh(n_features: int, n_gallery: int) -> List[Tuple[str, Any]]:
        out = []
        for name, est in pairs:
            try:
                out.append((name, clone(est)))
            except TypeError as e:  # no get_params: scikit-learn cannot copy it
                raise TypeError(f"classifiers: {name!r} cannot be cloned for each split ({e}); pass a "
                                "function (n_features, n_gallery) -> (name, estimator) pairs that makes new "
                                "ones instead") from None
        return out

    return fresh


def _checked_pairs(pairs: Any) -> List[Tuple[str, Any]]:
    try:
        pairs = list(pairs)
    except TypeError:
        raise TypeError(f"classifiers: expected (name, estimator) pairs, got {type(pairs).__name__}") from None
    for p in pairs:
        if (not isinstance(p, tuple) or len(p) != 2 or not isinstance(p[0], str)
                or not callable(getattr(p[1], "fit", None)) or not callable(getattr(p[1], "predict", None))):
            raise TypeError(f"classifiers: expected (name, estimator) pairs, the estimator with fit and "
                            f"predict, got {p!r}")
    if not pairs:
        raise ValueError("classifiers: expected at least one (name, estimator) pair, got none")
    return pairs


def evaluate(features: Any, labels: Any = None, *, extractor: Any = None,
             classifiers: Optional[Classifiers] = None, test_size: float = 0.3, repeats: int = 3,
             seed: int = 0, m: int = 32, timed_calls: int = TIMED_CALLS) -> Evaluation:
    """Accuracy and speed of classifiers on gallery/query splits of labelled features.

    For each of `repeats` splits (stratified, ``random_state = seed + r``: the same
    arguments give the same splits) every classifier is fitted on the gallery and
    predicts the queries; the first ``predict`` gives the accuracy and warms up, then
    `timed_calls` more are timed and their median divided by the number of queries is
    the time per query. Rows report the mean over the splits.

    Parameters
    ----------
    features : array_like, shape (n, d), or path of a folder
        Feature vectors (float32 after conversion, finite), one row per image; or a
        folder whose sub-folders are the classes, whose images (searched
        recursively) are then read and turned into features by `extractor`.
    labels : array_like, shape (n,), optional
        Class of each row; required for an array, not allowed for a folder (the
        sub-folder names are the labels). At least two classes with two images each.
    extractor : keensight.Extractor, optional
        For a folder only: what makes the features (its first output is used);
        default ``Extractor(normalize=True)``, the offline EfficientNet-Lite0
        embedding, L2-normalised as ``keensight evaluate`` does.
    classifiers : sequence of (str, estimator), or callable, optional
        What to compare: (name, scikit-learn-style estimator) pairs, cloned for each
        split (the estimators given stay unfitted), or a function
        ``(n_features, n_gallery) -> pairs`` called for each split to make new
        ones. Default :func:`default_classifiers` (the lecture's table: linear SVM,
        exhaustive 1-NN, 1-NN on PCA, SequentialClassifier, HNSW 1-NN).
    test_size : float
        Share of each class used as queries, in (0, 1).
    repeats : int
        Number of random splits, >= 1.
    seed : int
        ``random_state`` of the first split, >= 0.
    m : int
        PCA components per granule of the default SequentialClassifier, >= 1.
    timed_calls : int
        Warm ``predict`` calls timed per classifier and split, >= 1.

    Returns
    -------
    Evaluation
        ``rows`` (classifier, accuracy in [0, 1], accuracy_std, ms_per_query and the
        per-split values), the data's size and classes, and the protocol's settings.

    Raises
    ------
    TypeError, ValueError
        Naming the argument: non-numeric or non-finite features, labels of the wrong
        length, a single class, values out of range. :class:`SplitError` (a
        ValueError) when a class has too few images for the split.

    Examples
    --------
    >>> import numpy as np, keensight
    >>> from keensight.search import KNeighborsClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 1, (20, 8)), rng.normal(8, 1, (20, 8))])
    >>> y = np.repeat(["cat", "dog"], 20)
    >>> result = keensight.evaluate(X, y, classifiers=[("1-NN", KNeighborsClassifier(1))], repeats=2)
    >>> [(row.classifier, row.accuracy) for row in result.rows]
    [('1-NN', 1.0)]
    >>> result.n_images, result.classes
    (40, ['cat', 'dog'])
    >>> len(keensight.evaluate(X, y, repeats=1).rows)  # the lecture's five classifiers
    5
    """
    test_size = _validate.real(test_size, "test_size")
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size: expected a number in (0, 1), got {test_size}")
    repeats = _validate.positive_int(repeats, "repeats")
    seed = _validate.integer(seed, "seed", low=0, high=_validate.INT32_MAX)
    m = _validate.positive_int(m, "m")
    timed_calls = _validate.positive_int(timed_calls, "timed_calls")
    make = _classifier_maker(classifiers, m)
    failed: List[Tuple[str, str]] = []
    if isinstance(features, (str, os.PathLike)):
        folder = Path(features)
        if not folder.is_dir():
            raise ValueError(f"features: {folder} is not a folder (give an array of features or a folder "
                             "of class sub-folders)")
        if labels is not None:
            raise ValueError("labels: the sub-folders of a folder are its labels; give labels only with "
                             "an array of features")
        feats, y, failed = _folder_features(folder, extractor)
    else:
        if extractor is not None:
            raise ValueError("extractor: used only when features is a folder of images")
        if labels is None:
            raise ValueError("labels: required with an array of features (one label per row)")
        feats = _validate.matrix(features, "features")
        y = np.asarray(labels)
        if y.ndim != 1 or len(y) != len(feats):
            raise ValueError(f"labels: expected one label per row of features ({len(feats)}), got an array "
                             f"of shape {y.shape}")
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        raise ValueError(f"labels: need at least two classes with two images each, got {len(classes)} "
                         f"class(es) with at least {int(counts.min()) if len(counts) else 0} image(s)")

    from sklearn.model_selection import train_test_split

    accuracies: Dict[str, List[float]] = {}
    ms_per_query: Dict[str, List[float]] = {}
    for r in range(repeats):
        try:
            g, q, yg, yq = train_test_split(feats, y, test_size=test_size, random_state=seed + r, stratify=y)
        except ValueError as e:  # too few images for a stratified split
            reason = " ".join(str(e).split())
            raise SplitError(f"test_size: cannot split {len(y)} images of {len(classes)} classes with "
                             f"test_size {test_size}: {reason}", reason) from None
        for name, clf in _checked_pairs(make(feats.shape[1], len(g))):
            clf.fit(g, yg)
            pred = clf.predict(q)
            ms = _median_ms(lambda: clf.predict(q), timed_calls) / len(q)
            accuracies.setdefault(name, []).append(float(np.mean(pred == yq)))
            ms_per_query.setdefault(name, []).append(ms)
    rows = tuple(EvaluationRow(classifier=name, accuracy=float(np.mean(acc)), accuracy_std=float(np.std(acc)),
                               ms_per_query=float(np.mean(ms_per_query[name])), split_accuracies=tuple(acc),
                               split_ms_per_query=tuple(ms_per_query[name]))
                 for name, acc in accuracies.items())
    return Evaluation(rows=rows, n_images=len(feats), n_features=int(feats.shape[1]), classes=classes.tolist(),
                      test_size=test_size, repeats=repeats, seed=seed, timed_calls=timed_calls, failed=failed)
