"""The ``keensight`` command line.

``keensight info``      CPU features and the SIMD level in use (JSON)
``keensight demo``      the whole job on data that ships with the dependencies (features of
                        handwritten digits, the classifier table, a photo folder's profile),
                        then the filters timed against OpenCV
``keensight models``    the model registry and what is cached
``keensight extract``   CNN features of a folder of images to an ``.npz`` (resumable)
``keensight classify``  top-k ImageNet labels of images
``keensight profile``   a gallery's interest profile (category shares), optionally as JSON
``keensight evaluate``  gallery/query evaluation of several classifiers (the lecture's table)
``keensight index``     build | search an HNSW similarity index over a folder
``keensight bench``     the benchmark report scripts, run and printed

Every subcommand is a pair of functions, ``_args_<name>(parser)`` adding its options and
``_cmd_<name>(args) -> exit code``, registered in :data:`COMMANDS`.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

import keensight

from ._files import atomic_write


def _test_image(height: int, width: int) -> np.ndarray:
    """A deterministic natural-ish test pattern: smooth gradients, rings and noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = np.hypot(x - width / 2, y - height / 2)
    img = 127 + 60 * np.sin(r / 9.0) + 40 * np.cos(x / 37.0) * np.sin(y / 23.0)
    img += np.random.default_rng(0).normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def _demo(args: argparse.Namespace) -> int:
    keensight.set_num_threads(args.threads)
    img = _test_image(args.height, args.width)
    f32 = img.astype(np.float32)
    try:
        import cv2  # optional peer
        cv2.setNumThreads(max(args.threads, 0))
    except ImportError:
        cv2 = None
    rows = [
        ("gaussian_blur 5x5 uint8", lambda: keensight.gaussian_blur(img, 5, 1.2),
         cv2 and (lambda: cv2.GaussianBlur(img, (5, 5), 1.2))),
        ("sobel dx=1 uint8->float32", lambda: keensight.sobel(img, 1, 0, ddepth=np.float32),
         cv2 and (lambda: cv2.Sobel(img, cv2.CV_32F, 1, 0))),
        ("laplacian ksize 3 float32", lambda: keensight.laplacian(f32, 3),
         cv2 and (lambda: cv2.Laplacian(f32, cv2.CV_32F, ksize=3))),
        ("gradient_magnitude uint8", lambda: keensight.gradient_magnitude(img),
         cv2 and (lambda: cv2.magnitude(cv2.Sobel(img, cv2.CV_32F, 1, 0), cv2.Sobel(img, cv2.CV_32F, 0, 1)))),
        ("gabor_bank 8 x 21x21 float32", lambda: keensight.gabor_bank(f32),
         cv2 and (lambda: [cv2.filter2D(f32, cv2.CV_32F, k.astype(np.float32)) for k in keensight.gabor_kernels()])),
    ]
    info = keensight.cpu_info()
    print(f"keensight {keensight.__version__}: {args.width}x{args.height} test image, "
          f"SIMD level {info['active']}, {keensight.get_num_threads()} thread(s)")
    print(f"{'filter':32s} {'keensight ms':>13s} {'OpenCV ms':>10s} {'ratio':>6s}")
    for name, ours, peer in rows:
        t_ours = _median_ms(ours, args.repeat)
        if peer:
            t_peer = _median_ms(peer, args.repeat)
            print(f"{name:32s} {t_ours:13.2f} {t_peer:10.2f} {t_peer / t_ours:6.2f}")
        else:
            print(f"{name:32s} {t_ours:13.2f} {'-':>10s} {'-':>6s}")
    return 0


# ---------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------

class Progress:
    """A one-line progress bar on stderr (only drawn when stderr is a terminal)."""

    def __init__(self, total: int, label: str, enabled: Optional[bool] = None, width: int = 30) -> None:
        self.total, self.label, self.width = max(int(total), 0), label, width
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.done = 0
        self.start = time.perf_counter()
        self._last = 0.0
        self.update(0)

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if not self.enabled or (now - self._last < 0.1 and self.done < self.total):
            return
        self._last = now
        frac = self.done / self.total if self.total else 1.0
        fill = int(round(frac * self.width))
        rate = self.done / max(now - self.start, 1e-9)
        sys.stderr.write(f"\r{self.label} [{'#' * fill}{'.' * (self.width - fill)}] "
                         f"{self.done}/{self.total} {rate:6.1f} img/s")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _list_images(root: Path) -> List[Path]:
    """Image files under `root` (recursively, by extension), sorted."""
    from .extract import IMAGE_EXTENSIONS

    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def _label_of(rel: str) -> str:
    """The sub-folder a file sits in (its class label); "" for files at the top level."""
    parts = rel.split("/")
    return parts[0] if len(parts) > 1 else ""


def _error(command: str, message: str, code: int = 2) -> int:
    print(f"keensight {command}: {message}", file=sys.stderr)
    return code


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="efficientnet-lite0",
                   help="registry name or .onnx path (default: efficientnet-lite0, works offline)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=0, help="network threads (0: all cores)")
    p.add_argument("--streams", type=int, default=0,
                   help="batches the network runs side by side (0: min(threads, 4))")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--jpeg-draft", type=float, nargs="?", const=2.0, default=None, metavar="GAP",
                   help="decode large JPEGs at a reduced scale keeping at least GAP times the resize "
                        "length (default GAP 2, as Pillow's reducing_gap; faster, features differ slightly)")


def _extractor(args: argparse.Namespace, outputs: Any, normalize: bool = False):
    from .extract import Extractor

    return Extractor(args.model, outputs=outputs, batch_size=args.batch_size, threads=args.threads or None,
                     normalize=normalize, jpeg_draft=getattr(args, "jpeg_draft", None) or False,
                     streams=getattr(args, "streams", 0) or None)


def _logits_output(model: str) -> str:
    from . import models

    if model in models.list_models():
        return models.get_model_spec(model).outputs[-1]
    raise ValueError(f"--model {model!r}: classify and profile need a registry model with ImageNet logits")


def _run_with_progress(extractor, items: Sequence[Any], label: str, show: bool, on_batch=None):
    """Runs the extractor over `items`; returns (indices, features dict, errors)."""
    progress = Progress(len(items), label, enabled=False if not show else None)
    indices: List[np.ndarray] = []
    errors: List[Tuple[int, str]] = []
    parts: Dict[str, List[np.ndarray]] = {o: [] for o in extractor.outputs_}
    try:
        for b in extractor.iter_batches(list(items)):
            indices.append(b.indices)
            errors.extend(b.errors)
            if len(b.indices):
                for o in extractor.outputs_:
                    parts[o].append(b.features[o])
            progress.update(len(b.indices) + len(b.errors))
            if on_batch is not None:
                on_batch(indices, parts, errors)
    finally:
        progress.close()
    idx = np.concatenate(indices) if indices else np.empty(0, np.int64)
    feats = {o: np.concatenate(v) for o, v in parts.items() if v}
    return idx, feats, errors


def _report_errors(command: str, errors: Sequence[Tuple[str, str]]) -> None:
    for path, msg in errors:
        print(f"keensight {command}: skipped {path}: {msg}", file=sys.stderr)


# ---------------------------------------------------------------------------------------
# info, demo
# ---------------------------------------------------------------------------------------

def _args_info(p: argparse.ArgumentParser) -> None:
    pass


def _cmd_info(args: argparse.Namespace) -> int:
    json.dump(keensight.cpu_info(), sys.stdout, indent=2)
    print()
    return 0


def _args_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", type=Path, default=None,
                   help="folder to write the demo images to, as digits/ and photos/ (kept; default: a "
                        "temporary folder, removed afterwards)")
    p.add_argument("--per-class", type=int, default=None,
                   help="handwritten digits per class (default: all 1,797 digits, about 180 per class)")
    p.add_argument("--repeats", type=int, default=3, help="gallery/query splits for the evaluation")
    p.add_argument("--skip-filters", action="store_true", help="skip the filter timings")
    p.add_argument("--width", type=int, default=1920, help="filter test image width")
    p.add_argument("--height", type=int, default=1080, help="filter test image height")
    p.add_argument("--repeat", type=int, default=5, help="timed calls per filter (median)")
    p.add_argument("--threads", type=int, default=0, help="0: all cores")


def _demo_step(number: int, total: int, text: str) -> None:
    print(f"\n[{number}/{total}] {text}", flush=True)


def _demo_command(argv: List[Any]) -> int:
    """Run one subcommand as typed on the command line (its own defaults for the rest)."""
    args = build_parser().parse_args([str(a) for a in argv])
    return args.run(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    """The whole job on data that exists offline after ``pip install``: scikit-learn's
    1,797 handwritten digits written as a folder-per-class image set at the CNN's input
    size, their EfficientNet-Lite0 features, the lecture's classifier table on them (a
    real task, on which the classifiers differ in accuracy and speed), the interest
    profile of a folder of scikit-image / scikit-learn sample photos, then the filter
    timings. About a minute on 2 cores."""
    import tempfile

    from . import models
    from .datasets import make_demo_folder, make_digits_folder

    if args.width <= 0 or args.height <= 0 or args.repeat <= 0 or args.repeats < 1:
        return _error("demo", "--width, --height, --repeat and --repeats must be positive")
    if args.per_class is not None and args.per_class < 2:
        return _error("demo", "--per-class must be at least 2 (a gallery and a query image per class)")
    if args.dir is not None and (not args.dir.parent.is_dir() or (args.dir.exists() and not args.dir.is_dir())):
        return _error("demo", f"--dir: {args.dir} must be a folder or a new name in an existing folder")
    steps = 4 if args.skip_filters else 5
    threads = ["--threads", args.threads]
    size = models.get_model_spec(models.DEFAULT_MODEL).input_size[0]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="keensight-demo-") as tmp:
        root = args.dir if args.dir is not None else Path(tmp)
        digits, photos, features = root / "digits", root / "photos", Path(tmp) / "digits.npz"
        _demo_step(1, steps, "writing scikit-learn's handwritten digits (UCI, 43 writers) as images")
        try:
            root.mkdir(exist_ok=True)
            files = make_digits_folder(digits, size=size, n_per_class=args.per_class)
        except OSError as e:
            return _error("demo", f"cannot write the digits under {root}: {e}")
        print(f"{len(files)} images of {size}x{size} pixels in 10 classes under {digits}")

        _demo_step(2, steps, f"{models.DEFAULT_MODEL} features of every digit")
        status = _demo_command(["extract", digits, "-o", features, "--overwrite", *threads])
        if status:
            return status

        _demo_step(3, steps, "classifiers on those features: accuracy on held-out digits, and speed")
        status = _demo_command(["evaluate", features, "--repeats", args.repeats])
        if status:
            return status

        _demo_step(4, steps, "interest profile of a folder of sample photos (ImageNet labels -> categories)")
        try:
            make_demo_folder(photos, n_per_class=2)
        except OSError as e:
            return _error("demo", f"cannot write the photos under {root}: {e}")
        status = _demo_command(["profile", photos, *threads])
        if status:
            return status
    if not args.skip_filters:
        _demo_step(5, steps, "filters against OpenCV")
        status = _demo(args)
    print(f"\nkeensight demo: done in {time.perf_counter() - start:.0f} s")
    return status


# ---------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------

def _args_models(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _cmd_models(args: argparse.Namespace) -> int:
    from . import models

    cached = set(models.cached_models())
    rows = []
    for name in models.list_models():
        spec = models.get_model_spec(name)
        rows.append({"name": name, "cached": name in cached, "path": str(models.model_cache_path(name)),
                     "source": "converted offline" if not spec.downloadable else "download",
                     "input_size": list(spec.input_size), "feature_output": spec.feature_output,
                     "feature_dim": spec.feature_dim, "description": spec.description})
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    print(f"{'model':20s} {'cached':6s} {'source':18s} {'input':8s} {'features':>8s}  description")
    for r in rows:
        print(f"{r['name']:20s} {'yes' if r['cached'] else 'no':6s} {r['source']:18s} "
              f"{r['input_size'][0]}x{r['input_size'][1]:<4d} {r['feature_dim']:8d}  {r['description']}")
    print(f"\ncache: {Path(rows[0]['path']).parent}")
    return 0


# ---------------------------------------------------------------------------------------
# extract
# ---------------------------------------------------------------------------------------

def _args_extract(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", type=Path, help="folder of images (sub-folder names become labels)")
    p.add_argument("-o", "--output", type=Path, required=True, help="features file (.npz)")
    p.add_argument("--outputs", default=None,
                   help="comma-separated tensors to save (default: the model's feature output)")
    p.add_argument("--normalize", action="store_true", help="L2-normalise the features")
    p.add_argument("--overwrite", action="store_true", help="start afresh even if the output exists")
    p.add_argument("--checkpoint-every", type=int, default=20, metavar="BATCHES",
                   help="save progress every this many batches (resume picks up from there)")
    _add_model_args(p)


def _save_npz(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    """Write an .npz so that readers see the old file or the complete new one."""
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _cmd_extract(args: argparse.Namespace) -> int:
    root: Path = args.dir
    if not root.is_dir():
        return _error("extract", f"{root} is not a folder")
    outputs = [o for o in args.outputs.split(",") if o] if args.outputs else None
    try:
        ex = _extractor(args, outputs, normalize=args.normalize)
    except (ValueError, TypeError, OSError) as e:
        return _error("extract", str(e))
    names = list(ex.outputs_)
    files = _list_images(root)
    rel = [f.relative_to(root).as_posix() for f in files]

    done_paths: List[str] = []
    done_feats: Dict[str, List[np.ndarray]] = {o: [] for o in names}
    if args.output.exists() and not args.overwrite:
        try:
            with np.load(args.output, allow_pickle=False) as old:
                old_names = [str(o) for o in old["outputs"]]
                if str(old["model"]) != str(args.model) or old_names != names:
                    return _error("extract", f"{args.output} holds {old_names} of {old['model']}; "
                                  "use --overwrite to replace it")
                done_paths = [str(p) for p in old["paths"]]
                for o in names:
                    done_feats[o].append(old["features" if len(names) == 1 else f"features_{o}"])
        except (OSError, KeyError, ValueError) as e:
            return _error("extract", f"cannot resume from {args.output} ({e}); use --overwrite")
    done = set(done_paths)
    todo = [i for i, r in enumerate(rel) if r not in done]
    if done:
        print(f"keensight extract: {len(done)} image(s) already in {args.output}, "
              f"{len(todo)} to go", file=sys.stderr)

    failed: List[Tuple[str, str]] = []

    def save(indices, parts, errors) -> None:
        idx = np.concatenate(indices) if indices else np.empty(0, np.int64)
        paths = done_paths + [rel[todo[i]] for i in idx]
        arrays: Dict[str, Any] = {
            "paths": np.asarray(paths, dtype=str),
            "labels": np.asarray([_label_of(p) for p in paths], dtype=str),
            "model": np.asarray(str(args.model)),
            "outputs": np.asarray(names, dtype=str),
            "failed": np.asarray([rel[todo[i]] for i, _ in errors], dtype=str),
            "errors": np.asarray([m for _, m in errors], dtype=str),
        }
        for o in names:
            chunks = [c for c in done_feats[o] + list(parts.get(o, [])) if c.size]
            feats = np.concatenate(chunks) if chunks else np.empty((0,), np.float32)
            arrays["features" if len(names) == 1 else f"features_{o}"] = feats
        if len(names) > 1:
            arrays["features"] = arrays[f"features_{names[0]}"]
        _save_npz(args.output, arrays)

    batches = [0]

    def on_batch(indices, parts, errors) -> None:
        batches[0] += 1
        if args.checkpoint_every > 0 and batches[0] % args.checkpoint_every == 0:
            save(indices, parts, errors)

    t0 = time.perf_counter()
    try:
        idx, feats, errors = _run_with_progress(ex, [files[i] for i in todo], "extract",
                                                not args.no_progress, on_batch)
    except KeyboardInterrupt:
        print("keensight extract: interrupted; progress saved at the last checkpoint", file=sys.stderr)
        return 130
    seconds = time.perf_counter() - t0
    save([idx], {o: [f] for o, f in feats.items()}, errors)
    failed = [(rel[todo[i]], m) for i, m in errors]
    _report_errors("extract", failed)
    n_new = len(idx)
    print(f"keensight extract: {n_new} new image(s) in {seconds:.1f} s "
          f"({n_new / max(seconds, 1e-9):.1f} img/s), {len(done_paths) + n_new} in {args.output}, "
          f"{len(failed)} skipped", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------
# classify
# ---------------------------------------------------------------------------------------

def _args_classify(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", type=Path, help="image files (folders are searched)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_model_args(p)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z.astype(np.float64))
    return e / e.sum(axis=1, keepdims=True)


def _cmd_classify(args: argparse.Namespace) -> int:
    from . import models

    if args.top_k <= 0:
        return _error("classify", "--top-k must be positive")
    files: List[Path] = []
    for p in args.images:
        files.extend(_list_images(p) if p.is_dir() else [p])
    if not files:
        return _error("classify", "no images given")
    try:
        ex = _extractor(args, _logits_output(args.model))
    except (ValueError, TypeError, OSError) as e:
        return _error("classify", str(e))
    classes = models.imagenet_classes()
    idx, feats, errors = _run_with_progress(ex, files, "classify", not args.no_progress)
    logits = feats.get(ex.outputs_[0], np.empty((0, len(classes))))
    probs = _softmax(logits) if len(idx) else logits
    k = min(args.top_k, probs.shape[1]) if len(idx) else 0
    results = []
    for row, i in enumerate(idx):
        top = np.argsort(-probs[row])[:k]
        results.append({"path": str(files[i]),
                        "top": [{"class": int(c), "label": classes[c], "probability": float(probs[row, c])}
                                for c in top]})
    if args.json:
        json.dump({"results": results, "failed": [{"path": str(files[i]), "error": m} for i, m in errors]},
                  sys.stdout, indent=2)
        print()
    else:
        for r in results:
            print(r["path"])
            for t in r["top"]:
                print(f"  {t['probability']:6.3f}  {t['class']:4d}  {t['label']}")
    _report_errors("classify", [(str(files[i]), m) for i, m in errors])
    return 0 if results else 1


# ---------------------------------------------------------------------------------------
# profile
# ---------------------------------------------------------------------------------------

def _args_profile(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", type=Path, help="folder of photos (searched recursively)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the profile as JSON")
    _add_model_args(p)


def _cmd_profile(args: argparse.Namespace) -> int:
    from . import models, profile

    if not args.dir.is_dir():
        return _error("profile", f"{args.dir} is not a folder")
    files = _list_images(args.dir)
    if not files:
        return _error("profile", f"no images in {args.dir}")
    try:
        ex = _extractor(args, _logits_output(args.model))
    except (ValueError, TypeError, OSError) as e:
        return _error("profile", str(e))
    idx, feats, errors = _run_with_progress(ex, files, "profile", not args.no_progress)
    _report_errors("profile", [(str(files[i]), m) for i, m in errors])
    if not len(idx):
        return _error("profile", "no image could be read", 1)
    logits = feats[ex.outputs_[0]]
    best, confidence = profile.assign_categories(logits)
    shares = profile.gallery_profile(logits)
    counts = np.bincount(best, minlength=len(profile.CATEGORIES))
    classes = models.imagenet_classes()
    print(f"interest profile of {len(idx)} photo(s) in {args.dir}"
          + (f" ({len(errors)} unreadable, skipped)" if errors else ""))
    for k, name in sorted(enumerate(profile.CATEGORIES), key=lambda kv: (-counts[kv[0]], kv[0])):
        bar = "#" * int(round(shares[name] * 40))
        print(f"  {name:16s} {counts[k]:5d}  {100 * shares[name]:5.1f}%  {bar}")
    if args.json is not None:
        doc = {
            "folder": str(args.dir), "model": str(args.model), "n_images": int(len(idx)),
            "categories": {name: {"count": int(counts[k]), "share": shares[name]}
                           for k, name in enumerate(profile.CATEGORIES)},
            "images": [{"path": files[i].relative_to(args.dir).as_posix(),
                        "category": profile.CATEGORIES[best[r]], "confidence": float(confidence[r]),
                        "top_class": classes[int(logits[r].argmax())]} for r, i in enumerate(idx)],
            "failed": [{"path": files[i].relative_to(args.dir).as_posix(), "error": m} for i, m in errors],
        }
        _write_json(args.json, doc)
    return 0


# ---------------------------------------------------------------------------------------
# bench
# ---------------------------------------------------------------------------------------

def _args_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", type=Path, default=None,
                   help="benchmarks folder (default: benchmarks/ of the source checkout)")
    p.add_argument("--only", default=None, help="comma-separated report names, e.g. report,report_extract")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="arguments passed on to every report script")


def _cmd_bench(args: argparse.Namespace) -> int:
    folder = args.dir or Path(__file__).resolve().parents[2] / "benchmarks"
    scripts = sorted(folder.glob("report*.py")) if folder.is_dir() else []
    if args.only:
        wanted = {s.strip() for s in args.only.split(",")}
        scripts = [s for s in scripts if s.stem in wanted]
    if not scripts:
        return _error("bench", f"no report*.py scripts in {folder} (the benchmarks ship with the "
                      "source checkout, not the wheel; pass --dir)")
    status = 0
    for script in scripts:
        print(f"## {script.name}\n", flush=True)
        # The report prints its own tables; they stream straight to our stdout.
        rc = subprocess.call([sys.executable, str(script)] + list(args.extra), cwd=str(folder))
        if rc != 0:
            print(f"keensight bench: {script.name} exited with {rc}", file=sys.stderr)
            status = rc
        print(flush=True)
    return status


# ---------------------------------------------------------------------------------------
# evaluate, index
# ---------------------------------------------------------------------------------------

def _folder_features(command: str, args: argparse.Namespace, normalize: bool = True):
    """(paths, labels, features) of a folder (extracted now) or of an extract .npz."""
    src: Path = args.dir
    if src.is_file() and src.suffix == ".npz":
        with np.load(src, allow_pickle=False) as f:
            feats = f["features"].astype(np.float32)
            paths = [str(p) for p in f["paths"]]
            labels = np.asarray([str(x) for x in f["labels"]])
        if normalize:
            norms = np.linalg.norm(feats, axis=1, keepdims=True)
            feats = np.divide(feats, norms, out=np.zeros_like(feats), where=norms > 0)
        return paths, labels, feats
    if not src.is_dir():
        raise ValueError(f"{src} is neither a folder of images nor a features .npz")
    files = _list_images(src)
    if not files:
        raise ValueError(f"no images under {src}")
    ex = _extractor(args, None, normalize=normalize)
    idx, feats, errors = _run_with_progress(ex, [str(f) for f in files], command, not args.no_progress)
    _report_errors(command, [(files[i].relative_to(src).as_posix(), m) for i, m in errors])
    rel = [files[i].relative_to(src).as_posix() for i in idx]
    return rel, np.asarray([_label_of(r) for r in rel]), feats[ex.outputs_[0]]


def _classifiers(n_features: int, n_gallery: int, m: int) -> List[Tuple[str, Any]]:
    """The lecture's comparison: a linear SVM, exhaustive 1-NN, 1-NN on PCA features,
    sequential three-way decisions over PCA granules, and an approximate 1-NN."""
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    from .search import PCA, KNeighborsClassifier, SequentialClassifier

    n_pca = min(64, n_features, n_gallery)
    return [
        ("SVM (linear, scikit-learn)", LinearSVC(C=1.0)),
        ("1-NN, exhaustive", KNeighborsClassifier(1)),
        (f"1-NN on {n_pca} PCA components", make_pipeline(PCA(n_components=n_pca), KNeighborsClassifier(1))),
        (f"SequentialClassifier (m={m})", SequentialClassifier(m=m)),
        ("1-NN, HNSW (M=16, ef=64)", KNeighborsClassifier(1, backend="hnsw", ef=64)),
    ]


def _args_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", type=Path, help="folder-per-class images, or a features .npz from 'extract'")
    p.add_argument("--test-size", type=float, default=0.3, help="share of each class used as queries")
    p.add_argument("--repeats", type=int, default=3, help="random gallery/query splits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-m", type=int, default=32, help="SequentialClassifier components per granule")
    p.add_argument("--json", type=Path, default=None, help="also write the table as JSON")
    _add_model_args(p)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from sklearn.model_selection import train_test_split

    try:
        _, labels, feats = _folder_features("evaluate", args)
    except (ValueError, TypeError, OSError) as e:
        return _error("evaluate", str(e))
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        return _error("evaluate", "need at least two classes with two images each (sub-folders)")
    if not 0 < args.test_size < 1 or args.repeats < 1:
        return _error("evaluate", "--test-size must be in (0, 1) and --repeats >= 1")
    results: Dict[str, Dict[str, List[float]]] = {}
    for r in range(args.repeats):
        try:
            g, q, yg, yq = train_test_split(feats, labels, test_size=args.test_size,
                                            random_state=args.seed + r, stratify=labels)
        except ValueError as e:  # too few images for a stratified split
            return _error("evaluate", str(e))
        for name, clf in _classifiers(feats.shape[1], len(g), args.m):
            clf.fit(g, yg)
            start = time.perf_counter()
            pred = clf.predict(q)
            ms = 1e3 * (time.perf_counter() - start) / len(q)
            entry = results.setdefault(name, {"accuracy": [], "ms_per_query": []})
            entry["accuracy"].append(100.0 * float(np.mean(pred == yq)))
            entry["ms_per_query"].append(ms)
    print(f"{len(feats)} images, {len(classes)} classes, {feats.shape[1]}-d features, "
          f"{args.repeats} split(s) of {100 * (1 - args.test_size):.0f}% gallery / "
          f"{100 * args.test_size:.0f}% queries")
    print("\n| classifier | accuracy % | ms per query |\n| --- | --- | --- |")
    table = []
    for name, entry in results.items():
        acc, ms = np.array(entry["accuracy"]), np.array(entry["ms_per_query"])
        print(f"| {name} | {acc.mean():.2f} ± {acc.std():.2f} | {ms.mean():.4f} |")
        table.append({"classifier": name, "accuracy_mean": acc.mean(), "accuracy_std": acc.std(),
                      "ms_per_query": ms.mean()})
    if args.json is not None:
        _write_json(args.json, {"images": len(feats), "classes": classes.tolist(), "table": table})
    return 0


def _write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (a temporary file in the same folder, then rename)."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, default=float).encode("utf-8")))


def _args_index(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    b = sub.add_parser("build", help="index the images of a folder (HNSW over CNN features)")
    b.add_argument("dir", type=Path, help="folder of images, or a features .npz from 'extract'")
    b.add_argument("-o", "--output", type=Path, required=True, help="index file (a .json sidecar holds the paths)")
    b.add_argument("-M", type=int, default=16)
    b.add_argument("--ef-construction", type=int, default=200)
    _add_model_args(b)
    s = sub.add_parser("search", help="the images of an index most similar to query images")
    s.add_argument("index", type=Path)
    s.add_argument("images", nargs="+", type=Path)
    s.add_argument("-k", type=int, default=5)
    s.add_argument("--ef", type=int, default=64)
    s.add_argument("--json", action="store_true", help="print JSON")
    _add_model_args(s)


def _cmd_index(args: argparse.Namespace) -> int:
    from .search import HNSWIndex

    if args.action == "build":
        try:
            paths, labels, feats = _folder_features("index", args)
            index = HNSWIndex(feats.shape[1], "cosine", M=args.M, ef_construction=args.ef_construction)
            index.add(feats)
            index.save(args.output)
        except (ValueError, TypeError, OSError) as e:
            return _error("index", str(e))
        _write_json(args.output.with_name(args.output.name + ".json"),
                    {"format": 1, "model": str(args.model), "paths": paths, "labels": labels.tolist()})
        print(f"keensight index: {len(paths)} images -> {args.output}")
        return 0
    try:
        meta = json.loads(args.index.with_name(args.index.name + ".json").read_text())
        if meta.get("format") != 1:
            raise ValueError("unknown sidecar format")
        index = HNSWIndex.load(args.index)
    except (OSError, ValueError, KeyError) as e:
        return _error("index", f"cannot open {args.index}: {e}")
    args.model = meta["model"]
    ex = _extractor(args, None, normalize=True)
    idx, feats, errors = _run_with_progress(ex, [str(p) for p in args.images], "index", False)
    _report_errors("index", [(str(args.images[i]), m) for i, m in errors])
    if not len(idx):
        return _error("index", "no readable query image", 1)
    k = max(1, min(args.k, len(meta["paths"])))
    dist, ids = index.search(feats[ex.outputs_[0]], k, ef=max(args.ef, k))
    out = []
    for qi, row_d, row_i in zip(idx, dist, ids):
        hits = [{"path": meta["paths"][i], "label": meta["labels"][i], "distance": float(d)}
                for d, i in zip(row_d, row_i) if i >= 0]
        out.append({"query": str(args.images[qi]), "neighbors": hits})
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for entry in out:
            print(entry["query"])
            for h in entry["neighbors"]:
                print(f"  {h['distance']:.4f}  {h['path']}")
    return 1 if errors else 0


# ---------------------------------------------------------------------------------------
# The command table: ("name", "help", _args_name, _cmd_name).
# ---------------------------------------------------------------------------------------

COMMANDS: List[Tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = [
    ("info", "CPU features and the SIMD level in use (JSON)", _args_info, _cmd_info),
    ("demo", "the whole job on offline data (handwritten digits, sample photos), then the filters timed",
     _args_demo, _cmd_demo),
    ("models", "list the model registry and what is cached", _args_models, _cmd_models),
    ("extract", "CNN features of a folder of images to an .npz (resumable)", _args_extract, _cmd_extract),
    ("classify", "top-k ImageNet labels of images", _args_classify, _cmd_classify),
    ("profile", "interest profile (category shares) of a photo folder", _args_profile, _cmd_profile),
    ("evaluate", "accuracy and speed of several classifiers on a folder-per-class dataset",
     _args_evaluate, _cmd_evaluate),
    ("index", "build or search a similarity index over a folder of images", _args_index, _cmd_index),
    ("bench", "run the benchmark report scripts and print their tables", _args_bench, _cmd_bench),
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="keensight", description="keensight: efficient image recognition on CPUs")
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_text, add_args, run in COMMANDS:
        sp = sub.add_parser(name, help=help_text, description=help_text)
        add_args(sp)
        sp.set_defaults(run=run)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)
