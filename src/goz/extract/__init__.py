"""Images -> GOZ feature store: `extract(images, store, ...)` and `verify(images, store, ...)`.

Modules: `sources` (folder tree, per-synset tars, tar of tars, WebDataset shards, Hugging Face
Parquet shards; selection),
`dataset` (image references, Pillow decoding, torch Dataset), `backbone` (the registry of
feature extractors and their preprocessing), `writer` (crash-safe commits, lock, skip log),
`engines` (local DataLoader, Ray Data), `verify` (the reference's four checks).

`backbone=` is a spec (`resnet50`, `vit_b_16`, `timm:NAME`, `clip:ARCH[:PRETRAINED]`) or a prebuilt
`Backbone` used as is (the tests inject a tiny model where the numbers do not matter).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from goz.errors import GozError
from goz.extract.backbone import DEFAULT_BACKBONE, Backbone, load_backbone
from goz.extract.dataset import DEFAULT_MAX_PIXELS
from goz.extract.engines import ClassCollector, run_local, run_ray
from goz.extract.sources import SOURCES, scan_selected
from goz.extract.verify import VerifyReport, verify
from goz.extract.writer import StoreWriter, read_skip_log

__all__ = ["extract", "verify", "ExtractResult", "VerifyReport", "Backbone", "load_backbone", "SOURCES",
           "scan_selected"]

log = logging.getLogger(__name__)
ENGINES = ("local", "ray")
DTYPES = ("float32", "float16")  # of the stored features; float32 is the published GOZ layout


@dataclass
class ExtractResult:
    store: Path
    classes: int                 # classes in the source (after --classes/--ids)
    extracted_classes: int       # classes committed by this run
    already_done: int            # classes found committed by an earlier run
    images: int                  # images processed by this run (decoded or skipped)
    seconds: float
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (stage, file, reason), whole store
    source: str = "folder"       # the kind of image source read
    missing: dict[str, list[int]] = field(default_factory=dict)  # requested, not in the source: {wnid: ids}

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def default_workers(device: str) -> int:
    """CUDA: every core but two decodes (the GPU outruns Pillow). CPU: none, decoding runs inline.

    On CPU a ResNet-50 forward costs ~30x the decoding of its image; a decoding process would
    preempt the forward's OpenMP threads, which then spin at their barriers (measured in
    benchmarks/bench_extract.py: inline decoding is the faster configuration).
    """
    cores = os.cpu_count() or 1
    return min(32, max(1, cores - 2)) if device.startswith("cuda") else 0


def extract(images: str | Path, store: str | Path, *, backbone: str | Backbone = DEFAULT_BACKBONE,
            weights: str | None = None, weights_file: str | Path | None = None, source: str | None = None,
            classes: str | Sequence[str] | None = None, ids: str | Path | dict[str, set[int]] | None = None,
            label_map: str | Path | None = None, dtype: str = "float32", device: str = "cpu", precision: str = "fp32",
            batch_size: int | None = None, workers: int | None = None, threads: int | None = None,
            engine: str = "local", gpu_decode: bool = False, num_gpus: float = 0, actors: int = 1,
            ray_address: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
            progress: bool = True) -> ExtractResult:
    """Extracts `backbone` features of the images at `images` into the GOZ store `store`.

    `images` is a folder tree, a folder of per-synset tars, a tar of tars, WebDataset shards or Hugging
    Face Parquet shards (`source` forces the kind; `label_map` gives a Parquet source's wnid of each label);
    `classes` and `ids` select. `dtype` is the stored features' ("float32", the published layout, or
    "float16": half the size, values rounded to 11 significant bits), recorded as the `dtype` attribute.
    Resumable: classes already in the store (or committed as parts by a killed run) are skipped, new
    classes are added; batches hold one class each, so a resumed run is bit-identical to an uninterrupted one. `threads` sets torch's
    intra-op threads (default: all cores). `engine="ray"` runs on a Ray cluster (`ray_address`,
    `num_gpus` per actor, `actors`).
    """
    if engine not in ENGINES:
        raise GozError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if dtype not in DTYPES:
        raise GozError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if gpu_decode and engine == "ray":
        raise GozError("--gpu-decode is supported by the local engine only")
    for name, value, least in (("batch_size", batch_size, 1), ("workers", workers, 0), ("threads", threads, 1),
                               ("actors", actors, 1)):
        if value is not None and value < least:
            raise GozError(f"{name} must be at least {least}, got {value}")
    started = time.perf_counter()
    store = Path(store)
    tree, missing = scan_selected(images, source=source, classes=classes, ids=ids, label_map=label_map)
    for file, reason in tree.problems:
        log.warning("skipped %s: %s", file, reason)
    if threads:
        torch.set_num_threads(threads)
    # The arguments (source, store path, lock) are checked before the weights are loaded or downloaded.
    with StoreWriter(store) as writer:
        if not isinstance(backbone, Backbone):
            backbone = load_backbone(backbone, weights=weights, weights_file=weights_file, device=device,
                                     precision=precision, gpu_decode=gpu_decode)
        cuda = backbone.device.type == "cuda"
        batch_size = batch_size or (256 if cuda else 16)
        # Recorded for `goz verify`: a class's features are those of its own batches of this size.
        writer.bind(backbone.attrs | {"batch_size": batch_size, "dtype": dtype})
        workers = default_workers(str(backbone.device)) if workers is None else workers
        already = [c for c in tree.classes if c.wnid in writer.committed]
        pending = [c for c in tree.classes if c.wnid not in writer.committed
                   and not all(f.name in writer.decode_skips for f in c.files)]
        log.info("%d classes, %d already in the store, %d to extract (%d images)", len(tree.classes),
                 len(already), len(pending), sum(len(c.files) for c in pending))
        collector = ClassCollector(pending, backbone.dim, writer.commit)
        try:
            if engine == "local":
                run_local(collector, backbone, batch_size=batch_size, workers=workers, max_pixels=max_pixels,
                          gpu_decode=gpu_decode, progress=progress)
            else:
                run_ray(collector, backbone, batch_size=batch_size, num_gpus=num_gpus, actors=actors,
                        ray_address=ray_address, max_pixels=max_pixels, progress=progress)
        finally:
            # Also on Ctrl-C or an error: what was committed reaches the store now.
            writer.merge(tree.problems, missing)
    return ExtractResult(
        store=store, classes=len(tree.classes), extracted_classes=len(pending), already_done=len(already),
        images=len(collector.files), seconds=time.perf_counter() - started,
        skipped=[(stage, file, reason) for file, (stage, reason) in read_skip_log(store).items()
                 if stage != "missing"],
        source=tree.kind, missing=missing)
