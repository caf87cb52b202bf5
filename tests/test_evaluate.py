"""keensight.evaluate: the gallery/query protocol of ``keensight evaluate`` as a library
function returning the table as data."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

import keensight  # noqa: E402
from keensight.evaluate import Evaluation, EvaluationRow, SplitError, default_classifiers  # noqa: E402
from keensight.search import KNeighborsClassifier  # noqa: E402


def separable(rng, n_per_class=12, n_classes=3, dim=16):
    """Classes whose centres are 20 apart with unit noise: 1-NN cannot err."""
    centres = rng.standard_normal((n_classes, dim)) * 20
    X = np.concatenate([c + rng.standard_normal((n_per_class, dim)) for c in centres])
    y = np.repeat([f"class{k}" for k in range(n_classes)], n_per_class)
    return X, y


class Recorder:
    """A classifier that remembers what it was fitted on and predicts the first label."""

    fitted = []

    def fit(self, X, y):
        Recorder.fitted.append(np.array(X))
        self.label = y[0]
        return self

    def predict(self, X):
        return np.full(len(X), self.label)


def test_separable_data_gives_accuracy_one_for_1nn(rng):
    X, y = separable(rng)
    res = keensight.evaluate(X, y, classifiers=[("1-NN", KNeighborsClassifier(1))], repeats=3, seed=5)
    assert isinstance(res, Evaluation) and len(res.rows) == 1
    row = res.rows[0]
    assert isinstance(row, EvaluationRow) and row.classifier == "1-NN"
    assert row.accuracy == 1.0 and row.accuracy_std == 0.0 and row.split_accuracies == (1.0, 1.0, 1.0)
    assert row.ms_per_query > 0 and len(row.split_ms_per_query) == 3
    assert row.ms_per_query == pytest.approx(np.mean(row.split_ms_per_query))
    assert (res.n_images, res.n_features, res.classes) == (36, 16, ["class0", "class1", "class2"])
    assert (res.repeats, res.seed, res.test_size, res.timed_calls, res.failed) == (3, 5, 0.3, 5, [])
    assert res.to_dicts() == [{"classifier": "1-NN", "accuracy": 1.0, "accuracy_std": 0.0,
                               "ms_per_query": row.ms_per_query}]


def test_the_default_table_is_the_lecture_comparison(rng):
    X, y = separable(rng, n_per_class=10, dim=40)
    res = keensight.evaluate(X, y, repeats=1, m=8)
    names = [r.classifier for r in res.rows]
    assert names == [n for n, _ in default_classifiers(40, 21, 8)]
    assert names[3] == "SequentialClassifier (m=8)" and "PCA" in names[2] and "HNSW" in names[4]
    by_name = {r.classifier: r for r in res.rows}
    assert by_name["1-NN, exhaustive"].accuracy == 1.0
    assert all(0.0 <= r.accuracy <= 1.0 and r.ms_per_query > 0 for r in res.rows)


def test_accuracy_is_the_share_of_correct_queries(rng):
    # A classifier that always answers the gallery's first label: with 3 balanced classes
    # one third of the queries is right.
    X, y = separable(rng, n_per_class=10)
    res = keensight.evaluate(X, y, classifiers=lambda n_features, n_gallery: [("first", Recorder())],
                             test_size=0.3, repeats=2)
    assert res.rows[0].split_accuracies == (1 / 3, 1 / 3)


def test_splits_are_stratified_and_deterministic_with_a_seed(rng):
    X, y = separable(rng, n_per_class=10)
    make = lambda n_features, n_gallery: [("rec", Recorder())]  # noqa: E731
    runs = []
    for seed in (7, 7, 8):
        Recorder.fitted = []
        keensight.evaluate(X, y, classifiers=make, repeats=2, seed=seed, test_size=0.4, timed_calls=1)
        runs.append([g.copy() for g in Recorder.fitted])
    for g in runs[0]:
        assert len(g) == 18  # 60% of each class of 10, stratified
    np.testing.assert_array_equal(runs[0][0], runs[1][0])  # same seed, same split
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0], runs[0][1])  # split r uses seed + r
    np.testing.assert_array_equal(runs[0][1], runs[2][0])  # seed 7, split 1 == seed 8, split 0


def test_given_estimators_are_cloned_not_fitted(rng):
    X, y = separable(rng)
    knn = KNeighborsClassifier(1)
    keensight.evaluate(X, y, classifiers=[("1-NN", knn)], repeats=1)
    assert not hasattr(knn, "classes_")


def test_ms_per_query_is_the_median_of_warm_calls(rng):
    import time

    class SlowFirstCall(Recorder):
        calls = 0

        def predict(self, X):
            SlowFirstCall.calls += 1
            if SlowFirstCall.calls == 1:
                time.sleep(0.3)
            return super().predict(X)

    X, y = separable(rng, n_per_class=10)
    res = keensight.evaluate(X, y, classifiers=lambda *a: [("slow", SlowFirstCall())], repeats=1, timed_calls=3)
    assert SlowFirstCall.calls == 5  # accuracy + warm-up, then 3 timed
    assert res.rows[0].ms_per_query < 300 / 9 / 2  # the cold call alone is 300 ms / 9 queries


def test_a_folder_of_images(tmp_path):
    pytest.importorskip("skimage")
    from keensight.datasets import make_demo_folder

    make_demo_folder(tmp_path, n_per_class=4, classes=["cat", "coffee"], seed=2)
    (tmp_path / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff not an image")
    res = keensight.evaluate(tmp_path, classifiers=[("1-NN", KNeighborsClassifier(1))], test_size=0.5, repeats=1)
    assert res.n_images == 8 and res.n_features == 1280 and res.classes == ["cat", "coffee"]
    assert [p for p, _ in res.failed] == ["cat/broken.jpg"]
    assert res.rows[0].accuracy == 1.0


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(labels=None), ValueError, "labels: required"),
    (dict(labels=np.zeros(5)), ValueError, r"labels: expected one label per row of features \(36\)"),
    (dict(labels=np.zeros((36, 1))), ValueError, "labels: expected one label per row"),
    (dict(labels=np.zeros(36)), ValueError, "labels: need at least two classes"),
    (dict(labels=np.r_[np.zeros(35), 1]), ValueError, "labels: need at least two classes with two images"),
    (dict(test_size=0.0), ValueError, r"test_size: expected a number in \(0, 1\)"),
    (dict(test_size=1.0), ValueError, "test_size"),
    (dict(test_size="0.3"), TypeError, "test_size: expected a number"),
    (dict(test_size=0.99), SplitError, "test_size: cannot split 36 images of 3 classes"),
    (dict(repeats=0), ValueError, "repeats"),
    (dict(repeats=1.5), TypeError, "repeats: expected an int"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(m=0), ValueError, "m: "),
    (dict(timed_calls=0), ValueError, "timed_calls"),
    (dict(classifiers=[]), ValueError, "classifiers: expected at least one"),
    (dict(classifiers="1-NN"), TypeError, "classifiers: expected a sequence"),
    (dict(classifiers=[("x", object())]), TypeError, "classifiers: expected .name, estimator. pairs"),
    (dict(classifiers=lambda *a: [KNeighborsClassifier(1)]), TypeError, "classifiers: expected .name"),
    (dict(classifiers=[("rec", Recorder())]), TypeError, "classifiers: 'rec' cannot be cloned"),
    (dict(extractor=object()), ValueError, "extractor: used only when features is a folder"),
])
def test_bad_arguments_name_the_argument(rng, kwargs, error, match):
    X, y = separable(rng)
    kwargs = dict(dict(labels=y, repeats=1, classifiers=[("1-NN", KNeighborsClassifier(1))]), **kwargs)
    labels = kwargs.pop("labels")
    with pytest.raises(error, match=match):
        keensight.evaluate(X, labels, **kwargs)


def test_bad_features(rng, tmp_path):
    X, y = separable(rng)
    X[3, 2] = np.nan
    with pytest.raises(ValueError, match="features: contains NaN"):
        keensight.evaluate(X, y)
    with pytest.raises(TypeError, match="features: expected a numeric"):
        keensight.evaluate([["a", "b"], ["c", "d"]], ["x", "y"])
    with pytest.raises(ValueError, match="features: .* is not a folder"):
        keensight.evaluate(tmp_path / "missing")
    with pytest.raises(ValueError, match="features: the folder .* holds no images"):
        keensight.evaluate(tmp_path)
    with pytest.raises(ValueError, match="labels: the sub-folders of a folder are its labels"):
        keensight.evaluate(tmp_path, y)
