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
    # Sizes are bounded where they are given, not by a failed allocation later.
    with pytest.raises(ValueError, match=r"input_size: expected sizes in \[1, 8192\]"):
        PreprocessSpec((10 ** 6, 224))
    with pytest.raises(ValueError, match="resize: expected at most 65536"):
        PreprocessSpec((224, 224), resize=2 ** 63)
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


# ---------------------------------------------------------------------------------------
# Decompression bombs: the declared size is checked before anything is decoded
# ---------------------------------------------------------------------------------------

def _png_chunk(tag: bytes, payload: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 8-bit gray PNG of zeros, ~0.4 MB for 20000 x 20000 (400 MB decoded).

    Deflate after a full flush starts with an empty history, so the compressed form of 32
    zero rows is the same every time: it is computed once and repeated. The zlib trailer
    is the Adler-32 of n zero bytes, ((n mod 65521) << 16) | 1 (RFC 1950 section 8.2)."""
    import struct
    import zlib

    assert height % 32 == 0
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = raw.compress(bytes((width + 1) * 32)) + raw.flush(zlib.Z_FULL_FLUSH)
    final = raw.compress(b"") + raw.flush(zlib.Z_FINISH)
    n = (width + 1) * height
    idat = b"\x78\xda" + block * (height // 32) + final + struct.pack(">I", ((n % 65521) << 16) | 1)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def jpeg_bomb(width: int = 20000, height: int = 20000, junk: bytes = b"") -> bytes:
    """A 16 x 16 JPEG whose frame header (SOF0) declares `width` x `height`: libjpeg
    decodes the data there is and fills the rest (1.2 GB of RGB for 20000 x 20000).
    `junk` goes before the second marker segment (libjpeg skips it with a warning)."""
    import struct

    ok, buf = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    data = bytearray(buf.tobytes())
    i = 2
    while data[i + 1] != 0xC0:
        i += 2 + ((data[i + 2] << 8) | data[i + 3])
    struct.pack_into(">HH", data, i + 5, height, width)
    first = 4 + ((data[4] << 8) | data[5])  # end of APP0
    return bytes(data[:first] + junk + data[first:])


def tiff_bytes(fields):
    """A little-endian classic TIFF holding one directory of (tag, LONG value) fields."""
    import struct

    entries = b"".join(struct.pack("<HHII", tag, 4, 1, value) for tag, value in sorted(fields.items()))
    return b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", len(fields)) + entries + b"\0\0\0\0" + bytes(16)


def webp_canvas_bomb(width: int, height: int) -> bytes:
    """A small extended WebP (VP8X) whose canvas says `width` x `height`."""
    pytest.importorskip("PIL")
    import io

    from PIL import Image

    f = io.BytesIO()
    Image.new("RGBA", (16, 16), (9, 9, 9, 128)).save(f, format="WEBP")  # alpha: extended format
    data = bytearray(f.getvalue())
    assert data[12:16] == b"VP8X"
    data[24:27] = (width - 1).to_bytes(3, "little")
    data[27:30] = (height - 1).to_bytes(3, "little")
    return bytes(data)


def bmp_bomb(width: int, height: int) -> bytes:
    import struct

    ok, buf = cv2.imencode(".bmp", np.zeros((4, 4, 3), np.uint8))
    data = bytearray(buf.tobytes())
    struct.pack_into("<ii", data, 18, width, -height)  # top-down rows: a negative height
    return bytes(data)


BOMBS = {
    "png": (png_bomb, "PNG header declares 20000x20000"),
    "jpeg": (jpeg_bomb, "JPEG header declares 20000x20000"),
    "jpeg-junk-before-sof": (lambda: jpeg_bomb(junk=b"\x00garbage\xff\x00"), "JPEG header declares 20000x20000"),
    "webp-vp8x": (lambda: webp_canvas_bomb(16000, 16000), "WebP header declares 16000x16000"),
    "tiff-tile": (lambda: tiff_bytes({256: 16, 257: 16, 322: 16384, 323: 16384}),
                  "TIFF header declares 16x16 with a 268,435,456-pixel tile"),
    "tiff-strip": (lambda: tiff_bytes({256: 40000, 257: 16, 278: 4000}), "TIFF header declares 40000x16 with a"),
    "bmp": (lambda: bmp_bomb(30000, 30000), "BMP header declares 30000x30000"),
}


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_decompression_bombs_are_refused_before_decoding(tmp_path, monkeypatch, kind):
    import time

    make, declared = BOMBS[kind]
    path = tmp_path / f"bomb.{kind}"
    path.write_bytes(make())
    calls = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda buf, flags: calls.append(len(buf)) or real(buf, flags))
    start = time.perf_counter()
    with pytest.raises(extract.ImageTooLargeError, match="max_pixels=89,478,485") as info:
        read_image(path)
    assert declared in str(info.value)
    assert calls == []  # refused on the header: the decoder never saw the file
    assert time.perf_counter() - start < 1.0
    assert isinstance(info.value, ValueError)


def test_decompression_bombs_cost_no_memory(tmp_path):
    # The peak memory of a fresh process reading the two bombs (each 0.4-1.2 GB decoded).
    import subprocess
    import sys

    (tmp_path / "bomb.png").write_bytes(png_bomb())
    (tmp_path / "bomb.jpg").write_bytes(jpeg_bomb())
    script = (
        "import resource, sys, cv2\n"
        "from keensight.extract import read_image\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        read_image(p)\n"
        "        print('decoded', p)\n"
        "    except ValueError as e:\n"
        "        print('refused', p, e)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)\n")
    p = subprocess.run([sys.executable, "-c", script, str(tmp_path / "bomb.png"), str(tmp_path / "bomb.jpg")],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ))
    lines = p.stdout.strip().splitlines()
    assert p.returncode == 0, p.stderr
    assert [line.split()[0] for line in lines[:2]] == ["refused", "refused"], p.stdout
    assert int(lines[-1]) < 50, f"peak memory grew by {lines[-1]} MB"


def test_extractor_reports_bombs_as_failed_files(tmp_path, lite0):
    import time

    (tmp_path / "bomb.png").write_bytes(png_bomb())
    (tmp_path / "bomb.jpg").write_bytes(jpeg_bomb())
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), skdata.coffee()[:, :, ::-1])
    start = time.perf_counter()
    res = lite0.extract([tmp_path / "bomb.png", good, tmp_path / "bomb.jpg"])
    assert time.perf_counter() - start < 10
    assert list(res.indices) == [1]
    assert [i for i, _ in res.errors] == [0, 2]
    for _, msg in res.errors:
        assert msg.startswith("ImageTooLargeError:") and "20000x20000" in msg and "max_pixels=89,478,485" in msg


def test_max_pixels_is_configurable(tmp_path, model_cache):
    path = tmp_path / "p.jpg"
    cv2.imwrite(str(path), np.full((200, 300, 3), 90, np.uint8))
    assert read_image(path, max_pixels=60_000).shape == (200, 300, 3)
    with pytest.raises(extract.ImageTooLargeError, match="300x200 pixels .60,000., more than max_pixels=59,999"):
        read_image(path, max_pixels=59_999)
    assert len(Extractor(max_pixels=60_000).extract([path]).indices) == 1
    res = Extractor(max_pixels=59_999).extract([path, np.zeros((400, 400, 3), np.uint8)])
    assert list(res.indices) == [1] and "max_pixels=59,999" in res.errors[0][1]  # arrays are not limited
    for bad, exc in ((0, ValueError), (-5, ValueError), (1.5e6, TypeError), (True, TypeError)):
        with pytest.raises(exc, match="max_pixels"):
            read_image(path, max_pixels=bad)
        with pytest.raises(exc, match="max_pixels"):
            Extractor(max_pixels=bad)


def test_image_headers_give_the_decoded_size(tmp_path):
    from keensight._image_header import read_header

    img = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    encoded = [cv2.imencode(ext, img, params)[1].tobytes() for ext, params in [
        (".png", []), (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), (".bmp", []),
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]), (".tiff", [])]]
    pil = pytest.importorskip("PIL.Image")
    import io

    for mode, kw in (("RGBA", dict(format="WEBP")), ("RGB", dict(format="TIFF", big_tiff=True)),
                     ("RGB", dict(format="TIFF", compression="tiff_lzw"))):
        f = io.BytesIO()
        pil.fromarray(np.dstack([img, img[:, :, :1]]) if mode == "RGBA" else img).save(f, **kw)
        encoded.append(f.getvalue())
    assert encoded[7][12:16] == b"VP8X"
    formats = set()
    for data in encoded:
        h = read_header(data)
        formats.add(h.format)
        assert (h.height, h.width) == cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).shape[:2]
    assert formats == {"PNG", "JPEG", "BMP", "WebP", "TIFF"}
    # Formats whose header is not checked are not decoded at all.
    f = io.BytesIO()
    pil.fromarray(img).save(f, format="GIF")
    for name, data in (("gif", f.getvalue()), ("ppm", cv2.imencode(".ppm", img)[1].tobytes()),
                       ("text", b"hello, not an image")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match="unsupported image format"):
            read_image(tmp_path / name)
    for data, what in ((b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDX", "IHDR"), (b"\xff\xd8\xff\xd9", "no frame header"),
                       (tiff_bytes({256: 16}), "ImageLength"), (b"II*\0\xff\xff\0\0", "outside the file"),
                       (jpeg_bomb(0, 16), "empty")):
        with pytest.raises(ValueError, match=what):
            read_header(data)


# ---------------------------------------------------------------------------------------
# Sizes and thread counts follow the work, inputs say what they expected
# ---------------------------------------------------------------------------------------

def test_batch_buffers_are_sized_by_the_images_given(model_cache):
    import tracemalloc

    ex = Extractor(batch_size=1024)
    img = skdata.coffee()
    tracemalloc.start()
    try:
        ex([img])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # One image's input tensor is 0.6 MB; 1024 rows per batch tensor would be 616 MB each.
    assert peak < 30 * 2 ** 20, f"peak {peak / 2 ** 20:.0f} MB"
    with pytest.raises(ValueError, match=r"batch_size: expected an int in \[1, 1024\], got 10000"):
        Extractor(batch_size=10 ** 4)


def test_thread_counts_are_bounded(model_cache):
    for name in ("threads", "decode_threads", "streams"):
        with pytest.raises(ValueError, match=rf"{name}: expected an int in \[1, 256\]"):
            Extractor(**{name: 10 ** 6})
        with pytest.raises(TypeError, match=name):
            Extractor(**{name: True})


def test_results_have_the_feature_shape_when_nothing_is_read(tmp_path, model_cache):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not a jpeg")
    one = Extractor(batch_size=2)
    for images in ([], [bad], [bad, bad, bad], np.zeros((0, 32, 32, 3), np.uint8)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnreadableImageWarning)
            assert one(images).shape == (0, 1280)
        assert one.extract(images).features.shape == (0, 1280)
    assert one.feature_shapes_ == {"embedding": (1280,)}
    both = Extractor(outputs=["embedding", "logits"], batch_size=2)
    res = both.extract([bad, bad, skdata.coffee(), bad])
    assert res.features["embedding"].shape == (1, 1280) and res.features["logits"].shape == (1, 1000)
    batches = list(both.iter_batches([bad, bad, skdata.coffee()]))
    assert {o: f.shape for o, f in batches[0].features.items()} == {"embedding": (0, 1280), "logits": (0, 1000)}
    assert {o: f.shape for o, f in both.extract([bad]).features.items()} == {"embedding": (0, 1280),
                                                                           "logits": (0, 1000)}
    assert list(both.iter_batches([])) == []


def test_inputs_are_taken_for_what_they_are(tmp_path, lite0):
    path = tmp_path / "coffee.png"
    cv2.imwrite(str(path), skdata.coffee()[:, :, ::-1])
    ref = lite0([str(path)])["embedding"]
    # A path as bytes, pathlib.Path, a 1-D array of paths, a generator: all the same image.
    for images in (os.fsencode(str(path)), [os.fsencode(str(path))], path, np.array([str(path)]),
                   (p for p in [path])):
        np.testing.assert_array_equal(lite0(images)["embedding"], ref)
    res = lite0.extract([os.fsencode(str(tmp_path / "missing.jpg"))])
    assert "missing.jpg" in res.errors[0][1]
    np.testing.assert_array_equal(lite0.extract(iter([skdata.coffee()])).indices, [0])
    for bad, exc, what in ((bytearray(b"abc"), TypeError, "images: .* got bytearray"),
                           ({"a": str(path)}, TypeError, "images: .* got dict"),
                           ({str(path)}, TypeError, "images: .* got set"),
                           (np.array(5, np.uint8), ValueError, r"images: .* shape \(\)"),
                           (np.zeros(7, np.uint8), ValueError, r"images: .* shape \(7,\)"),
                           ([[skdata.coffee()]], TypeError, r"images\[0\]: .* got list"),
                           (3.5, TypeError, "images: .* got float")):
        with pytest.raises(exc, match=what):
            lite0(bad)
    # preprocess takes any iterable of arrays, not a str or a lone image.
    imgs = [skdata.coffee(), skdata.camera()]
    np.testing.assert_array_equal(preprocess(iter(imgs), "efficientnet-lite0"),
                                  preprocess(imgs, "efficientnet-lite0"))
    with pytest.raises(TypeError, match="images: expected a sequence of arrays, got str"):
        preprocess("a.jpg", "efficientnet-lite0")
    # read_image names its argument and says what a non-file is.
    with pytest.raises(TypeError, match="path: expected a path"):
        read_image(5)
    with pytest.raises(IsADirectoryError, match="path: .* is a directory"):
        read_image(tmp_path)
    assert read_image(os.fsencode(str(path))).shape == skdata.coffee().shape


def test_a_fifo_is_refused_not_waited_on(tmp_path, lite0):
    import threading

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    result = {}

    def read():
        try:
            read_image(fifo)
        except Exception as exc:
            result["error"] = exc

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # unblock the reader before failing
        with open(fifo, "wb"):
            pass
        pytest.fail("read_image blocked on a FIFO")
    assert isinstance(result["error"], ValueError) and "not a regular file" in str(result["error"])
    assert "not a regular file" in lite0.extract([fifo]).errors[0][1]


def test_normalize_is_checked_at_construction(model_cache):
    with pytest.raises(ValueError, match="normalize: .'yes'. are not among the outputs"):
        Extractor(normalize="yes")
    with pytest.raises(TypeError, match="normalize"):
        Extractor(normalize=1)
    ex = Extractor(outputs=["embedding", "logits"], normalize="embedding")
    f = ex([skdata.coffee()])
    np.testing.assert_allclose(np.linalg.norm(f["embedding"], axis=1), 1, rtol=1e-5)
    assert abs(np.linalg.norm(f["logits"]) - 1) > 0.5


def _fixed_batch_model(path, batch: int) -> None:
    """An ONNX model with a fixed batch dimension: per-channel means of NCHW 8x8 inputs."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("GlobalAveragePool", ["x"], ["y"])
    graph = helper.make_graph([node], "means", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3, 1, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_fixed_batch_models_run_partial_batches(tmp_path, rng):
    path = tmp_path / "fixed.onnx"
    _fixed_batch_model(path, 2)
    spec = {"input_size": 8}
    imgs = [rng.integers(0, 256, (8 + k, 8, 3), dtype=np.uint8) for k in range(5)]
    expected = preprocess(imgs, spec).mean(axis=(2, 3))
    for batch_size in (1, 3, 5):
        ex = Extractor(path, input_spec=spec, batch_size=batch_size)
        np.testing.assert_allclose(ex(imgs), expected, rtol=1e-5, atol=1e-4)
        assert ex.feature_shapes_ == {"y": (3,)}


def test_config_records_what_determines_the_features(model_cache):
    import hashlib
    import json

    base = Extractor()
    cfg = base.config
    assert json.loads(json.dumps(cfg)) == cfg
    assert cfg["model"] == "efficientnet-lite0" and cfg["outputs"] == ["embedding"]
    assert cfg["model_sha256"] == hashlib.sha256(models.get_model_path().read_bytes()).hexdigest()
    assert cfg["input_spec"]["input_size"] == [224, 224] and cfg["jpeg_draft"] is None
    assert cfg["normalize"] == {"embedding": False}
    assert PreprocessSpec.coerce(cfg["input_spec"]) == base.spec_  # a recorded spec can be reused
    # Options that never change features leave it alone; the others change it.
    assert Extractor(batch_size=3, threads=1, streams=1, max_pixels=10).config == cfg
    for kw in (dict(normalize=True), dict(jpeg_draft=2.0), dict(outputs=["embedding", "logits"]),
               dict(input_spec={"input_size": 224, "resize": 256, "mean": 127.0, "std": 64.0})):
        assert Extractor(**kw).config != cfg, kw
    other = Extractor(models.get_model_path(), input_spec=base.spec_)
    assert other.config["model_sha256"] == cfg["model_sha256"] and other.config["model"] != cfg["model"]


# ---------------------------------------------------------------------------------------
# Backends: keensight's engine and onnxruntime run the same graph
# ---------------------------------------------------------------------------------------

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


def _assert_rel_close(got, ref, rtol=1e-4):
    # 1e-4 relative to each tensor's scale: entries that cancel to ~0 are judged against the
    # tensor's largest value, not their own.
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * float(np.abs(ref).max()))


def _lrn_model(path) -> None:
    """Per-channel means after a local response normalisation (an operator keensight lacks)."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("LRN", ["x"], ["n"], size=3, name="the_lrn"),
             helper.make_node("GlobalAveragePool", ["n"], ["y"])]
    graph = helper.make_graph(nodes, "lrn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, 1, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_backend_is_checked():
    with pytest.raises(ValueError, match="backend: expected one of 'auto', 'keensight', 'onnxruntime', got 'tf'"):
        Extractor(backend="tf")
    with pytest.raises(TypeError, match="backend: expected one of .* got int"):
        Extractor(backend=1)


@pytest.mark.parametrize("name", ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"])
def test_backends_give_the_same_features(model_cache, name):
    imgs = [getattr(skdata, p)() for p in PHOTOS]
    outputs = ["embedding", "logits", "block3"]
    ours = Extractor(name, outputs=outputs, batch_size=3, threads=2, backend="keensight")
    ort = Extractor(name, outputs=outputs, batch_size=3, threads=2, backend="onnxruntime")
    assert (ours.backend, ours.backend_, ort.backend_) == ("keensight", "keensight", "onnxruntime")
    a, b = ours(imgs), ort(imgs)
    for o in outputs:
        assert a[o].shape == b[o].shape, o
        _assert_rel_close(a[o], b[o])
    np.testing.assert_array_equal(a["logits"].argmax(1), b["logits"].argmax(1))
    assert 281 <= a["logits"][0].argmax() <= 285 and a["logits"][1].argmax() in (967, 968)


def test_auto_picks_keensight_where_it_can(tmp_path, model_cache):
    from keensight import nn

    assert Extractor().backend_ == "keensight"
    assert Extractor(backend="onnxruntime").backend_ == "onnxruntime"
    path = tmp_path / "lrn.onnx"
    _lrn_model(path)
    spec = {"input_size": 8}
    with pytest.raises(nn.UnsupportedOperatorError, match="LRN"):
        nn.Network.from_onnx(path)
    auto = Extractor(path, input_spec=spec)
    assert auto.backend == "auto" and auto.backend_ == "onnxruntime"
    imgs = [np.random.default_rng(k).integers(0, 256, (8, 8 + k, 3), dtype=np.uint8) for k in range(3)]
    np.testing.assert_array_equal(auto(imgs), Extractor(path, input_spec=spec, backend="onnxruntime")(imgs))
    with pytest.raises(ValueError, match=r"backend='keensight': .*LRN.*the_lrn"):
        Extractor(path, input_spec=spec, backend="keensight")


def test_keensight_backend_needs_nchw(tmp_path, model_cache):
    import onnx
    from onnx import TensorProto, helper

    path = tmp_path / "nhwc.onnx"
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("GlobalAveragePool", ["t"], ["y"])]
    graph = helper.make_graph(nodes, "nhwc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8, 8, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, 1, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    spec = {"input_size": 8, "layout": "NHWC"}
    assert Extractor(path, input_spec=spec).backend_ == "onnxruntime"
    with pytest.raises(ValueError, match="backend='keensight': .*NCHW"):
        Extractor(path, input_spec=spec, backend="keensight")


def test_keensight_networks_get_the_inference_threads(model_cache):
    ex = Extractor(threads=2, streams=2, backend="keensight")
    assert [net.threads for net in ex._sessions] == [1, 1]
    ex = Extractor(threads=2, streams=1, backend="keensight")
    assert [net.threads for net in ex._sessions] == [2]
    imgs = [getattr(skdata, p)() for p in PHOTOS]
    # Results depend neither on the threads nor on the streams.
    _assert_rel_close(Extractor(threads=2, streams=2, batch_size=1, backend="keensight")(imgs), ex(imgs), rtol=1e-5)


def test_intermediate_tensors_from_the_keensight_backend(model_cache):
    import onnx

    proto = onnx.load(str(models.get_model_path()))
    # A Conv whose output an activation follows: the import may fuse the two, yet the
    # tensor asked for comes back (the Extractor names it as a graph output).
    conv = next(n.output[0] for n in proto.graph.node if n.op_type == "Conv" and n.output[0].endswith("/conv"))
    pool = next(n for n in proto.graph.node if n.op_type == "GlobalAveragePool").input[0]
    outputs = [conv, pool, "embedding"]
    ours = Extractor(outputs=outputs, backend="keensight")
    ref = Extractor(outputs=outputs, backend="onnxruntime")
    a, b = ours([skdata.coffee()]), ref([skdata.coffee()])
    for o in outputs:
        assert a[o].shape == b[o].shape
        _assert_rel_close(a[o], b[o])


def test_the_backend_choice_survives_pickling(model_cache):
    import pickle

    imgs = [skdata.coffee()]
    for backend, used in (("auto", "keensight"), ("keensight", "keensight"), ("onnxruntime", "onnxruntime")):
        ex = Extractor(backend=backend, batch_size=2)
        clone = pickle.loads(pickle.dumps(ex))
        assert (clone.backend, clone.backend_) == (backend, used)
        np.testing.assert_array_equal(clone(imgs), ex(imgs))
    # A pickle from before the backend option ran onnxruntime, and still does.
    state = Extractor(backend="onnxruntime").__getstate__()
    del state["parameters"]["backend"]
    old = Extractor.__new__(Extractor)
    old.__setstate__(state)
    assert (old.backend, old.backend_) == ("onnxruntime", "onnxruntime")
    # The backend is no feature option: configs agree.
    assert Extractor(backend="onnxruntime").config == Extractor(backend="keensight").config
