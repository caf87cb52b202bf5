"""The keensight command line, end to end, as `python -m keensight ...` subprocesses on a
small folder-per-class dataset written by keensight.datasets."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keensight

pytest.importorskip("skimage")
pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The subprocesses import this very package and share one model cache."""
    e = dict(os.environ)
    pkg_parent = str(Path(keensight.__file__).parent.parent)
    e["PYTHONPATH"] = os.pathsep.join([pkg_parent] + [p for p in [e.get("PYTHONPATH")] if p])
    e["KEENSIGHT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return e


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    from keensight.datasets import make_demo_folder

    root = tmp_path_factory.mktemp("gallery")
    make_demo_folder(root, n_per_class=2, classes=["cat", "coffee", "flower"], png_fraction=0.3, seed=1)
    (root / "cat" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not really")
    return root


def run(env, *args, check=True, code=0):
    """`keensight args...` in a subprocess; with `check`, its exit code must be `code`."""
    p = subprocess.run([sys.executable, "-m", "keensight", *map(str, args)], env=env,
                       capture_output=True, text=True, timeout=300)
    if check and p.returncode != code:
        raise AssertionError(f"exit {p.returncode}, expected {code}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def assert_one_line_error(p, command, code=2):
    """The CLI's error contract: the exit code, one line on stderr naming the command, no traceback."""
    lines = p.stderr.strip().splitlines()
    assert p.returncode == code, (p.returncode, p.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"keensight {command}: "), p.stderr
    assert "Traceback" not in p.stderr
    return lines[0]


def test_extract_and_resume(env, gallery, tmp_path):
    out = tmp_path / "features.npz"
    p = run(env, "extract", gallery, "-o", out, "--batch-size", "4", code=1)  # 1: an unreadable image
    assert "skipped cat/corrupt.jpg" in p.stderr
    with np.load(out) as d:
        assert d["features"].shape == (6, 1280) and d["features"].dtype == np.float32
        assert sorted(set(d["labels"])) == ["cat", "coffee", "flower"]
        assert list(d["failed"]) == ["cat/corrupt.jpg"]
        paths, feats = list(d["paths"]), d["features"].copy()
    # Resume: a new image is added, the others are not recomputed.
    from keensight.datasets import make_demo_folder

    extra = make_demo_folder(gallery / "_new", n_per_class=1, classes=["coffee"], seed=7)[0]
    moved = gallery / "coffee" / "coffee_new.jpg"
    extra.rename(moved)
    try:
        p = run(env, "extract", gallery, "-o", out, "--batch-size", "4", code=1)
        assert "6 image(s) already in" in p.stderr and "1 new image(s)" in p.stderr
        with np.load(out) as d:
            assert d["features"].shape == (7, 1280)
            assert list(d["paths"][:6]) == paths
            np.testing.assert_array_equal(d["features"][:6], feats)
            assert "coffee/coffee_new.jpg" in list(d["paths"])
    finally:
        moved.unlink()


def test_extract_several_outputs_normalised(env, gallery, tmp_path):
    out = tmp_path / "both.npz"
    run(env, "extract", gallery, "-o", out, "--outputs", "embedding,logits", "--normalize", code=1)
    with np.load(out) as d:
        assert d["features_embedding"].shape == (6, 1280) and d["features_logits"].shape == (6, 1000)
        np.testing.assert_allclose(np.linalg.norm(d["features_embedding"], axis=1), 1, rtol=1e-5)
    # A file of other outputs is not silently mixed with new ones.
    p = run(env, "extract", gallery, "-o", out, check=False)
    assert p.returncode == 2 and "--overwrite" in p.stderr


def test_classify(env, gallery):
    cat = sorted((gallery / "cat").glob("cat_*"))[0]
    coffee = sorted((gallery / "coffee").glob("coffee_*"))[0]
    p = run(env, "classify", cat, coffee, "--top-k", "3", "--json")
    res = json.loads(p.stdout)["results"]
    assert [len(r["top"]) for r in res] == [3, 3]
    assert 281 <= res[0]["top"][0]["class"] <= 285
    assert res[1]["top"][0]["label"] in ("espresso", "cup")
    p = run(env, "classify", coffee, gallery / "cat" / "corrupt.jpg", code=1)
    assert "espresso" in p.stdout or "cup" in p.stdout
    assert "corrupt.jpg" in p.stderr


def test_profile_with_json(env, gallery, tmp_path):
    out = tmp_path / "profile.json"
    p = run(env, "profile", gallery, "--json", out, code=1)
    assert "pets" in p.stdout and "1 unreadable" in p.stdout
    doc = json.loads(out.read_text())
    assert doc["n_images"] == 6
    shares = {k: v["share"] for k, v in doc["categories"].items()}
    assert abs(sum(shares.values()) - 1) < 1e-9
    assert shares["pets"] > 0 and shares["food & drink"] > 0
    assert [f["path"] for f in doc["failed"]] == ["cat/corrupt.jpg"]
    cats = {i["path"].split("/")[0]: i["category"] for i in doc["images"]}
    assert cats["cat"] == "pets" and cats["coffee"] == "food & drink"


def test_models_and_info(env):
    p = run(env, "models", "--json")
    rows = json.loads(p.stdout)
    assert rows[0]["name"] == "efficientnet-lite0"
    assert {r["name"] for r in rows} >= {"efficientnet-lite0", "mobilenetv2-7"}
    assert "active" in json.loads(run(env, "info").stdout)


def test_bad_arguments(env, tmp_path):
    p = run(env, "extract", tmp_path / "nowhere", "-o", tmp_path / "x.npz", check=False)
    assert p.returncode == 2 and "no such folder" in p.stderr
    p = run(env, "classify", tmp_path / "missing.jpg", check=False)
    assert p.returncode == 1 and "missing.jpg" in p.stderr


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    from keensight.datasets import make_demo_folder

    root = tmp_path_factory.mktemp("labelled")
    make_demo_folder(root, n_per_class=5, classes=["cat", "coffee", "rocket"], seed=3)
    return root


def test_evaluate_table_and_json(env, labelled, tmp_path):
    out = tmp_path / "eval.json"
    p = run(env, "evaluate", labelled, "--repeats", "2", "--test-size", "0.4", "--json", out, "--no-progress")
    assert "| classifier | accuracy % | ms per query |" in p.stdout
    report = json.loads(out.read_text())
    names = [row["classifier"] for row in report["table"]]
    assert any(n.startswith("SVM") for n in names) and any("Sequential" in n for n in names)
    assert any("HNSW" in n for n in names) and any("PCA" in n for n in names)
    for row in report["table"]:
        assert 0 <= row["accuracy_mean"] <= 100 and row["ms_per_query"] > 0
    # three very different photo classes: exhaustive 1-NN on CNN features gets them all
    exhaustive = next(r for r in report["table"] if r["classifier"] == "1-NN, exhaustive")
    assert exhaustive["accuracy_mean"] == 100.0
    # from an extract file too
    feats = tmp_path / "f.npz"
    run(env, "extract", labelled, "-o", feats)
    p = run(env, "evaluate", feats, "--repeats", "1")
    assert "15 images, 3 classes, 1280-d" in p.stdout


def test_index_build_and_search(env, labelled, tmp_path):
    index = tmp_path / "gallery.idx"
    run(env, "index", "build", labelled, "-o", index, "--no-progress")
    assert index.exists() and (tmp_path / "gallery.idx.json").exists()
    query = sorted((labelled / "rocket").iterdir())[0]
    p = run(env, "index", "search", index, query, "-k", "3", "--json")
    hits = json.loads(p.stdout)[0]["neighbors"]
    assert hits[0]["path"] == f"rocket/{query.name}" and hits[0]["distance"] < 1e-4
    assert [h["label"] for h in hits] == ["rocket"] * 3
    index.write_bytes(index.read_bytes()[:100])  # truncated: refused with a message
    p = run(env, "index", "search", index, query, check=False)
    assert p.returncode == 2 and "cannot open" in p.stderr


def test_evaluate_needs_classes(env, tmp_path):
    from keensight.datasets import make_demo_folder

    make_demo_folder(tmp_path / "one", n_per_class=3, classes=["cat"])
    p = run(env, "evaluate", tmp_path / "one", "--no-progress", check=False)
    assert p.returncode == 2 and "two classes" in p.stderr


def test_demo_runs_on_handwritten_digits(env, tmp_path):
    # A real labelled task (scikit-learn's digits), so the classifiers' accuracies differ
    # and fall short of 100%; the sample photos still feed the interest profile.
    import re

    p = run(env, "demo", "--per-class", "20", "--repeats", "1", "--skip-filters", "--dir", tmp_path / "demo")
    assert "[1/4]" in p.stdout and "[4/4]" in p.stdout and "handwritten digits" in p.stdout
    assert "200 images of 224x224 pixels in 10 classes" in p.stdout
    rows = re.findall(r"^\| ([^|]+?) \| ([\d.]+) ±", p.stdout, re.M)  # classifier | accuracy % ± std | ...
    assert len(rows) == 5, p.stdout
    accuracy = [float(a) for _, a in rows]
    assert max(accuracy) < 100 and len(set(accuracy)) > 1 and min(accuracy) > 30, rows
    assert "interest profile of 14 photo(s)" in p.stdout
    assert sorted(d.name for d in (tmp_path / "demo" / "digits").iterdir()) == [str(d) for d in range(10)]
    p = run(env, "demo", "--per-class", "1", check=False)
    assert p.returncode == 2 and "--per-class" in p.stderr


# ---------------------------------------------------------------------------------------
# Output files: keensight never creates the parent folders of a file you name
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["extract", "{gallery}", "-o", "{missing}/x.npz"],
    ["profile", "{gallery}", "--json", "{missing}/p.json"],
    ["evaluate", "{gallery}", "--json", "{missing}/e.json"],
    ["index", "build", "{gallery}", "-o", "{missing}/g.idx"],
])
def test_missing_output_folder_is_an_error_before_any_work(env, gallery, tmp_path, argv):
    missing = tmp_path / "not" / "there"
    argv = [a.format(gallery=gallery, missing=missing) for a in argv]
    p = run(env, *argv, check=False)
    line = assert_one_line_error(p, " ".join(argv[:2] if argv[0] == "index" else argv[:1]))
    assert "does not exist" in line and str(missing) in line
    assert not (tmp_path / "not").exists()  # nothing created, no extraction started


# ---------------------------------------------------------------------------------------
# Resuming an extraction: only with the options it was made with
# ---------------------------------------------------------------------------------------

def test_resume_with_other_options_is_refused(env, labelled, tmp_path):
    out = tmp_path / "f.npz"
    run(env, "extract", labelled, "-o", out, "--no-progress")
    before = out.read_bytes()
    for other, what in [(["--normalize"], "normalize"), (["--jpeg-draft"], "jpeg_draft"),
                        (["--outputs", "logits"], "outputs"), (["--resize", "300"], "resize"),
                        (["--interpolation", "bilinear"], "interpolation")]:
        p = run(env, "extract", labelled, "-o", out, "--no-progress", *other, check=False)
        line = assert_one_line_error(p, "extract")
        assert "other options" in line and what in line and "--overwrite" in line
        assert out.read_bytes() == before
    run(env, "extract", labelled, "-o", out, "--no-progress", "--normalize", "--overwrite")
    with np.load(out) as d:
        np.testing.assert_allclose(np.linalg.norm(d["features"], axis=1), 1, rtol=1e-5)


def test_resume_drops_rows_of_deleted_files(env, labelled, tmp_path):
    import shutil

    root = tmp_path / "photos"
    shutil.copytree(labelled, root)
    out = tmp_path / "f.npz"
    run(env, "extract", root, "-o", out, "--no-progress")
    gone = sorted((root / "cat").iterdir())[:2]
    for f in gone:
        f.unlink()
    p = run(env, "extract", root, "-o", out, "--no-progress")
    assert "dropped 2 row(s)" in p.stderr and all(f"cat/{f.name}" in p.stderr for f in gone)
    with np.load(out) as d:
        assert len(d["paths"]) == 13 == len(d["features"]) == len(d["labels"])
        assert not {f"cat/{f.name}" for f in gone} & set(d["paths"])


def test_resume_of_a_file_without_options_record_is_refused(env, labelled, tmp_path):
    out = tmp_path / "old.npz"
    # what keensight wrote before it recorded its options
    np.savez(out, paths=np.array(["cat/cat_000.jpg"]), labels=np.array(["cat"]),
             model=np.array("efficientnet-lite0"), outputs=np.array(["embedding"]),
             failed=np.array([], str), errors=np.array([], str),
             features=np.zeros((1, 1280), np.float32))
    before = out.read_bytes()
    line = assert_one_line_error(run(env, "extract", labelled, "-o", out, check=False), "extract")
    assert "older keensight" in line and "--overwrite" in line
    assert out.read_bytes() == before


def test_resume_with_a_changed_model_file_is_refused(env, tmp_path):
    """Same path, same options, other weights: the record holds the file's SHA-256."""
    root = solid_colour_folder(tmp_path / "colours")
    model = tmp_path / "tiny.onnx"
    tiny_model(model, weight=1.0)
    out = tmp_path / "f.npz"
    spec = ["--input-size", "16", "--no-progress"]
    run(env, "extract", root, "-o", out, "--model", model, *spec)
    tiny_model(model, weight=2.0)
    line = assert_one_line_error(run(env, "extract", root, "-o", out, "--model", model, *spec, check=False),
                                 "extract")
    assert "model:" in line and "SHA-256" in line


def test_extracting_an_empty_folder_is_refused(env, tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    out = tmp_path / "f.npz"
    line = assert_one_line_error(run(env, "extract", tmp_path / "empty", "-o", out, check=False), "extract")
    assert "no images in" in line
    assert not out.exists()


# ---------------------------------------------------------------------------------------
# Model files: the preprocessing options
# ---------------------------------------------------------------------------------------

# The test photos' one colour, RGB; features of the tiny model are the mean input per channel.
COLOURS = {"red": (200, 100, 50), "green": (40, 180, 90), "blue": (30, 60, 220)}


def tiny_model(path, layout="NCHW", weight=1.0, size=16):
    """A small real ONNX conv net: a 1x1 convolution (`weight` times the identity) and a
    global average pool, so its 3 features are `weight` times the mean input per channel."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, x = [], "image"
    shape = ["N", 3, size, size] if layout == "NCHW" else ["N", size, size, 3]
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]))
        x = "nchw"
    w = (weight * np.eye(3, dtype=np.float32)).reshape(3, 3, 1, 1)
    nodes += [helper.make_node("Conv", [x, "w"], ["conv"], kernel_shape=[1, 1]),
              helper.make_node("GlobalAveragePool", ["conv"], ["pooled"]),
              helper.make_node("Flatten", ["pooled"], ["features"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 3])],
                              initializer=[numpy_helper.from_array(w, "w")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def solid_colour_folder(root):
    import cv2

    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        img = np.empty((30, 40, 3), np.uint8)
        img[:] = rgb[::-1]  # OpenCV writes BGR
        assert cv2.imwrite(str(root / name / f"{name}.png"), img)
    return root


def extracted(path):
    with np.load(path) as d:
        return dict(zip(d["paths"], d["features"]))


def test_model_file_needs_its_input_spec(env, tmp_path):
    root = solid_colour_folder(tmp_path / "colours")
    model = tiny_model(tmp_path / "tiny.onnx")
    p = run(env, "extract", root, "-o", tmp_path / "f.npz", "--model", model, check=False)
    line = assert_one_line_error(p, "extract")
    assert "--input-size" in line and "--spec" in line


@pytest.mark.parametrize("options, expected", [
    # input = (pixel - mean) * scale, per channel in the network's order
    (["--input-size", "16", "--mean", "100", "--scale", "0.01"], lambda rgb: (np.array(rgb) - 100) * 0.01),
    (["--input-size", "16x16", "--mean", "100,100,100", "--std", "50", "--bgr"],
     lambda rgb: (np.array(rgb[::-1]) - 100) / 50),
    (["--input-size", "16", "--resize", "20", "--rgb", "--mean", "10,20,30"],
     lambda rgb: np.array(rgb) - [10, 20, 30]),
])
def test_model_file_with_preprocessing_options(env, tmp_path, options, expected):
    root = solid_colour_folder(tmp_path / "colours")
    model = tiny_model(tmp_path / "tiny.onnx")
    out = tmp_path / "f.npz"
    run(env, "extract", root, "-o", out, "--model", model, "--no-progress", *options)
    feats = extracted(out)
    for name, rgb in COLOURS.items():
        np.testing.assert_allclose(feats[f"{name}/{name}.png"], expected(rgb), rtol=1e-5, atol=1e-4)


def test_model_file_layout_and_spec_file(env, tmp_path):
    root = solid_colour_folder(tmp_path / "colours")
    model = tiny_model(tmp_path / "nhwc.onnx", layout="NHWC")
    out = tmp_path / "f.npz"
    # NCHW (the default) does not fit the model's NHWC input: a clear error
    p = run(env, "extract", root, "-o", out, "--model", model, "--input-size", "16", check=False)
    assert "NCHW" in assert_one_line_error(p, "extract")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"input_size": [16, 16], "layout": "NHWC", "scale": 0.5, "color_order": "RGB"}))
    run(env, "extract", root, "-o", out, "--model", model, "--spec", spec, "--bgr", "--no-progress")
    feats = extracted(out)
    for name, rgb in COLOURS.items():  # --bgr overrides the file's color_order
        np.testing.assert_allclose(feats[f"{name}/{name}.png"], np.array(rgb[::-1]) * 0.5, rtol=1e-5)
    # the index repeats the file model and its preprocessing for the queries
    index = tmp_path / "c.idx"
    run(env, "index", "build", root, "-o", index, "--model", model, "--spec", spec, "--no-progress")
    p = run(env, "index", "search", index, root / "blue" / "blue.png", "-k", "1", "--json")
    assert json.loads(p.stdout)[0]["neighbors"][0]["path"] == "blue/blue.png"


# ---------------------------------------------------------------------------------------
# Errors are one line with a documented exit code, never a traceback
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, option", [
    (["index", "search", "x.idx", "q.jpg", "-k", "0"], "-k"),
    (["index", "search", "x.idx", "q.jpg", "-k", "-5"], "-k"),
    (["extract", ".", "-o", "x.npz", "--checkpoint-every", "-5"], "--checkpoint-every"),
    (["extract", ".", "-o", "x.npz", "--batch-size", "0"], "--batch-size"),
    (["extract", ".", "-o", "x.npz", "--threads", "100000"], "--threads"),
    (["extract", ".", "-o", "x.npz", "--jpeg-draft", "0.5"], "--jpeg-draft"),
    (["extract", ".", "-o", "x.npz", "--input-size", "0"], "--input-size"),
    (["extract", ".", "-o", "x.npz", "--mean", "1,2"], "--mean"),
    (["extract", ".", "-o", "x.npz", "--outputs", ","], "--outputs"),
    (["evaluate", ".", "-m", "0"], "-m"),
    (["evaluate", ".", "--test-size", "1.5"], "--test-size"),
    (["evaluate", ".", "--repeats", "0"], "--repeats"),
    (["classify", "x.jpg", "--top-k", "0"], "--top-k"),
    (["index", "build", ".", "-o", "x.idx", "-M", "0"], "-M"),
])
def test_bad_values_are_usage_errors(argv, option, capsys, tmp_path, monkeypatch):
    from keensight import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.idx").write_bytes(b"")
    with pytest.raises(SystemExit) as e:
        cli.build_parser().parse_args(argv)  # refused while parsing: nothing runs
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert len(err.strip().splitlines()) == 1 and f"argument {option}" in err, err


def test_features_files_that_are_not_usable(env, labelled, tmp_path):
    np.savez(tmp_path / "nolabels.npz", paths=np.array(["a.jpg", "b.jpg"]), features=np.zeros((2, 4), np.float32))
    line = assert_one_line_error(run(env, "evaluate", tmp_path / "nolabels.npz", check=False), "evaluate")
    assert "has no labels" in line
    np.savez(tmp_path / "short.npz", paths=np.array(["a.jpg", "b.jpg"]), labels=np.array(["a", "b"]),
             features=np.zeros((1, 4), np.float32))
    assert "one per path" in assert_one_line_error(run(env, "evaluate", tmp_path / "short.npz", check=False),
                                                   "evaluate")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    assert "not a features file" in assert_one_line_error(
        run(env, "index", "build", tmp_path / "junk.npz", "-o", tmp_path / "i.idx", check=False), "index build")


def test_evaluate_with_m_zero_from_a_features_file(env, labelled, tmp_path):
    feats = tmp_path / "f.npz"
    run(env, "extract", labelled, "-o", feats, "--no-progress")
    p = run(env, "evaluate", feats, "-m", "0", check=False)
    assert p.returncode == 2 and "argument -m" in p.stderr and "Traceback" not in p.stderr
    # options that disagree with the file are refused, not ignored
    line = assert_one_line_error(run(env, "evaluate", feats, "--jpeg-draft", check=False), "evaluate")
    assert "--jpeg-draft" in line


@pytest.fixture(scope="module")
def logits_index(env, labelled, tmp_path_factory):
    """An index built from an extract .npz of the logits (not the default embedding)."""
    tmp = tmp_path_factory.mktemp("logits")
    run(env, "extract", labelled, "-o", tmp / "logits.npz", "--outputs", "logits", "--no-progress")
    run(env, "index", "build", tmp / "logits.npz", "-o", tmp / "logits.idx")
    return tmp / "logits.idx"


def test_index_search_extracts_queries_as_the_index_was(env, labelled, logits_index):
    query = sorted((labelled / "coffee").iterdir())[1]
    hits = json.loads(run(env, "index", "search", logits_index, query, "-k", "2", "--json").stdout)[0]["neighbors"]
    assert hits[0]["path"] == f"coffee/{query.name}" and hits[0]["distance"] < 1e-4
    meta = json.loads(logits_index.with_name(logits_index.name + ".json").read_text())
    assert meta["extraction"]["outputs"] == ["logits"]


def test_index_search_model_option_is_checked(env, labelled, logits_index):
    query = sorted((labelled / "coffee").iterdir())[0]
    line = assert_one_line_error(run(env, "index", "search", logits_index, query, "--model", "mobilenetv2-7",
                                     check=False), "index search")
    assert "--model mobilenetv2-7" in line and "efficientnet-lite0" in line
    run(env, "index", "search", logits_index, query, "--model", "efficientnet-lite0")


def test_index_sidecar_that_does_not_fit(env, labelled, logits_index, tmp_path):
    import shutil

    query = sorted((labelled / "coffee").iterdir())[0]
    index = tmp_path / "copy.idx"
    shutil.copy(logits_index, index)
    meta = json.loads(logits_index.with_name(logits_index.name + ".json").read_text())
    sidecar = tmp_path / "copy.idx.json"

    sidecar.write_text(json.dumps(dict(meta, paths=meta["paths"][:3], labels=meta["labels"][:3])))
    line = assert_one_line_error(run(env, "index", "search", index, query, check=False), "index search")
    assert "15 vectors" in line and "3 images" in line

    sidecar.write_text(json.dumps(dict(meta, extraction=dict(meta["extraction"], model="no-such-model"))))
    line = assert_one_line_error(run(env, "index", "search", index, query, check=False), "index search")
    assert "no-such-model" in line

    sidecar.write_text(json.dumps({"format": 1, "model": "efficientnet-lite0", "paths": meta["paths"],
                                   "labels": meta["labels"]}))
    line = assert_one_line_error(run(env, "index", "search", index, query, check=False), "index search")
    assert "rebuild" in line


def test_exit_code_rule_for_unreadable_inputs(env, labelled, logits_index, tmp_path):
    good = sorted((labelled / "cat").iterdir())[0]
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    p = run(env, "classify", good, text, "--json", code=1)
    doc = json.loads(p.stdout)
    assert len(doc["results"]) == 1 and doc["failed"][0]["path"] == str(text)
    p = run(env, "index", "search", logits_index, good, text, code=1)
    assert "text.jpg" in p.stderr and f"cat/{good.name}" in p.stdout
    p = run(env, "classify", text, code=1)
    assert "text.jpg" in p.stderr


def test_closed_stdout_ends_quietly(env, labelled):
    images = sorted((labelled / "cat").iterdir())
    proc = subprocess.Popen([sys.executable, "-m", "keensight", "classify", *map(str, images), "--json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # as `| head` does once it has what it wants
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_unexpected_errors_keep_their_traceback(capsys, monkeypatch):
    """Only the package's errors for bad input become one line; a bug shows its traceback."""
    from keensight import cli

    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(cli, "COMMANDS", [(n, h, a, broken if n == "info" else r) for n, h, a, r in cli.COMMANDS])
    assert cli.main(["info"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'a bug'" in err and "internal error" in err


# ---------------------------------------------------------------------------------------
# --version, help, timing
# ---------------------------------------------------------------------------------------

def test_version(env):
    assert run(env, "--version").stdout.strip() == f"keensight {keensight.__version__}"


def _walk(parser, where="keensight"):
    import argparse

    for action in parser._actions:
        yield where, action
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{where} {name}")


def test_every_option_has_help():
    from keensight import cli

    actions = list(_walk(cli.build_parser()))
    assert len(actions) > 80
    missing = [f"{where}: {a.option_strings or a.dest}" for where, a in actions
               if not (a.help and a.help.strip()) or a.help == "==SUPPRESS=="]
    assert not missing, missing
    text = cli.build_parser().format_help()
    assert "exit status" in text and "never creates the parent folders" in text


def test_evaluate_times_warm_calls(tmp_path, monkeypatch, capsys):
    """ms per query is the median of warm calls, not the first (cold) call."""
    import time as time_module

    from keensight import cli

    class SlowFirstCall:
        calls = 0

        def fit(self, X, y):
            self.y = np.asarray(y)
            return self

        def predict(self, X):
            SlowFirstCall.calls += 1
            if SlowFirstCall.calls == 1:
                time_module.sleep(0.5)
            return self.y[: len(X)]

    monkeypatch.setattr(cli, "_classifiers", lambda *a: [("slow first call", SlowFirstCall())])
    rng = np.random.default_rng(0)
    n = 20
    np.savez(tmp_path / "f.npz", paths=np.array([f"c{i % 2}/{i}.jpg" for i in range(n)]),
             labels=np.array([f"c{i % 2}" for i in range(n)]),
             features=rng.standard_normal((n, 8)).astype(np.float32))
    assert cli.main(["evaluate", str(tmp_path / "f.npz"), "--repeats", "1", "--json",
                     str(tmp_path / "e.json")]) == 0
    row = json.loads((tmp_path / "e.json").read_text())["table"][0]
    assert SlowFirstCall.calls >= 3
    assert row["ms_per_query"] < 5.0  # the cold call alone is 500 ms / 6 queries = 83 ms per query


def test_bench_passes_options_after_double_dash(env, tmp_path):
    # The report scripts' own options follow "--" (argparse would take them as ours);
    # the "--" itself is not passed on.
    (tmp_path / "report_echo.py").write_text("import sys\nprint('ARGV', sys.argv[1:])\n")
    (tmp_path / "report_other.py").write_text("raise SystemExit('not selected')\n")
    p = run(env, "bench", "--dir", tmp_path, "--only", "report_echo", "--", "--threads", "1", "--markdown")
    assert "ARGV ['--threads', '1', '--markdown']" in p.stdout
    assert "report_other" not in p.stdout


@pytest.mark.parametrize("argv", [
    ["extract", ".", "-o", "x.npz"], ["classify", "x.jpg"], ["profile", "."], ["evaluate", "."],
    ["index", "build", ".", "-o", "x.idx"], ["index", "search", "x.idx", "q.jpg"],
])
def test_every_command_that_runs_the_network_takes_backend(argv, tmp_path, monkeypatch, capsys):
    from keensight import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.idx").write_bytes(b"")
    parser = cli.build_parser()
    assert parser.parse_args(argv).backend == "auto"
    for backend in ("keensight", "onnxruntime"):
        assert parser.parse_args(argv + ["--backend", backend]).backend == backend
    with pytest.raises(SystemExit) as e:
        parser.parse_args(argv + ["--backend", "tensorflow"])
    assert e.value.code == 2 and "argument --backend: invalid choice" in capsys.readouterr().err


def test_backend_option_reaches_the_extractor(env, monkeypatch):
    from keensight import cli

    monkeypatch.setenv("KEENSIGHT_CACHE", env["KEENSIGHT_CACHE"])
    for backend, used in (("onnxruntime", "onnxruntime"), ("keensight", "keensight"), ("auto", "keensight")):
        args = cli.build_parser().parse_args(["classify", "x.jpg", "--backend", backend])
        ex = cli._extractor(args, "logits")
        assert (ex.backend, ex.backend_) == (backend, used)


def test_classify_with_either_backend(env, gallery):
    coffee = sorted((gallery / "coffee").glob("coffee_*"))[0]
    cat = sorted((gallery / "cat").glob("cat_*"))[0]
    res = {b: json.loads(run(env, "classify", cat, coffee, "--json", "--backend", b).stdout)["results"]
           for b in ("keensight", "onnxruntime")}
    for a, b in zip(res["keensight"], res["onnxruntime"]):
        assert a["top"][0]["class"] == b["top"][0]["class"]
        assert abs(a["top"][0]["probability"] - b["top"][0]["probability"]) < 1e-3
