"""kill -9 of `goz extract` leaves no process behind (its DataLoader decode workers die with it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

import checkout
from extract_helpers import make_tree, random_resnet50_file
from processes import survivors


def test_kill_9_of_extract_leaves_no_worker(tmp_path):
    weights = random_resnet50_file(tmp_path / "resnet50_random.pth")
    images = make_tree(tmp_path / "images", {f"n0000000{i}": 6 for i in range(1, 7)}, size=(300, 200))
    command = [sys.executable, "-m", "goz", "extract", str(images), str(tmp_path / "f.h5"), "--weights-file",
               str(weights), "--batch-size", "1", "--workers", "2", "--quiet"]
    process = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(checkout.SRC)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: list[psutil.Process] = []
    deadline = time.monotonic() + 120
    while len(children) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
        children = psutil.Process(process.pid).children(recursive=True)
    time.sleep(0.5)
    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run ended before it was killed"
    assert len(children) >= 2, children  # the two decode workers
    assert not survivors(children, timeout=3)  # at once, not at torch's 5-second watchdog
