"""Files: atomic writes, shared by everything the package writes (model cache, downloads,
feature files, reports): readers see the old file or the complete new one, never a part;
and the one SHA-256 of files and bytes (model identity, cache checks)."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Union

from . import _validate

PathLike = Union[str, "os.PathLike[str]"]

FILE_MODE = 0o644  # mkstemp creates 0600; written files are readable like any other

# Read size for hashing: large enough that the per-call overhead vanishes, small enough
# that a model file is never held in memory whole.
HASH_CHUNK_BYTES = 1 << 20


def bytes_sha256(data: Union[bytes, bytearray, memoryview]) -> str:
    """Lower-case hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: PathLike, chunk_bytes: int = HASH_CHUNK_BYTES) -> str:
    """Lower-case hex SHA-256 of the file at `path`, read `chunk_bytes` at a time
    (equal to :func:`bytes_sha256` of its contents)."""
    chunk_bytes = _validate.integer(chunk_bytes, "chunk_bytes", low=1)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None], suffix: str = ".tmp") -> None:
    """Run ``write(f)`` on a temporary file beside `path`, flush it to disk, then rename it
    over `path`. On any exception (from `write` too) the temporary file is removed and
    `path` is left as it was.

    The temporary file gets a random name and is created exclusively (``mkstemp``:
    O_CREAT | O_EXCL, mode 0600), so a file or symlink planted beside `path` is never
    opened or followed; the rename replaces a symlink at `path` itself, not its target.
    The folder of `path` must exist (FileNotFoundError otherwise): the package never
    creates the parent folders of a file the caller names (the model cache creates its
    own folder)."""
    path = Path(_validate.output_file(path, "path"))
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
