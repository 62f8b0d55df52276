"""Shared builders for the extract tests: generated image trees and their archives, a random ResNet-50, a tiny backbone."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.models import ResNet50_Weights, resnet50

from goz.extract.backbone import Backbone
from goz.store import FeatureStore


def make_tree(root: Path, counts: dict[str, int], size=(96, 72), seed: int = 0) -> Path:
    """`root/<wnid>/<wnid>_<id>.jpg` with random-noise-plus-gradient JPEGs; ids are 10*i + 3."""
    rng = np.random.default_rng(seed)
    for wnid, n in counts.items():
        folder = root / wnid
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{wnid}_{10 * i + 3}.jpg", quality=90)
    return root


def random_resnet50_file(path: Path, seed: int = 0) -> Path:
    """A randomly initialized torchvision ResNet-50 state dict (no weights can be downloaded here)."""
    torch.manual_seed(seed)
    torch.save(resnet50().state_dict(), path)
    return path


class TinyNet(nn.Sequential):
    def __init__(self):
        torch.manual_seed(0)
        super().__init__(nn.Conv2d(3, 8, 7, stride=8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def tiny_backbone() -> Backbone:
    """The documented test hook: a tiny model with ResNet-50's preprocessing, for non-numerical tests."""
    attrs = {"backbone": "tiny-test", "model": "tiny test model", "weights": "imagenet1k_v1", "weights_source": "test",
             "weights_sha256": "test", "preprocessing": "imagenet1k_v1", "precision": "fp32", "decoder": "Pillow"}
    return Backbone(TinyNet().eval(), ResNet50_Weights.IMAGENET1K_V1.transforms(), attrs, dim=8)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def synset_tars(tree: Path, out: Path) -> Path:
    """The ImageNet-21K layout of an image tree: `out/<wnid>.tar` holding `<wnid>_<id>.<ext>`."""
    out.mkdir(parents=True, exist_ok=True)
    for folder in sorted(p for p in tree.iterdir() if p.is_dir()):
        with tarfile.open(out / f"{folder.name}.tar", "w") as tar:
            for file in sorted(folder.iterdir(), reverse=True):  # archive order is not name order
                _add_bytes(tar, file.name, file.read_bytes())
    return out


def tar_of_tars(tree: Path, out: Path) -> Path:
    """The ILSVRC-2012 training layout: one tar of `<wnid>.tar`."""
    inner = synset_tars(tree, out.with_suffix(".inner"))
    with tarfile.open(out, "w") as tar:
        for file in sorted(inner.iterdir()):
            _add_bytes(tar, file.name, file.read_bytes())
    return out


def webdataset_shards(tree: Path, out: Path, per_shard: int = 3, json_only: bool = False) -> Path:
    """WebDataset shards `out/shard-NNNN.tar` (images shuffled across shards): key `<wnid>_<id>`, the image,
    `cls` (the wnid) and `json`; with `json_only`, timm's style: opaque keys, the name in the json."""
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(tree.glob("n*/*.*"))
    files = files[1::2] + files[::2]  # classes spread over shards, out of order
    for start in range(0, len(files), per_shard):
        with tarfile.open(out / f"shard-{start // per_shard:04d}.tar", "w") as tar:
            for number, file in enumerate(files[start:start + per_shard]):
                stem, extension = file.name.rsplit(".", 1)
                wnid = file.parent.name
                key = f"sample{start + number:06d}" if json_only else stem
                _add_bytes(tar, f"{key}.{extension}", file.read_bytes())
                meta = {"filename": file.name} if json_only else {"wnid": wnid, "id": int(stem.split("_")[1])}
                _add_bytes(tar, f"{key}.json", json.dumps(meta).encode())
                _add_bytes(tar, f"{key}.cls", (str(sorted(p.name for p in tree.iterdir()).index(wnid))
                                               if json_only else wnid).encode())
    return out


class _BatchCentered(nn.Module):
    """Subtracts the batch mean: every feature depends on the whole batch, as numerics may on some hardware."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(0, keepdim=True)


def batch_dependent_backbone() -> Backbone:
    """A tiny backbone whose features change with the batch's other images: resume tests use it to prove
    that a class's batches never depend on which other classes a run holds."""
    backbone = tiny_backbone()
    backbone.model = nn.Sequential(backbone.model, _BatchCentered()).eval()
    return backbone


def store_contents(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{wnid: (features, ids)} of a feature store, in its class order."""
    with FeatureStore(path) as store:
        return {wnid: (store.features(wnid), store.ids(wnid)) for wnid in store.classes}


def assert_same_store(actual: Path, expected: Path) -> None:
    """The two stores hold the same classes in the same order, with equal ids and features."""
    a, b = store_contents(actual), store_contents(expected)
    assert list(a) == list(b)
    for wnid in b:
        np.testing.assert_array_equal(a[wnid][1], b[wnid][1])
        np.testing.assert_array_equal(a[wnid][0], b[wnid][0])
