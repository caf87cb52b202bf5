# Type stub of keensight._core, generated from the built module by pybind11-stubgen
# (PYTHONPATH=<build> pybind11-stubgen keensight._core -o <dir>); regenerate after changing
# cpp/bindings/. tests/test_pyi.py checks every signature against the built module's docstrings.
"""
keensight C++ core (internal; use the keensight package)
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['FlatIndex', 'HNSWIndex', 'SequentialIndex', 'active_isa', 'border_index', 'cpu_info', 'deriv_kernel', 'difference_of_gaussians', 'filter2d', 'filter_bank', 'gabor_kernel', 'gaussian_blur', 'gaussian_kernel', 'gaussian_ksize_for_sigma', 'get_num_threads', 'gradient_magnitude', 'knn', 'laplacian', 'laplacian_of_gaussian', 'log_kernel', 'max_kernel_size', 'metric_name', 'pca_transform', 'preprocess_batch', 'preprocess_geometry', 'prewitt', 'sep_filter2d', 'set_isa', 'set_num_threads', 'sobel']
class FlatIndex:
    @staticmethod
    def from_bytes(data: bytes) -> FlatIndex:
        ...
    @staticmethod
    def load(path: str) -> FlatIndex:
        ...
    def __init__(self, dim: typing.SupportsInt | typing.SupportsIndex, metric: str = 'l2') -> None:
        ...
    def __len__(self) -> int:
        ...
    def add(self, x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], ids: typing.Any = None) -> None:
        ...
    def get_items(self, ids: typing.Annotated[numpy.typing.ArrayLike, numpy.int64]) -> numpy.typing.NDArray[numpy.float32]:
        ...
    def ids(self) -> numpy.typing.NDArray[numpy.int64]:
        ...
    def range_search(self, queries: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], radius: typing.SupportsFloat | typing.SupportsIndex) -> tuple[numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.int64]]:
        ...
    def remove(self, ids: typing.Annotated[numpy.typing.ArrayLike, numpy.int64]) -> int:
        ...
    def reset(self) -> None:
        ...
    def rows(self) -> numpy.typing.NDArray[numpy.float32]:
        ...
    def save(self, path: str) -> None:
        ...
    def search(self, queries: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], k: typing.SupportsInt | typing.SupportsIndex, allowed: typing.Any = None) -> tuple[numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.int64]]:
        ...
    def to_bytes(self) -> bytes:
        ...
    @property
    def dim(self) -> int:
        ...
    @property
    def metric(self) -> str:
        ...
class HNSWIndex:
    MAX_EF: typing.ClassVar[int] = 1048576
    early_termination: bool
    @staticmethod
    def from_bytes(data: bytes) -> HNSWIndex:
        ...
    @staticmethod
    def load(path: str) -> HNSWIndex:
        ...
    def __init__(self, dim: typing.SupportsInt | typing.SupportsIndex, metric: str = 'l2', M: typing.SupportsInt | typing.SupportsIndex = 16, ef_construction: typing.SupportsInt | typing.SupportsIndex = 200, ef_search: typing.SupportsInt | typing.SupportsIndex = 64, granule: typing.SupportsInt | typing.SupportsIndex = 32, early_termination: bool = True, seed: typing.SupportsInt | typing.SupportsIndex = 100, pca: bool = False, pca_auto: bool = False) -> None:
        ...
    def add(self, vectors: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], ids: typing.Any = None, num_threads: typing.SupportsInt | typing.SupportsIndex = 0, replace_deleted: bool = False) -> None:
        ...
    def get_items(self, ids: typing.Annotated[numpy.typing.ArrayLike, numpy.int64]) -> numpy.typing.NDArray[numpy.float32]:
        ...
    def ids(self) -> numpy.typing.NDArray[numpy.int64]:
        ...
    def mark_deleted(self, ids: typing.Annotated[numpy.typing.ArrayLike, numpy.int64]) -> None:
        ...
    def memory_usage(self) -> int:
        ...
    def range_search(self, queries: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], radius: typing.SupportsFloat | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple[numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.int64]]:
        ...
    def remove(self, ids: typing.Annotated[numpy.typing.ArrayLike, numpy.int64]) -> int:
        ...
    def reset(self) -> None:
        ...
    def rotation(self) -> typing.Any:
        ...
    def save(self, path: str) -> None:
        ...
    def search(self, queries: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], k: typing.SupportsInt | typing.SupportsIndex, ef: typing.SupportsInt | typing.SupportsIndex = 0, allowed: typing.Any = None, num_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple[numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.int64], dict]:
        ...
    def set_pca_axes(self, axes: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> None:
        ...
    def set_rotation(self, rotation: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> None:
        ...
    def to_bytes(self) -> bytes:
        ...
    def unmark_deleted(self, ids: typing.Annotated[numpy.typing.ArrayLike, numpy.int64]) -> None:
        ...
    @property
    def M(self) -> int:
        ...
    @property
    def dim(self) -> int:
        ...
    @property
    def ef_construction(self) -> int:
        ...
    @property
    def ef_search(self) -> int:
        ...
    @ef_search.setter
    def ef_search(self, arg1: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def granule(self) -> int:
        ...
    @property
    def max_level(self) -> int:
        ...
    @property
    def metric(self) -> str:
        ...
    @property
    def n_deleted(self) -> int:
        ...
    @property
    def pca(self) -> bool:
        ...
    @property
    def pca_auto(self) -> bool:
        ...
    @property
    def seed(self) -> int:
        ...
    @property
    def size(self) -> int:
        ...
    @property
    def slots(self) -> int:
        ...
class SequentialIndex:
    def __init__(self, refs: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], labels: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], n_classes: typing.SupportsInt | typing.SupportsIndex, granule: typing.SupportsInt | typing.SupportsIndex, metric: str = 'l2', mean: typing.Any = None, components: typing.Any = None, scale: typing.Any = None) -> None:
        ...
    def predict(self, queries: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], delta: typing.SupportsFloat | typing.SupportsIndex, k: typing.SupportsInt | typing.SupportsIndex = 1) -> tuple[numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.int64]]:
        ...
    def references(self) -> numpy.typing.NDArray[numpy.float32]:
        ...
    @property
    def dim(self) -> int:
        ...
    @property
    def input_dim(self) -> int:
        ...
    @property
    def n_levels(self) -> int:
        ...
def active_isa() -> str:
    ...
def border_index(p: typing.SupportsInt | typing.SupportsIndex, len: typing.SupportsInt | typing.SupportsIndex, border: typing.SupportsInt | typing.SupportsIndex) -> int:
    ...
def cpu_info() -> dict:
    ...
def deriv_kernel(order: typing.SupportsInt | typing.SupportsIndex, ksize: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
    ...
def difference_of_gaussians(src: numpy.ndarray, dst: numpy.ndarray, ksize: typing.SupportsInt | typing.SupportsIndex, sigma1: typing.SupportsFloat | typing.SupportsIndex, sigma2: typing.SupportsFloat | typing.SupportsIndex, anchor_x: typing.SupportsInt | typing.SupportsIndex = -1, anchor_y: typing.SupportsInt | typing.SupportsIndex = -1, border: typing.SupportsInt | typing.SupportsIndex = 4, border_value: typing.SupportsFloat | typing.SupportsIndex = 0.0, delta: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> None:
    ...
def filter2d(src: numpy.ndarray, dst: numpy.ndarray, kernel: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], anchor_x: typing.SupportsInt | typing.SupportsIndex = -1, anchor_y: typing.SupportsInt | typing.SupportsIndex = -1, border: typing.SupportsInt | typing.SupportsIndex = 4, border_value: typing.SupportsFloat | typing.SupportsIndex = 0.0, delta: typing.SupportsFloat | typing.SupportsIndex = 0.0, method: str = 'auto') -> None:
    ...
def filter_bank(src: numpy.ndarray, dsts: collections.abc.Sequence[numpy.ndarray], kernels: collections.abc.Sequence[typing.Annotated[numpy.typing.ArrayLike, numpy.float32]], anchor_x: typing.SupportsInt | typing.SupportsIndex = -1, anchor_y: typing.SupportsInt | typing.SupportsIndex = -1, border: typing.SupportsInt | typing.SupportsIndex = 4, border_value: typing.SupportsFloat | typing.SupportsIndex = 0.0, delta: typing.SupportsFloat | typing.SupportsIndex = 0.0, method: str = 'auto') -> None:
    ...
def gabor_kernel(ksize_x: typing.SupportsInt | typing.SupportsIndex, ksize_y: typing.SupportsInt | typing.SupportsIndex, sigma: typing.SupportsFloat | typing.SupportsIndex, theta: typing.SupportsFloat | typing.SupportsIndex, lambd: typing.SupportsFloat | typing.SupportsIndex, gamma: typing.SupportsFloat | typing.SupportsIndex, psi: typing.SupportsFloat | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
    ...
def gaussian_blur(src: numpy.ndarray, dst: numpy.ndarray, ksize_x: typing.SupportsInt | typing.SupportsIndex, ksize_y: typing.SupportsInt | typing.SupportsIndex, sigma_x: typing.SupportsFloat | typing.SupportsIndex, sigma_y: typing.SupportsFloat | typing.SupportsIndex, border: typing.SupportsInt | typing.SupportsIndex = 4) -> None:
    ...
def gaussian_kernel(ksize: typing.SupportsInt | typing.SupportsIndex, sigma: typing.SupportsFloat | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
    ...
def gaussian_ksize_for_sigma(sigma: typing.SupportsFloat | typing.SupportsIndex, is_uint8: bool) -> int:
    ...
def get_num_threads() -> int:
    ...
def gradient_magnitude(src: numpy.ndarray, dst: numpy.ndarray, op: typing.SupportsInt | typing.SupportsIndex, ksize: typing.SupportsInt | typing.SupportsIndex, l1: bool, anchor_x: typing.SupportsInt | typing.SupportsIndex = -1, anchor_y: typing.SupportsInt | typing.SupportsIndex = -1, border: typing.SupportsInt | typing.SupportsIndex = 4, border_value: typing.SupportsFloat | typing.SupportsIndex = 0.0, delta: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> None:
    ...
def knn(queries: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], base: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], k: typing.SupportsInt | typing.SupportsIndex, metric: str = 'l2') -> tuple[numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.int64]]:
    ...
def laplacian(src: numpy.ndarray, dst: numpy.ndarray, ksize: typing.SupportsInt | typing.SupportsIndex, scale: typing.SupportsFloat | typing.SupportsIndex, anchor_x: typing.SupportsInt | typing.SupportsIndex = -1, anchor_y: typing.SupportsInt | typing.SupportsIndex = -1, border: typing.SupportsInt | typing.SupportsIndex = 4, border_value: typing.SupportsFloat | typing.SupportsIndex = 0.0, delta: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> None:
    ...
def laplacian_of_gaussian(src: numpy.ndarray, dst: numpy.ndarray, ksize: typing.SupportsInt | typing.SupportsIndex, sigma: typing.SupportsFloat | typing.SupportsIndex, scale: typing.SupportsFloat | typing.SupportsIndex, anchor_x: typing.SupportsInt | typing.SupportsIndex = -1, anchor_y: typing.SupportsInt | typing.SupportsIndex = -1, border: typing.SupportsInt | typing.SupportsIndex = 4, border_value: typing.SupportsFloat | typing.SupportsIndex = 0.0, delta: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> None:
    ...
def log_kernel(ksize: typing.SupportsInt | typing.SupportsIndex, sigma: typing.SupportsFloat | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
    ...
def max_kernel_size() -> int:
    """
    The largest kernel side (taps) any filter accepts, given or derived from sigma.
    """
def metric_name(metric: str) -> str:
    ...
def pca_transform(x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], mean: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], components: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], scale: typing.Any = None) -> numpy.typing.NDArray[numpy.float32]:
    ...
def preprocess_batch(images: collections.abc.Sequence[numpy.ndarray], bgr: collections.abc.Sequence[bool], out: numpy.ndarray, rows: typing.SupportsInt | typing.SupportsIndex, cols: typing.SupportsInt | typing.SupportsIndex, resize_shorter: typing.SupportsInt | typing.SupportsIndex, out_bgr: bool, mean: typing.Annotated[collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], "FixedSize(3)"], std: typing.Annotated[collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], "FixedSize(3)"], interpolation: str, layout: str, threads: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
    """
    Resize + centre crop + channel order + normalisation + layout of uint8 images into `out`, on at most `threads` threads (0: keensight's setting).
    """
def preprocess_geometry(src_rows: typing.SupportsInt | typing.SupportsIndex, src_cols: typing.SupportsInt | typing.SupportsIndex, rows: typing.SupportsInt | typing.SupportsIndex, cols: typing.SupportsInt | typing.SupportsIndex, resize_shorter: typing.SupportsInt | typing.SupportsIndex) -> tuple[int, int, int, int]:
    """
    (resized_rows, resized_cols, crop_top, crop_left) that preprocess_batch uses for one image.
    """
def prewitt(src: numpy.ndarray, dst: numpy.ndarray, dx: typing.SupportsInt | typing.SupportsIndex, dy: typing.SupportsInt | typing.SupportsIndex, scale: typing.SupportsFloat | typing.SupportsIndex, anchor_x: typing.SupportsInt | typing.SupportsIndex = -1, anchor_y: typing.SupportsInt | typing.SupportsIndex = -1, border: typing.SupportsInt | typing.SupportsIndex = 4, border_value: typing.SupportsFloat | typing.SupportsIndex = 0.0, delta: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> None:
    ...
def sep_filter2d(src: numpy.ndarray, dst: numpy.ndarray, kernel_x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], kernel_y: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], anchor_x: typing.SupportsInt | typing.SupportsIndex = -1, anchor_y: typing.SupportsInt | typing.SupportsIndex = -1, border: typing.SupportsInt | typing.SupportsIndex = 4, border_value: typing.SupportsFloat | typing.SupportsIndex = 0.0, delta: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> None:
    ...
def set_isa(isa: str) -> str:
    ...
def set_num_threads(n: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def sobel(src: numpy.ndarray, dst: numpy.ndarray, dx: typing.SupportsInt | typing.SupportsIndex, dy: typing.SupportsInt | typing.SupportsIndex, ksize: typing.SupportsInt | typing.SupportsIndex, scale: typing.SupportsFloat | typing.SupportsIndex, anchor_x: typing.SupportsInt | typing.SupportsIndex = -1, anchor_y: typing.SupportsInt | typing.SupportsIndex = -1, border: typing.SupportsInt | typing.SupportsIndex = 4, border_value: typing.SupportsFloat | typing.SupportsIndex = 0.0, delta: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> None:
    ...
# Private: tests of the core GEMM driver (cpp/bindings/gemm.cpp).
def _gemm_kernels(op: str) -> list[str]:
    """
    Names of the GEMM tiles of `op` ('f32', 'u8s8', 'xnor') this build has and this CPU runs.
    """
def _gemm_active_kernel(op: str) -> str:
    """
    The tile `op` uses at the active ISA level.
    """
def _gemm_f32(a: typing.Any, b: typing.Any, scale: typing.Any = None, bias: typing.Any = None, residual: typing.Any = None, lo: typing.Any = None, hi: typing.Any = None, kernel: str = '', num_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> numpy.typing.NDArray[numpy.float32]:
    """
    clamp(a @ b.T * scale + bias + residual, lo, hi) in float32 (private: tests of the core GEMM).
    """
def _gemm_u8s8(a: typing.Any, b: typing.Any, scale: typing.Any = None, bias: typing.Any = None, residual: typing.Any = None, lo: typing.Any = None, hi: typing.Any = None, kernel: str = '', num_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> numpy.typing.NDArray[numpy.int32]:
    """
    clamp(a @ b.T * scale + bias + residual, lo, hi) for uint8 a, int8 b, in int32, exact (wrapping on int32 overflow of the epilogue) (private: tests of the core GEMM).
    """
def _gemm_xnor(a_bits: typing.Any, b_bits: typing.Any, k: typing.SupportsInt | typing.SupportsIndex, scale: typing.Any = None, bias: typing.Any = None, residual: typing.Any = None, lo: typing.Any = None, hi: typing.Any = None, kernel: str = '', num_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> numpy.typing.NDArray[numpy.int32]:
    """
    The ±1 dot products k - 2 popcount(a XOR b) of bit rows packed by np.packbits(..., axis=1), then the epilogue, in int32 (private: tests of the core GEMM).
    """
# Private: tests and benchmarks of the nn ops, pools and direct stem (cpp/bindings/nn_ops.cpp).
def _nn_pool(kind: str, x: typing.Any, kernel: typing.Any, stride: typing.Any, pads: typing.Any, dilation: typing.Any, ceil_mode: bool, count_include_pad: bool, level: typing.Any = None) -> numpy.typing.NDArray[numpy.float32]:
    """
    ONNX MaxPool ('max') / AveragePool ('average') of one NHWC float32 image (H, W, C); pads (top, left, bottom, right).
    """
def _nn_global_avg_pool(x: typing.Any, level: typing.Any = None) -> numpy.typing.NDArray[numpy.float32]:
    """
    GlobalAveragePool of one NHWC float32 image (H, W, C) -> (C,).
    """
def _nn_elementwise(op: str, a: typing.Any, b: typing.Any, act: typing.Any, level: typing.Any = None) -> numpy.typing.NDArray[numpy.float32]:
    """
    activate(act, a + b) ('add'), activate(act, a * b) ('mul') or activate(act, a) ('activate', b None); act = (kind, lo, hi, alpha, beta).
    """
def _nn_channel_affine(x: typing.Any, scale: typing.Any, shift: typing.Any, act: typing.Any, level: typing.Any = None) -> numpy.typing.NDArray[numpy.float32]:
    """
    activate(act, x * scale + shift) with scale / shift (C,) or None over x (..., C).
    """
def _nn_conv_direct(x: typing.Any, w: typing.Any, bias: typing.Any, stride: typing.Any, pads: typing.Any, dilation: typing.Any, act: typing.Any, level: typing.Any = None) -> numpy.typing.NDArray[numpy.float32]:
    """
    The direct dense convolution (in_c * kh * kw <= 64) of one NHWC float32 image (H, W, C) with ONNX weights (O, I, kh, kw) -> (OH, OW, O).
    """
# Private: tests of the nn depthwise convolution (cpp/bindings/nn_depthwise.cpp).
def _nn_depthwise(x: typing.Any, w: typing.Any, bias: typing.Any = None, stride: typing.Any = None, pads: typing.Any = None, dilation: typing.Any = None, act: typing.Any = None, level: typing.Any = None, num_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> numpy.typing.NDArray[numpy.float32]:
    """
    Depthwise convolution of one NHWC float32 image x (H, W, C) with ONNX weights w (C, 1, kh, kw), bias (C,), stride (sh, sw), pads (top, left, bottom, right), dilation (dh, dw), act (kind, lo, hi, alpha, beta), at ISA `level` (None: the active one); returns (OH, OW, C) (private: tests of nn kernels).
    """
class Network:
    """
    The CNN engine's network builder (internal; use keensight.nn.Network)
    """

    def __init__(self) -> None:
        ...

    def activation(self, x: typing.SupportsInt | typing.SupportsIndex, act: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex]) -> int:
        ...

    def add(self, a: typing.SupportsInt | typing.SupportsIndex, b: typing.SupportsInt | typing.SupportsIndex, act: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex]) -> int:
        ...

    @property
    def arena_bytes(self) -> int:
        ...

    def avg_pool(self, x: typing.SupportsInt | typing.SupportsIndex, kernel: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], stride: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], pads: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], ceil_mode: bool, count_include_pad: bool) -> int:
        ...

    def channel_affine(self, x: typing.SupportsInt | typing.SupportsIndex, scale: typing.Any, shift: typing.Any, act: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex]) -> int:
        ...

    def concat(self, xs: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> int:
        ...

    def conv(self, x: typing.SupportsInt | typing.SupportsIndex, w: typing.Any, bias: typing.Any, stride: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], pads: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], dilation: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], groups: typing.SupportsInt | typing.SupportsIndex, act: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex], residual: typing.SupportsInt | typing.SupportsIndex = -1) -> int:
        ...

    def dense(self, x: typing.SupportsInt | typing.SupportsIndex, w: typing.Any, bias: typing.Any, act: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex]) -> int:
        ...

    def flatten(self, x: typing.SupportsInt | typing.SupportsIndex) -> int:
        ...

    def global_avg_pool(self, x: typing.SupportsInt | typing.SupportsIndex) -> int:
        ...

    def input(self, c: typing.SupportsInt | typing.SupportsIndex, h: typing.SupportsInt | typing.SupportsIndex, w: typing.SupportsInt | typing.SupportsIndex) -> int:
        ...

    @property
    def input_count(self) -> int:
        ...

    def max_pool(self, x: typing.SupportsInt | typing.SupportsIndex, kernel: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], stride: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], pads: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], dilation: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], ceil_mode: bool) -> int:
        ...

    def mul(self, a: typing.SupportsInt | typing.SupportsIndex, b: typing.SupportsInt | typing.SupportsIndex, act: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex, typing.SupportsFloat | typing.SupportsIndex]) -> int:
        ...

    @property
    def node_count(self) -> int:
        ...

    def node_kind(self, node: typing.SupportsInt | typing.SupportsIndex) -> str:
        ...

    def profile(self, x: collections.abc.Sequence[object], threads: typing.SupportsInt | typing.SupportsIndex = 0) -> list[float]:
        ...

    def run(self, x: collections.abc.Sequence[object], outputs: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], threads: typing.SupportsInt | typing.SupportsIndex = 0) -> list:
        ...

    def shape(self, t: typing.SupportsInt | typing.SupportsIndex) -> tuple[int, int, int]:
        ...

    def softmax(self, x: typing.SupportsInt | typing.SupportsIndex) -> int:
        ...

    @property
    def tensor_count(self) -> int:
        ...

    @property
    def weight_bytes(self) -> int:
        ...

def _container_read(source: typing.Any, magic: str, what: str, newest: typing.SupportsInt | typing.SupportsIndex) -> tuple[int, bytes]:
    """
    Reads and verifies a core container: (version, payload).
    """

def _container_write(path: typing.Any, magic: str, version: typing.SupportsInt | typing.SupportsIndex, payload: bytes) -> typing.Any:
    """
    Writes payload in the core container (path None: returns the bytes).
    """

# Private: this CPU's single-thread FMA peak, the benchmarks' "% of peak" (cpp/bindings/peak.cpp).
def _fma_peak_gflops(level: typing.Any = None, seconds: typing.SupportsFloat | typing.SupportsIndex = 0.2) -> float:
    """
    Single-thread peak GFLOP/s of independent FMA chains at `level` (None: the active level; a level falls back along its chain to the kernel registered for it), the best of ~1 ms runs over about `seconds` (private: the benchmarks' % of peak).
    """
def _fma_peak_kernel(level: typing.Any = None) -> str:
    """
    The name of the kernel _fma_peak_gflops(level) runs (private).
    """
