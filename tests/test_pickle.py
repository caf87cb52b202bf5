"""Pickle and copy.deepcopy of every index and estimator, and what needs them: joblib
workers and scikit-learn's cross_validate(n_jobs=2)."""
from __future__ import annotations

import copy
import pickle
import tempfile

import numpy as np
import pytest
from joblib import Parallel, delayed
from sklearn.model_selection import cross_validate

from keensight.search import PCA, FlatIndex, HNSWIndex, KNeighborsClassifier, SequentialClassifier


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (4, 24))
    y = np.repeat(np.arange(4), 60)
    X = (centres[y] + rng.normal(0, 1.5, (len(y), 24))).astype(np.float32)
    order = rng.permutation(len(y))
    return X[order], y[order]


def _corrupt(payload: bytes, magic: bytes, offset: int = 40) -> bytes:
    """The pickle with one byte flipped inside the index bytes it carries."""
    at = payload.index(magic) + offset
    data = bytearray(payload)
    data[at] ^= 0x01
    return bytes(data)


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """tempfile's folder redirected, to see that HNSW pickling leaves nothing behind."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


# ------------------------------------------------------------------ indexes
@pytest.mark.parametrize("metric", ["l2", "cosine", "chi2"])
def test_flat_index_pickle_round_trip(blobs, metric):
    X, _ = blobs
    X = np.abs(X) if metric == "chi2" else X
    index = FlatIndex(X.shape[1], metric)
    index.add(X, ids=np.arange(len(X)) * 7 - 100)
    index.remove([-100, 600])
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        clone = pickle.loads(pickle.dumps(index, protocol=protocol))
        assert type(clone) is FlatIndex and clone.metric == metric
        assert np.array_equal(clone.ids, index.ids)
        for a, b in zip(clone.search(X[:30], 5), index.search(X[:30], 5)):
            assert np.array_equal(a, b)
        assert clone.to_bytes() == index.to_bytes()


def test_flat_index_deepcopy_is_independent(blobs):
    X, _ = blobs
    index = FlatIndex(X.shape[1])
    index.add(X[:100])
    clone = copy.deepcopy(index)
    clone.add(X[100:150])
    clone.remove([0, 1])
    assert len(index) == 100 and index.ids.tolist() == list(range(100))
    assert len(clone) == 148
    np.testing.assert_array_equal(index.vectors(), X[:100])


def test_flat_index_corrupt_pickle_is_a_value_error(blobs):
    X, _ = blobs
    index = FlatIndex(X.shape[1])
    index.add(X)
    payload = pickle.dumps(index)
    with pytest.raises(ValueError, match="FlatIndex bytes: checksum mismatch"):
        pickle.loads(_corrupt(payload, b"KSFLAT"))


@pytest.mark.parametrize("pca", [False, True])
def test_hnsw_index_pickle_round_trip(blobs, private_tmp, pca):
    X, _ = blobs
    index = HNSWIndex(X.shape[1], M=8, ef_construction=40, pca=pca, num_threads=1, seed=3)
    index.add(X, ids=np.arange(len(X)) + 1000)
    index.mark_deleted([1000, 1005])
    clone = pickle.loads(pickle.dumps(index))
    assert type(clone) is HNSWIndex
    assert clone.num_threads == 1 and clone.M == 8 and clone.n_deleted == 2
    assert (clone.rotation is None) == (not pca)
    for a, b in zip(clone.search(X[:40], 5, ef=32), index.search(X[:40], 5, ef=32)):
        assert np.array_equal(a, b)
    assert list(private_tmp.iterdir()) == []  # the private folder is gone


def test_hnsw_index_empty_with_pca_keeps_the_flag(private_tmp):
    index = HNSWIndex(8, pca=True)
    clone = copy.deepcopy(index)
    x = np.random.default_rng(1).standard_normal((300, 8)).astype(np.float32)
    clone.add(x)
    assert clone.rotation is not None and len(index) == 0


def test_hnsw_index_deepcopy_is_independent(blobs, private_tmp):
    X, _ = blobs
    index = HNSWIndex(X.shape[1], M=8, ef_construction=40)
    index.add(X[:100])
    clone = copy.deepcopy(index)
    clone.add(X[100:])
    clone.mark_deleted([3])
    assert len(index) == 100 and index.n_deleted == 0 and len(clone) == len(X) - 1  # the live ones
    assert clone.n_slots == len(X)


def test_hnsw_index_corrupt_pickle_is_a_value_error(blobs, private_tmp):
    X, _ = blobs
    index = HNSWIndex(X.shape[1], M=8, ef_construction=40)
    index.add(X)
    with pytest.raises(ValueError):
        pickle.loads(_corrupt(pickle.dumps(index), b"KEENHNSW", offset=200))
    assert list(private_tmp.iterdir()) == []


# --------------------------------------------------------------- estimators
def _classifiers():
    return [
        KNeighborsClassifier(n_neighbors=3),
        KNeighborsClassifier(n_neighbors=1, backend="hnsw", index_params={"M": 8, "ef_construction": 40}),
        SequentialClassifier(m=4, delta=1.5),
        SequentialClassifier(m=8, n_neighbors=3),  # delta fitted
    ]


@pytest.mark.parametrize("clf", _classifiers(), ids=lambda c: repr(c))
def test_classifier_pickle_round_trip(blobs, clf):
    X, y = blobs
    clf.fit(X[:180], y[:180])
    clone = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(clone.predict(X[180:]), clf.predict(X[180:]))
    np.testing.assert_array_equal(clone.predict_proba(X[180:]), clf.predict_proba(X[180:]))
    assert clone.get_params() == clf.get_params()
    if isinstance(clf, SequentialClassifier):
        a, b = clone.predict_stats(X[180:]), clf.predict_stats(X[180:])
        assert np.array_equal(a.terms, b.terms) and np.array_equal(a.levels, b.levels)
        assert clone.delta_ == clf.delta_


@pytest.mark.parametrize("clf", _classifiers(), ids=lambda c: repr(c))
def test_classifier_deepcopy_is_independent(blobs, clf):
    X, y = blobs
    clf.fit(X[:180], y[:180])
    before = clf.predict_proba(X[180:])
    clone = copy.deepcopy(clf)
    assert clone.index_ is not clf.index_
    clone.fit(X[:40], (y[:40] + 1) % 4)  # refit the copy on other labels
    np.testing.assert_array_equal(clf.predict_proba(X[180:]), before)
    assert not np.array_equal(clone.predict(X[180:]), clf.predict(X[180:]))


def test_pca_pickle_and_deepcopy(blobs):
    X, _ = blobs
    pca = PCA(n_components=5, whiten=True).fit(X)
    clone = pickle.loads(pickle.dumps(pca))
    np.testing.assert_array_equal(clone.transform(X), pca.transform(X))
    deep = copy.deepcopy(pca)
    deep.fit(X[:50])
    np.testing.assert_array_equal(pca.transform(X), clone.transform(X))
    assert not np.array_equal(deep.mean_, pca.mean_)


def test_corrupt_classifier_pickles_are_value_errors(blobs):
    X, y = blobs
    knn = KNeighborsClassifier().fit(X, y)
    with pytest.raises(ValueError, match="checksum"):
        pickle.loads(_corrupt(pickle.dumps(knn), b"KSFLAT"))
    seq = SequentialClassifier(m=4, delta=1.5).fit(X, y)
    state = seq.__getstate__()
    state["_y_"] = state["_y_"] + 10  # labels beyond the classes
    broken = SequentialClassifier.__new__(SequentialClassifier)
    with pytest.raises(ValueError):
        broken.__setstate__(state)
    state = seq.__getstate__()
    state["_references_"] = state["_references_"][:, :3]  # not the PCA's width
    with pytest.raises(ValueError):
        SequentialClassifier.__new__(SequentialClassifier).__setstate__(state)


# ------------------------------------------------------- joblib and sklearn
@pytest.mark.parametrize("clf", _classifiers()[:3], ids=lambda c: repr(c))
def test_joblib_workers_predict_as_the_parent(blobs, clf):
    X, y = blobs
    clf.fit(X, y)
    chunks = np.array_split(X, 4)
    got = Parallel(n_jobs=2)(delayed(clf.predict)(chunk) for chunk in chunks)
    assert np.array_equal(np.concatenate(got), clf.predict(X))


@pytest.mark.parametrize("clf", _classifiers()[:3], ids=lambda c: repr(c))
def test_cross_validate_in_two_processes(blobs, clf):
    X, y = blobs
    serial = cross_validate(clf, X, y, cv=3, return_estimator=True, n_jobs=1)
    parallel = cross_validate(clf, X, y, cv=3, return_estimator=True, n_jobs=2)
    np.testing.assert_array_equal(parallel["test_score"], serial["test_score"])
    assert serial["test_score"].mean() > 0.8
    for a, b in zip(parallel["estimator"], serial["estimator"]):
        assert np.array_equal(a.predict(X), b.predict(X))


# ---------------------------------------------------------------- Extractor
def _means_model(path, scale: float = 1.0) -> None:
    """A small ONNX model: per-channel means of NCHW 8x8 inputs, times `scale`."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["m"]),
             helper.make_node("Mul", ["m", "s"], ["y"])]
    graph = helper.make_graph(nodes, "means", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, 1, 1])],
                              [helper.make_tensor("s", TensorProto.FLOAT, [1], [scale])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_extractor_pickles_as_its_parameters(tmp_path):
    from keensight import Extractor

    path = tmp_path / "means.onnx"
    _means_model(path)
    ex = Extractor(path, input_spec={"input_size": 8}, batch_size=3, threads=1, normalize=True)
    images = [np.random.default_rng(k).integers(0, 256, (8 + k, 9, 3), dtype=np.uint8) for k in range(4)]
    payload = pickle.dumps(ex)
    assert b"InferenceSession" not in payload
    clone = pickle.loads(payload)
    assert clone.batch_size == 3 and clone.model_sha256_ == ex.model_sha256_
    np.testing.assert_array_equal(clone(images), ex(images))
    deep = copy.deepcopy(ex)
    assert deep._sessions[0] is not ex._sessions[0]
    np.testing.assert_array_equal(deep(images), ex(images))

    _means_model(path, scale=2.0)  # another model under the same name
    with pytest.raises(ValueError, match="not the one pickled"):
        pickle.loads(payload)
    with pytest.raises(ValueError, match="Extractor pickle"):
        Extractor.__new__(Extractor).__setstate__({"parameters": {"model": str(path)}, "model_sha256": ""})


def test_hnsw_pickles_of_the_file_helper_stay_readable(blobs, private_tmp):
    """Pickles written before HNSWIndex had to_bytes named _index._hnsw_from_bytes with the
    file's bytes, the thread setting and the pca flag: still read (through a private file)."""
    from keensight.search._index import _hnsw_from_bytes
    X, _ = blobs
    index = HNSWIndex(X.shape[1], M=8, ef_construction=40, pca=True, num_threads=1)
    index.add(X)
    assert b"_hnsw_from_bytes" not in pickle.dumps(index)  # new pickles go through to_bytes
    clone = _hnsw_from_bytes(index.to_bytes(), 1, True)
    assert clone.to_bytes() == index.to_bytes() and clone.num_threads == 1
    with pytest.raises(ValueError, match="pca flag"):
        _hnsw_from_bytes(index.to_bytes(), 1, "yes")
    assert list(private_tmp.iterdir()) == []
