"""Small image datasets that exist offline, for demos, tests and benchmarks.

:func:`make_digits_folder` writes scikit-learn's 1,797 handwritten digits (installed with
scikit-learn) as a folder-per-class image set at a CNN's input size: a real labelled set
on which classifiers differ, used by ``keensight demo``.
:func:`make_demo_folder` writes a folder-per-class photo collection built from the sample
photos that ship with scikit-image (``skimage.data``) and scikit-learn
(``load_sample_images``), each class a few augmented copies (random crop, horizontal
flip, brightness / contrast / saturation jitter, resize) of one photo, so that
``keensight extract`` and ``keensight profile`` have something real to run on.
Both create the folder they are given and its class folders, never missing parents of it.
:func:`load_fashion_mnist` reads Fashion-MNIST from the IDX files of the Debian package
``dataset-fashion-mnist`` (benchmarks of the classifiers and the ANN index).
"""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._validate import integer, positive_int

__all__ = ["digits_images", "make_digits_folder", "demo_photos", "make_demo_folder", "read_idx",
           "load_fashion_mnist"]

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

PathLike = Union[str, "os.PathLike[str]"]


def _write_image(file: Path, img: np.ndarray, params: Sequence[int] = ()) -> None:
    """Encode a gray or BGR image by the file's suffix and write it."""
    import cv2

    ok, buf = cv2.imencode(file.suffix, img, list(params))
    if not ok:  # pragma: no cover
        raise OSError(f"could not encode {file}")
    buf.tofile(os.fspath(file))


def digits_images(size: int = 224) -> Tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits as `size` x `size` uint8 images of dark ink on white.

    The UCI "optical recognition of handwritten digits" set (Alpaydin and Kaynak 1998,
    :func:`sklearn.datasets.load_digits`): 1,797 digits written by 43 people, 8 x 8
    pixels of 17 grey levels (0-16), about 180 per class. Each is scaled to 0-255,
    inverted (dark ink on white paper, as a scan or photo of a digit would be) and
    enlarged by bicubic interpolation (smooth strokes rather than 8 x 8 blocks).

    Returns
    -------
    images : ndarray of uint8, shape (1797, size, size)
    labels : ndarray of int, shape (1797,)
        The digit 0-9 of each image.
    """
    import cv2
    from sklearn.datasets import load_digits

    size = integer(size, "size", 8, 4096)
    digits = load_digits()
    ink = np.clip(digits.images * (255.0 / 16.0) + 0.5, 0, 255).astype(np.uint8)
    images = np.empty((len(ink), size, size), np.uint8)
    for k, small in enumerate(ink):
        images[k] = cv2.resize(255 - small, (size, size), interpolation=cv2.INTER_CUBIC)  # saturates
    return images, digits.target.astype(np.int64)


def make_digits_folder(path: PathLike, *, size: int = 224, n_per_class: Optional[int] = None) -> List[Path]:
    """Write scikit-learn's handwritten digits as a folder-per-class set of PNG images.

    Parameters
    ----------
    path : path-like
        Root folder (created if missing; its parent must exist). Images go to
        ``<path>/<digit>/<digit>_<index>.png``, `index` being the position in
        :func:`sklearn.datasets.load_digits`.
    size : int
        Side of the square images (default 224, EfficientNet-Lite0's input); see
        :func:`digits_images`.
    n_per_class : int, optional
        The first this many images of each digit; default all (about 180 each).

    Returns
    -------
    list of pathlib.Path
        The files written, sorted.

    Examples
    --------
    >>> import tempfile
    >>> from keensight.datasets import make_digits_folder
    >>> files = make_digits_folder(tempfile.mkdtemp(), size=32, n_per_class=2)
    >>> len(files), sorted({f.parent.name for f in files})[:3]
    (20, ['0', '1', '2'])
    """
    if n_per_class is not None:
        n_per_class = positive_int(n_per_class, "n_per_class")
    images, labels = digits_images(size)
    root = Path(path)
    root.mkdir(exist_ok=True)
    written = []
    taken = {digit: 0 for digit in range(10)}
    for k, (img, digit) in enumerate(zip(images, labels)):
        digit = int(digit)
        if n_per_class is not None and taken[digit] >= n_per_class:
            continue
        taken[digit] += 1
        folder = root / str(digit)
        folder.mkdir(exist_ok=True)
        file = folder / f"{digit}_{k:04d}.png"
        _write_image(file, img)
        written.append(file)
    return sorted(written)


def demo_photos() -> Dict[str, np.ndarray]:
    """The source photos, RGB uint8, by class name (what an ImageNet CNN sees in them).

    ``cat`` (skimage chelsea), ``coffee`` (skimage coffee: an espresso cup), ``rocket``,
    ``astronaut``, ``cameraman`` (gray, as a 3-channel image), ``temple`` (sklearn
    china.jpg), ``flower`` (sklearn flower.jpg).
    """
    from skimage import data
    from sklearn.datasets import load_sample_images

    samples = load_sample_images()
    china, flower = samples.images
    cam = data.camera()
    return {
        "cat": data.chelsea(),
        "coffee": data.coffee(),
        "rocket": data.rocket(),
        "astronaut": data.astronaut(),
        "cameraman": np.repeat(cam[:, :, None], 3, axis=2),
        "temple": np.asarray(china),
        "flower": np.asarray(flower),
    }


def _augment(img: np.ndarray, rng: np.random.Generator, size: Optional[Tuple[int, int]]) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    # Random crop keeping 70-100% of each side.
    ch, cw = int(h * rng.uniform(0.7, 1.0)), int(w * rng.uniform(0.7, 1.0))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    out = img[y:y + ch, x:x + cw].astype(np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    # Colour jitter: brightness, contrast, saturation (+-20%).
    gray = out.mean(axis=2, keepdims=True)
    out = gray + (out - gray) * rng.uniform(0.8, 1.2)
    out = (out - out.mean()) * rng.uniform(0.8, 1.2) + out.mean()
    out = out * rng.uniform(0.8, 1.2)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if size is not None:
        tw, th = size
        interp = cv2.INTER_AREA if tw * th < out.shape[0] * out.shape[1] else cv2.INTER_CUBIC
        out = cv2.resize(np.ascontiguousarray(out), (tw, th), interpolation=interp)
    return np.ascontiguousarray(out)


def make_demo_folder(path: PathLike, n_per_class: int = 3, *, classes: Optional[Sequence[str]] = None,
                     sizes: Optional[Sequence[Tuple[int, int]]] = None, png_fraction: float = 0.0,
                     seed: int = 0) -> List[Path]:
    """Write a folder-per-class dataset of augmented sample photos.

    Parameters
    ----------
    path : path-like
        Root folder (created if missing; its parent must exist); images go to
        ``<path>/<class>/<class>_<k>.jpg`` (or ``.png``).
    n_per_class : int
        Images per class.
    classes : sequence of str, optional
        Subset of :func:`demo_photos`' classes; default all seven.
    sizes : sequence of (width, height), optional
        Output sizes to draw from (landscape sizes are transposed for portrait crops
        half of the time); default: the augmented crop's own size.
    png_fraction : float
        Share of the images written as PNG instead of JPEG (quality 90).
    seed : int
        Seed of the augmentations.

    Returns
    -------
    list of pathlib.Path
        The files written, sorted.

    Examples
    --------
    >>> import tempfile
    >>> from keensight.datasets import make_demo_folder
    >>> files = make_demo_folder(tempfile.mkdtemp(), n_per_class=1, classes=["cat", "coffee"])
    >>> [f.parent.name for f in files]
    ['cat', 'coffee']
    """
    import cv2

    n_per_class = positive_int(n_per_class, "n_per_class")
    if not 0.0 <= png_fraction <= 1.0:
        raise ValueError(f"png_fraction: expected a number in [0, 1], got {png_fraction!r}")
    photos = demo_photos()
    names = list(photos) if classes is None else list(classes)
    unknown = [c for c in names if c not in photos]
    if unknown:
        raise ValueError(f"classes: unknown {unknown}; known: {list(photos)}")
    rng = np.random.default_rng(seed)
    root = Path(path)
    root.mkdir(exist_ok=True)
    written = []
    for name in names:
        folder = root / name
        folder.mkdir(exist_ok=True)
        for k in range(n_per_class):
            size = None
            if sizes:
                w, h = sizes[int(rng.integers(0, len(sizes)))]
                size = (h, w) if rng.random() < 0.25 else (w, h)
            img = _augment(photos[name], rng, size)
            as_png = rng.random() < png_fraction
            file = folder / f"{name}_{k:03d}.{'png' if as_png else 'jpg'}"
            _write_image(file, img[:, :, ::-1], [] if as_png else [cv2.IMWRITE_JPEG_QUALITY, 90])
            written.append(file)
    return sorted(written)


def read_idx(path: PathLike) -> np.ndarray:
    """An IDX file (the MNIST format, optionally gzipped) as a uint8 array.

    The header is a magic number (0x0000 08 D for unsigned bytes, D dimensions) and
    D big-endian 32-bit sizes; the values follow.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    values = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if values.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {int(np.prod(dims))} values, found {values.size} (truncated?)")
    return values.reshape(dims)


def load_fashion_mnist(path: Optional[PathLike] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST (Xiao, Rasul, Vollgraf 2017): (x_train, y_train, x_test, y_test).

    Images are uint8 arrays of shape (n, 28, 28): 60,000 for training, 10,000 for test;
    labels are uint8 class indices 0-9. `path` defaults to the folder of the Debian package
    ``dataset-fashion-mnist``; FileNotFoundError names what is missing.
    """
    root = Path(path if path is not None else FASHION_MNIST_DIR)
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    missing = [n for n in names if not (root / n).exists()]
    if missing:
        raise FileNotFoundError(f"Fashion-MNIST: {', '.join(missing)} not found under {root} "
                                "(apt-get install dataset-fashion-mnist)")
    xtr, ytr, xte, yte = (read_idx(root / n) for n in names)
    return xtr, ytr, xte, yte
