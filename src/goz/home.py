"""Where goz keeps its data (GOZ_HOME) and the local-file primitives every stage shares.

Atomic writes (readers never see half a file), sha256 of a file, and a lock file that serialises
two processes writing the same destination. Downloads of published files are in `goz.assets.http`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

CHUNK_BYTES = 1 << 20

log = logging.getLogger(__name__)


def data_home() -> Path:
    """GOZ_HOME if set, else $XDG_CACHE_HOME/goz, else ~/.cache/goz."""
    if os.environ.get("GOZ_HOME"):
        return Path(os.environ["GOZ_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "goz"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed over `path` when the block succeeds, removed when it
    fails: readers never see half a file, and a killed writer leaves the old file whole.

    The temporary is `<name>.tmp`, so that no glob of the real suffix (`*.json`) ever picks it up; writers that
    choose a format by suffix are told the format (numpy: write to an open handle; matplotlib: `format=`).
    Its directory is created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.tmp")
    try:
        yield temporary
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Writes `data` to a temporary name beside `path`, then renames: readers never see half a file."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Writes `text` (utf-8) atomically, as `write_bytes_atomic`."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def file_lock(destination: Path) -> Iterator[None]:
    """Held while a file is fetched or installed: a second process waits, then finds it done."""
    lock = filelock.FileLock(destination.with_name(f".{destination.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        log.info("waiting for another goz process fetching %s", destination)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
