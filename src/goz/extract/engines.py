"""Engines that turn pending classes into committed classes: `local` (DataLoader) and `ray` (Ray Data).

Both feed a ClassCollector, which gathers features per class and commits a class through the
StoreWriter as soon as its last image (decoded or skipped) has come back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from goz.errors import GozError
from goz.extract.backbone import Backbone
from goz.extract.dataset import (
    DEFAULT_MAX_PIXELS,
    ClassImages,
    ImageDataset,
    LoadedBatch,
    collate,
)
from goz.lifeline import worker_init


class ClassCollector:
    """Features arrive per sample (in any order); a class goes to `commit(wnid, features, ids, skipped)`
    once all its samples are in (rows in file order; `skipped` maps a file relative to `root` to a reason)."""

    def __init__(self, classes: list[ClassImages], root: Path, dim: int,
                 commit: Callable[[str, np.ndarray, np.ndarray, dict[str, str]], None]):
        self.classes = classes
        self.dim = dim
        self.commit = commit
        self.files = [(position, image) for position, c in enumerate(classes) for image in c.files]
        self.relative = [image.path.relative_to(root).as_posix() for _, image in self.files]
        self.remaining = [len(c.files) for c in classes]
        self.rows: dict[int, dict[int, np.ndarray]] = {}
        self.skipped: dict[int, dict[str, str]] = {}

    @property
    def paths(self) -> list[Path]:
        return [image.path for _, image in self.files]

    def add(self, indices: np.ndarray, features: np.ndarray, failures: list[tuple[int, str]]) -> None:
        for index, row in zip(indices.tolist(), features):
            self.rows.setdefault(self.files[index][0], {})[index] = row
        for index, reason in failures:
            self.skipped.setdefault(self.files[index][0], {})[self.relative[index]] = reason
        for index in [*indices.tolist(), *(i for i, _ in failures)]:
            position = self.files[index][0]
            self.remaining[position] -= 1
            if self.remaining[position] == 0:
                self._commit(position)

    def _commit(self, position: int) -> None:
        rows = self.rows.pop(position, {})
        order = sorted(rows)
        features = np.stack([rows[i] for i in order]) if order else np.empty((0, self.dim), np.float32)
        ids = np.array([self.files[i][1].image_id for i in order], dtype=np.int64)
        self.commit(self.classes[position].wnid, features, ids, self.skipped.pop(position, {}))


def run_local(collector: ClassCollector, backbone: Backbone, *, batch_size: int, workers: int,
              max_pixels: int = DEFAULT_MAX_PIXELS, gpu_decode: bool = False, progress: bool = True) -> None:
    """Decoding in DataLoader workers, pinned batches streamed to the device, one forward per batch."""
    dataset = ImageDataset(collector.paths, backbone.transform, max_pixels, raw_jpeg=gpu_decode)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate,
        pin_memory=backbone.device.type == "cuda", prefetch_factor=4 if workers else None,
        worker_init_fn=worker_init)  # workers die with the run, even on kill -9 (goz.lifeline)
    with tqdm(total=len(dataset), unit="img", disable=not progress, desc="extract") as bar:
        for batch in loader:
            indices, features, failures = _forward(batch, backbone)
            collector.add(indices, features, failures)
            bar.update(len(indices) + len(failures))


def _forward(batch: LoadedBatch, backbone: Backbone) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    indices, pixels, failures = batch.indices.tolist(), [], list(batch.failures)
    if len(indices):
        pixels.append(batch.pixels.to(backbone.device, non_blocking=True))
    if batch.jpegs:
        decoded, reasons = backbone.decode_jpegs(batch.jpegs)
        for index, image, reason in zip(batch.jpeg_indices, decoded, reasons):
            if image is None:
                failures.append((index, reason))
            else:
                indices.append(index)
                pixels.append(image.unsqueeze(0))
    if not indices:
        return np.empty(0, np.int64), np.empty((0, backbone.dim), np.float32), failures
    return np.array(indices, dtype=np.int64), backbone.features(torch.cat(pixels)), failures


def run_ray(collector: ClassCollector, backbone: Backbone, *, batch_size: int, num_gpus: float = 0,
            actors: int = 1, ray_address: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
            progress: bool = True) -> None:
    """Ray Data: decode and preprocess in CPU tasks, inference in (GPU) actors, commits on the driver.

    IMAGES must be at the same path on every node (a shared file system). The driver receives
    only 2048 floats per image, and writes the per-class parts that are merged into the store.
    """
    try:
        import ray
        import ray.data
    except ImportError:
        raise GozError("the ray engine needs Ray: pip install 'goz[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    # In-order output completes classes one after another, so the driver holds about one class at a time.
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    items = [{"index": index, "path": str(path)} for index, path in enumerate(collector.paths)]
    dataset = ray.data.from_items(items, override_num_blocks=max(1, len(items) // (4 * batch_size)))
    pixels = dataset.map_batches(_ray_preprocess, batch_size=batch_size, num_cpus=1, fn_kwargs={
        "transform": backbone.transform, "crop_size": backbone.preprocessing.crop_size[0], "max_pixels": max_pixels})
    features = pixels.map_batches(
        _RayInference, fn_constructor_kwargs={"backbone": [ray.put(backbone.to("cpu"))],
                                              "device": "cuda" if num_gpus else "cpu"},
        batch_size=batch_size, compute=ray.data.ActorPoolStrategy(min_size=actors, max_size=actors),
        num_gpus=num_gpus or None)
    with tqdm(total=len(items), unit="img", disable=not progress, desc="extract (ray)") as bar:
        for batch in features.iter_batches(batch_size=None, batch_format="numpy"):
            failed = batch["reason"] != ""
            failures = list(zip(batch["index"][failed].tolist(), batch["reason"][failed].tolist()))
            collector.add(batch["index"][~failed], batch["features"][~failed], failures)
            bar.update(len(batch["index"]))


def _ray_preprocess(batch: dict[str, np.ndarray], transform: Callable, crop_size: int,
                    max_pixels: int) -> dict[str, np.ndarray]:
    """Ray Data CPU stage: files -> uint8 crops (zeros and a reason for skipped files)."""
    dataset = ImageDataset([Path(p) for p in batch["path"]], transform, max_pixels)
    loaded = collate([dataset[i] for i in range(len(dataset))])
    pixels = np.zeros((len(dataset), 3, crop_size, crop_size), np.uint8)
    reasons = np.full(len(dataset), "", dtype=object)
    if len(loaded.indices):
        pixels[loaded.indices.numpy()] = loaded.pixels.numpy()
    for i, reason in loaded.failures:
        reasons[i] = reason
    return {"index": batch["index"], "pixels": pixels, "reason": reasons}


class _RayInference:
    """Ray Data actor stage: pixels -> features, on the actor's GPU when it has one."""

    def __init__(self, backbone: list, device: str):
        import ray

        self.backbone: Backbone = ray.get(backbone[0]).to(device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = batch["reason"] == ""
        features = np.zeros((len(ok), self.backbone.dim), np.float32)
        if ok.any():
            features[ok] = self.backbone.features(torch.from_numpy(batch["pixels"][ok]))
        return {"index": batch["index"], "features": features, "reason": batch["reason"]}
