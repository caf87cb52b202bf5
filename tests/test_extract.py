"""keensight.extract: fused preprocessing against cv2/NumPy at every ISA level, and the
Extractor on real photos (EfficientNet-Lite0, converted offline into a per-session cache)."""
from __future__ import annotations

import os
import warnings

import cv2
import numpy as np
import pytest

import keensight
from keensight import _core, extract, models
from keensight.extract import Extractor, PreprocessSpec, UnreadableImageWarning, preprocess, read_image

skdata = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module", autouse=True)
def model_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    old = os.environ.get("KEENSIGHT_CACHE")
    os.environ["KEENSIGHT_CACHE"] = str(root)
    yield root
    if old is None:
        del os.environ["KEENSIGHT_CACHE"]
    else:
        os.environ["KEENSIGHT_CACHE"] = old


@pytest.fixture(scope="module")
def lite0(model_cache):
    return Extractor(outputs=["embedding", "logits"], batch_size=4)


def reference(img, spec: PreprocessSpec, bgr_in=False):
    """cv2.resize of the whole image (float32, so no uint8 rounding), crop, NumPy normalise."""
    h, w = img.shape[:2]
    rows, cols = spec.input_size
    if spec.resize:
        r = spec.resize
        rh, rw = (r, r * w // h) if h <= w else (r * h // w, r)
    else:
        rh, rw = rows, cols
    def interp(src, dst):  # keensight picks per axis: area averaging only where it shrinks
        return cv2.INTER_AREA if spec.interpolation == "area" and dst < src else cv2.INTER_LINEAR

    # Separable: rows, then columns (a scale of 1 is the identity for both methods).
    out = cv2.resize(img.astype(np.float32), (w, rh), interpolation=interp(h, rh))
    out = cv2.resize(out, (rw, rh), interpolation=interp(w, rw))
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    top, left = (rh - rows) // 2, (rw - cols) // 2
    out = out[top:top + rows, left:left + cols]
    if bgr_in != (spec.color_order == "BGR"):
        out = out[:, :, ::-1]
    out = (out - np.float32(spec.mean)) / np.float32(spec.std)
    return out.transpose(2, 0, 1) if spec.layout == "NCHW" else out


SPECS = [
    PreprocessSpec((224, 224), 256, "RGB", (127.0,) * 3, (128.0,) * 3, "NCHW", "area"),
    PreprocessSpec((224, 224), 256, "BGR", (123.7, 116.3, 103.5), (58.4, 57.1, 57.4), "NHWC", "bilinear"),
    PreprocessSpec((48, 96), None, "RGB", (0, 0, 0), (255, 255, 255), "NCHW", "area"),
    PreprocessSpec((32, 32), 40, "RGB", (10, 20, 30), (2, 3, 4), "NHWC", "area"),
]
SIZES = [(1080, 1920), (480, 640), (300, 451), (77, 100), (512, 512), (17, 300)]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.input_size}-{s.resize}-{s.layout}-{s.interpolation}")
def test_preprocess_matches_cv2_resize_crop_normalise(isa, rng, spec):
    for h, w in SIZES:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img = cv2.GaussianBlur(img, (5, 5), 2)  # photo-like smoothness keeps bilinear rounding small
        got = preprocess([img], spec)[0]
        ref = reference(img, spec)
        # keensight keeps resized pixels in float; the only difference is float rounding of
        # interpolation weights: far below one grey level.
        tol = 0.02 / min(spec.std)
        np.testing.assert_allclose(got, ref, atol=tol, err_msg=f"{h}x{w} {isa}")


def test_preprocess_gray_bgr_rgba_and_strides(isa, rng):
    spec = SPECS[0]
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), (5, 5), 2)
    gray = np.ascontiguousarray(rgb[:, :, 1])
    np.testing.assert_allclose(preprocess([gray], spec)[0], reference(gray, spec), atol=1e-3)
    np.testing.assert_allclose(preprocess([gray[:, :, None]], spec)[0], reference(gray, spec), atol=1e-3)
    # A non-contiguous view and a BGR flip give the same as the contiguous RGB image.
    big = np.zeros((600, 800, 3), np.uint8)
    big[::2, ::2] = rgb
    np.testing.assert_array_equal(preprocess([big[::2, ::2]], spec), preprocess([rgb], spec))
    # RGBA: composited on white; an opaque alpha changes nothing, a transparent one gives white.
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    np.testing.assert_array_equal(preprocess([rgba], spec), preprocess([rgb], spec))
    rgba[..., 3] = 0
    np.testing.assert_allclose(preprocess([rgba], spec), (255 - 127) / 128, atol=1e-5)


def test_preprocess_scalar_and_simd_agree(rng):
    imgs = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in SIZES]
    before = _core.active_isa()
    try:
        _core.set_isa("scalar")
        ref = preprocess(imgs, SPECS[0])
        _core.set_isa(keensight.cpu_info()["detected"])
        np.testing.assert_allclose(preprocess(imgs, SPECS[0]), ref, atol=1e-4)
    finally:
        _core.set_isa(before)


def test_preprocess_threads_do_not_change_results(rng):
    imgs = [rng.integers(0, 256, (200 + 13 * k, 300, 3), dtype=np.uint8) for k in range(5)]
    keensight.set_num_threads(1)
    one = preprocess(imgs, SPECS[0])
    keensight.set_num_threads(0)
    np.testing.assert_array_equal(preprocess(imgs, SPECS[0]), one)


def test_preprocess_geometry_is_torchvision_resize_then_centre_crop():
    assert _core.preprocess_geometry(1080, 1920, 224, 224, 256) == (256, 455, 16, 115)
    assert _core.preprocess_geometry(1920, 1080, 224, 224, 256) == (455, 256, 115, 16)
    assert _core.preprocess_geometry(10, 20, 48, 96, 0) == (48, 96, 0, 0)


def test_preprocess_thread_cap_gives_identical_results(rng):
    imgs = [rng.integers(0, 256, (300 + 7 * k, 410 - 5 * k, 3), dtype=np.uint8) for k in range(5)]
    spec = PreprocessSpec(input_size=(224, 224), resize=256)
    ref = preprocess(imgs, spec)
    out = np.empty_like(ref)
    for threads in (1, 2, 5):
        extract._preprocess_into(imgs, [False] * 5, spec, out, threads)
        np.testing.assert_array_equal(out, ref)
    with pytest.raises(ValueError, match="threads"):
        extract._preprocess_into(imgs, [False] * 5, spec, out, -1)


def test_preprocess_bad_inputs():
    spec = SPECS[0]
    with pytest.raises(TypeError, match="uint8"):
        preprocess([np.zeros((10, 10, 3), np.float32)], spec)
    with pytest.raises(ValueError, match="HxW"):
        preprocess([np.zeros((10, 10, 2), np.uint8)], spec)
    with pytest.raises(ValueError, match="non-empty"):
        preprocess([np.zeros((0, 10, 3), np.uint8)], spec)
    with pytest.raises(TypeError):
        preprocess([[1, 2, 3]], spec)
    with pytest.raises(ValueError, match="out"):
        preprocess([np.zeros((10, 10, 3), np.uint8)], spec, out=np.zeros((1, 3, 10, 10), np.float32))
    with pytest.raises(ValueError, match="resize"):
        PreprocessSpec((224, 224), resize=200)
    with pytest.raises(ValueError, match="layout"):
        PreprocessSpec((224, 224), layout="CHW")
    with pytest.raises(ValueError, match="std"):
        PreprocessSpec((224, 224), std=(1, 0, 1))
    with pytest.raises(ValueError, match="unknown keys"):
        PreprocessSpec.coerce({"input_size": 224, "mena": 1})
    with pytest.raises(ValueError, match="interpolation"):
        _core.preprocess_batch([np.zeros((4, 4), np.uint8)], [False], np.zeros((1, 3, 2, 2), np.float32),
                               2, 2, 0, False, (0, 0, 0), (1, 1, 1), "cubic", "NCHW")


# ---------------------------------------------------------------------------------------
# Extractor
# ---------------------------------------------------------------------------------------

def _top1(logits):
    names = models.imagenet_classes()
    return [names[i] for i in np.argmax(logits, axis=1)]


def test_extractor_labels_real_photos(lite0):
    f = lite0([skdata.chelsea(), skdata.coffee()])
    assert f["embedding"].shape == (2, 1280) and f["logits"].shape == (2, 1000)
    assert f["embedding"].dtype == np.float32
    top = np.argmax(f["logits"], axis=1)
    assert 281 <= top[0] <= 285, _top1(f["logits"])  # a domestic cat
    assert top[1] in (967, 968), _top1(f["logits"])  # espresso / cup


def test_several_outputs_equal_separate_runs(lite0, model_cache):
    imgs = [skdata.chelsea(), skdata.astronaut()]
    both = lite0(imgs)
    emb = Extractor(batch_size=4)(imgs)
    logits = Extractor(outputs="logits", batch_size=4)(imgs)
    np.testing.assert_allclose(both["embedding"], emb, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(both["logits"], logits, rtol=1e-5, atol=1e-4)


def test_intermediate_tensor_output(model_cache):
    import onnx

    proto = onnx.load(str(models.get_model_path()))
    graph_outputs = {o.name for o in proto.graph.output}
    # The input of the global average pool: the last feature map (N, 1280, 7, 7).
    pool = next(n for n in proto.graph.node if n.op_type == "GlobalAveragePool")
    name = pool.input[0]
    assert name not in graph_outputs
    ex = Extractor(outputs=[name, "embedding"])
    f = ex([skdata.coffee()])
    assert f[name].shape == (1, 1280, 7, 7)
    # Global average pooling of the map is the embedding.
    np.testing.assert_allclose(f[name].mean(axis=(2, 3)), f["embedding"], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="not in the model"):
        Extractor(outputs="no_such_tensor")


def test_l2_normalisation(model_cache):
    imgs = [skdata.chelsea(), skdata.rocket()]
    raw = Extractor()(imgs)
    unit = Extractor(normalize=True)(imgs)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_batch_sizes_give_identical_features(model_cache):
    photos = [skdata.chelsea(), skdata.coffee(), skdata.astronaut(), skdata.rocket()]
    imgs = [photos[k % 4][: 200 + 10 * k] for k in range(7)]
    ref = Extractor(batch_size=1)(imgs)
    for bs in (3, 7):
        np.testing.assert_allclose(Extractor(batch_size=bs)(imgs), ref, rtol=1e-4, atol=1e-5)


def test_streams_give_identical_features_in_order(tmp_path, model_cache):
    # Batches that run side by side come back in input order, with the same values;
    # unreadable files in any batch are still reported at their positions.
    photos = [skdata.chelsea(), skdata.coffee(), skdata.astronaut(), skdata.rocket()]
    items = []
    for k in range(9):
        img = photos[k % 4][: 180 + 15 * k]
        if k in (2, 7):
            bad = tmp_path / f"bad{k}.jpg"
            bad.write_bytes(b"\xff\xd8 not a jpeg")
            items.append(bad)
        else:
            path = tmp_path / f"p{k}.png"
            cv2.imwrite(str(path), img[:, :, ::-1])
            items.append(path)
    ref = Extractor(batch_size=2, threads=1, streams=1).extract(items)
    assert [i for i, _ in ref.errors] == [2, 7]
    for threads, streams in ((2, 2), (3, 3), (2, 1)):
        got = Extractor(batch_size=2, threads=threads, streams=streams).extract(items)
        np.testing.assert_array_equal(got.indices, ref.indices)
        assert [i for i, _ in got.errors] == [2, 7]
        np.testing.assert_allclose(got.features, ref.features, rtol=1e-4, atol=1e-5)


def test_paths_vs_arrays_gray_rgba(tmp_path, lite0):
    rgb = skdata.coffee()
    png = tmp_path / "coffee.png"
    cv2.imwrite(str(png), rgb[:, :, ::-1])
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), skdata.camera())
    rgba = tmp_path / "rgba.png"
    cv2.imwrite(str(rgba), np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 255, np.uint8)]))
    from_files = lite0([png, str(gray), rgba])
    from_arrays = lite0([rgb, skdata.camera(), np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])])
    for o in ("embedding", "logits"):
        np.testing.assert_allclose(from_files[o], from_arrays[o], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(read_image(png), rgb)
    assert read_image(gray).ndim == 2


def test_jpeg_draft_decoding_stays_close(tmp_path, model_cache):
    big = cv2.resize(skdata.chelsea(), (1800, 1200), interpolation=cv2.INTER_CUBIC)
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), big[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    fast = Extractor(outputs="logits", jpeg_draft=True)([path])
    full = Extractor(outputs="logits", jpeg_draft=False)([path])
    # DCT-domain downscaling is not area averaging: close, not equal (both see a cat).
    assert 281 <= np.argmax(fast) <= 285 and 281 <= np.argmax(full) <= 285
    assert np.corrcoef(fast[0], full[0])[0, 1] > 0.98
    # A reducing gap of 2 keeps twice the resize length (1200 -> 600, not 300): closer.
    gap2 = Extractor(outputs="logits", jpeg_draft=2.0)([path])
    assert np.corrcoef(gap2[0], full[0])[0, 1] > np.corrcoef(fast[0], full[0])[0, 1]
    # NumPy scalars are gaps too.
    np.testing.assert_array_equal(Extractor(outputs="logits", jpeg_draft=np.float32(2.0))([path]), gap2)
    # ... and an image too small for the gap decodes at full size: identical features.
    small = tmp_path / "small.jpg"
    cv2.imwrite(str(small), big[:400, :450, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    np.testing.assert_array_equal(Extractor(outputs="logits", jpeg_draft=2.0)([small]),
                                  Extractor(outputs="logits")([small]))


def test_jpeg_draft_scale_choice(tmp_path):
    # The smallest libjpeg scale whose shorter side is still >= the requested side.
    from keensight.extract import _decode

    path = tmp_path / "p.jpg"
    cv2.imwrite(str(path), np.full((1200, 1800, 3), 128, np.uint8))
    assert _decode(path, None)[0].shape[:2] == (1200, 1800)
    assert _decode(path, 256)[0].shape[:2] == (300, 450)   # 1/4: 300 >= 256, 1/8 would be 150
    assert _decode(path, 512)[0].shape[:2] == (600, 900)   # 1/2
    assert _decode(path, 601)[0].shape[:2] == (1200, 1800)  # no scale keeps 601


def test_exif_orientation_is_applied(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    img = np.zeros((100, 200, 3), np.uint8)
    img[:, :100] = 255  # white left half of a landscape image
    pil = Image.fromarray(img)
    exif = pil.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    pil.save(path, exif=exif.tobytes(), quality=95)
    shown = read_image(path)
    assert shown.shape == (200, 100, 3)
    assert shown[5, 50].min() > 200 and shown[-5, 50].max() < 50  # white on top after rotation


def test_corrupt_files_are_skipped_and_reported(tmp_path, lite0):
    good = tmp_path / "good.jpg"
    cv2.imwrite(str(good), skdata.chelsea()[:, :, ::-1])
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.jpg"
    res = lite0.extract([bad, good, empty, missing, good])
    assert list(res.indices) == [1, 4]
    assert [i for i, _ in res.errors] == [0, 2, 3]
    assert res.features["embedding"].shape == (2, 1280)
    with pytest.warns(UnreadableImageWarning, match="bad.jpg"):
        f = lite0([good, bad])
    assert f["logits"].shape == (1, 1000)


def test_user_onnx_file_with_explicit_input_spec(model_cache):
    path = models.get_model_path()
    with pytest.raises(ValueError, match="input_spec"):
        Extractor(path)
    spec = {"input_size": 224, "resize": 256, "mean": 127.0, "std": 128.0}
    ours = Extractor(path, input_spec=spec, outputs="embedding")([skdata.coffee()])
    np.testing.assert_allclose(ours, Extractor()([skdata.coffee()]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="input shape"):
        Extractor(path, input_spec={"input_size": 128})


def test_extractor_bad_arguments(model_cache):
    with pytest.raises(ValueError, match="neither a known model"):
        Extractor("no-such-model")
    with pytest.raises(ValueError, match="batch_size"):
        Extractor(batch_size=0)
    with pytest.raises(TypeError, match="batch_size"):
        Extractor(batch_size=2.5)
    with pytest.raises(TypeError, match="outputs"):
        Extractor(outputs=[1, 2])
    with pytest.raises(ValueError, match="streams"):
        Extractor(threads=2, streams=3)
    with pytest.raises(ValueError, match="streams"):
        Extractor(streams=0)
    for bad in (0.5, np.float32(0.9), float("nan"), float("inf")):
        with pytest.raises(ValueError, match="jpeg_draft"):
            Extractor(jpeg_draft=bad)
    for bad in ("yes", [2.0]):
        with pytest.raises(TypeError, match="jpeg_draft"):
            Extractor(jpeg_draft=bad)
    ex = Extractor()
    with pytest.raises(TypeError, match="uint8"):
        ex([np.zeros((50, 50, 3), np.float64)])
    with pytest.raises(TypeError, match="path or a NumPy array"):
        ex([3])
    with pytest.raises(TypeError):
        ex(42)
