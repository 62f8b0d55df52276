"""Child processes that die with their parent: nothing of a run outlives a `kill -9` of it.

A SIGKILLed process cannot clean up, and the workers of a ProcessPoolExecutor or a DataLoader
block on a queue whose write end they hold themselves, so they would wait forever under PID 1
(and keep multiprocessing's resource tracker alive with them). `die_with_parent` is the
initializer of every pool goz starts: on Linux the kernel kills the child when its parent dies
(prctl PR_SET_PDEATHSIG); everywhere a watchdog thread exits the child once its parent pid
changes (the fallback, and the guard for a parent that died before prctl ran).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
WATCH_SECONDS = 0.5


def die_with_parent(parent_pid: int | None = None) -> None:
    """Makes this (child) process exit when `parent_pid` (default: its current parent) dies."""
    parent_pid = parent_pid or os.getppid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl (an unusual libc): the watchdog alone does it
            pass
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), name="goz-lifeline", daemon=True).start()


def _watch(parent_pid: int) -> None:
    stop = threading.Event()
    while not stop.wait(WATCH_SECONDS):
        if os.getppid() != parent_pid:  # reparented: the parent is gone
            os._exit(1)


def worker_init(_worker_id: int = 0) -> None:
    """`die_with_parent` with the signature of a DataLoader `worker_init_fn`."""
    die_with_parent()
