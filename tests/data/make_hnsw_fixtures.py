"""Writes HNSW index files of format versions 1, 2, 3 with the OLD code (main's build) and the
search results the old code gives on them. v3: saved by the old code. v2 / v1: the old code can
only write v3; v2 is v3 without the centre section, v1 is v2 without rotation kind 2, built here
from v3 files whose centre is all zeros (cosine with a rotation; no rotation), checksum redone.

Run once with the code before format 4 (main at 17c57ad): python make_hnsw_fixtures.py tests/data"""
import struct, sys, tempfile, numpy as np
from keensight.search import HNSWIndex

out = sys.argv[1]
tmp = tempfile.mkdtemp()

def data(n, dim, seed):
    r = np.random.default_rng(seed)
    centres = r.normal(size=(8, dim)).astype(np.float32) * 3
    x = centres[r.integers(0, 8, n)] + r.normal(size=(n, dim)).astype(np.float32) * np.linspace(1, 0.1, dim, dtype=np.float32)
    return x.astype(np.float32)

def fnv(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & 0xffffffffffffffff
    return h

def rewrite(src, dst, version, drop_centre):
    raw = open(src, "rb").read()
    magic, ver, hb, plen, chk = struct.unpack("<8sIIQQ", raw[:32])
    assert ver == 3 and hb == 32
    p = bytearray(raw[32:])
    dim, metric, M, efc, efs, gran, early, kind = struct.unpack("<8I", p[:32])
    if drop_centre:
        assert kind in (1, 2)
        off = 32 + 8 + 8 + 4 + 4
        off += dim * dim * 4 if kind == 1 else 4 + struct.unpack("<I", p[off:off + 4])[0] * (dim + struct.unpack("<I", p[off:off + 4])[0]) * 4
        centre = np.frombuffer(bytes(p[off:off + dim * 4]), dtype=np.float32)
        assert not centre.any(), "only a zero centre may be dropped"
        del p[off:off + dim * 4]
    if version == 1:
        assert kind in (0, 1)
    open(dst, "wb").write(struct.pack("<8sIIQQ", magic, version, 32, len(p), fnv(bytes(p))) + bytes(p))

cases = []
# v3, l2 with PCA axes (centre set), sparse ids, some deleted
x = data(480, 24, 1)
a = HNSWIndex(24, M=8, ef_construction=60, pca=True)
a.add(x, ids=np.arange(480) * 3 + 7)
a.mark_deleted([7, 10, 13])
a.save(f"{out}/hnsw_v3_l2_pca.bin"); cases.append(("hnsw_v3_l2_pca", 24, 2))
# v3, ip, no rotation (dense ids)
x = data(500, 20, 2)
b = HNSWIndex(20, metric="ip", M=6, ef_construction=40)
b.add(x)
b.save(f"{out}/hnsw_v3_ip.bin"); cases.append(("hnsw_v3_ip", 20, 3))
# cosine + dense rotation (dim 20: set_rotation), centre zeros -> v2 and v1 (kind 1) both
x = data(500, 20, 4)
c = HNSWIndex(20, metric="cosine", M=6, ef_construction=40, pca=True)
c.add(x)
c.save(f"{tmp}/cos_dense.bin")
rewrite(f"{tmp}/cos_dense.bin", f"{out}/hnsw_v2_cosine_rotation.bin", 2, True); cases.append(("hnsw_v2_cosine_rotation", 20, 5))
rewrite(f"{tmp}/cos_dense.bin", f"{out}/hnsw_v1_cosine_rotation.bin", 1, True); cases.append(("hnsw_v1_cosine_rotation", 20, 6))
# cosine + reflectors (dim 400 > 300 ... too big); use dim 20 with set_pca_axes directly
x = data(400, 20, 7)
d = HNSWIndex(20, metric="cosine", M=6, ef_construction=40)
q, _ = np.linalg.qr(np.random.default_rng(8).normal(size=(20, 20)))
d._index.set_pca_axes(np.ascontiguousarray(q[:, :5].T, dtype=np.float32))
d.add(x)
d.save(f"{tmp}/cos_wy.bin")
rewrite(f"{tmp}/cos_wy.bin", f"{out}/hnsw_v2_cosine_reflectors.bin", 2, True); cases.append(("hnsw_v2_cosine_reflectors", 20, 9))
# l2 without rotation, 16 dims -> v1 (identical payload)
x = data(500, 16, 10)
e = HNSWIndex(16, M=5, ef_construction=30, granule=4)
e.add(x)
e.save(f"{tmp}/l2_plain.bin")
rewrite(f"{tmp}/l2_plain.bin", f"{out}/hnsw_v1_l2.bin", 1, False); cases.append(("hnsw_v1_l2", 16, 12))

for name, dim, seed in cases:
    idx = HNSWIndex.load(f"{out}/{name}.bin")
    qs = data(40, dim, 100 + seed)
    D, I = idx.search(qs, 10, ef=32)
    np.savez(f"{out}/{name}.expected.npz", queries=qs, distances=D, ids=I,
             stored_ids=idx.ids, rotation=(idx.rotation if idx.rotation is not None else np.zeros((0, 0), np.float32)),
             n_deleted=idx.n_deleted, max_level=idx.max_level)
    print(name, len(idx), idx.max_level, idx.n_deleted)
