"""The EfficientNet-Lite0 names of :mod:`keensight._efficientnet_lite` (the converter of the
whole Lite family), kept so that ``from keensight import _lite0`` goes on working."""
from __future__ import annotations

from typing import Any, List, Mapping, Optional

from ._efficientnet_lite import (  # noqa: F401  (re-exported)
    _LEGACY_MAGIC, BN_EPS, CONVERTER_VERSION, EMBEDDING_DIM, INPUT_MEAN, INPUT_STD, IR_VERSION,
    LITE0_STAGES, NUM_CLASSES, OPSET, STEM_CHANNELS, BlockSpec, PathLike, VARIANTS, build_onnx,
    fold_batch_norm, load_torch_state_dict, same_padding)
from . import _efficientnet_lite

INPUT_SIZE = VARIANTS["efficientnet-lite0"].image_size


def lite0_blocks() -> List[BlockSpec]:
    """The 16 MBConv blocks of EfficientNet-Lite0 in order."""
    return VARIANTS["efficientnet-lite0"].blocks()


def build_lite0_onnx(state: Mapping[str, Any], *, image_size: int = INPUT_SIZE, doc: str = "",
                     metadata: Optional[Mapping[str, str]] = None) -> Any:
    """:func:`keensight._efficientnet_lite.build_onnx` for EfficientNet-Lite0."""
    return build_onnx(state, "efficientnet-lite0", image_size=image_size, doc=doc, metadata=metadata)


def convert(source: PathLike, *, image_size: int = INPUT_SIZE,
            metadata: Optional[Mapping[str, str]] = None) -> bytes:
    """:func:`keensight._efficientnet_lite.convert` for EfficientNet-Lite0."""
    return _efficientnet_lite.convert(source, "efficientnet-lite0", image_size=image_size, metadata=metadata)
