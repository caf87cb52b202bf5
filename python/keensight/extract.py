"""CNN features of images: decoding, the preprocessing a model declares, batched inference.

:class:`Extractor` turns photos (paths or arrays) into float32 feature vectors with an
ONNX network, run by keensight's own CNN engine (:class:`keensight.nn.Network`) when it
supports the graph and by onnxruntime otherwise (``backend=``); the default network,
EfficientNet-Lite0, works offline (see :mod:`keensight.models`). One pass can return
several tensors of the network at once (one CNN for many tasks: the 1280-d embedding for
retrieval and the 1000 logits for labels), including intermediate tensors that the
published graph does not output.

The pipeline, per batch of ``batch_size`` images:

1. **decode** (paths only) on a thread pool with OpenCV, which releases the GIL, while
   the network runs on earlier batches. The size a file declares in its header is
   checked first: an image above ``max_pixels`` (default :data:`MAX_IMAGE_PIXELS`, as
   Pillow's limit) is refused before any decoding, as are formats other than JPEG, PNG,
   BMP, WebP and TIFF (a "decompression bomb", a small file declaring a huge image,
   would otherwise cost its full decoded size). JPEGs honour their EXIF orientation
   and, with ``jpeg_draft``, are decoded at 1/2, 1/4 or 1/8 scale by libjpeg's DCT
   scaling whenever the reduced image still has a shorter side of at least the model's
   resize length times a reducing gap (as Pillow's ``draft`` and
   ``thumbnail(reducing_gap=)`` do; a 4000x3000 photo decodes about 4x faster).
   Files that cannot be read are skipped and reported, never raised.
2. **preprocess** in C++ (:func:`preprocess`), on the same thread right after decoding:
   resize (area averaging when shrinking, bilinear when enlarging, as ``cv2.resize``
   with INTER_AREA / INTER_LINEAR), centre crop, channel order, ``(pixel - mean) / std``
   and layout, fused into one pass that writes the image's row of the batch tensor. A
   decoded image is dropped as soon as its row is written, so decoding holds at most
   ``decode_threads`` decoded images at a time, whatever the batch size.
3. **run** the network once for the batch, with up to ``streams`` batches running side by
   side; optionally L2-normalise each output.

Memory is sized by the work actually given: batch tensors hold
``min(batch_size, number of images)`` rows (``batch_size`` is at most
:data:`MAX_BATCH_SIZE`), one per running stream plus one being filled, and thread
counts are at most :data:`keensight._validate.MAX_THREADS` (256).

Colour conventions: arrays are RGB (HxWx3 uint8), gray (HxW or HxWx1) or RGBA (HxWx4);
gray is copied to the three channels, RGBA is composited on a white background (the
alpha channel is dropped after blending: ``rgb * a + 255 * (1 - a)``). Decoded files are
treated alike; a PNG/WebP/TIFF is decoded with its alpha channel (OpenCV then ignores EXIF
orientation, which those formats rarely carry), a JPEG with its orientation applied.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import numbers
import os
import queue
import stat
import warnings
from collections import deque
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from ._files import bytes_sha256
from ._image_header import read_header
from ._numeric import l2_normalize
from ._validate import MAX_THREADS, input_file, integer, num_threads, positive_int
from . import models as _models

__all__ = [
    "PreprocessSpec", "Extractor", "Extraction", "BatchFeatures", "UnreadableImageWarning",
    "ImageTooLargeError", "preprocess", "read_image", "IMAGE_EXTENSIONS", "MAX_IMAGE_PIXELS",
    "MAX_BATCH_SIZE", "MAX_INPUT_SIDE",
]

PathLike = Union[str, bytes, "os.PathLike[str]"]
ImageLike = Union[PathLike, np.ndarray]

# Files `keensight extract` and friends pick up in a folder (lower-case suffixes).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

_LAYOUTS = ("NCHW", "NHWC")
_ORDERS = ("RGB", "BGR")
_INTERPOLATIONS = ("area", "bilinear")


# The default limit on the pixels an image file may declare: Pillow's MAX_IMAGE_PIXELS
# (2**30 / 12, about 9459 x 9459; a 24-megapixel photo is well below it). Decoding a
# file costs up to 8 bytes per declared pixel (16-bit RGBA) before it is reduced, so the
# limit bounds one decode at about 0.7 GB; pass ``max_pixels`` for larger photos.
MAX_IMAGE_PIXELS = 89_478_485

# The largest ``batch_size``: a CPU runs no faster beyond a few dozen images per batch,
# and every stream's activations grow with it (EfficientNet-Lite0 needs several MB per
# image), so larger values are far more likely a slip than a wish.
MAX_BATCH_SIZE = 1024

# The largest side of a network input: one 8192 x 8192 RGB float32 input is 0.8 GB, far
# beyond any CNN's input, while a typo of a few digits would ask for terabytes.
MAX_INPUT_SIDE = 8192


class UnreadableImageWarning(UserWarning):
    """Some inputs could not be read or decoded and were skipped."""


class ImageTooLargeError(ValueError):
    """An image file declares more pixels than the limit (``max_pixels``); it was not decoded."""


# ---------------------------------------------------------------------------------------
# Preprocessing spec
# ---------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PreprocessSpec:
    """How an image becomes the network's input.

    Parameters
    ----------
    input_size : (int, int)
        (height, width) of the network input, each at most :data:`MAX_INPUT_SIDE`.
    resize : int or None
        Length the shorter side is resized to (aspect kept) before the centred
        ``input_size`` crop; must be >= both sides of ``input_size`` (and at most 8 times
        :data:`MAX_INPUT_SIDE`). None stretches the whole image to ``input_size`` (no crop).
    color_order : {"RGB", "BGR"}
    mean, std : tuple of 3 floats
        ``input = (pixel - mean) / std`` per channel, pixel units (0..255), in
        ``color_order``.
    layout : {"NCHW", "NHWC"}
    interpolation : {"area", "bilinear"}
        ``"area"``: averaging over each output pixel's footprint when shrinking
        (``cv2.INTER_AREA``), bilinear when enlarging; ``"bilinear"``: ``cv2.INTER_LINEAR``.

    Examples
    --------
    >>> from keensight.extract import PreprocessSpec
    >>> spec = PreprocessSpec.coerce({"input_size": 48, "scale": 1 / 255})
    >>> spec.input_size, spec.resize, spec.std
    ((48, 48), None, (255.0, 255.0, 255.0))
    """

    input_size: Tuple[int, int]
    resize: Optional[int] = None
    color_order: str = "RGB"
    mean: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: str = "NCHW"
    interpolation: str = "area"

    def __post_init__(self) -> None:
        size = self.input_size
        if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            size = (int(size), int(size))
        if (not isinstance(size, (tuple, list)) or len(size) != 2
                or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)):
            raise TypeError(f"input_size: expected an int or an (height, width) pair of ints, got {self.input_size!r}")
        size = (int(size[0]), int(size[1]))
        if not (0 < min(size) and max(size) <= MAX_INPUT_SIDE):
            raise ValueError(f"input_size: expected sizes in [1, {MAX_INPUT_SIDE}], got {size}")
        object.__setattr__(self, "input_size", size)
        if self.resize is not None:
            if isinstance(self.resize, bool) or not isinstance(self.resize, (int, np.integer)):
                raise TypeError(f"resize: expected an int or None, got {type(self.resize).__name__}")
            if self.resize > 8 * MAX_INPUT_SIDE:
                raise ValueError(f"resize: expected at most {8 * MAX_INPUT_SIDE}, got {self.resize}")
            if self.resize < max(size):
                raise ValueError(f"resize: the shorter side ({self.resize}) must be at least the crop "
                                 f"{size[0]}x{size[1]}")
            object.__setattr__(self, "resize", int(self.resize))
        order = str(self.color_order).upper()
        if order not in _ORDERS:
            raise ValueError(f"color_order: expected 'RGB' or 'BGR', got {self.color_order!r}")
        object.__setattr__(self, "color_order", order)
        layout = str(self.layout).upper()
        if layout not in _LAYOUTS:
            raise ValueError(f"layout: expected 'NCHW' or 'NHWC', got {self.layout!r}")
        object.__setattr__(self, "layout", layout)
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation: expected 'area' or 'bilinear', got {self.interpolation!r}")
        for name in ("mean", "std"):
            v = np.broadcast_to(np.asarray(getattr(self, name), dtype=np.float64), (3,))
            if not np.all(np.isfinite(v)):
                raise ValueError(f"{name}: expected finite numbers, got {getattr(self, name)!r}")
            object.__setattr__(self, name, tuple(float(x) for x in v))
        if any(s == 0 for s in self.std):
            raise ValueError("std: must be non-zero")

    @classmethod
    def from_model_spec(cls, spec: "_models.ModelSpec", interpolation: str = "area") -> "PreprocessSpec":
        """The preprocessing a registry model declares."""
        return cls(input_size=tuple(spec.input_size), resize=spec.resize, color_order=spec.color_order,
                   mean=tuple(spec.mean), std=tuple(spec.std), layout=spec.layout,
                   interpolation=interpolation)

    @classmethod
    def coerce(cls, value: Any) -> "PreprocessSpec":
        """A spec from a :class:`PreprocessSpec`, a :class:`keensight.models.ModelSpec` or a dict.

        Dict keys: ``input_size`` (or ``size``), ``resize``, ``crop`` (must equal
        ``input_size`` if given), ``color_order``, ``mean`` and ``std`` (or ``scale``,
        meaning ``input = pixel * scale``), ``layout``, ``interpolation``.
        """
        if isinstance(value, PreprocessSpec):
            return value
        if isinstance(value, _models.ModelSpec):
            return cls.from_model_spec(value)
        if not isinstance(value, Mapping):
            raise TypeError(f"input_spec: expected a PreprocessSpec, ModelSpec or dict, got {type(value).__name__}")
        d = dict(value)
        known = {"input_size", "size", "resize", "crop", "color_order", "mean", "std", "scale", "layout",
                 "interpolation"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"input_spec: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        if "size" in d:
            if "input_size" in d:
                raise ValueError("input_spec: give 'input_size' or 'size', not both")
            d["input_size"] = d.pop("size")
        if "input_size" not in d:
            raise ValueError("input_spec: 'input_size' is required")
        crop = d.pop("crop", None)
        if "scale" in d:
            if "std" in d:
                raise ValueError("input_spec: give 'std' or 'scale', not both")
            scale = np.broadcast_to(np.asarray(d.pop("scale"), dtype=np.float64), (3,))
            if np.any(scale == 0):
                raise ValueError("input_spec: scale must be non-zero")
            d["std"] = tuple(1.0 / scale)
        spec = cls(**d)
        if crop is not None:
            c = (crop, crop) if isinstance(crop, (int, np.integer)) else tuple(crop)
            if tuple(c) != spec.input_size:
                raise ValueError(f"input_spec: crop {crop!r} must equal input_size {spec.input_size}")
        return spec

    @property
    def tensor_shape(self) -> Tuple[int, int, int]:
        """Shape of one image's input, without the batch axis."""
        h, w = self.input_size
        return (3, h, w) if self.layout == "NCHW" else (h, w, 3)


# ---------------------------------------------------------------------------------------
# Images: arrays and files
# ---------------------------------------------------------------------------------------

def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """HxWx4 uint8 -> HxWx3: ``rgb * a + 255 * (1 - a)``, rounded."""
    a = rgba[:, :, 3:4].astype(np.uint16)
    rgb = rgba[:, :, :3].astype(np.uint16)
    return ((rgb * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def _as_image(a: np.ndarray, name: str) -> np.ndarray:
    """A uint8 gray (HxW) or 3-channel image, contiguous within rows; RGBA composited."""
    if a.dtype != np.uint8:
        raise TypeError(f"{name}: expected a uint8 image, got dtype {a.dtype}"
                        + (" (scale to 0..255 and convert with .astype(np.uint8))" if a.dtype.kind in "fb" else ""))
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ValueError(f"{name}: expected an HxW gray, HxWx3 RGB or HxWx4 RGBA image, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty image, got shape {a.shape}")
    if a.ndim == 3 and a.shape[2] == 4:
        a = _composite_on_white(a)
    item_ok = a.strides[1:] == ((1,) if a.ndim == 2 else (3, 1))
    if not item_ok or a.strides[0] <= 0:
        a = np.ascontiguousarray(a)
    return a


def _draft_gap(value: Any) -> Optional[float]:
    """`jpeg_draft` as a reducing gap (None: decode at full size)."""
    if value is None or value is False or value is np.False_:
        return None
    if value is True or value is np.True_:
        return 1.0
    if not isinstance(value, numbers.Real):  # NumPy scalars included
        raise TypeError(f"jpeg_draft: expected a bool or a reducing gap >= 1, got {type(value).__name__}")
    gap = float(value)
    if not (gap >= 1.0 and math.isfinite(gap)):
        raise ValueError(f"jpeg_draft: expected a bool or a reducing gap >= 1, got {value!r}")
    return gap


def _read_file(path: Any) -> bytes:
    """The bytes of a regular file (FileNotFoundError, IsADirectoryError, PermissionError
    or ValueError otherwise: a FIFO would block, /dev/zero would never end)."""
    p = input_file(path, "path")
    # Opened without blocking and checked again on the open file: a FIFO swapped in after
    # the check above is then refused instead of waiting for a writer.
    fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError(f"path: {p!r} is not a regular file")
        return f.read()


def _check_max_pixels(value: Any) -> int:
    return integer(value, "max_pixels", 1, None)


def _decode(path: Any, min_side: Optional[int], max_pixels: int = MAX_IMAGE_PIXELS) -> Tuple[np.ndarray, bool]:
    """Decode a file to (uint8 gray or BGR image, is_bgr). Raises OSError / ValueError
    (:class:`ImageTooLargeError` above `max_pixels`, checked on the header before decoding).

    `min_side`: the shorter side the caller needs; a JPEG may then be decoded at a
    reduced scale that keeps at least that much.
    """
    import cv2

    data = _read_file(path)
    if not data:
        raise ValueError("empty file")
    header = read_header(data)
    if header.buffer_pixels > max_pixels:
        raise ImageTooLargeError(
            f"the {header.format} header declares {header.describe()} pixels "
            f"({header.buffer_pixels:,}), more than max_pixels={max_pixels:,}: not decoded "
            "(raise max_pixels to read it)")
    buf = np.frombuffer(data, dtype=np.uint8)
    if header.format == "JPEG":
        flag = cv2.IMREAD_COLOR  # EXIF orientation applied
        if min_side:
            short = min(header.height, header.width)
            for factor, reduced in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                                    (2, cv2.IMREAD_REDUCED_COLOR_2)):
                if -(-short // factor) >= min_side:  # libjpeg rounds scaled sizes up
                    flag = reduced
                    break
        img = cv2.imdecode(buf, flag)
    else:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)  # keeps alpha and 16-bit depth
    if img is None or img.size == 0:
        raise ValueError(f"not a readable image (corrupt {header.format} data)")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        if img.dtype.kind == "f":
            img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
        else:
            raise ValueError(f"unsupported pixel type {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 4:
        img = _composite_on_white(img)  # BGRA -> BGR; the blend is the same in either order
    if img.ndim == 3 and img.shape[2] != 3:
        raise ValueError(f"unsupported channel count {img.shape[2]}")
    return np.ascontiguousarray(img), img.ndim == 3


def read_image(path: PathLike, *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode an image file the way :class:`Extractor` does, as RGB (or gray) uint8.

    EXIF orientation is applied to JPEGs; RGBA is composited on white; 16-bit images are
    reduced to 8 bits. JPEG, PNG, BMP, WebP and TIFF files are read.

    Parameters
    ----------
    path : str, bytes or path-like
    max_pixels : int
        The most pixels the file may declare in its header (checked before decoding);
        default :data:`MAX_IMAGE_PIXELS`.

    Raises
    ------
    OSError
        The file cannot be read (FileNotFoundError, IsADirectoryError, PermissionError).
    ImageTooLargeError
        The header declares more than `max_pixels` pixels (a ValueError).
    ValueError
        Not a regular file, another format, or data that does not decode.
    """
    img, bgr = _decode(path, None, _check_max_pixels(max_pixels))
    return img[:, :, ::-1].copy() if bgr else img


def preprocess(images: Union[np.ndarray, Sequence[np.ndarray]], spec: Any, *,
               out: Optional[np.ndarray] = None) -> np.ndarray:
    """The network input of a batch of images, computed in one fused C++ pass.

    Parameters
    ----------
    images : array or sequence of arrays
        uint8 RGB (HxWx3), gray (HxW) or RGBA (HxWx4) images of any sizes, or one NxHxWx3
        array.
    spec : PreprocessSpec, ModelSpec, dict or str
        The preprocessing (a model name takes that model's spec).
    out : ndarray, optional
        float32 C-contiguous array of shape ``(N,) + spec.tensor_shape`` to write into.

    Returns
    -------
    ndarray
        float32, ``(N, 3, H, W)`` or ``(N, H, W, 3)``.

    Examples
    --------
    >>> import numpy as np
    >>> from keensight.extract import preprocess
    >>> x = preprocess([np.full((480, 640, 3), 127, np.uint8)], "efficientnet-lite0")
    >>> x.shape, round(float(abs(x).max()), 6)
    ((1, 3, 224, 224), 0.0)
    """
    if isinstance(spec, str):
        spec = _models.get_model_spec(spec)
    spec = PreprocessSpec.coerce(spec)
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    elif isinstance(images, np.ndarray):
        raise ValueError(f"images: expected a sequence of images or an NxHxWxC array, got shape {images.shape}")
    else:
        images = _as_sequence(images, "images", "a sequence of arrays")
    arrays = []
    for i, a in enumerate(images):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"images[{i}]: expected a NumPy array, got {type(a).__name__}")
        arrays.append(_as_image(a, f"images[{i}]"))
    return _preprocess_into(arrays, [False] * len(arrays), spec, out)


def _as_sequence(items: Any, name: str, expected: str) -> List[Any]:
    """`items` as a list, refusing what iterates to something else than it looks: a str
    or bytes (characters, bytes), a dict (its keys), a set (no order to match results to)."""
    if isinstance(items, (str, bytes, bytearray, memoryview, Mapping, set, frozenset)) or not isinstance(items, Iterable):
        raise TypeError(f"{name}: expected {expected}, got {type(items).__name__}")
    return list(items)


def _preprocess_into(arrays: List[np.ndarray], bgr: List[bool], spec: PreprocessSpec,
                     out: Optional[np.ndarray], threads: int = 0) -> np.ndarray:
    shape = (len(arrays),) + spec.tensor_shape
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != shape:
        raise ValueError(f"out: expected a float32 array of shape {shape}")
    h, w = spec.input_size
    _core.preprocess_batch(arrays, bgr, out, h, w, spec.resize or 0, spec.color_order == "BGR",
                           spec.mean, spec.std, spec.interpolation, spec.layout, threads)
    return out


# ---------------------------------------------------------------------------------------
# Extractor
# ---------------------------------------------------------------------------------------

@dataclasses.dataclass
class BatchFeatures:
    """One batch of :meth:`Extractor.iter_batches`.

    Attributes
    ----------
    indices : ndarray of int
        Positions (in the input sequence) of the images this batch holds features for.
    features : dict of str to ndarray
        Each requested output, float32, one row per index: shape
        ``(len(indices),) + Extractor.feature_shapes_[name]`` (also when empty).
    errors : list of (int, str)
        Inputs of this batch that could not be read: (position, message).
    """

    indices: np.ndarray
    features: Dict[str, np.ndarray]
    errors: List[Tuple[int, str]]


@dataclasses.dataclass
class Extraction:
    """Result of :meth:`Extractor.extract`.

    Attributes
    ----------
    features : ndarray or dict of str to ndarray
        float32, one row per image read (an array for one output, a dict for several),
        shape ``(n,) + Extractor.feature_shapes_[name]``, n = 0 included.
    indices : ndarray of int
        Positions in the input of the rows of `features` (inputs that failed are absent).
    errors : list of (int, str)
        Inputs that could not be read or decoded: (position, message).
    """

    features: Union[np.ndarray, Dict[str, np.ndarray]]
    indices: np.ndarray
    errors: List[Tuple[int, str]]


def _describe(item: Any) -> str:
    if isinstance(item, (str, bytes, os.PathLike)):
        return os.fsdecode(os.fspath(item))
    return f"<array {getattr(item, 'shape', '?')}>"


def _input_dims(proto: Any, name: str) -> List[Optional[int]]:
    """The graph input's dimensions, None where symbolic or unknown."""
    inp = next((i for i in proto.graph.input if i.name == name), None)
    if inp is None:
        raise ValueError(f"model: no input named {name!r}")
    t = inp.type.tensor_type
    if not t.HasField("shape"):
        return []
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in t.shape.dim]


def _available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# Who runs the network: "auto" is keensight's engine for the graphs it can run, onnxruntime
# for the others.
BACKENDS = ("auto", "keensight", "onnxruntime")


def _check_backend(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"backend: expected one of {', '.join(map(repr, BACKENDS))}, got {type(value).__name__}")
    if value not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(map(repr, BACKENDS))}, got {value!r}")
    return value


# Default cap on concurrent batches: each holds its own activations (tens of MB for a
# batch of 16 through EfficientNet-Lite0), so many-core machines split the cores instead.
_MAX_DEFAULT_STREAMS = 4


class Extractor:
    """Features of images from an ONNX CNN, with the model's own preprocessing.

    The network runs on keensight's CNN engine (:class:`keensight.nn.Network`) or on
    onnxruntime (``backend``); both give the same features to float rounding (1e-4
    relative), so the choice is a matter of speed and of which graphs each can run.

    Parameters
    ----------
    model : str or path-like
        A registry name (:func:`keensight.models.list_models`; default
        ``"efficientnet-lite0"``, which works offline) or the path of an ``.onnx`` file
        (then `input_spec` is required).
    outputs : str or sequence of str, optional
        Tensors to return: graph outputs or any intermediate tensor (added as a graph
        output in an in-memory copy of the model). Default: the model's feature output
        (the penultimate layer: ``"embedding"`` for EfficientNet-Lite0), or the first graph
        output of a user file. A sequence returns a dict name -> array, from one pass.
    batch_size : int
        Images per network run (the last batch may be smaller), 1 to
        :data:`MAX_BATCH_SIZE`. Buffers hold ``min(batch_size, number of images)`` rows.
        Results do not depend on it.
    threads : int, optional
        Cores the network uses (1 to 256); default all the cores this process may use.
    streams : int, optional
        Batches the network runs at once (as OpenVINO's throughput streams), each on its
        own copy of the network with ``threads // streams`` threads; default
        ``min(threads, 4)``, at most `threads`. Running independent batches side by side
        needs no synchronisation inside a layer, which on a few cores beats splitting every
        layer across threads (EfficientNet-Lite0 in onnxruntime on 2 cores: about 1.4x the
        images per second of one 2-thread run). Results do not depend on it.
    normalize : bool, str or collection of str
        L2-normalise every output per image (over all its non-batch axes), or only the
        outputs named.
    input_spec : PreprocessSpec, ModelSpec or dict, optional
        Preprocessing; default the registry model's (required for a user file).
    decode_threads : int, optional
        Threads that decode and preprocess files ahead of the network (1 to 256); default
        one more than the cores (a file read or a thread waiting for a core then never
        leaves a core idle: about 4% more images per second than one per core on 2 cores).
        Each holds at most one decoded image at a time.
    jpeg_draft : bool or float
        Decode large JPEGs at a reduced scale (1/2, 1/4, 1/8) by libjpeg's DCT scaling,
        several times faster on photos. A number g >= 1 is Pillow's ``reducing_gap``: the
        smallest scale whose shorter side is still at least g times the model's resize
        length, so that the final resize still averages g x g source pixels or more;
        ``True`` means g = 1. DCT-domain downscaling is close to, not equal to, area
        averaging of the full decode, so a file's features then differ slightly from those
        of its decoded pixels (on the benchmark photos, g = 2: embeddings' cosine >= 0.997,
        same top-1 class for all; g = 1: cosine >= 0.96, top-1 agreement 93%). Off by
        default: features depend only on the pixels.
    max_pixels : int
        Files whose header declares more pixels than this are not decoded and are reported
        as unreadable (:class:`ImageTooLargeError`); default :data:`MAX_IMAGE_PIXELS`
        (about 89.5 million, Pillow's limit). The limit applies to the declared full size,
        also with `jpeg_draft`. Arrays are not limited.
    backend : {"auto", "keensight", "onnxruntime"}
        What runs the network. ``"keensight"``: keensight's engine
        (:meth:`keensight.nn.Network.from_onnx`; a graph it cannot run, such as one with an
        operator it lacks, raises ValueError naming it). ``"onnxruntime"``: an onnxruntime
        session. ``"auto"`` (default): keensight's engine when it can run the graph (the
        registry's EfficientNet-Lite models can), onnxruntime otherwise; ``backend_`` says
        which. Like the thread counts, it is left out of :attr:`config`.

    Attributes
    ----------
    model_path_ : pathlib.Path
    model_sha256_ : str
        SHA-256 of the model file (hex).
    spec_ : PreprocessSpec
    outputs_ : tuple of str
    feature_shapes_ : dict of str to tuple of int
        Shape of one image's features per output (``{"embedding": (1280,)}``); results
        always have shape ``(n,) + feature_shapes_[name]``, also for n = 0.
    streams_ : int
        Batches the network runs side by side.
    backend_ : str
        ``"keensight"`` or ``"onnxruntime"``: what actually runs the network.
    input_name_ : str

    Examples
    --------
    >>> import numpy as np, keensight
    >>> from skimage import data
    >>> ex = keensight.Extractor(outputs=["embedding", "logits"], normalize=False)
    >>> f = ex([data.chelsea(), data.coffee()])
    >>> f["embedding"].shape, f["logits"].shape
    ((2, 1280), (2, 1000))
    >>> top = f["logits"].argmax(1)
    >>> bool(281 <= top[0] <= 285), keensight.models.imagenet_classes()[top[1]]
    (True, 'espresso')
    """

    def __init__(self, model: PathLike = _models.DEFAULT_MODEL, outputs: Union[None, str, Sequence[str]] = None,
                 batch_size: int = 16, threads: Optional[int] = None, normalize: Any = False,
                 input_spec: Any = None, decode_threads: Optional[int] = None, jpeg_draft: Any = False,
                 streams: Optional[int] = None, max_pixels: int = MAX_IMAGE_PIXELS,
                 backend: str = "auto") -> None:
        self.model = model
        self.outputs = outputs
        self.batch_size = batch_size
        self.threads = threads
        self.normalize = normalize
        self.input_spec = input_spec
        self.decode_threads = decode_threads
        self.jpeg_draft = jpeg_draft
        self.streams = streams
        self.max_pixels = max_pixels
        self.backend = backend
        self._setup()

    # -- construction --------------------------------------------------------------------

    # An Extractor pickles as its parameters and is rebuilt from them (the onnxruntime
    # sessions are not picklable and the prepared networks are per-process anyway); the
    # model file's SHA-256 travels along, so a process that finds another file under the
    # same name refuses it. `backend` travels as given: "auto" chooses again where it lands.
    _PARAMETERS = ("model", "outputs", "batch_size", "threads", "normalize", "input_spec",
                   "decode_threads", "jpeg_draft", "streams", "max_pixels", "backend")
    # Pickles written before `backend` existed ran onnxruntime, and still do.
    _PARAMETER_DEFAULTS_OF_OLD_PICKLES = {"backend": "onnxruntime"}

    def __getstate__(self) -> dict:
        return {"parameters": {name: getattr(self, name) for name in self._PARAMETERS},
                "model_sha256": self.model_sha256_}

    def __setstate__(self, state: Any) -> None:
        try:
            parameters, sha256 = state["parameters"], state["model_sha256"]
            names = set(parameters)
        except (TypeError, KeyError) as exc:
            raise ValueError(f"Extractor pickle: unexpected state ({exc!r})") from None
        old = self._PARAMETER_DEFAULTS_OF_OLD_PICKLES
        if isinstance(parameters, dict) and names == set(self._PARAMETERS) - set(old):
            parameters, names = {**parameters, **old}, set(self._PARAMETERS)
        if names != set(self._PARAMETERS):
            raise ValueError(f"Extractor pickle: expected the parameters {list(self._PARAMETERS)}, "
                             f"got {sorted(names)}")
        for name in self._PARAMETERS:
            setattr(self, name, parameters[name])
        self._setup()
        if self.model_sha256_ != sha256:
            raise ValueError(f"Extractor pickle: the model file {str(self.model_path_)!r} is not the one "
                             f"pickled (sha256 {self.model_sha256_[:12]}... instead of {str(sha256)[:12]}...)")

    def _setup(self) -> None:
        import onnx

        positive_int(self.batch_size, "batch_size", high=MAX_BATCH_SIZE)
        for name in ("threads", "decode_threads", "streams"):  # None: the default
            if getattr(self, name) is not None:
                num_threads(getattr(self, name), name, allow_default=False)
        _check_max_pixels(self.max_pixels)
        _draft_gap(self.jpeg_draft)  # ValueError for a bad value, at construction
        model = os.fsdecode(self.model) if isinstance(self.model, bytes) else self.model
        model_spec = None
        if isinstance(model, str) and model in _models.list_models():
            model_spec = _models.get_model_spec(model)
            path = _models.get_model_path(model)
        elif isinstance(model, (str, os.PathLike)):
            path = Path(model)
            if not path.is_file():
                raise ValueError(f"model: {model!r} is neither a known model "
                                 f"({', '.join(_models.list_models())}) nor an existing .onnx file")
        else:
            raise TypeError(f"model: expected a model name or a path, got {type(self.model).__name__}")
        if self.input_spec is not None:
            spec = PreprocessSpec.coerce(self.input_spec)
        elif model_spec is not None:
            spec = PreprocessSpec.from_model_spec(model_spec)
        else:
            raise ValueError("input_spec: required for a model file that is not in the registry "
                             "(e.g. {'input_size': 224, 'resize': 256, 'mean': ..., 'std': ...})")

        data = path.read_bytes()
        proto = onnx.load_from_string(data)
        graph = proto.graph
        initializers = {t.name for t in graph.initializer}
        inputs = [i for i in graph.input if i.name not in initializers]
        if model_spec is not None:
            input_name = model_spec.input_name
        elif len(inputs) == 1:
            input_name = inputs[0].name
        else:
            raise ValueError(f"model: expected one image input, the graph has {[i.name for i in inputs]}")
        graph_outputs = [o.name for o in graph.output]
        if self.outputs is None:
            wanted = (model_spec.feature_output if model_spec is not None else graph_outputs[0],)
        elif isinstance(self.outputs, str):
            wanted = (self.outputs,)
        elif isinstance(self.outputs, (list, tuple)) and self.outputs and all(isinstance(o, str) for o in self.outputs):
            wanted = tuple(self.outputs)
            if len(set(wanted)) != len(wanted):
                raise ValueError(f"outputs: duplicate names in {list(wanted)}")
        else:
            raise TypeError("outputs: expected None, a tensor name or a non-empty sequence of names")
        produced = {name for node in graph.node for name in node.output if name}
        missing = [o for o in wanted if o not in produced and o not in graph_outputs]
        if missing:
            raise ValueError(f"outputs: {missing} not in the model; graph outputs: {graph_outputs}"
                             f" (intermediate tensors: any node output, e.g. {sorted(produced)[:5]}...)")
        self._normalized = _normalize_flags(self.normalize, wanted)
        if list(wanted) != graph_outputs:
            # Keep exactly the requested tensors as outputs: intermediate ones are added (with
            # their inferred type when shape inference knows it), and onnxruntime prunes the
            # nodes that no output needs any more.
            known = {vi.name: vi for vi in list(graph.output) + list(graph.value_info)}
            if any(o not in known for o in wanted):
                try:
                    inferred = onnx.shape_inference.infer_shapes(proto)
                    known.update({vi.name: vi for vi in inferred.graph.value_info})
                except Exception:  # pragma: no cover - inference is only a nicety here
                    pass
            new_outputs = []
            for o in wanted:
                vi = known.get(o)
                if vi is None or not vi.type.HasField("tensor_type"):
                    vi = onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None)
                new_outputs.append(vi)
            del graph.output[:]
            graph.output.extend(new_outputs)
        dims = _input_dims(proto, input_name)
        if len(dims) != 4:
            raise ValueError(f"model: expected a 4-D image input, {input_name!r} has shape {dims}")
        self._fixed_batch = dims[0]
        want = spec.tensor_shape
        if any(got is not None and got != exp for got, exp in zip(dims[1:], want)):
            raise ValueError(f"input_spec: gives input shape {want} ({spec.layout}) but the model's "
                             f"{input_name!r} is {[d if d is not None else '?' for d in dims]}")

        cores = min(_available_cores(), MAX_THREADS)
        threads = int(self.threads or cores)
        streams = int(self.streams or min(threads, _MAX_DEFAULT_STREAMS))
        if streams > threads:
            raise ValueError(f"streams: expected at most threads={threads}, got {streams}")
        backend = _check_backend(self.backend)
        self.outputs_ = wanted
        self.input_name_ = input_name
        self.spec_ = spec
        self._sessions: List[Any] = []
        # One blank image through the network gives every output's per-image shape, so
        # that a call in which no image can be read still returns (0, ...) arrays of the
        # right shape (and a model that cannot run fails here, not on the first batch).
        blank = np.zeros((1,) + spec.tensor_shape, np.float32)
        if backend != "onnxruntime":
            why = self._prepare_keensight(proto, spec, threads // streams, streams)
            if why is None:
                try:
                    probe = self._run(blank)
                except (ValueError, KeyError, NotImplementedError) as exc:  # what the engine cannot run
                    why, self._sessions = f"{type(exc).__name__}: {exc}", []
            if why is not None and backend == "keensight":
                raise ValueError(f"backend='keensight': {why} (backend='auto' runs such a model on onnxruntime)")
        if not self._sessions:
            self._prepare_onnxruntime(proto, threads // streams, streams)
            probe = self._run(blank)
        self._decode_workers = int(self.decode_threads or min(cores + 1, MAX_THREADS))
        self.streams_ = streams
        self.model_path_ = path
        self.model_sha256_ = bytes_sha256(data)
        self.feature_shapes_ = {o: tuple(int(d) for d in probe[o].shape[1:]) for o in wanted}

    def _prepare_keensight(self, proto: Any, spec: PreprocessSpec, threads: int, streams: int) -> Optional[str]:
        """keensight's network for every stream in ``self._sessions``, or why not (then
        ``self._sessions`` stays empty). `proto`: the model with the wanted tensors as its
        outputs, so that the import keeps them (a Conv's output is otherwise fused with
        the activation after it)."""
        from . import nn

        if spec.layout != "NCHW":
            return f"keensight's engine takes NCHW inputs, the input_spec's layout is {spec.layout}"
        try:
            net = nn.Network.from_onnx(proto, input_shape=spec.tensor_shape, threads=threads)
        except (ValueError, NotImplementedError) as exc:  # nn.UnsupportedOperatorError is a ValueError
            return f"{type(exc).__name__}: {exc}"
        # Network.run may be called from several threads at once (each call has its own
        # activation arena), so the streams share one network and its packed weights.
        self._sessions = [net] * streams
        self.backend_ = "keensight"
        return None

    def _prepare_onnxruntime(self, proto: Any, threads: int, streams: int) -> None:
        """One onnxruntime session per stream in ``self._sessions`` (`proto`: the model
        with the wanted tensors as its outputs)."""
        import onnxruntime as ort

        model_bytes = proto.SerializeToString()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Decoding threads share the cores with the network: idle onnxruntime workers
        # should sleep, not spin, between batches.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # One session per stream: concurrent runs of one session would share its
        # intra-op thread pool.
        self._sessions = [ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
                          for _ in range(streams)]
        self.backend_ = "onnxruntime"

    @property
    def config(self) -> Dict[str, Any]:
        """The options that determine the features, as a JSON-serialisable dict.

        Two extractors whose configs are equal give the same features for the same
        pixels (up to float rounding across machines), so a features file can record
        ``json.dumps(ex.config, sort_keys=True)`` and a resumed run can refuse to mix
        rows made with other options. Keys: ``model`` (the registry name or the file
        path, for display), ``model_sha256`` (what identifies the network), ``outputs``,
        ``normalize`` (output -> bool), ``jpeg_draft`` (the reducing gap, or None),
        ``input_spec`` (:class:`PreprocessSpec` fields). Options that never change
        features (batch size, threads, streams, ``max_pixels``) are left out.
        """
        model = self.model if isinstance(self.model, str) and self.model in _models.list_models() \
            else os.path.abspath(os.fsdecode(os.fspath(self.model)))
        spec = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self.spec_).items()}
        return {"model": model, "model_sha256": self.model_sha256_, "outputs": list(self.outputs_),
                "normalize": dict(self._normalized), "jpeg_draft": _draft_gap(self.jpeg_draft),
                "input_spec": spec}

    # -- running -------------------------------------------------------------------------

    def _run(self, batch: np.ndarray, stream: int = 0) -> Dict[str, np.ndarray]:
        n = len(batch)
        step = self._fixed_batch or n
        parts: Dict[str, List[np.ndarray]] = {o: [] for o in self.outputs_}
        for s in range(0, n, step):
            chunk = batch[s:s + step]
            if len(chunk) < step:  # a model with a fixed batch dimension: pad the last run
                padded = np.zeros((step,) + chunk.shape[1:], np.float32)
                padded[:len(chunk)] = chunk
                chunk = padded
            if self.backend_ == "keensight":
                found = self._sessions[stream].run(chunk, outputs=list(self.outputs_))
                res = [found[o] for o in self.outputs_]
            else:
                res = self._sessions[stream].run(list(self.outputs_), {self.input_name_: chunk})
            for o, r in zip(self.outputs_, res):
                parts[o].append(r[:min(step, n - s)])
        out = {}
        for o in self.outputs_:
            r = np.concatenate(parts[o]) if len(parts[o]) > 1 else parts[o][0]
            r = np.asarray(r, dtype=np.float32)
            while r.ndim > 2 and r.shape[-1] == 1:  # [N, C, 1, 1] pooled features -> [N, C]
                r = r[..., 0]
            if self._normalized[o]:
                r = l2_normalize(r.reshape(len(r), -1), axis=1).reshape(r.shape)
            out[o] = np.ascontiguousarray(r)
        return out

    def _no_features(self) -> Dict[str, np.ndarray]:
        return {o: np.empty((0,) + self.feature_shapes_[o], np.float32) for o in self.outputs_}

    def _items(self, images: Any) -> List[Any]:
        """The inputs as a list of paths (str, bytes, path-like) and arrays."""
        if isinstance(images, np.ndarray):
            if images.ndim == 4:
                return list(images)
            if images.ndim in (2, 3):
                return [images]
            if images.ndim == 1 and images.dtype.kind in "OUS":  # e.g. a pandas column of paths
                return self._items(images.tolist())
            raise ValueError(f"images: expected an HxW or HxWxC image, an NxHxWxC batch or a 1-D array of "
                             f"paths, got an array of shape {images.shape} and dtype {images.dtype}")
        if isinstance(images, (str, bytes, os.PathLike)):
            return [images]
        if isinstance(images, (bytearray, memoryview)):
            raise TypeError(f"images: expected a path, an array or a sequence of them, got {type(images).__name__} "
                            "(encoded image data is not read from memory: write it to a file, or decode it "
                            "with cv2.imdecode and pass the array)")
        items = _as_sequence(images, "images", "a path, an array or a sequence of them")
        for i, it in enumerate(items):
            if not isinstance(it, (str, bytes, os.PathLike, np.ndarray)):
                raise TypeError(f"images[{i}]: expected a path or a NumPy array, got {type(it).__name__}")
        return items

    def iter_batches(self, images: Any) -> Iterator[BatchFeatures]:
        """Features batch by batch (for progress reporting and incremental saving).

        Files are decoded and preprocessed on a thread pool up to ``streams + 1``
        batches ahead of the network. Arrays are checked up front (TypeError /
        ValueError for a bad one); files that cannot be read are reported in
        :attr:`BatchFeatures.errors`. Every batch's features have shape
        ``(len(indices),) + feature_shapes_[name]``.
        """
        items = self._items(images)
        checked: Dict[int, np.ndarray] = {}
        for i, it in enumerate(items):
            if isinstance(it, np.ndarray):
                checked[i] = _as_image(it, f"images[{i}]")
        if not items:
            return
        spec = self.spec_
        need = spec.resize if spec.resize else max(spec.input_size)
        gap = _draft_gap(self.jpeg_draft)
        min_side = int(np.ceil(gap * need)) if gap else None
        max_pixels = self.max_pixels
        rows = min(int(self.batch_size), len(items))  # batch tensors never exceed the work
        streams = len(self._sessions)
        # Batch tensors: one per batch in flight (a stream's running batch, the next being
        # filled), allocated when first needed and reused.
        free: "queue.SimpleQueue[np.ndarray]" = queue.SimpleQueue()
        idle_streams: "queue.SimpleQueue[int]" = queue.SimpleQueue()
        for k in range(streams):
            idle_streams.put(k)

        def prepare(i: int, row: np.ndarray) -> Optional[str]:
            """Decode input i (a file; arrays are ready) and preprocess it into its row of
            the batch tensor, on a decode thread. Returns why a file could not be read."""
            if i in checked:
                img, bgr = checked[i], False
            else:
                try:
                    img, bgr = _decode(items[i], min_side, max_pixels)
                except Exception as exc:  # corrupt, missing, unreadable, too large: reported
                    return f"{type(exc).__name__}: {exc}"
            _preprocess_into([img], [bgr], spec, row, 1)
            return None

        def run(entries: List[Tuple[int, "concurrent.futures.Future[Optional[str]]"]],
                buffer: np.ndarray) -> BatchFeatures:
            """One batch on an inference thread: wait for its rows, run the network."""
            errors: List[Tuple[int, str]] = []
            ok: List[int] = []
            failure: Optional[BaseException] = None
            for slot, (i, fut) in enumerate(entries):
                try:
                    err = fut.result()
                except BaseException as exc:  # raised once every row is done with the buffer
                    failure = failure or exc
                    continue
                if err is None:
                    ok.append(slot)
                else:
                    errors.append((i, err))
            try:
                if failure is not None:
                    raise failure
                if not ok:
                    feats = self._no_features()
                else:
                    x = buffer[:len(entries)] if len(ok) == len(entries) else buffer[ok]
                    k = idle_streams.get()
                    try:
                        feats = self._run(x, k)
                    finally:
                        idle_streams.put(k)
            finally:
                free.put(buffer)
            return BatchFeatures(np.asarray([entries[s][0] for s in ok], dtype=np.int64), feats, errors)

        workers = min(self._decode_workers, len(items))
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="keensight-decode")
        runners = concurrent.futures.ThreadPoolExecutor(max_workers=streams, thread_name_prefix="keensight-run")
        pending: deque = deque()

        def submit(start: int) -> None:
            try:
                buffer = free.get_nowait()
            except queue.Empty:
                buffer = np.empty((rows,) + spec.tensor_shape, dtype=np.float32)
            idx = range(start, min(start + rows, len(items)))
            entries = [(i, pool.submit(prepare, i, buffer[slot:slot + 1])) for slot, i in enumerate(idx)]
            pending.append(runners.submit(run, entries, buffer))

        starts = range(0, len(items), rows)
        try:
            # Decoding runs up to `streams + 1` batches ahead of the batch being yielded.
            for start in starts[:streams + 1]:
                submit(start)
            next_batch = len(starts[:streams + 1])
            while pending:
                done = pending.popleft().result()
                if next_batch < len(starts):
                    submit(starts[next_batch])
                    next_batch += 1
                yield done
        finally:
            # Stopped early (or failed): drop the work not started, wait for the rest.
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            runners.shutdown(wait=True)

    def extract(self, images: Any) -> Extraction:
        """Features of `images` with a record of the inputs that could not be read.

        Parameters
        ----------
        images : path, array, or sequence of paths and arrays (or an NxHxWxC array)
            Paths are str, bytes or path-like; a sequence may be any iterable but a
            str, bytes, dict or set.

        Returns
        -------
        Extraction
            Features of shape ``(n,) + feature_shapes_[name]`` for the n images read
            (n may be 0).
        """
        indices, errors = [], []
        parts: Dict[str, List[np.ndarray]] = {o: [] for o in self.outputs_}
        for b in self.iter_batches(images):
            indices.append(b.indices)
            errors.extend(b.errors)
            for o in self.outputs_:
                parts[o].append(b.features[o])
        feats = self._no_features()
        for o in self.outputs_:
            if parts[o]:
                feats[o] = np.concatenate(parts[o]) if len(parts[o]) > 1 else parts[o][0]
        idx = np.concatenate(indices) if indices else np.empty(0, np.int64)
        return Extraction(feats if len(self.outputs_) > 1 else feats[self.outputs_[0]], idx, errors)

    def __call__(self, images: Any) -> Union[np.ndarray, Dict[str, np.ndarray]]:
        """Features of `images`: one row per image that could be read, in input order.

        Unreadable files are skipped with an :class:`UnreadableImageWarning` naming them
        (use :meth:`extract` to get their positions).

        Returns
        -------
        ndarray or dict of str to ndarray
            float32, shape ``(n,) + feature_shapes_[name]``; a dict when several outputs
            were requested.
        """
        items = self._items(images)
        res = self.extract(items)
        if res.errors:
            listed = "; ".join(f"{_describe(items[i])}: {msg}" for i, msg in res.errors[:10])
            more = f" (and {len(res.errors) - 10} more)" if len(res.errors) > 10 else ""
            warnings.warn(f"skipped {len(res.errors)} unreadable image(s): {listed}{more}",
                          UnreadableImageWarning, stacklevel=2)
        return res.features

    def __repr__(self) -> str:
        return (f"Extractor(model={self.model!r}, outputs={self.outputs!r}, batch_size={self.batch_size}, "
                f"threads={self.threads}, normalize={self.normalize}, backend={self.backend!r})")


def _normalize_flags(value: Any, outputs: Sequence[str]) -> Dict[str, bool]:
    """`normalize` as output -> bool: a bool for all outputs, or the names to normalise."""
    if isinstance(value, (bool, np.bool_)):
        return {o: bool(value) for o in outputs}
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple, set, frozenset)) or not all(isinstance(o, str) for o in names):
        raise TypeError(f"normalize: expected a bool or output names, got {value!r}")
    bad = [o for o in names if o not in outputs]
    if bad:
        raise ValueError(f"normalize: {bad} are not among the outputs {list(outputs)}")
    return {o: o in names for o in outputs}
