"""Shared builders for the extract tests: generated image trees, a random ResNet-50, a tiny backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.models import ResNet50_Weights, resnet50

from goz.extract.backbone import Backbone


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
