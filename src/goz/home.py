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


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Writes `text` (utf-8) to a temporary name beside `path`, then renames: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    return path


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
