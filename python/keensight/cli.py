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
``_cmd_<name>(args) -> exit code``, registered in :data:`COMMANDS`. :func:`main` is the one
place that turns errors into exit codes (:data:`EXIT_STATUS`): a command raises
:class:`CommandError` (or lets the package's ValueError / TypeError / OSError through) and
the user sees one line on stderr, never a traceback; only unexpected exception types (bugs)
print one.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
import traceback
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

import keensight

from . import _validate
from ._files import atomic_write
from .evaluate import SplitError, TIMED_CALLS, default_classifiers, image_files, label_of
from .evaluate import evaluate as _evaluate


def _test_image(height: int, width: int) -> np.ndarray:
    """A deterministic natural-ish test pattern: smooth gradients, rings and noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = np.hypot(x - width / 2, y - height / 2)
    img = 127 + 60 * np.sin(r / 9.0) + 40 * np.cos(x / 37.0) * np.sin(y / 23.0)
    img += np.random.default_rng(0).normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    from .evaluate import _median_ms as median_ms  # one timing rule for the CLI and evaluate()

    return median_ms(fn, repeat)


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
# Exit codes and errors
# ---------------------------------------------------------------------------------------

EXIT_OK = 0
EXIT_INPUTS_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a program the signal ended

EXIT_STATUS = """\
exit status (the same rule for every command):
  0    success: every input was read and the output was written
  1    some input images could not be read or decoded: each one is named on stderr
       and the output covers the others (nothing is written when none could be read)
  2    the command could not run as asked: a bad option value, a missing or unusable
       file or folder, options that disagree with an existing features file or index;
       the reason is one line on stderr
  3    internal error (a bug in keensight): the traceback is printed; please report it
  130  interrupted (Ctrl-C)
  141  stdout was closed early (e.g. '| head'), as for a program ended by SIGPIPE

files: keensight never creates the parent folders of a file you name (-o, --json): a
missing folder is an error (exit 2), reported before any work starts."""
_SUB_EPILOG = ("exit status: 0 success, 1 some input images could not be read, 2 could not run as asked "
               "(see 'keensight --help')")


class CommandError(Exception):
    """A command cannot run as asked: :func:`main` prints the message as one line on
    stderr, prefixed with the command, and exits with `code` (default
    :data:`EXIT_USAGE`; :data:`EXIT_INPUTS_FAILED` when no input could be read)."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (onnxruntime and others may span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _error(command: str, message: str, code: int = EXIT_USAGE) -> int:
    print(f"keensight {command}: {message}", file=sys.stderr)
    return code


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line, like every other keensight error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


# ---------------------------------------------------------------------------------------
# Argument types: a bad value is a usage error (exit 2) before any work starts
# ---------------------------------------------------------------------------------------

# The keensight validators prefix their messages with the argument's name; argparse
# names the option itself, so the types below validate under this name and drop it.
_VALUE = "value"


def _arg_type(convert: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    """An argparse ``type=`` from a keensight validator: its ValueError / TypeError /
    OSError message becomes the usage error."""

    def parse(text: str) -> Any:
        try:
            return convert(text)
        except (ValueError, TypeError, OSError) as e:
            msg = _one_line(e)
            if msg.startswith(_VALUE + ": "):
                msg = msg[len(_VALUE) + 2:]
            raise argparse.ArgumentTypeError(msg) from None

    parse.__name__ = name
    return parse


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{_VALUE}: expected an int, got {text!r}") from None


def _int_type(low: int, high: int = _validate.INT32_MAX) -> Callable[[str], int]:
    """Ints in [low, high] (the C++ core takes 32-bit ints)."""
    return _arg_type(lambda t: _validate.integer(_parse_int(t), _VALUE, low, high), f"int >= {low}")


_positive_int = _int_type(1)
_non_negative_int = _int_type(0)
_thread_count = _arg_type(lambda t: _validate.num_threads(_parse_int(t), _VALUE), "threads")


def _parse_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{_VALUE}: expected a number, got {text!r}") from None
    return _validate.real(value, _VALUE)


def _convert_fraction(text: str) -> float:
    value = _parse_number(text)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{_VALUE}: expected a number in (0, 1), got {text}")
    return value


def _convert_gap(text: str) -> float:
    value = _parse_number(text)
    if value < 1.0:
        raise ValueError(f"{_VALUE}: expected a reducing gap >= 1, got {text}")
    return value


def _convert_triple(text: str) -> Tuple[float, float, float]:
    parts = [p for p in text.replace(" ", "").split(",")]
    if len(parts) not in (1, 3):
        raise ValueError(f"{_VALUE}: expected one number or three comma-separated numbers, got {text!r}")
    values = [_parse_number(p) for p in parts]
    return tuple(values * 3 if len(values) == 1 else values)  # type: ignore[return-value]


def _convert_size(text: str) -> Tuple[int, int]:
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) not in (1, 2):
        raise ValueError(f"{_VALUE}: expected N or HxW, got {text!r}")
    sizes = [_validate.positive_int(_parse_int(p), _VALUE) for p in parts]
    return (sizes[0], sizes[-1])


def _convert_names(text: str) -> List[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError(f"{_VALUE}: expected comma-separated tensor names, got {text!r}")
    return names


def _convert_folder(text: str) -> Path:
    if not os.path.exists(text):
        raise FileNotFoundError(f"{_VALUE}: no such folder: {text!r}")
    if not os.path.isdir(text):
        raise NotADirectoryError(f"{_VALUE}: {text!r} is a file, not a folder")
    return Path(text)


def _convert_folder_or_file(text: str) -> Path:
    return Path(text) if os.path.isdir(text) else Path(_validate.input_file(text, _VALUE))


def _convert_spec_file(text: str) -> Dict[str, Any]:
    path = _validate.input_file(text, _VALUE)
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{_VALUE}: {path} is not JSON ({e})") from None
    if not isinstance(spec, dict):
        raise ValueError(f"{_VALUE}: {path} must hold a JSON object (PreprocessSpec keys), "
                         f"not {type(spec).__name__}")
    return spec


_fraction = _arg_type(_convert_fraction, "fraction")
_reducing_gap = _arg_type(_convert_gap, "gap")
_triple = _arg_type(_convert_triple, "numbers")
_size = _arg_type(_convert_size, "size")
_names = _arg_type(_convert_names, "names")
_folder = _arg_type(_convert_folder, "folder")
_folder_or_file = _arg_type(_convert_folder_or_file, "path")
_input_file = _arg_type(lambda t: Path(_validate.input_file(t, _VALUE)), "file")
_output_file = _arg_type(lambda t: Path(_validate.output_file(t, _VALUE)), "output file")
_spec_file = _arg_type(_convert_spec_file, "spec file")


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


_list_images = image_files  # image files under a folder (recursively, by extension), sorted


def _images_of_folder(root: Path) -> List[Path]:
    """:func:`_list_images`, refusing a folder without images (there is nothing to do)."""
    from .extract import IMAGE_EXTENSIONS

    files = _list_images(root)
    if not files:
        raise CommandError(f"no images in {root} (looked for {', '.join(IMAGE_EXTENSIONS)} files, "
                           "recursively)")
    return files


_label_of = label_of  # the sub-folder a file sits in (its class label)


def _add_run_args(p: argparse.ArgumentParser) -> None:
    """Options of how the network runs; the features do not depend on them."""
    p.add_argument("--batch-size", type=_positive_int, default=16, metavar="N",
                   help="images per network run (default 16; results do not depend on it)")
    p.add_argument("--threads", type=_thread_count, default=0, metavar="N",
                   help=f"network threads, at most {_validate.MAX_THREADS} (default 0: all cores)")
    p.add_argument("--streams", type=_thread_count, default=0, metavar="N",
                   help="batches the network runs side by side, at most --threads (default 0: min(threads, 4))")
    p.add_argument("--backend", choices=("auto", "keensight", "onnxruntime"), default="auto",
                   help="what runs the network: keensight's CNN engine, onnxruntime, or auto (default: "
                        "keensight's engine when it can run the model, else onnxruntime; features agree "
                        "to float rounding)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _add_jpeg_draft_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jpeg-draft", type=_reducing_gap, nargs="?", const=2.0, default=None, metavar="GAP",
                   help="decode large JPEGs at a reduced scale keeping at least GAP (>= 1) times the resize "
                        "length (default GAP 2, as Pillow's reducing_gap; faster, features differ slightly)")


def _add_model_args(p: argparse.ArgumentParser, files: bool = True) -> None:
    """--model, --jpeg-draft, the run options and (for commands that take a model file)
    the preprocessing options that a file needs."""
    if files:
        p.add_argument("--model", default=None, metavar="NAME|FILE.onnx",
                       help="registry name (see 'keensight models') or an .onnx file, which then needs "
                            "--input-size or --spec (default: efficientnet-lite0, works offline)")
    else:
        p.add_argument("--model", default=None, metavar="NAME",
                       help="a registry model with ImageNet logits (default: efficientnet-lite0)")
    _add_jpeg_draft_arg(p)
    _add_run_args(p)
    if files:
        _add_preprocess_args(p)


def _add_preprocess_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "input preprocessing", "How an image becomes the network's input: required for --model FILE.onnx "
        "(--input-size or --spec at least); for a registry model they replace its own settings. "
        "input = (pixel - mean) / std, pixels 0..255, per channel in the network's channel order.")
    g.add_argument("--spec", type=_spec_file, default=None, metavar="FILE.json",
                   help="a JSON object with keys input_size, resize, color_order, mean, std or scale, "
                        "layout, interpolation (keensight.extract.PreprocessSpec); the options below "
                        "override it")
    g.add_argument("--input-size", type=_size, default=None, metavar="N|HxW",
                   help="the network's input height x width (one number: square)")
    g.add_argument("--resize", type=_positive_int, default=None, metavar="N",
                   help="resize the shorter side to N (>= the input size) and crop the input size from "
                        "the centre (default for a file: stretch the whole image to the input size)")
    g.add_argument("--mean", type=_triple, default=None, metavar="M|R,G,B",
                   help="subtracted per channel, in pixel units (default for a file: 0)")
    scale = g.add_mutually_exclusive_group()
    scale.add_argument("--std", type=_triple, default=None, metavar="S|R,G,B",
                       help="divides per channel after the mean, in pixel units (default for a file: 1)")
    scale.add_argument("--scale", type=_triple, default=None, metavar="S|R,G,B",
                       help="multiplies per channel after the mean instead of --std, e.g. 0.0039215686 "
                            "for 1/255")
    g.add_argument("--layout", type=str.upper, choices=("NCHW", "NHWC"), default=None,
                   help="the input tensor's axes (default for a file: NCHW)")
    order = g.add_mutually_exclusive_group()
    order.add_argument("--rgb", dest="color_order", action="store_const", const="RGB", default=None,
                       help="the network takes RGB channels (default for a file)")
    order.add_argument("--bgr", dest="color_order", action="store_const", const="BGR",
                       help="the network takes BGR channels (OpenCV / Caffe-style models)")
    g.add_argument("--interpolation", choices=("area", "bilinear"), default=None,
                   help="resize filter: area averaging when shrinking (default) or bilinear")


_SPEC_OPTIONS = ("input_size", "resize", "color_order", "mean", "std", "scale", "layout", "interpolation")
# PreprocessSpec.coerce takes one key of each pair: an override of one replaces the other.
_SPEC_ALIASES = {"size": "input_size", "input_size": "size", "scale": "std", "std": "scale"}


def _preprocess_spec(args: argparse.Namespace, base: Optional[Dict[str, Any]]):
    """The PreprocessSpec that the preprocessing options give on top of `base` (the
    model's or a recorded spec, as a dict; None: start from nothing), or None when no
    option was given. Namespaces built by other code may lack the options."""
    from .extract import PreprocessSpec

    overrides: Dict[str, Any] = dict(getattr(args, "spec", None) or {})
    overrides.update({k: getattr(args, k) for k in _SPEC_OPTIONS if getattr(args, k, None) is not None})
    if not overrides:
        return None
    merged = dict(base or {})
    for key, value in overrides.items():
        if key in _SPEC_ALIASES:
            merged.pop(_SPEC_ALIASES[key], None)
        merged[key] = value
    return PreprocessSpec.coerce(merged)


def _registry_spec(model: str) -> Optional[Dict[str, Any]]:
    """A registry model's preprocessing as a dict; None for a model file."""
    from . import models
    from .extract import PreprocessSpec

    if model not in models.list_models():
        return None
    return dataclasses.asdict(PreprocessSpec.from_model_spec(models.get_model_spec(model)))


def _model_name(args: argparse.Namespace) -> str:
    from . import models

    return getattr(args, "model", None) or models.DEFAULT_MODEL


def _extractor(args: argparse.Namespace, outputs: Any, normalize: bool = False, record: Optional[Dict[str, Any]] = None):
    """The Extractor the options describe (`record`: the one that made a features file
    or index, whose model, outputs, preprocessing and JPEG decoding it repeats)."""
    from .extract import Extractor

    if record is not None:
        model, spec, jpeg_draft = record["model"], record["preprocess"], record["jpeg_draft"]
    else:
        model, jpeg_draft = _model_name(args), getattr(args, "jpeg_draft", None)
        own = _registry_spec(model)
        spec = _preprocess_spec(args, own)
        if spec is None and own is None:
            raise CommandError(f"--model {model}: a model file needs its input described: --input-size "
                               "(and --resize, --mean with --std or --scale, --layout, --rgb/--bgr as the "
                               "network expects) or --spec FILE.json")
    return Extractor(model, outputs=outputs, batch_size=args.batch_size, threads=args.threads or None,
                     normalize=normalize, jpeg_draft=jpeg_draft or False, input_spec=spec,
                     streams=getattr(args, "streams", 0) or None, backend=getattr(args, "backend", "auto"))


def _logits_output(model: str) -> str:
    from . import models

    if model in models.list_models():
        return models.get_model_spec(model).outputs[-1]
    raise CommandError(f"--model {model!r}: classify and profile need a registry model with ImageNet "
                       f"logits ({', '.join(models.list_models())})")


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
    feats = {o: np.concatenate(v) if v else np.empty((0,) + extractor.feature_shapes_[o], np.float32)
             for o, v in parts.items()}
    return idx, feats, errors


def _report_errors(command: str, errors: Sequence[Tuple[str, str]]) -> None:
    for path, msg in errors:
        print(f"keensight {command}: skipped {path}: {msg}", file=sys.stderr)


def _status(errors: Sequence[Any]) -> int:
    """The exit code of a command that produced its output: 1 if some inputs failed."""
    return EXIT_INPUTS_FAILED if errors else EXIT_OK


# ---------------------------------------------------------------------------------------
# The extraction record: what determined the features of a file or an index
# ---------------------------------------------------------------------------------------

# Version of the record; a file with another version (or none: keensight before the record
# existed) cannot be resumed, and an index of another version is rebuilt.
RECORD_FORMAT = 1
RECORD_KEY = "extraction"  # the .npz key holding the record as a JSON string


def _extraction_record(ex) -> Dict[str, Any]:
    """Everything the features depend on (the Extractor's ``config``: the model, named
    or by absolute path, and the SHA-256 of the network file actually run, the tensors,
    normalisation, JPEG draft decoding and the preprocessing), as JSON-ready data with
    the record's format. Batch size, threads and streams are left out: results do not
    depend on them."""
    config = ex.config
    record = {"format": RECORD_FORMAT, "model": config["model"], "model_sha256": config["model_sha256"],
              "outputs": config["outputs"], "normalize": all(config["normalize"].values()),
              "jpeg_draft": config["jpeg_draft"], "preprocess": config["input_spec"]}
    return json.loads(json.dumps(record))  # tuples become lists, as when read back


def _check_record(record: Any, source: Path) -> Dict[str, Any]:
    """`record` (parsed JSON) if it is a record of this version, else CommandError."""
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        got = record.get("format") if isinstance(record, dict) else None
        raise CommandError(f"{source}: its record of the extraction options has format {got!r}, this "
                           f"keensight reads format {RECORD_FORMAT}")
    kinds = {"model": str, "model_sha256": str, "outputs": list, "normalize": bool,
             "jpeg_draft": (float, int, type(None)), "preprocess": dict}
    bad = [k for k, kind in kinds.items() if not isinstance(record.get(k), kind)]
    if bad or not record["outputs"] or not all(isinstance(o, str) for o in record["outputs"]):
        raise CommandError(f"{source}: its record of the extraction options is damaged "
                           f"(bad or missing {', '.join(bad) or 'outputs'})")
    return record


def _record_differences(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    """What differs between two records, in words ("normalize: False -> True")."""
    diffs = []
    if old["model_sha256"] != new["model_sha256"]:
        diffs.append(f"model: {old['model']} (SHA-256 {old['model_sha256'][:12]}) -> "
                     f"{new['model']} (SHA-256 {new['model_sha256'][:12]})")
    for key in ("outputs", "normalize", "jpeg_draft"):
        if old[key] != new[key]:
            diffs.append(f"{key}: {old[key]} -> {new[key]}")
    for key in sorted(set(old["preprocess"]) | set(new["preprocess"])):
        a, b = old["preprocess"].get(key), new["preprocess"].get(key)
        if a != b:
            diffs.append(f"preprocessing {key}: {a} -> {b}")
    return diffs


def _check_options_match(args: argparse.Namespace, record: Optional[Dict[str, Any]], source: Path) -> None:
    """Options given on the command line for features that exist already (a features file,
    an index) must agree with how they were extracted (`record`; None: not recorded):
    CommandError otherwise, so that no option is silently ignored."""
    from . import models
    from ._files import file_sha256

    model = getattr(args, "model", None)
    draft = getattr(args, "jpeg_draft", None)
    spec = _preprocess_spec(args, record["preprocess"] if record else None)
    if record is None:
        if model is not None or draft is not None or spec is not None:
            raise CommandError(f"{source} has no record of its extraction options (an older keensight wrote "
                               "it), so --model, --jpeg-draft and the preprocessing options cannot be checked "
                               "against it: leave them out or extract anew")
        return
    problems = []
    if model is not None:
        if model in models.list_models() or record["model"] in models.list_models():
            same = model == record["model"]
        else:
            same = file_sha256(_validate.input_file(model, "--model")) == record["model_sha256"]
        if not same:
            problems.append(f"--model {model} (it was made with {record['model']})")
    if spec is not None and json.loads(json.dumps(dataclasses.asdict(spec))) != record["preprocess"]:
        problems.append("the preprocessing options given")
    if draft is not None and float(draft) != record["jpeg_draft"]:
        problems.append(f"--jpeg-draft {draft} (it was made with {record['jpeg_draft']})")
    if problems:
        raise CommandError(f"{source} was not made with {' and '.join(problems)}: leave these options out "
                           "(they come from the file) or extract anew")


@dataclasses.dataclass
class _FeaturesFile:
    """An .npz written by ``keensight extract``, checked."""

    paths: List[str]
    labels: np.ndarray
    features: Dict[str, np.ndarray]  # output name -> (n, d) float32; the first is "features"
    failed: List[Tuple[str, str]]
    record: Optional[Dict[str, Any]]  # None: written before keensight recorded its options

    @property
    def first(self) -> np.ndarray:
        return next(iter(self.features.values()))


def _read_features_file(path: Path) -> _FeaturesFile:
    """Read and check an extract .npz; CommandError (one line) for anything else."""
    what = f"{path} is not a features file of 'keensight extract'"
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            missing = [k for k in ("paths", "labels", "features") if k not in keys]
            if missing:
                raise CommandError(f"{what}: it has no {', '.join(missing)}")
            record = None
            if RECORD_KEY in keys:
                try:
                    record = _check_record(json.loads(str(f[RECORD_KEY][()])), path)
                except json.JSONDecodeError as e:
                    raise CommandError(f"{path}: its record of the extraction options is not JSON ({e})") from None
            outputs = record["outputs"] if record else [str(o) for o in f["outputs"]] if "outputs" in keys else ["features"]
            names = {o: ("features" if len(outputs) == 1 else f"features_{o}") for o in outputs}
            if any(k not in keys for k in names.values()):
                raise CommandError(f"{what}: it has no {', '.join(k for k in names.values() if k not in keys)}")
            features = {o: f[k] for o, k in names.items()}
            paths, labels = f["paths"], f["labels"]
            failed = list(zip(f["failed"].tolist(), f["errors"].tolist())) if {"failed", "errors"} <= keys else []
    except CommandError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise CommandError(f"{what} ({_one_line(e)})") from None
    if paths.ndim != 1 or paths.dtype.kind != "U" or labels.shape != paths.shape or labels.dtype.kind != "U":
        raise CommandError(f"{what}: paths and labels must be two lists of strings of one length")
    for o, x in features.items():
        if x.ndim != 2 or x.shape[0] != len(paths) or x.dtype.kind != "f":
            raise CommandError(f"{what}: the features of {o!r} have shape {x.shape} and dtype {x.dtype}, "
                               f"expected a float matrix of {len(paths)} rows (one per path)")
        features[o] = _validate.matrix(x, f"{path}: features", allow_empty=True)
    return _FeaturesFile([str(p) for p in paths], labels.astype(str), features, failed, record)


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
    p.add_argument("dir", type=_folder, help="folder of images, searched recursively (sub-folder names "
                                             "become labels)")
    p.add_argument("-o", "--output", type=_output_file, required=True, metavar="FILE.npz",
                   help="features file (.npz) in an existing folder; if it exists, the extraction resumes "
                        "(with the same options only) unless --overwrite")
    p.add_argument("--outputs", type=_names, default=None, metavar="NAME[,NAME...]",
                   help="tensors to save, graph outputs or intermediate ones (default: the model's feature "
                        "output)")
    p.add_argument("--normalize", action="store_true", help="L2-normalise the features")
    p.add_argument("--overwrite", action="store_true", help="start afresh even if the output exists")
    p.add_argument("--checkpoint-every", type=_non_negative_int, default=20, metavar="BATCHES",
                   help="save progress every this many batches, for a resume after an interruption "
                        "(0: only at the end; default 20)")
    _add_model_args(p)


def _save_npz(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    """Write an .npz so that readers see the old file or the complete new one."""
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _feature_key(output: str, outputs: Sequence[str]) -> str:
    """The .npz key of an output's features: "features" for a single output."""
    return "features" if len(outputs) == 1 else f"features_{output}"


def _resumable_rows(args: argparse.Namespace, record: Dict[str, Any], present: Sequence[str]):
    """(paths, features per output) of an existing output file that a resume keeps: the
    file must have been extracted with the same options (`record`), and rows of files no
    longer in the folder (`present`) are dropped, with a note on stderr."""
    try:
        old = _read_features_file(args.output)
    except CommandError as e:
        raise CommandError(f"cannot resume: {e}; use --overwrite to start afresh") from None
    if old.record is None:
        raise CommandError(f"{args.output} was written by an older keensight without a record of its "
                           "extraction options, so resuming could mix features made otherwise; use "
                           "--overwrite to start afresh")
    diffs = _record_differences(old.record, record)
    if diffs:
        raise CommandError(f"{args.output} was extracted with other options ({'; '.join(diffs)}): resume "
                           "with the same options, or use --overwrite to start afresh")
    wanted = set(present)
    keep = [i for i, p in enumerate(old.paths) if p in wanted]
    gone = [p for p in old.paths if p not in wanted]
    if gone:
        shown = ", ".join(gone[:5]) + (f" and {len(gone) - 5} more" if len(gone) > 5 else "")
        print(f"keensight extract: dropped {len(gone)} row(s) of {args.output} whose files are no longer "
              f"in {args.dir}: {shown}", file=sys.stderr)
    return [old.paths[i] for i in keep], {o: x[keep] for o, x in old.features.items()}


def _cmd_extract(args: argparse.Namespace) -> int:
    root: Path = args.dir
    if not root.is_dir():
        raise CommandError(f"{root} is not a folder")
    files = _images_of_folder(root)
    rel = [f.relative_to(root).as_posix() for f in files]
    ex = _extractor(args, args.outputs, normalize=args.normalize)
    names = list(ex.outputs_)
    record = _extraction_record(ex)

    done_paths: List[str] = []
    done_feats: Dict[str, np.ndarray] = {}
    if args.output.exists() and not args.overwrite:
        done_paths, done_feats = _resumable_rows(args, record, rel)
    done = set(done_paths)
    todo = [i for i, r in enumerate(rel) if r not in done]
    if done:
        print(f"keensight extract: {len(done)} image(s) already in {args.output}, "
              f"{len(todo)} to go", file=sys.stderr)

    def save(indices, parts, errors) -> bool:
        """Write what there is (False, writing nothing, when there are no rows yet)."""
        idx = np.concatenate(indices) if indices else np.empty(0, np.int64)
        paths = done_paths + [rel[todo[i]] for i in idx]
        if not paths:
            return False
        arrays: Dict[str, Any] = {
            "paths": np.asarray(paths, dtype=str),
            "labels": np.asarray([_label_of(p) for p in paths], dtype=str),
            "model": np.asarray(record["model"]),
            "outputs": np.asarray(names, dtype=str),
            "failed": np.asarray([rel[todo[i]] for i, _ in errors], dtype=str),
            "errors": np.asarray([m for _, m in errors], dtype=str),
            RECORD_KEY: np.asarray(json.dumps(record)),
        }
        for o in names:
            chunks = ([done_feats[o]] if o in done_feats else []) + list(parts.get(o, []))
            arrays[_feature_key(o, names)] = np.concatenate(chunks)
        if len(names) > 1:
            arrays["features"] = arrays[_feature_key(names[0], names)]
        _save_npz(args.output, arrays)
        return True

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
        return EXIT_INTERRUPTED
    seconds = time.perf_counter() - t0
    failed = [(rel[todo[i]], m) for i, m in errors]
    _report_errors("extract", failed)
    if not save([idx], {o: [f] for o, f in feats.items()}, errors):
        raise CommandError(f"no image could be read; {args.output} not written", EXIT_INPUTS_FAILED)
    n_new = len(idx)
    print(f"keensight extract: {n_new} new image(s) in {seconds:.1f} s "
          f"({n_new / max(seconds, 1e-9):.1f} img/s), {len(done_paths) + n_new} in {args.output}, "
          f"{len(failed)} skipped", file=sys.stderr)
    return _status(failed)


# ---------------------------------------------------------------------------------------
# classify
# ---------------------------------------------------------------------------------------

def _args_classify(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE",
                   help="image files, or folders (searched recursively)")
    p.add_argument("--top-k", type=_positive_int, default=5, metavar="K", help="labels per image (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a list")
    _add_model_args(p, files=False)


def _class_probabilities(logits: np.ndarray) -> np.ndarray:
    """ImageNet class probabilities of each row of logits: the package's one softmax, the
    same numbers :mod:`keensight.profile` sums per category."""
    from ._numeric import softmax

    return softmax(logits, axis=1)


def _cmd_classify(args: argparse.Namespace) -> int:
    from . import models

    files: List[Path] = []
    for p in args.images:
        files.extend(_list_images(p) if p.is_dir() else [p])
    if not files:
        raise CommandError("no images given (the folders hold none)")
    ex = _extractor(args, _logits_output(_model_name(args)))
    classes = models.imagenet_classes()
    idx, feats, errors = _run_with_progress(ex, files, "classify", not args.no_progress)
    logits = feats[ex.outputs_[0]]
    probs = _class_probabilities(logits) if len(idx) else logits
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
    return _status(errors)


# ---------------------------------------------------------------------------------------
# profile
# ---------------------------------------------------------------------------------------

def _args_profile(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", type=_folder, help="folder of photos (searched recursively)")
    p.add_argument("--json", type=_output_file, default=None, metavar="OUT",
                   help="also write the profile as JSON to OUT (in an existing folder)")
    _add_model_args(p, files=False)


def _cmd_profile(args: argparse.Namespace) -> int:
    from . import models, profile

    if not args.dir.is_dir():
        raise CommandError(f"{args.dir} is not a folder")
    files = _images_of_folder(args.dir)
    ex = _extractor(args, _logits_output(_model_name(args)))
    idx, feats, errors = _run_with_progress(ex, files, "profile", not args.no_progress)
    _report_errors("profile", [(str(files[i]), m) for i, m in errors])
    if not len(idx):
        raise CommandError("no image could be read", EXIT_INPUTS_FAILED)
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
            "folder": str(args.dir), "model": _model_name(args), "n_images": int(len(idx)),
            "categories": {name: {"count": int(counts[k]), "share": shares[name]}
                           for k, name in enumerate(profile.CATEGORIES)},
            "images": [{"path": files[i].relative_to(args.dir).as_posix(),
                        "category": profile.CATEGORIES[best[r]], "confidence": float(confidence[r]),
                        "top_class": classes[int(logits[r].argmax())]} for r, i in enumerate(idx)],
            "failed": [{"path": files[i].relative_to(args.dir).as_posix(), "error": m} for i, m in errors],
        }
        _write_json(args.json, doc)
    return _status(errors)


# ---------------------------------------------------------------------------------------
# bench
# ---------------------------------------------------------------------------------------

def _args_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", type=_folder, default=None,
                   help="benchmarks folder (default: benchmarks/ of the source checkout)")
    p.add_argument("--only", default=None, metavar="NAME[,NAME...]",
                   help="comma-separated report names, e.g. report,report_extract")
    p.add_argument("extra", nargs=argparse.REMAINDER,
                   help="arguments passed on to every report script, after '--' (e.g. the short CNN "
                        "comparison: --only report_nn -- --sections networks --networks lite0 --batch 1 --threads 1)")


def _cmd_bench(args: argparse.Namespace) -> int:
    folder = args.dir or Path(__file__).resolve().parents[2] / "benchmarks"
    scripts = sorted(folder.glob("report*.py")) if folder.is_dir() else []
    if args.only:
        wanted = {s.strip() for s in args.only.split(",")}
        scripts = [s for s in scripts if s.stem in wanted]
    if not scripts:
        raise CommandError(f"no report*.py scripts in {folder} (the benchmarks ship with the source "
                           "checkout, not the wheel; pass --dir)")
    failed = []
    for script in scripts:
        print(f"## {script.name}\n", flush=True)
        # The report prints its own tables; they stream straight to our stdout.
        # argparse keeps the "--" that separates the scripts' options from ours.
        extra = list(args.extra[1:] if args.extra[:1] == ["--"] else args.extra)
        rc = subprocess.call([sys.executable, str(script)] + extra, cwd=str(folder))
        if rc != 0:
            print(f"keensight bench: {script.name} exited with {rc}", file=sys.stderr)
            failed.append(script.name)
        print(flush=True)
    return _status(failed)


# ---------------------------------------------------------------------------------------
# evaluate, index
# ---------------------------------------------------------------------------------------

def _folder_features(command: str, args: argparse.Namespace, normalize: bool = True):
    """(paths, labels, features, record, errors) of a folder (extracted now) or of an
    extract .npz (whose first output is taken; `record` is None for a file written before
    keensight recorded its options)."""
    src: Path = args.dir
    if src.is_file():
        if src.suffix != ".npz":
            raise CommandError(f"{src} is neither a folder of images nor a features .npz of 'keensight extract'")
        ff = _read_features_file(src)
        if not ff.paths:
            raise CommandError(f"{src} holds no features")
        _check_options_match(args, ff.record, src)
        feats = ff.first
        if normalize:
            from ._numeric import l2_normalize

            feats = l2_normalize(feats, axis=1)
        record = dict(ff.record, outputs=ff.record["outputs"][:1]) if ff.record else None
        return ff.paths, ff.labels, feats, record, []
    if not src.is_dir():
        raise CommandError(f"{src} is neither a folder of images nor a features .npz")
    files = _images_of_folder(src)
    ex = _extractor(args, None, normalize=normalize)
    idx, feats, errors = _run_with_progress(ex, [str(f) for f in files], command, not args.no_progress)
    _report_errors(command, [(files[i].relative_to(src).as_posix(), m) for i, m in errors])
    if not len(idx):
        raise CommandError("no image could be read", EXIT_INPUTS_FAILED)
    rel = [files[i].relative_to(src).as_posix() for i in idx]
    return rel, np.asarray([_label_of(r) for r in rel]), feats[ex.outputs_[0]], _extraction_record(ex), errors


# The lecture's comparison, keensight.evaluate's default (a module attribute, so tests can
# substitute the classifiers).
_classifiers = default_classifiers


def _args_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", type=_folder_or_file,
                   help="folder-per-class images, or a features .npz from 'extract' (its first output)")
    p.add_argument("--test-size", type=_fraction, default=0.3, metavar="FRACTION",
                   help="share of each class used as queries, in (0, 1) (default 0.3)")
    p.add_argument("--repeats", type=_positive_int, default=3, metavar="N",
                   help="random gallery/query splits, averaged (default 3)")
    p.add_argument("--seed", type=_non_negative_int, default=0,
                   help="seed of the first split; split r uses seed + r (default 0)")
    p.add_argument("-m", type=_positive_int, default=32,
                   help="SequentialClassifier: PCA components per granule (default 32)")
    p.add_argument("--json", type=_output_file, default=None, metavar="OUT",
                   help="also write the table as JSON to OUT (in an existing folder)")
    _add_model_args(p)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    _, labels, feats, _, errors = _folder_features("evaluate", args)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        raise CommandError("need at least two classes with two images each (sub-folders)")
    if not 0 < args.test_size < 1 or args.repeats < 1:
        raise CommandError("--test-size must be in (0, 1) and --repeats >= 1")
    try:
        result = _evaluate(feats, labels, test_size=args.test_size, repeats=args.repeats, seed=args.seed,
                           timed_calls=TIMED_CALLS,
                           classifiers=lambda n_features, n_gallery: _classifiers(n_features, n_gallery, args.m))
    except SplitError as e:
        raise CommandError(f"cannot split {len(labels)} images of {len(classes)} classes with "
                           f"--test-size {args.test_size}: {e.reason}") from None
    print(f"{result.n_images} images, {len(result.classes)} classes, {result.n_features}-d features, "
          f"{result.repeats} split(s) of {100 * (1 - result.test_size):.0f}% gallery / "
          f"{100 * result.test_size:.0f}% queries")
    print("\n| classifier | accuracy % | ms per query |\n| --- | --- | --- |")
    table = []
    for row in result.rows:
        acc = 100.0 * np.array(row.split_accuracies)
        print(f"| {row.classifier} | {acc.mean():.2f} ± {acc.std():.2f} | {row.ms_per_query:.4f} |")
        table.append({"classifier": row.classifier, "accuracy_mean": acc.mean(), "accuracy_std": acc.std(),
                      "ms_per_query": row.ms_per_query})
    print(f"\n(ms per query: median of {result.timed_calls} calls after a warm-up call, mean over the splits)")
    if args.json is not None:
        _write_json(args.json, {"images": result.n_images, "classes": result.classes, "table": table,
                                "timing": f"median of {result.timed_calls} warm calls per split, mean over splits"})
    return _status(errors)


def _write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (a temporary file in the same folder, then rename)."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, default=float).encode("utf-8")))


# Version of the index sidecar (<index>.json): 2 records how the features were extracted.
INDEX_FORMAT = 2


def _args_index(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION", help="build or search")
    b = sub.add_parser("build", help="index the images of a folder (HNSW over CNN features)",
                       description="Index the images of a folder (HNSW over CNN features).", epilog=_SUB_EPILOG)
    b.add_argument("dir", type=_folder_or_file,
                   help="folder of images, or a features .npz from 'extract' (its first output is indexed)")
    b.add_argument("-o", "--output", type=_output_file, required=True, metavar="FILE",
                   help="index file, in an existing folder; FILE.json beside it holds the image paths and "
                        "how their features were extracted (search repeats it for the queries)")
    b.add_argument("-M", type=_positive_int, default=16,
                   help="HNSW links per node, 2..2048 (default 16)")
    b.add_argument("--ef-construction", type=_positive_int, default=200, metavar="EF",
                   help="HNSW candidate list while building (default 200)")
    _add_model_args(b)
    s = sub.add_parser("search", help="the images of an index most similar to query images",
                       description="The images of an index most similar to query images; the queries' "
                                   "features are extracted as the index's were.", epilog=_SUB_EPILOG)
    s.add_argument("index", type=_input_file, help="index file written by 'keensight index build'")
    s.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="query image files")
    s.add_argument("-k", type=_positive_int, default=5,
                   help="neighbours per query, at most the number of indexed images (default 5)")
    s.add_argument("--ef", type=_positive_int, default=64,
                   help="HNSW candidate list while searching; at least k is used (default 64)")
    s.add_argument("--json", action="store_true", help="print JSON instead of a list")
    s.add_argument("--model", default=None, metavar="NAME|FILE.onnx",
                   help="a check only: the queries always use the index's model, and a different one "
                        "is refused (default: the index's)")
    _add_run_args(s)


def _read_sidecar(index_path: Path) -> Dict[str, Any]:
    """The checked sidecar of an index: paths, labels and the extraction record."""
    sidecar = index_path.with_name(index_path.name + ".json")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CommandError(f"cannot open {index_path}: its sidecar {sidecar} (the image paths and "
                           "extraction options) is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CommandError(f"cannot open {index_path}: {sidecar}: {_one_line(e)}") from None
    if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else None
        raise CommandError(f"cannot open {index_path}: {sidecar} has format {got!r}, this keensight reads "
                           f"format {INDEX_FORMAT} (rebuild the index with 'keensight index build')")
    paths, labels = meta.get("paths"), meta.get("labels")
    if (not isinstance(paths, list) or not isinstance(labels, list) or len(paths) != len(labels)
            or not all(isinstance(x, str) for x in paths + labels)):
        raise CommandError(f"cannot open {index_path}: {sidecar} must list the paths and labels of the "
                           "images, two lists of strings of one length")
    meta["extraction"] = _check_record(meta.get("extraction"), sidecar)
    return meta


def _cmd_index(args: argparse.Namespace) -> int:
    if args.action == "build":
        return _index_build(args)
    return _index_search(args)


def _index_build(args: argparse.Namespace) -> int:
    from .search import HNSWIndex

    HNSWIndex(1, "cosine", M=args.M, ef_construction=args.ef_construction)  # bad values: before the extraction
    paths, labels, feats, record, errors = _folder_features("index build", args)
    if record is None:
        raise CommandError(f"{args.dir} has no record of its extraction options (an older keensight wrote "
                           "it), which an index needs to extract its queries alike: extract it anew")
    index = HNSWIndex(feats.shape[1], "cosine", M=args.M, ef_construction=args.ef_construction)
    index.add(feats)
    index.save(args.output)
    _write_json(args.output.with_name(args.output.name + ".json"),
                {"format": INDEX_FORMAT, "extraction": record, "paths": paths, "labels": labels.tolist()})
    print(f"keensight index: {len(paths)} images -> {args.output}")
    return _status(errors)


def _index_search(args: argparse.Namespace) -> int:
    from .search import HNSWIndex

    meta = _read_sidecar(args.index)
    try:
        index = HNSWIndex.load(args.index)
    except (OSError, ValueError) as e:
        raise CommandError(f"cannot open {args.index}: {_one_line(e)}") from None
    paths, record = meta["paths"], meta["extraction"]
    if len(index) != len(paths):
        raise CommandError(f"cannot open {args.index}: it holds {len(index)} vectors but its sidecar lists "
                           f"{len(paths)} images (the two files do not belong together; rebuild the index)")
    _check_options_match(args, record, args.index)
    ex = _extractor(args, record["outputs"][:1], normalize=True, record=record)
    if ex.model_sha256_ != record["model_sha256"]:
        raise CommandError(f"the model file {ex.model_path_} is not the one {args.index} was built with "
                           f"(SHA-256 {record['model_sha256'][:12]}...): rebuild the index")
    idx, feats, errors = _run_with_progress(ex, [str(p) for p in args.images], "index", False)
    _report_errors("index search", [(str(args.images[i]), m) for i, m in errors])
    if not len(idx):
        raise CommandError("no readable query image", EXIT_INPUTS_FAILED)
    queries = feats[ex.outputs_[0]]
    if queries.shape[1] != index.dim:
        raise CommandError(f"the queries' {record['outputs'][0]} features have {queries.shape[1]} values, "
                           f"the vectors of {args.index} {index.dim}: rebuild the index")
    k = min(args.k, len(paths))
    dist, ids = index.search(queries, k, ef=max(args.ef, k))
    out = []
    for qi, row_d, row_i in zip(idx, dist, ids):
        hits = [{"path": paths[i], "label": meta["labels"][i], "distance": float(d)}
                for d, i in zip(row_d, row_i) if i >= 0]
        out.append({"query": str(args.images[qi]), "neighbors": hits})
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for entry in out:
            print(entry["query"])
            for h in entry["neighbors"]:
                print(f"  {h['distance']:.4f}  {h['path']}")
    return _status(errors)


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
    p = _Parser(prog="keensight", description="keensight: efficient image recognition on CPUs",
                epilog=EXIT_STATUS, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"keensight {keensight.__version__}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do:")
    for name, help_text, add_args, run in COMMANDS:
        sp = sub.add_parser(name, help=help_text, description=help_text, epilog=_SUB_EPILOG)
        add_args(sp)
        sp.set_defaults(run=run)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command; returns its exit code (see :data:`EXIT_STATUS`)."""
    args = build_parser().parse_args(argv)
    command = " ".join(["keensight", args.command] + ([args.action] if getattr(args, "action", None) else []))
    try:
        status = args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return status
    except BrokenPipeError:
        # The reader of stdout went away (`| head`). Point stdout at /dev/null so that the
        # interpreter's own flush at exit does not fail again, and stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except CommandError as e:
        print(f"{command}: {_one_line(e)}", file=sys.stderr)
        return e.code
    except (ValueError, TypeError, OSError) as e:  # the package's errors for bad input or files
        print(f"{command}: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception:
        traceback.print_exc()
        print(f"{command}: internal error (a bug in keensight; please report it with the traceback above)",
              file=sys.stderr)
        return EXIT_INTERNAL
