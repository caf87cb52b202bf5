"""Benchmarks are run explicitly (``python -m pytest benchmarks/ --benchmark-only``), never by
the test suite (pyproject's testpaths is ["tests"]). Makes ``workloads`` importable in any
import mode."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
