"""keensight.datasets: the handwritten-digits and photo folder writers, the IDX reader and the
Fashion-MNIST loader (on files written here)."""
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


def test_digits_images_are_the_sklearn_digits_as_ink_on_paper():
    from sklearn.datasets import load_digits

    from keensight.datasets import digits_images

    images, labels = digits_images(64)
    digits = load_digits()
    assert images.shape == (1797, 64, 64) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, digits.target)
    assert np.bincount(labels).min() >= 170  # about 180 of each digit
    # Dark ink on white: the blank border of the 8x8 originals is white, the strokes dark,
    # and shrinking back by area averaging gives the inverted original (0-16 -> 255-0).
    assert images[:, :4, :4].min() > 200 and images.min() < 30
    back = images.reshape(1797, 8, 8, 8, 8).astype(np.float64).mean(axis=(2, 4))
    ink = 16 - back * 16 / 255
    assert np.abs(ink - digits.images).mean() < 1.0
    with pytest.raises(ValueError, match="size"):
        digits_images(4)


def test_make_digits_folder(tmp_path):
    import cv2

    from keensight.datasets import make_digits_folder

    files = make_digits_folder(tmp_path / "digits", size=32, n_per_class=3)
    assert len(files) == 30
    assert sorted({f.parent.name for f in files}) == [str(d) for d in range(10)]
    assert all(f.name.startswith(f.parent.name + "_") and f.suffix == ".png" for f in files)
    img = cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED)
    assert img.shape == (32, 32) and img.dtype == np.uint8
    assert len(make_digits_folder(tmp_path / "all", size=16)) == 1797
    with pytest.raises(ValueError, match="n_per_class"):
        make_digits_folder(tmp_path / "none", n_per_class=0)


def test_dataset_writers_never_create_missing_parents(tmp_path):
    from keensight.datasets import make_demo_folder, make_digits_folder

    for write in (lambda p: make_digits_folder(p, size=16, n_per_class=1),
                  lambda p: make_demo_folder(p, n_per_class=1, classes=["cat"])):
        with pytest.raises(FileNotFoundError):
            write(tmp_path / "missing" / "data")
        assert not (tmp_path / "missing").exists()
        assert write(tmp_path / "here")  # the folder itself is created, or reused
        assert write(tmp_path / "here")
