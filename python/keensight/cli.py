"""The ``keensight`` command line.

``keensight info`` prints the CPU features and SIMD level in use;
``keensight demo`` runs every filter on a built-in test image and prints a table
of times (with OpenCV's side by side when ``cv2`` is installed).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable, List, Optional, Sequence

import numpy as np

import keensight


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="keensight", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="CPU features and the SIMD level in use (JSON)")
    d = sub.add_parser("demo", help="run the filters on a built-in test image and time them")
    d.add_argument("--width", type=int, default=1920)
    d.add_argument("--height", type=int, default=1080)
    d.add_argument("--repeat", type=int, default=5)
    d.add_argument("--threads", type=int, default=0, help="0: all cores")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "info":
        json.dump(keensight.cpu_info(), sys.stdout, indent=2)
        print()
        return 0
    if args.width <= 0 or args.height <= 0 or args.repeat <= 0:
        print("keensight demo: --width, --height and --repeat must be positive", file=sys.stderr)
        return 2
    return _demo(args)
