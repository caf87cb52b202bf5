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
