"""The Index protocol: FlatIndex against faiss (IndexFlat / IndexIDMap2 semantics) and
against a NumPy reference on the same data."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from keensight.search import FlatIndex, Index, knn

faiss = pytest.importorskip("faiss")

DATA = Path(__file__).with_name("data")


def _rows(n, dim, seed=0, positive=False):
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return np.abs(x) if positive else x


def _numpy_distances(q, x, metric):
    q64, x64 = q.astype(np.float64), x.astype(np.float64)
    if metric == "l2":
        return ((q64[:, None, :] - x64[None]) ** 2).sum(-1)
    if metric == "ip":
        return q64 @ x64.T
    if metric == "cosine":
        qn = q64 / np.linalg.norm(q64, axis=1, keepdims=True)
        xn = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
        return 1 - qn @ xn.T
    if metric == "l1":
        return np.abs(q64[:, None, :] - x64[None]).sum(-1)
    s = q64[:, None, :] + x64[None]
    d = (q64[:, None, :] - x64[None]) ** 2
    return np.where(s > 0, d / np.where(s > 0, s, 1), 0).sum(-1)


def test_flat_index_is_an_index():
    assert isinstance(FlatIndex(3), Index)
    with pytest.raises(TypeError):
        Index()  # abstract


# ------------------------------------------------------------------ ids
def test_user_ids_map_search_results():
    x = _rows(300, 12, 1)
    ids = np.unique(np.random.default_rng(2).integers(-2**62, 2**62, 400))[:300]  # any int64 values
    ids = np.random.default_rng(3).permutation(ids)
    index = FlatIndex(12)
    index.add(x, ids=ids)
    assert np.array_equal(index.ids, ids)
    q = _rows(20, 12, 3)
    d, i = index.search(q, 5)
    d_ref, i_ref = knn(q, x, 5)
    assert np.array_equal(i, ids[i_ref])
    np.testing.assert_array_equal(d, d_ref)


def test_default_ids_continue_from_the_count():
    index = FlatIndex(4)
    index.add(_rows(3, 4))
    index.add(_rows(2, 4, 1))
    assert index.ids.tolist() == [0, 1, 2, 3, 4]
    index.add(_rows(1, 4, 2), ids=[100])
    index.add(_rows(2, 4, 3))  # len(index) = 6 -> ids 6, 7
    assert index.ids.tolist() == [0, 1, 2, 3, 4, 100, 6, 7]


@pytest.mark.parametrize("bad", [[1, 1], [7, -1]])
def test_bad_ids_in_a_batch_add_nothing(bad):
    index = FlatIndex(2)
    with pytest.raises(ValueError, match="ids"):
        index.add(_rows(2, 2), ids=bad)
    assert len(index) == 0


def test_ids_already_present_are_refused():
    index = FlatIndex(2)
    index.add(_rows(3, 2), ids=[5, 6, 7])
    with pytest.raises(ValueError, match="already in the index"):
        index.add(_rows(2, 2), ids=[8, 6])
    assert index.remove([0]) == 0  # not there: nothing removed
    assert index.ids.tolist() == [5, 6, 7]


def test_default_ids_colliding_raise():
    index = FlatIndex(2)
    index.add(_rows(3, 2), ids=[5, 6, 7])
    with pytest.raises(ValueError, match="default"):
        index.add(_rows(3, 2, 1))  # 3, 4, 5: 5 is taken
    assert len(index) == 3


def test_ids_bad_types_and_shapes():
    index = FlatIndex(2)
    with pytest.raises(TypeError, match="ids"):
        index.add(_rows(2, 2), ids=[0.5, 1.5])
    with pytest.raises(ValueError, match="ids"):
        index.add(_rows(2, 2), ids=[1, 2, 3])
    with pytest.raises(ValueError, match="ids"):
        index.add(_rows(1, 2), ids=np.array([2**63], dtype=np.uint64))


# ----------------------------------------------------------- remove, get_items
def test_remove_compacts_and_matches_faiss_idmap():
    x = _rows(500, 8, 4)
    ids = np.arange(500, dtype=np.int64) * 3 + 7
    index = FlatIndex(8)
    index.add(x, ids=ids)
    ref = faiss.IndexIDMap2(faiss.IndexFlatL2(8))
    ref.add_with_ids(x, ids)
    gone = ids[np.random.default_rng(5).choice(500, 120, replace=False)]
    request = np.r_[gone, gone[:10], [1, 2, 4]]  # repeats and unknown ids are ignored
    assert index.remove(request) == 120
    assert ref.remove_ids(np.ascontiguousarray(request)) == 120
    assert len(index) == ref.ntotal == 380
    assert np.array_equal(index.ids, faiss.vector_to_array(ref.id_map))
    q = _rows(30, 8, 6)
    d, i = index.search(q, 10)
    d_ref, i_ref = ref.search(q, 10)
    assert np.array_equal(i, i_ref)
    np.testing.assert_allclose(d, d_ref, rtol=1e-4, atol=1e-5)
    keep = ~np.isin(ids, gone)
    np.testing.assert_array_equal(index.vectors(), x[keep])
    np.testing.assert_array_equal(index.get_items(ids[keep][::-7]), x[keep][::-7])
    np.testing.assert_array_equal(index.get_items(ids[keep][5:9]), ref.reconstruct_batch(ids[keep][5:9]))


def test_remove_everything_then_add_again():
    index = FlatIndex(3)
    index.add(_rows(4, 3))
    assert index.remove(np.arange(4)) == 4
    assert len(index) == 0
    with pytest.raises(ValueError, match="empty"):
        index.search(_rows(1, 3), 1)
    index.add(_rows(2, 3, 1))
    assert index.ids.tolist() == [0, 1]


def test_get_items_unknown_id():
    index = FlatIndex(3)
    index.add(_rows(4, 3))
    with pytest.raises(ValueError, match="17"):
        index.get_items([1, 17])
    assert index.get_items([]).shape == (0, 3)


def test_mark_deleted_removes_and_refuses_unknown_ids():
    index = FlatIndex(3)
    index.add(_rows(4, 3))
    with pytest.raises(ValueError, match="not in the index"):
        index.mark_deleted([2, 9])
    assert len(index) == 4
    index.mark_deleted([2])
    assert 2 not in index and 1 in index
    assert 2 not in index.search(_rows(5, 3, 9), 4)[1]


def test_reset_forgets_ids():
    index = FlatIndex(3)
    index.add(_rows(4, 3), ids=[9, 8, 7, 6])
    index.reset()
    assert len(index) == 0 and index.ids.size == 0
    index.add(_rows(2, 3))
    assert index.ids.tolist() == [0, 1]


# ------------------------------------------------------------------ allowed
@pytest.mark.parametrize("metric", ["l2", "ip", "cosine", "l1", "chi2"])
def test_search_allowed_is_exact_search_over_the_subset(metric):
    x = _rows(400, 16, 7, positive=metric == "chi2")
    ids = np.arange(400, dtype=np.int64)[::-1] * 2  # not the row numbers
    index = FlatIndex(16, metric)
    index.add(x, ids=ids)
    rng = np.random.default_rng(8)
    rows = np.sort(rng.choice(400, 37, replace=False))
    allowed = np.r_[ids[rows], [1, 3, 10**9]]  # odd ids: unknown, ignored
    q = _rows(12, 16, 9, positive=metric == "chi2")
    d, i = index.search(q, 10, allowed=allowed)
    d_ref, i_ref = knn(q, x[rows], 10, metric)
    assert np.array_equal(i, ids[rows][i_ref])
    np.testing.assert_array_equal(d, d_ref)


def test_search_allowed_pads_like_hnsw():
    index = FlatIndex(4, "ip")
    index.add(_rows(20, 4))
    d, i = index.search(_rows(3, 4, 1), 5, allowed=[3, 4])
    assert d.shape == (3, 5)
    assert (i[:, 2:] == -1).all() and np.isneginf(d[:, 2:]).all()
    assert set(i[:, :2].ravel()) <= {3, 4}
    d, i = index.search(_rows(2, 4, 1), 3, allowed=[])
    assert (i == -1).all() and np.isneginf(d).all()
    with pytest.raises(TypeError, match="allowed"):
        index.search(_rows(2, 4), 3, allowed=[0.5])


def test_search_allowed_agrees_with_faiss_selector():
    x = _rows(1000, 24, 10)
    index = FlatIndex(24)
    index.add(x)
    ref = faiss.IndexFlatL2(24)
    ref.add(x)
    subset = np.random.default_rng(11).choice(1000, 150, replace=False).astype(np.int64)
    q = _rows(40, 24, 12)
    params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(subset))
    d_ref, i_ref = ref.search(q, 8, params=params)
    d, i = index.search(q, 8, allowed=subset)
    assert np.array_equal(i, i_ref)
    np.testing.assert_allclose(d, d_ref, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------- range search
def _radius_between_distances(dist, quantile):
    """A radius at the midpoint of a gap between distances (none within rounding of it)."""
    values = np.unique(dist.ravel())
    j = int(len(values) * quantile)
    return float((values[j] + values[j + 1]) / 2)


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("nq", [1, 7, 50])
def test_range_search_matches_faiss(metric, nq):
    x = _rows(700, 20, 13)
    ids = (np.arange(700, dtype=np.int64) * 11) % 701 + 1000  # a permutation, shifted
    q = _rows(nq, 20, 14)
    index = FlatIndex(20, metric)
    index.add(x, ids=ids)
    ref = faiss.IndexIDMap2(faiss.IndexFlatL2(20) if metric == "l2" else faiss.IndexFlatIP(20))
    ref.add_with_ids(x, ids)
    radius = _radius_between_distances(_numpy_distances(q, x, metric), 0.05 if metric == "l2" else 0.95)
    lims, d, i = index.range_search(q, radius)
    lims_ref, d_ref, i_ref = ref.range_search(q, radius)
    assert lims.dtype == np.int64 and i.dtype == np.int64 and d.dtype == np.float32
    assert lims.shape == (nq + 1,) and lims[-1] > 0
    assert np.array_equal(lims, lims_ref)
    for j in range(nq):
        a, b = slice(lims[j], lims[j + 1]), slice(lims_ref[j], lims_ref[j + 1])
        order, order_ref = np.argsort(i[a]), np.argsort(i_ref[b])
        assert np.array_equal(i[a][order], i_ref[b][order_ref])
        np.testing.assert_allclose(d[a][order], d_ref[b][order_ref], rtol=1e-4, atol=1e-4)


def test_range_search_is_strict_as_faiss():
    x = np.array([[0, 0], [1, 0], [0, 2], [3, 0]], dtype=np.float32)
    index = FlatIndex(2)
    index.add(x)
    ref = faiss.IndexFlatL2(2)
    ref.add(x)
    q = np.zeros((1, 2), np.float32)
    for radius in (0.0, 1.0, 4.0, 4.5, 9.0):  # squared distances 0, 1, 4, 9 exactly
        lims, d, i = index.range_search(q, radius)
        lims_ref, d_ref, i_ref = ref.range_search(q, radius)
        assert i.tolist() == sorted(i_ref.tolist()), radius
        assert (d < radius).all()
    ip = FlatIndex(2, "ip")
    ip.add(x)
    ip_ref = faiss.IndexFlatIP(2)
    ip_ref.add(x)
    one = np.array([[1, 1]], np.float32)
    for radius in (0.0, 1.0, 2.0, 3.0):  # similarities 0, 1, 2, 3 exactly
        i = ip.range_search(one, radius)[2]
        assert i.tolist() == sorted(ip_ref.range_search(one, radius)[2].tolist()), radius


@pytest.mark.parametrize("metric", ["cosine", "l1", "chi2"])
def test_range_search_other_metrics_match_numpy_and_search(metric):
    x = _rows(300, 10, 15, positive=metric == "chi2")
    q = _rows(9, 10, 16, positive=metric == "chi2")
    index = FlatIndex(10, metric)
    index.add(x)
    dist = _numpy_distances(q, x, metric)
    radius = _radius_between_distances(dist, 0.1)
    lims, d, i = index.range_search(q, radius)
    for j in range(len(q)):
        expected = np.flatnonzero(dist[j] < radius)
        got = i[lims[j]:lims[j + 1]]
        assert np.array_equal(got, expected)  # storage order
        # the distances search reports for the same pairs
        k = len(got)
        if k:
            d_s, i_s = index.search(q[j:j + 1], k)
            assert set(i_s[0]) == set(got)
            np.testing.assert_array_equal(np.sort(d[lims[j]:lims[j + 1]]), d_s[0])


def test_range_search_edge_cases():
    index = FlatIndex(3)
    lims, d, i = index.range_search(_rows(2, 3), 1.0)  # empty index
    assert lims.tolist() == [0, 0, 0] and d.size == 0 and i.size == 0
    index.add(_rows(5, 3))
    lims, d, i = index.range_search(np.zeros((0, 3), np.float32), 1.0)
    assert lims.tolist() == [0]
    lims, d, i = index.range_search(_rows(2, 3), np.inf)
    assert lims.tolist() == [0, 5, 10]
    with pytest.raises(ValueError, match="radius"):
        index.range_search(_rows(1, 3), float("nan"))
    with pytest.raises(ValueError, match="queries"):
        index.range_search(_rows(1, 4), 1.0)
    chi = FlatIndex(3, "chi2")
    chi.add(_rows(5, 3, positive=True))
    with pytest.raises(ValueError, match="non-negative"):
        chi.range_search(-np.ones((1, 3)), 1.0)


# ------------------------------------------------------------- files, bytes
def test_to_bytes_is_the_file(tmp_path):
    index = FlatIndex(6, "cosine")
    index.add(_rows(50, 6), ids=np.arange(50) * 5)
    index.save(tmp_path / "a.ksflat")
    data = index.to_bytes()
    assert isinstance(data, bytes)
    assert data == (tmp_path / "a.ksflat").read_bytes()
    copy = FlatIndex.from_bytes(bytearray(data))
    assert copy.metric == "cosine" and np.array_equal(copy.ids, index.ids)
    np.testing.assert_array_equal(copy.vectors(), index.vectors())
    assert FlatIndex.load(tmp_path / "a.ksflat").to_bytes() == data


def test_identity_ids_are_not_stored():
    a, b = FlatIndex(4), FlatIndex(4)
    a.add(_rows(100, 4))
    b.add(_rows(100, 4), ids=np.arange(100) + 1)
    assert len(b.to_bytes()) - len(a.to_bytes()) == 100 * 8
    a.remove([99])  # still 0 .. n-1: no ids stored
    assert len(a.to_bytes()) == len(FlatIndex.from_bytes(a.to_bytes()).to_bytes())


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic", "empty", "version"])
def test_from_bytes_refuses_damaged_data(damage):
    index = FlatIndex(4)
    index.add(_rows(10, 4), ids=np.arange(10) + 3)
    data = bytearray(index.to_bytes())
    if damage == "truncate":
        data = data[:-9]
    elif damage == "flip":
        data[40] ^= 0x10
    elif damage == "magic":
        data[0:6] = b"KSHNSW"
    elif damage == "empty":
        data = b""
    else:
        data[8] = 9
    with pytest.raises(ValueError, match="FlatIndex"):
        FlatIndex.from_bytes(bytes(data))


def test_from_bytes_type():
    with pytest.raises(TypeError, match="bytes"):
        FlatIndex.from_bytes("KSFLAT")


def test_duplicate_ids_under_a_valid_checksum_are_refused():
    index = FlatIndex(2)
    index.add(_rows(2, 2), ids=[4, 5])
    data = bytearray(index.to_bytes())
    # ids are the last 16 bytes before the checksum: make both 4, then fix the checksum.
    data[-16:-8] = np.int64(4).tobytes()
    body = bytes(data[:-8])
    h = 14695981039346656037
    for byte in body:
        h = ((h ^ byte) * 1099511628211) % 2**64
    data[-8:] = h.to_bytes(8, "little")
    with pytest.raises(ValueError, match="duplicate id 4"):
        FlatIndex.from_bytes(bytes(data))


def test_reads_format_version_1():
    """A file written by the code before ids existed (format version 1)."""
    x = np.loadtxt(DATA / "flat_v1_l1_7x5.txt", dtype=np.float32)
    raw = (DATA / "flat_v1_l1_7x5.ksflat").read_bytes()
    assert raw[8] == 1  # version 1 indeed
    index = FlatIndex.load(DATA / "flat_v1_l1_7x5.ksflat")
    assert index.metric == "l1" and len(index) == 7
    assert index.ids.tolist() == list(range(7))
    np.testing.assert_array_equal(index.vectors(), x)
    assert FlatIndex.from_bytes(raw).ids.tolist() == list(range(7))
    assert index.to_bytes()[8] == 2  # written back as version 2


# ------------------------------------------------------------- concurrency
def test_searches_concurrent_with_add_and_remove():
    dim = 16
    index = FlatIndex(dim)
    base = _rows(2000, dim, 20)
    index.add(base[:500])
    errors = []
    stop = threading.Event()

    def searcher():
        q = _rows(10, dim, 21)
        try:
            while not stop.is_set():
                d, i = index.search(q, 5)
                ok = i >= 0
                assert (np.diff(d, axis=1)[ok[:, 1:]] >= 0).all()
                lims, _, _ = index.range_search(q[:2], 10.0)
                assert lims[0] == 0 and (np.diff(lims) >= 0).all()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for s in range(500, 2000, 100):
            index.add(base[s:s + 100], ids=np.arange(s, s + 100))
            index.remove(np.arange(s - 500, s - 450))
    finally:
        stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert len(index) == 2000 - 15 * 50


# ------------------------------------------------------------------ HNSWIndex
from keensight.search import HNSWIndex  # noqa: E402


def _recall(found_ids, true_ids):
    hits = sum(len(set(f) & set(t)) for f, t in zip(found_ids, true_ids))
    total = sum(len(t) for t in true_ids)
    return hits / max(total, 1)


def _split(lims, values):
    return [values[lims[i]:lims[i + 1]] for i in range(len(lims) - 1)]


def test_hnsw_index_is_an_index():
    assert isinstance(HNSWIndex(3), Index)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("pca", [False, True])
def test_hnsw_range_search_recall_against_flat(metric, pca):
    """Approximate: every result is within the radius with the distance FlatIndex
    reports for it; recall against FlatIndex.range_search >= 0.97 at the default ef
    (radii from the 5th to the 200th neighbour: the growing ef is exercised)."""
    dim = 24
    base, q = _rows(4000, dim, 40), _rows(60, dim, 41)
    flat, hnsw = FlatIndex(dim, metric), HNSWIndex(dim, metric, pca=pca, num_threads=1)
    ids = np.arange(len(base)) * 3 + 7
    flat.add(base, ids=ids)
    hnsw.add(base, ids=ids)
    d_sorted, _ = flat.search(q, 200)
    for rank in (5, 60, 200):
        radius = float(np.median(d_sorted[:, rank - 1]))
        lims, dist, got = hnsw.range_search(q, radius)
        f_lims, f_dist, f_ids = flat.range_search(q, radius)
        assert lims.shape == (len(q) + 1,) and lims[0] == 0 and (np.diff(lims) >= 0).all()
        assert dist.dtype == np.float32 and got.dtype == np.int64 and len(dist) == len(got) == lims[-1]
        assert (dist > radius).all() if metric == "ip" else (dist < radius).all()
        truth = {(i, j): d for i, (js, ds) in enumerate(zip(_split(f_lims, f_ids), _split(f_lims, f_dist)))
                 for j, d in zip(js, ds)}
        for i, (js, ds) in enumerate(zip(_split(lims, got), _split(lims, dist))):
            assert len(set(js)) == len(js)
            order = -ds if metric == "ip" else ds
            assert (np.diff(order) >= 0).all()  # best first
            for j, d in zip(js, ds):
                # Found ones are true ones (a result within the radius by a rounding
                # margin may be missing from the flat side, never the reverse far off).
                if (i, j) in truth:
                    assert abs(truth[(i, j)] - d) <= 1e-3 * max(1.0, abs(d))
                else:
                    assert abs(d - radius) <= 1e-3 * max(1.0, abs(radius))
        assert _recall(_split(lims, got), _split(f_lims, f_ids)) >= 0.97, (metric, pca, rank)


def test_hnsw_range_search_edge_cases():
    index = HNSWIndex(4)
    lims, d, i = index.range_search(np.zeros((3, 4), np.float32), 1.0)  # empty index: nothing
    assert lims.tolist() == [0, 0, 0, 0] and d.size == i.size == 0
    x = _rows(50, 4, 2)
    index.add(x)
    lims, d, i = index.range_search(np.zeros((0, 4), np.float32), 1.0)
    assert lims.tolist() == [0]
    lims, d, i = index.range_search(x[:2], np.inf)  # everything
    assert np.diff(lims).tolist() == [50, 50]
    lims, _, _ = index.range_search(x[:2], 0.0)  # strict: not even the vector itself
    assert lims.tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="radius"):
        index.range_search(x[:1], np.nan)
    index.remove(np.arange(10))
    lims, _, i = index.range_search(x[:2], np.inf)  # removed ids are never returned
    assert np.diff(lims).tolist() == [40, 40] and (i >= 10).all()


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("pca", [False, True])
def test_hnsw_get_items_returns_what_was_added(metric, pca):
    """Un-rotated and un-centred: equal to the added rows within 1e-5 of the data's
    scale (float32 rounding of the rotation, 64-d); cosine stores unit vectors."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((500, 64)) * np.linspace(3, 0.1, 64) + 50).astype(np.float32)
    index = HNSWIndex(64, metric, pca=pca, num_threads=1)
    ids = rng.permutation(10_000)[:500]
    index.add(x, ids=ids)
    pick = [5, 0, 499, 17]
    got = index.get_items(ids[pick])
    want = x[pick] / np.linalg.norm(x[pick], axis=1, keepdims=True) if metric == "cosine" else x[pick]
    assert got.shape == (4, 64) and got.dtype == np.float32
    scale = np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)
    if not pca and metric != "cosine":  # no rotation: the very floats added
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="not in the index"):
        index.get_items([10_001])
    index.remove(ids[:1])
    with pytest.raises(ValueError, match="removed"):
        index.get_items(ids[:1])


def test_hnsw_remove_is_mark_deleted():
    x = _rows(300, 8, 4)
    index = HNSWIndex(8, num_threads=1)
    index.add(x, ids=np.arange(300) + 1000)
    assert index.remove([1000, 1001, 5, 1001]) == 2  # unknown and repeated ids ignored
    assert index.remove([1000]) == 0  # already removed
    assert len(index) == 298 and index.n_deleted == 2 and index.n_slots == 300
    assert index.ids.tolist() == list(range(1002, 1300))
    _, i = index.search(x[:5], 10)
    assert not np.isin(i, [1000, 1001]).any()
    index.add(x[:1] + 1, ids=[1000])  # a removed id can come back (into its own slot)
    assert len(index) == 299 and index.n_slots == 300
    np.testing.assert_array_equal(index.get_items([1000]), x[:1] + 1)
    assert index.search(x[:1] + 1, 1)[1][0, 0] == 1000


@pytest.mark.parametrize("pca", [False, True])
def test_hnsw_reset(pca):
    x = _rows(400, 16, 5)
    index = HNSWIndex(16, pca=pca, num_threads=1, seed=9)
    index.add(x[:200], ids=np.arange(200) * 2)
    index.remove([0, 2])
    index.reset()
    assert len(index) == 0 and index.n_slots == 0 and index.n_deleted == 0 and index.ids.size == 0
    assert (index.rotation is None) == True  # noqa: E712 (a fitted rotation goes)
    assert index.dim == 16 and index.metric == "l2" and index.M == 16
    with pytest.raises(ValueError, match="empty"):
        index.search(x[:1], 1)
    index.add(x[200:])  # default ids start at 0 again; pca fits again on this batch
    assert (index.rotation is not None) == pca
    fresh = HNSWIndex(16, pca=pca, num_threads=1, seed=9)
    fresh.add(x[200:])
    assert index.to_bytes() == fresh.to_bytes()  # nothing of before is left


def test_hnsw_reset_keeps_a_given_rotation():
    q, _ = np.linalg.qr(np.random.default_rng(6).standard_normal((8, 8)))
    index = HNSWIndex(8, rotation=q)
    index.add(_rows(50, 8, 7))
    index.reset()
    np.testing.assert_allclose(index.rotation, q, atol=1e-6)


@pytest.mark.parametrize("pca", [False, True])
def test_hnsw_to_bytes_is_the_file(tmp_path, pca):
    x = _rows(700, 12, 8)
    index = HNSWIndex(12, pca=pca, M=8, num_threads=1)
    index.add(x, ids=np.arange(700) * 5)
    index.remove([5, 10])
    index.save(tmp_path / "i.kshnsw")
    data = index.to_bytes()
    assert data == (tmp_path / "i.kshnsw").read_bytes()
    clone = HNSWIndex.from_bytes(bytearray(data), num_threads=1)
    assert clone.to_bytes() == data and clone.ids.tolist() == index.ids.tolist()
    for a, b in zip(clone.search(x[:20], 5), index.search(x[:20], 5)):
        np.testing.assert_array_equal(a, b)
    assert HNSWIndex.from_bytes(memoryview(data)).n_deleted == 2


@pytest.mark.parametrize("damage", ["flip", "truncate", "magic", "empty"])
def test_hnsw_from_bytes_refuses_damaged_data(damage):
    index = HNSWIndex(6)
    index.add(_rows(100, 6, 9))
    data = bytearray(index.to_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x10
    elif damage == "truncate":
        data = data[:-9]
    elif damage == "magic":
        data[0:6] = b"KSFLAT"
    else:
        data = bytearray()
    with pytest.raises(ValueError):
        HNSWIndex.from_bytes(bytes(data))
    with pytest.raises(TypeError):
        HNSWIndex.from_bytes("text")


def test_hnsw_searches_concurrent_with_add_remove_reset():
    """The contract: searches, range searches and get_items run while another thread
    adds (also into reused slots), removes and resets; each sees a whole state: sorted
    results of live ids only, with the distances of the vectors stored under them."""
    dim = 16
    base = _rows(3000, dim, 30)
    index = HNSWIndex(dim, M=8, ef_construction=60, num_threads=1)
    index.add(base[:600], ids=np.arange(600))
    errors = []
    stop = threading.Event()
    q = _rows(8, dim, 31)

    def searcher():
        try:
            while not stop.is_set():
                try:
                    d, i = index.search(q, 5)
                except ValueError as exc:  # between a reset and the next add
                    assert "empty" in str(exc)
                    continue
                ok = i >= 0
                assert (np.diff(d, axis=1)[ok[:, 1:]] >= 0).all()
                true = ((q[:, None, :] - base[np.where(ok, i, 0)]) ** 2).sum(-1)
                np.testing.assert_allclose(d[ok], true[ok], rtol=1e-4, atol=1e-4)
                lims, dist, ids = index.range_search(q[:2], 20.0)
                assert lims[0] == 0 and (np.diff(lims) >= 0).all() and (dist < 20.0).all()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for round_ in range(3):
            for s in range(600, 3000, 300):
                index.remove(np.arange(s - 600, s - 500))
                index.add(base[s:s + 300], ids=np.arange(s, s + 300), replace_deleted=True)
            assert index.n_slots <= 600 + 8 * 200
            index.reset()
            index.add(base[:600], ids=np.arange(600))
    finally:
        stop.set()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    assert len(index) == 600
