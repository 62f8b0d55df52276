"""A validator that dies like a decoder crash or the OOM killer on marked images (imported by the
spawned validation processes of test_download.py's poison-image test)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from goz.download.validate import validate_and_store

POISON = b"goz test: this image kills its decoder"
KILLS_ONCE = b"goz test: this image's decoder is killed once"
KILL_ONCE_FLAG = "GOZ_TEST_KILL_ONCE_FLAG"  # env: a file whose presence arms the one-time kill


def killing_validate_and_store(data: bytes, *args, **kwargs):
    """validate_and_store, except that POISON always, and KILLS_ONCE once, SIGKILL this process."""
    if POISON in data:
        os.kill(os.getpid(), signal.SIGKILL)
    flag = Path(os.environ.get(KILL_ONCE_FLAG, "/nonexistent"))
    if KILLS_ONCE in data and flag.exists():
        flag.unlink()
        os.kill(os.getpid(), signal.SIGKILL)
    return validate_and_store(data, *args, **kwargs)
