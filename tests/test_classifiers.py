"""KNeighborsClassifier over keensight indexes and set aggregation, against
scikit-learn and NumPy."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier as SkKNN
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from keensight.search import KNeighborsClassifier, aggregate


def two_moons_ish(rng, n=200, dim=8):
    X = rng.normal(0, 1, (n, dim)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] ** 2 > 0.5).astype(int)
    return X, y


@pytest.mark.parametrize("metric,sk_metric", [("l2", "euclidean"), ("l1", "manhattan"), ("cosine", "cosine")])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_flat_backend_equals_sklearn(isa, rng, metric, sk_metric, k):
    X, y = two_moons_ish(rng)
    Q, _ = two_moons_ish(rng, n=80)
    ours = KNeighborsClassifier(n_neighbors=k, metric=metric).fit(X, y)
    ref = SkKNN(n_neighbors=k, metric=sk_metric, algorithm="brute").fit(X, y)
    np.testing.assert_array_equal(ours.predict(Q), ref.predict(Q))  # 2 classes, odd k
    np.testing.assert_allclose(ours.predict_proba(Q), ref.predict_proba(Q))
    _, idx = ours.kneighbors(Q)
    _, ref_idx = ref.kneighbors(Q)
    np.testing.assert_array_equal(idx, ref_idx)


def test_hnsw_backend_close_to_exact(rng):
    centres = rng.normal(0, 5, (10, 16))
    X = np.concatenate([c + rng.normal(0, 1, (100, 16)) for c in centres]).astype(np.float32)
    y = np.repeat(np.arange(10), 100)
    Q = np.concatenate([c + rng.normal(0, 1, (20, 16)) for c in centres]).astype(np.float32)
    exact = KNeighborsClassifier(n_neighbors=5).fit(X, y).predict(Q)
    approx = KNeighborsClassifier(n_neighbors=5, backend="hnsw",
                                  index_params={"M": 16, "ef_construction": 100}, ef=64).fit(X, y)
    assert (approx.predict(Q) == exact).mean() >= 0.98


def test_vote_ties_go_to_the_nearest(rng):
    X = np.array([[0.0], [1.0], [3.0], [10.0]], np.float32)
    y = np.array(["far", "near", "far", "near"])
    clf = KNeighborsClassifier(n_neighbors=2).fit(X, y)
    # neighbours of 0.9: index 1 ("near", 0.01) then index 0 ("far", 0.81): a 1-1 tie
    assert clf.predict([[0.9]]).tolist() == ["near"]
    assert clf.predict([[0.2]]).tolist() == ["far"]


def test_sklearn_api(rng):
    X, y = two_moons_ish(rng)
    clf = KNeighborsClassifier(n_neighbors=3)
    assert clone(clf).get_params() == clf.get_params()
    scores = cross_val_score(make_pipeline(StandardScaler(), clf), X, y, cv=4)
    ref = cross_val_score(make_pipeline(StandardScaler(), SkKNN(3)), X, y, cv=4)
    np.testing.assert_allclose(scores, ref)


def test_bad_input(rng):
    X, y = two_moons_ish(rng, n=20)
    with pytest.raises(NotFittedError):
        KNeighborsClassifier().predict(X)
    with pytest.raises(ValueError, match="backend"):
        KNeighborsClassifier(backend="annoy").fit(X, y)
    with pytest.raises(ValueError, match="n_neighbors"):
        KNeighborsClassifier(n_neighbors=0).fit(X, y)
    clf = KNeighborsClassifier().fit(X, y)
    with pytest.raises(ValueError, match="8 columns"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(np.full((1, 8), np.nan))


def test_aggregate_mean_and_max(rng):
    X = rng.normal(0, 1, (30, 5)).astype(np.float32)
    groups = rng.choice(["a", "b", "c"], 30)
    ids, pooled = aggregate(X, groups)
    assert ids.tolist() == ["a", "b", "c"]
    for gid, row in zip(ids, pooled):
        mean = X[groups == gid].astype(np.float64).mean(0)
        np.testing.assert_allclose(row, mean / np.linalg.norm(mean), rtol=1e-5)
    ids, pooled = aggregate(X, groups, method="max", normalize=False)
    for gid, row in zip(ids, pooled):
        np.testing.assert_array_equal(row, X[groups == gid].max(0))
    _, zero = aggregate(np.zeros((2, 3)), [1, 1])
    assert (zero == 0).all()
    with pytest.raises(ValueError, match="method"):
        aggregate(X, groups, method="median")
    with pytest.raises(ValueError, match="labels"):
        aggregate(X, groups[:-1])


def test_video_recognition_by_pooling(rng):
    """Set recognition: pooled frames of an identity beat single frames."""
    identities = rng.normal(0, 1, (20, 32))
    gallery = identities + rng.normal(0, 0.3, identities.shape)
    frames = np.repeat(identities, 8, axis=0) + rng.normal(0, 1.2, (160, 32))
    video = np.repeat(np.arange(20), 8)
    clf = KNeighborsClassifier(metric="cosine").fit(gallery, np.arange(20))
    per_frame = (clf.predict(frames) == video).mean()
    ids, pooled = aggregate(frames, video)
    per_video = (clf.predict(pooled) == ids).mean()
    assert per_video >= per_frame and per_video == 1.0
