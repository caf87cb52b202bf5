"""Exact k-NN (keensight.search.knn) and FlatIndex against NumPy (float64 brute force)
and scikit-learn, at every ISA level; ties, k > n (clamped), threads, files, bad input."""
from __future__ import annotations

import os

import numpy as np
import pytest

import keensight
from keensight.search import FlatIndex, knn

METRICS = ["l2", "ip", "cosine", "l1", "chi2"]

# (nq, n, dim, k): pair path (nq < 8) and GEMM path, n and dim not multiples of
# the tile (6 x 16) nor of 8, dim past one 256-coordinate slice, k > n.
SHAPES = [
    (1, 1, 1, 1),
    (1, 50, 7, 3),
    (5, 100, 13, 10),
    (8, 1, 3, 2),
    (37, 301, 33, 5),
    (64, 700, 300, 4),
    (20, 10, 9, 15),
    (13, 17, 1, 17),
]


def reference(q: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """All pairwise values in float64, as 'smaller is better' (ip negated)."""
    q, b = q.astype(np.float64), b.astype(np.float64)
    if metric == "l2":
        return ((q[:, None, :] - b[None]) ** 2).sum(-1)
    if metric == "ip":
        return -(q @ b.T)
    if metric == "cosine":
        qn, bn = np.linalg.norm(q, axis=1), np.linalg.norm(b, axis=1)
        qn[qn == 0], bn[bn == 0] = 1, 1
        return 1 - (q @ b.T) / qn[:, None] / bn[None]
    if metric == "l1":
        return np.abs(q[:, None, :] - b[None]).sum(-1)
    s, d = q[:, None, :] + b[None], q[:, None, :] - b[None]
    return np.where(s > 0, d * d / np.where(s > 0, s, 1), 0).sum(-1)


def tolerance(q: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Per-query absolute tolerance: 1e-4 relative to the scale of the values compared."""
    q, b = q.astype(np.float64), b.astype(np.float64)
    qn, bn = (q ** 2).sum(1), (b ** 2).sum(1).max()
    if metric == "l2":
        return 1e-4 * (qn + bn) + 1e-6
    if metric == "ip":
        return 1e-4 * np.sqrt(qn * bn) + 1e-6
    if metric == "cosine":
        return np.full(len(q), 1e-4)
    if metric == "l1":
        return 1e-4 * (np.abs(q).sum(1) + np.abs(b).sum(1).max()) + 1e-6
    return 1e-4 * (q.sum(1) + b.sum(1).max()) + 1e-6


def check(d, i, q, b, k, metric):
    nq, n = len(q), len(b)
    # Never wider than the base: min(k, n) columns.
    assert d.shape == (nq, min(k, n)) and i.shape == (nq, min(k, n))
    assert d.dtype == np.float32 and i.dtype == np.int64
    ref = reference(q, b, metric)
    tol = tolerance(q, b, metric)
    kk = min(k, n)
    order = np.argsort(ref, axis=1, kind="stable")[:, :kk]
    ref_d = np.take_along_axis(ref, order, 1)
    shown = -ref_d if metric == "ip" else ref_d
    assert np.all(np.abs(d[:, :kk] - shown) <= tol[:, None]), np.max(np.abs(d[:, :kk] - shown))
    # Same neighbours, except where the reference values tie within tolerance.
    got = np.take_along_axis(ref, i[:, :kk], 1)
    assert np.all(np.abs(got - ref_d) <= 2 * tol[:, None])
    assert all(len(set(row)) == kk for row in i[:, :kk].tolist())
    assert np.all((i[:, :kk] >= 0) & (i[:, :kk] < n))
    # Best first.
    vals = -d[:, :kk] if metric == "ip" else d[:, :kk]
    assert np.all(np.diff(vals, axis=1) >= 0)


def data(rng, nq, n, dim, metric):
    q = rng.standard_normal((nq, dim)).astype(np.float32)
    b = rng.standard_normal((n, dim)).astype(np.float32)
    if metric == "chi2":
        q, b = np.abs(q), np.abs(b)
        b[:, ::3] = 0  # coordinates where x + y may be 0
        q[:, ::3] = 0
    return q, b


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_knn_matches_numpy(isa, rng, metric, shape):
    nq, n, dim, k = shape
    q, b = data(rng, nq, n, dim, metric)
    d, i = knn(q, b, k, metric)
    check(d, i, q, b, k, metric)


@pytest.mark.parametrize("metric,sk_metric", [("l2", "sqeuclidean"), ("cosine", "cosine"), ("l1", "manhattan")])
def test_knn_matches_sklearn(rng, metric, sk_metric):
    neighbors = pytest.importorskip("sklearn.neighbors")
    q, b = data(rng, 40, 500, 24, metric)
    nn = neighbors.NearestNeighbors(n_neighbors=5, metric=sk_metric, algorithm="brute").fit(b.astype(np.float64))
    ref_d, ref_i = nn.kneighbors(q.astype(np.float64))
    d, i = knn(q, b, 5, metric)
    np.testing.assert_allclose(d, ref_d, rtol=1e-4, atol=1e-4)
    assert (i == ref_i).mean() > 0.99


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nq", [3, 40])
def test_duplicates_tie_by_lower_index(isa, rng, metric, nq):
    q, b = data(rng, nq, 30, 20, metric)
    b = np.concatenate([b, b, b])  # row r, r + 30 and r + 60 are equal
    q[0] = b[4]  # a query equal to a base row
    d, i = knn(q, b, 6, metric)
    for row_d, row_i in zip(d, i):
        for j in range(0, 6, 3):  # each distinct neighbour appears three times, in index order
            assert row_d[j] == row_d[j + 1] == row_d[j + 2]
            assert list(row_i[j:j + 3]) == [row_i[j], row_i[j] + 30, row_i[j] + 60]
            assert row_i[j] < 30
    if metric != "ip":
        assert list(i[0, :3]) == [4, 34, 64]
        assert abs(d[0, 0]) <= 1e-4 * max(1.0, float((q[0].astype(np.float64) ** 2).sum()))


def test_all_equal_distances(isa):
    b = np.ones((50, 4), np.float32)
    for nq in (1, 10):
        d, i = knn(np.zeros((nq, 4)), b, 7)
        assert np.all(i == np.arange(7)) and np.all(d == 4)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nq,n", [(9, 6000), (40, 6000), (40, 300)])
def test_thread_count_does_not_change_results(rng, metric, nq, n):
    # 6000 x 1000 spans 7+ base blocks (3 MiB each): the threads split the base;
    # 300 rows: the queries.
    q, b = data(rng, nq, n, 1000, metric)
    before = keensight.get_num_threads()
    try:
        results = []
        for t in (1, 2, 3):
            keensight.set_num_threads(t)
            results.append(knn(q, b, 4, metric))
    finally:
        keensight.set_num_threads(before)
    for d, i in results[1:]:
        np.testing.assert_array_equal(d, results[0][0])
        np.testing.assert_array_equal(i, results[0][1])


def test_zero_vectors_cosine():
    b = np.array([[0, 0], [1, 0]], np.float32)
    d, i = knn(np.zeros((10, 2)), b, 2, "cosine")
    np.testing.assert_allclose(d, 1.0)
    d, i = knn([[0, 1]], b, 2, "cosine")
    np.testing.assert_allclose(d, [[1.0, 1.0]])


def test_dtypes_and_lists_accepted():
    b = np.arange(12, dtype=np.int32).reshape(4, 3)
    d1, i1 = knn([[1, 2, 3]], b, 2)
    d2, i2 = knn(np.array([[1.0, 2.0, 3.0]]), b.astype(np.float64), 2)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(d1, d2)
    nonc = np.asfortranarray(np.random.default_rng(0).random((20, 5)))
    d3, i3 = knn(nonc[:, ::-1], nonc, 1)
    d4, i4 = knn(np.ascontiguousarray(nonc[:, ::-1]), nonc, 1)
    np.testing.assert_array_equal(i3, i4)


def test_no_queries():
    d, i = knn(np.zeros((0, 3)), np.ones((4, 3)), 2)
    assert d.shape == (0, 2) and i.shape == (0, 2)


@pytest.mark.parametrize(
    "queries,base,k,metric,exc,match",
    [
        ([["a", "b"]], [[1.0, 2.0]], 1, "l2", TypeError, "queries"),
        ([[1.0, 2.0]], [["a", "b"]], 1, "l2", TypeError, "base"),
        ([1.0, 2.0], [[1.0, 2.0]], 1, "l2", ValueError, "2-D"),
        ([[1.0, 2.0]], [[1.0, 2.0, 3.0]], 1, "l2", ValueError, "columns"),
        ([[1.0, 2.0]], np.zeros((0, 2)), 1, "l2", ValueError, "base"),
        ([[1.0, 2.0]], [[1.0, 2.0]], 0, "l2", ValueError, "k"),
        ([[1.0, 2.0]], [[1.0, 2.0]], -3, "l2", ValueError, "k"),
        ([[1.0, 2.0]], [[1.0, 2.0]], 1.5, "l2", TypeError, "k"),
        ([[1.0, 2.0]], [[1.0, 2.0]], True, "l2", TypeError, "k"),
        ([[np.nan, 2.0]], [[1.0, 2.0]], 1, "l2", ValueError, "queries"),
        ([[1.0, 2.0]], [[np.inf, 2.0]], 1, "l2", ValueError, "base"),
        ([[1.0, 2.0]], [[1e39, 2.0]], 1, "l2", ValueError, "base"),
        ([[1.0, 2.0]], [[1.0, 2.0]], 1, "euclid", ValueError, "metric"),
        ([[1.0, 2.0]], [[1.0, 2.0]], 1, 3, TypeError, "metric"),
        ([[1.0, -2.0]], [[1.0, 2.0]], 1, "chi2", ValueError, "non-negative"),
        ([[1.0, 2.0]] * 10, [[1.0, -2.0]], 1, "chi2", ValueError, "non-negative"),
    ],
)
def test_bad_input(queries, base, k, metric, exc, match):
    with pytest.raises(exc, match=match):
        knn(queries, base, k, metric)


# ---------------------------------------------------------------------------
# FlatIndex

def fnv1a64(data: bytes) -> int:
    h = 14695981039346656037
    for byte in data:
        h = ((h ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


@pytest.mark.parametrize("metric", METRICS)
def test_flat_index_is_knn_over_added_rows(rng, metric):
    q, b = data(rng, 12, 90, 10, metric)
    index = FlatIndex(10, metric)
    assert len(index) == 0 and index.dim == 10 and index.metric == metric
    index.add(b[:40])
    index.add(b[40:40])
    index.add(b[40:].astype(np.float64))
    assert len(index) == 90
    d, i = index.search(q, 7)
    d2, i2 = knn(q, b, 7, metric)
    np.testing.assert_array_equal(i, i2)
    np.testing.assert_array_equal(d, d2)
    np.testing.assert_array_equal(index.vectors(), b)
    index.reset()
    assert len(index) == 0
    with pytest.raises(ValueError, match="empty"):
        index.search(q, 1)


@pytest.mark.parametrize("metric", METRICS)
def test_flat_index_save_load_round_trip(tmp_path, rng, metric):
    q, b = data(rng, 5, 33, 6, metric)
    index = FlatIndex(6, metric)
    index.add(b)
    path = tmp_path / "flat.ksi"
    index.save(path)
    assert os.listdir(tmp_path) == ["flat.ksi"]  # no temporary file left behind
    loaded = FlatIndex.load(str(path))
    assert len(loaded) == 33 and loaded.dim == 6 and loaded.metric == metric
    for a, c in zip(index.search(q, 4), loaded.search(q, 4)):
        np.testing.assert_array_equal(a, c)
    index.add(b[:3])
    index.save(path)  # overwrite in place
    assert len(FlatIndex.load(path)) == 36
    empty = FlatIndex(3)
    empty.save(tmp_path / "empty.ksi")
    assert len(FlatIndex.load(tmp_path / "empty.ksi")) == 0


def test_flat_index_rejects_bad_files(tmp_path, rng):
    index = FlatIndex(4, "ip")
    index.add(rng.random((20, 4)))
    path = tmp_path / "ok.ksi"
    index.save(path)
    raw = path.read_bytes()

    def attempt(content: bytes, match: str):
        bad = tmp_path / "bad.ksi"
        bad.write_bytes(content)
        with pytest.raises(ValueError, match=match):
            FlatIndex.load(bad)

    flipped = bytearray(raw)
    flipped[100] ^= 0x01
    attempt(bytes(flipped), "checksum")
    attempt(raw[:-5], "checksum|truncated")
    attempt(raw[:10], "truncated")
    attempt(b"", "truncated")
    attempt(b"NOTFLAT!" + raw[8:], "magic")
    body = bytearray(raw[:-8])
    body[8:12] = (99).to_bytes(4, "little")
    attempt(bytes(body) + fnv1a64(bytes(body)).to_bytes(8, "little"), "version 99")
    # A consistent checksum over inconsistent sizes (count larger than the data).
    body = bytearray(raw[:-8])
    body[28:36] = (10 ** 6).to_bytes(8, "little")
    attempt(bytes(body) + fnv1a64(bytes(body)).to_bytes(8, "little"), "inconsistent")
    with pytest.raises(FileNotFoundError):
        FlatIndex.load(tmp_path / "missing.ksi")
    with pytest.raises(FileNotFoundError):
        index.save(tmp_path / "no_such_dir" / "x.ksi")


def test_flat_index_bad_input():
    with pytest.raises(ValueError, match="dim"):
        FlatIndex(0)
    with pytest.raises(TypeError, match="dim"):
        FlatIndex(2.5)
    with pytest.raises(ValueError, match="metric"):
        FlatIndex(3, "hamming")
    index = FlatIndex(3, "chi2")
    with pytest.raises(ValueError, match="columns|3"):
        index.add(np.ones((2, 4)))
    with pytest.raises(ValueError, match="non-negative"):
        index.add(-np.ones((2, 3)))
    assert len(index) == 0
    index.add(np.ones((2, 3)))
    with pytest.raises(ValueError, match="columns"):
        index.search(np.ones((1, 2)), 1)
    with pytest.raises(ValueError, match="k"):
        index.search(np.ones((1, 3)), 0)
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.full((1, 3), np.nan), 1)


# ---------------------------------------------------------------------------
# Regressions: answers independent of the batch, data far from the origin,
# overflow, bounded sizes, concurrency, planted symlinks, crafted files.

def float64_neighbours(q, b, metric, k):
    ref = reference(q, b, metric)
    order = np.argsort(ref, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(ref, order, 1)


@pytest.mark.parametrize("offset", [1e4, 1e6, -3e5])
def test_far_from_origin_same_answer_in_any_batch(isa, offset):
    # The GEMM expansion ||q||^2 - 2 q.b + ||b||^2 of float32 rows at 1e4 +- 1
    # cancels to nothing: 8 queries got 0% right with every distance 0.0.
    rng = np.random.default_rng(0)
    b = (rng.standard_normal((500, 16)) + offset).astype("f4")
    q = (rng.standard_normal((40, 16)) + offset).astype("f4")
    truth, _ = float64_neighbours(q, b, "l2", 3)
    alone = [knn(q[j:j + 1], b, 3) for j in range(len(q))]
    for nq in (7, 8, 9, 40):
        d, i = knn(q[:nq], b, 3)
        np.testing.assert_array_equal(i, truth[:nq])
        for j in range(nq):  # bit for bit what the query gets on its own
            np.testing.assert_array_equal(d[j], alone[j][0][0])
            np.testing.assert_array_equal(i[j], alone[j][1][0])
    direct = ((q[:, None, :] - b[None, :, :]) ** 2).sum(-1, dtype=np.float64)
    np.testing.assert_allclose(d, np.take_along_axis(direct, i, 1), rtol=1e-5)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("threads", [1, 2])
def test_gemm_path_equals_pair_path_bit_for_bit(isa, rng, metric, threads):
    # Rows of one batch (GEMM, >= 8 queries) and the same rows one at a time
    # (pair kernels) must agree exactly: same ids, same float32 distances.
    q, b = data(rng, 60, 2500, 70, metric)
    b[100:110] = b[5]  # exact duplicates: ties by the lower index
    q[3] = b[5]
    before = keensight.get_num_threads()
    keensight.set_num_threads(threads)
    try:
        d, i = knn(q, b, 12, metric)
        for j in range(0, len(q), 7):
            dj, ij = knn(q[j:j + 1], b, 12, metric)
            np.testing.assert_array_equal(d[j], dj[0])
            np.testing.assert_array_equal(i[j], ij[0])
    finally:
        keensight.set_num_threads(before)
    if metric != "ip":
        assert list(i[3, :3]) == [5, 100, 101]


def test_many_duplicates_fall_back_to_exact(isa, rng):
    # More equal rows than the GEMM keeps candidates: the bound cannot separate
    # them, and the whole base is searched directly (ties: lower index first).
    b = np.repeat(rng.standard_normal((50, 24)).astype("f4"), 12, axis=0)
    d, i = knn(b[::12][:20], b, 5)
    np.testing.assert_array_equal(i, (np.arange(20) * 12)[:, None] + np.arange(5))
    assert np.all(d == 0)


@pytest.mark.parametrize("nq", [1, 20])
@pytest.mark.parametrize("metric", ["l2", "ip", "l1"])
def test_overflow_is_reported(nq, metric):
    rng = np.random.default_rng(1)
    scale = 1e38 if metric == "l1" else 1e20  # l1 sums |q - b| without squaring
    b = (np.clip(rng.standard_normal((50, 8)), -3, 3) * scale).astype("f4")
    q = (np.clip(rng.standard_normal((nq, 8)), -3, 3) * scale).astype("f4")
    with pytest.raises(ValueError, match="overflow"):
        knn(q, b, 2, metric)


def test_huge_k_is_clamped_to_the_base():
    b = np.random.default_rng(0).standard_normal((500, 8)).astype("f4")
    for k in (10 ** 8, 10 ** 9, 2 ** 63 - 1):
        d, i = knn(b[:1], b, k)  # was: a 10**8-wide result (1.1 GB)
        assert d.shape == i.shape == (1, 500)
        assert sorted(i[0].tolist()) == list(range(500))
    index = FlatIndex(8)
    index.add(b[:30])
    d, i = index.search(b[:2], 10 ** 9)
    assert d.shape == (2, 30)
    with pytest.raises(ValueError, match="k: expected an int in"):
        knn(b[:1], b, 2 ** 63)
    with pytest.raises(ValueError, match="k: expected an int in"):
        index.search(b[:1], 2 ** 64)


def test_flat_index_concurrent_search_add_reset():
    # Searches ran without a lock while another thread added or reset: SIGSEGV.
    import threading

    rng = np.random.default_rng(0)
    x = rng.standard_normal((20000, 64)).astype("f4")
    index = FlatIndex(64)
    index.add(x[:100])
    stop = threading.Event()
    errors = []

    def searcher():
        try:
            while not stop.is_set():
                try:
                    d, i = index.search(x[:64], 5)
                except ValueError as exc:  # between a reset and the next add
                    assert "empty" in str(exc)
                    continue
                assert d.shape[0] == 64 and np.all(i < 20000 * 41)
                assert np.all(np.diff(d, axis=1) >= 0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def writer():
        try:
            for r in range(40):
                if r % 3 == 2:
                    index.reset()
                    index.add(x[:10])
                else:
                    index.add(x)
                _ = len(index), index.vectors().shape
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(2)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    threads[-1].join()
    stop.set()
    for t in threads[:-1]:
        t.join()
    assert not errors, errors
    d, i = index.search(x[:5], 1)
    assert np.all(d[:, 0] == 0)  # every query row is stored: it finds itself


def test_flat_index_save_does_not_follow_planted_symlinks(tmp_path):
    index = FlatIndex(4)
    index.add(np.ones((3, 4)))
    victim = tmp_path / "victim"
    victim.write_text("precious")
    target = tmp_path / "index.ksf"
    # Every temporary name the old writer could pick (path.tmp<pid>_<n>).
    for n in range(1, 60):
        os.symlink(victim, f"{target}.tmp{os.getpid()}_{n}")
    index.save(target)
    assert victim.read_text() == "precious"
    assert target.is_file() and not target.is_symlink()
    assert len(FlatIndex.load(target)) == 3
    # A symlink at the target itself is replaced, its target untouched.
    link = tmp_path / "link.ksf"
    os.symlink(victim, link)
    index.save(link)
    assert victim.read_text() == "precious" and not link.is_symlink()
    assert len(FlatIndex.load(link)) == 3


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_flat_file_with_non_finite_vectors_is_refused(tmp_path, value):
    index = FlatIndex(4)
    index.add(np.ones((5, 4)))
    path = tmp_path / "ok.ksf"
    index.save(path)
    body = bytearray(path.read_bytes()[:-8])
    body[36 + 4 * 7:36 + 4 * 8] = np.float32(value).tobytes()  # row 1, column 3
    bad = tmp_path / "bad.ksf"
    bad.write_bytes(bytes(body) + fnv1a64(bytes(body)).to_bytes(8, "little"))
    with pytest.raises(ValueError, match="NaN or infinity"):
        FlatIndex.load(bad)


def test_flat_file_paths_say_what_they_are(tmp_path, monkeypatch):
    index = FlatIndex(2)
    index.add(np.ones((1, 2)))
    with pytest.raises(IsADirectoryError, match="directory"):
        FlatIndex.load(tmp_path)
    with pytest.raises(IsADirectoryError, match="directory"):
        index.save(tmp_path)
    with pytest.raises(ValueError, match="not a regular file"):
        FlatIndex.load(os.devnull)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        index.save(tmp_path / "missing" / "x.ksf")
    path = tmp_path / "x.ksf"
    index.save(path)
    # Permission checks (the suite may run as root, for whom every file is readable).
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if os.fspath(p) in (str(path), str(tmp_path)) else real_access(p, mode))
    with pytest.raises(PermissionError, match="permission denied"):
        FlatIndex.load(path)
    with pytest.raises(PermissionError, match="permission denied"):
        index.save(path)


def test_one_validation_for_every_search_input():
    b = np.arange(24).reshape(8, 3)  # int rows are converted, as in knn
    index = FlatIndex(3)
    index.add(b)
    index.add(b.astype(bool))
    assert len(index) == 16
    d, i = index.search(np.zeros((0, 3)), 4)  # an empty batch is fine
    assert d.shape == (0, 4)
    with pytest.raises(ValueError, match="reshape"):
        index.search(np.zeros(3), 1)  # a 1-D vector is not a batch
    with pytest.raises(ValueError, match="reshape"):
        knn(np.zeros(3), b, 1)
