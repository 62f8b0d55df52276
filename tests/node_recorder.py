"""A preprocessing transform that records which Ray node ran it (for the multi-node cluster tests)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path


class NodeRecordingTransform:
    """Wraps a transform; each call touches `<folder>/<node id>-<random>` and waits `delay` seconds."""

    def __init__(self, transform, folder: str, delay: float = 0.0):
        self.transform, self.folder, self.delay = transform, folder, delay

    def __getattr__(self, name):  # resize_size, crop_size, mean, std... of the wrapped transform
        if name in ("transform", "folder", "delay"):  # not set yet while unpickling
            raise AttributeError(name)
        return getattr(self.transform, name)

    def __call__(self, image):
        import ray
        node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else f"local{os.getpid()}"
        (Path(self.folder) / f"{node}-{uuid.uuid4().hex}").touch()
        time.sleep(self.delay)
        return self.transform(image)
