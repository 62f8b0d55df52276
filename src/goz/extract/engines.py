"""Engines that turn pending classes into committed classes: `local` (DataLoader) and `ray` (Ray Data).

Both feed a ClassCollector, which gathers features per class and commits a class through the
StoreWriter as soon as its last image (decoded or skipped) has come back.

Batches never mix classes: a class's images are cut into batches from its first image
(`ClassCollector.batches`), so its features do not depend on which other classes a run holds nor
where a killed run stopped, and a resumed extraction is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from goz.errors import GozError
from goz.extract.backbone import Backbone
from goz.extract.dataset import (
    DEFAULT_MAX_PIXELS,
    ClassImages,
    ImageDataset,
    ImageRef,
    LoadedBatch,
    collate,
)
from goz.lifeline import worker_init
from goz.progress import progress_bar


class ClassCollector:
    """Features arrive per sample (in any order); a class goes to `commit(wnid, features, ids, skipped)`
    once all its samples are in (rows in name order; `skipped` maps an image's name to a reason)."""

    def __init__(self, classes: list[ClassImages], dim: int,
                 commit: Callable[[str, np.ndarray, np.ndarray, dict[str, str]], None]):
        self.classes = classes
        self.dim = dim
        self.commit = commit
        self.files = [(position, image) for position, c in enumerate(classes) for image in c.files]
        self.relative = [image.name for _, image in self.files]
        self.remaining = [len(c.files) for c in classes]
        self.rows: dict[int, dict[int, np.ndarray]] = {}
        self.skipped: dict[int, dict[str, str]] = {}

    @property
    def images(self) -> list[ImageRef]:
        return [image for _, image in self.files]

    def batches(self, batch_size: int) -> list[list[int]]:
        """Indices in batches of at most `batch_size`, each within one class, cut from the class's first image."""
        out, start = [], 0
        for images in self.classes:
            n = len(images.files)
            out += [list(range(start + i, start + min(i + batch_size, n))) for i in range(0, n, batch_size)]
            start += n
        return out

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
    dataset = ImageDataset(collector.images, backbone.transform, max_pixels, raw_jpeg=gpu_decode)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=collector.batches(batch_size), num_workers=workers, collate_fn=collate,
        pin_memory=backbone.device.type == "cuda", prefetch_factor=4 if workers else None,
        worker_init_fn=worker_init)  # workers die with the run, even on kill -9 (goz.lifeline)
    with progress_bar(total=len(dataset), unit="img", enabled=progress, desc="extract") as bar:
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
    """Ray Data: decode and preprocess in CPU tasks (one per tar, shard or class folder), inference in
    (GPU) actors one class batch at a time, commits on the driver.

    IMAGES must be at the same path on every node (a shared file system). The batches are the
    local engine's (`ClassCollector.batches`), so both engines give the same numbers; the driver
    receives only the features, and writes the per-class parts that are merged into the store.
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
    units = _work_units(collector, batch_size)
    if not units:  # a resumed run with every class committed (Ray Data refuses an empty dataset)
        return
    dataset = ray.data.from_items(units, override_num_blocks=len(units))
    pixels = dataset.map_batches(_ray_preprocess, batch_size=1, num_cpus=1, fn_kwargs={
        "transform": backbone.transform, "batch_size": batch_size, "crop_size": backbone.crop_size,
        "max_pixels": max_pixels})
    features = pixels.map_batches(
        _RayInference, fn_constructor_kwargs={"backbone": [ray.put(backbone.to("cpu"))],
                                              "device": "cuda" if num_gpus else "cpu"},
        batch_size=1, compute=ray.data.ActorPoolStrategy(min_size=actors, max_size=actors),
        num_gpus=num_gpus or None)
    with progress_bar(total=len(collector.files), unit="img", enabled=progress, desc="extract (ray)") as bar:
        for batch in features.iter_batches(batch_size=None, batch_format="numpy"):
            for indices, rows, reasons in zip(batch["index"], batch["features"], batch["reasons"]):
                reasons = json.loads(reasons)
                done = indices >= 0
                ok = done & np.array([reason == "" for reason in reasons] + [False] * (len(indices) - len(reasons)))
                failures = [(int(i), r) for i, r in zip(indices.tolist(), reasons) if i >= 0 and r]
                collector.add(indices[ok], rows[ok], failures)
                bar.update(int(done.sum()))


def _work_units(collector: ClassCollector, batch_size: int) -> list[dict[str, str]]:
    """One item per tar, shard, Parquet file or class folder (the file of a class's first image, or its folder):
    the batches of its classes, each image as [index, file, offset, size, name, row group, row] (JSON: a plain
    column)."""
    units: dict[str, list] = {}
    for batch in collector.batches(batch_size):
        first = collector.files[batch[0]][1]
        unit = first.file if first.size >= 0 or first.row >= 0 else str(Path(first.file).parent)
        units.setdefault(unit, []).append([[i, *_ref_fields(collector.files[i][1])] for i in batch])
    return [{"unit": unit, "batches": json.dumps(batches)} for unit, batches in units.items()]


def _ref_fields(image: ImageRef) -> list:
    return [image.file, image.offset, image.size, image.name, image.row_group, image.row]


def _ray_preprocess(unit: dict[str, np.ndarray], transform: Callable, batch_size: int, crop_size: int,
                    max_pixels: int) -> dict[str, np.ndarray]:
    """Ray Data CPU stage: one unit -> one row per batch: indices (-1 padded), uint8 crops, reasons (JSON)."""
    batches = json.loads(unit["batches"][0])
    indices = np.full((len(batches), batch_size), -1, np.int64)
    pixels = np.zeros((len(batches), batch_size, 3, crop_size, crop_size), np.uint8)
    reasons = []
    for row, batch in enumerate(batches):
        images = [ImageRef(0, name, file, offset, size, row_group, row)
                  for _, file, offset, size, name, row_group, row in batch]
        dataset = ImageDataset(images, transform, max_pixels)
        loaded = collate([dataset[i] for i in range(len(dataset))])
        indices[row, :len(batch)] = [item[0] for item in batch]
        if len(loaded.indices):
            pixels[row, loaded.indices.numpy()] = loaded.pixels.numpy()
        reason = [""] * len(batch)
        for i, text in loaded.failures:
            reason[i] = text
        reasons.append(json.dumps(reason))
    return {"index": indices, "pixels": pixels, "reasons": np.array(reasons, dtype=object)}


class _RayInference:
    """Ray Data actor stage: one batch of one class -> features, on the actor's GPU when it has one."""

    def __init__(self, backbone: list, device: str):
        import ray

        self.backbone: Backbone = ray.get(backbone[0]).to(device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        indices, pixels = batch["index"], batch["pixels"]
        features = np.zeros((*indices.shape, self.backbone.dim), np.float32)
        for row, reasons in enumerate(batch["reasons"]):
            reasons = json.loads(reasons)
            ok = np.array([reason == "" for reason in reasons], dtype=bool)
            ok = np.concatenate([ok, np.zeros(indices.shape[1] - len(ok), bool)])
            if ok.any():
                features[row, ok] = self.backbone.features(torch.from_numpy(pixels[row][ok]))
        return {"index": indices, "features": features, "reasons": batch["reasons"]}
