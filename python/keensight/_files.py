"""Atomic file writes, shared by everything the package writes (model cache, downloads,
feature files, reports): readers see the old file or the complete new one, never a part."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Union

PathLike = Union[str, "os.PathLike[str]"]

FILE_MODE = 0o644  # mkstemp creates 0600; written files are readable like any other


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None], suffix: str = ".tmp") -> None:
    """Run ``write(f)`` on a temporary file beside `path`, flush it to disk, then rename it
    over `path`. On any exception (from `write` too) the temporary file is removed and
    `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
