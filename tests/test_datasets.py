"""keensight.datasets: the IDX reader and the Fashion-MNIST loader (on files written here)."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from keensight.datasets import load_fashion_mnist, read_idx


def write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_read_idx_round_trip(tmp_path, rng):
    images = rng.integers(0, 256, (5, 28, 28)).astype(np.uint8)
    write_idx(tmp_path / "x.gz", images)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"), images)
    labels = rng.integers(0, 10, 7).astype(np.uint8)
    write_idx(tmp_path / "y", labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "y"), labels)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x02ab")  # float magic
    with pytest.raises(ValueError, match="IDX"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"abc")
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")


def test_load_fashion_mnist(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)
    for prefix, n in [("train", 6), ("t10k", 3)]:
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    xtr, ytr, xte, yte = load_fashion_mnist(tmp_path)
    assert xtr.shape == (6, 28, 28) and ytr.shape == (6,) and xte.shape == (3, 28, 28) and yte.shape == (3,)
