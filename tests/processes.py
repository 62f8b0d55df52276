"""Checking that no process of a killed run is left behind (psutil)."""

from __future__ import annotations

import psutil


def survivors(processes: list[psutil.Process], timeout: float = 15.0) -> list[str]:
    """The processes still alive after `timeout` seconds (as 'pid cmdline'); the rest are reaped if ours."""
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    described = []
    for process in alive:
        try:
            described.append(f"{process.pid} {' '.join(process.cmdline())[:200]}")
            process.kill()  # leave nothing running, even when the test fails
        except psutil.Error:
            continue
    return described
