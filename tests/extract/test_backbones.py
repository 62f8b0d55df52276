"""The backbone registry: torchvision models by name, timm:NAME, clip:ARCH; provenance; verify rebuilds them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import open_clip
import pytest
import timm
import torch
import torchvision
from PIL import Image

from extract_helpers import make_tree, webdataset_shards
from goz.cli import main
from goz.errors import GozError
from goz.extract import backbone as backbones
from goz.extract import extract, load_backbone, verify
from goz.home import sha256_of
from goz.store import FeatureStore


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("images"), {"n00000001": 2, "n00000002": 1}, size=(120, 90))


def _stored(path: Path) -> tuple[np.ndarray, dict]:
    with FeatureStore(path) as store:
        return np.concatenate([store.features(w) for w in store.classes]), dict(store.attrs)


def _pixels(images: Path, transform) -> torch.Tensor:
    return torch.stack([transform(Image.open(f).convert("RGB")) for f in sorted(images.glob("*/*.jpg"))])


def test_torchvision_model_by_name_with_its_own_preprocessing(tmp_path, images):
    torch.manual_seed(1)
    reference = torchvision.models.efficientnet_b0().eval()
    torch.save(reference.state_dict(), tmp_path / "b0.pth")
    result = extract(images, tmp_path / "f.h5", backbone="efficientnet_b0", weights_file=tmp_path / "b0.pth",
                     batch_size=8, progress=False)
    assert result.images == 3
    features, attrs = _stored(tmp_path / "f.h5")
    weights = torchvision.models.EfficientNet_B0_Weights.IMAGENET1K_V1
    assert (attrs["backbone"], attrs["dim"], attrs["weights"]) == ("efficientnet_b0", 1280, "custom")
    assert attrs["weights_sha256"] == sha256_of(tmp_path / "b0.pth")
    assert attrs["preprocessing"].startswith("Resize(256, bicubic, antialias) CenterCrop(224)")  # b0's, not ResNet's
    reference.classifier[1] = torch.nn.Identity()  # features: the input of the final 1000-way layer
    with torch.no_grad():
        expected = reference(_pixels(images, weights.transforms())).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)
    # verify rebuilds the same extractor from the store's attributes and the weights file beside it.
    assert verify(images, tmp_path / "f.h5", recompute=2).ok


def test_final_layers_and_preprocessing_of_other_torchvision_models():
    for name, head, dim, resize in (("vit_b_16", "heads.head", 768, 256), ("resnet101", "fc", 2048, 232),
                                    ("mobilenet_v3_small", "classifier.3", 1024, 256), ("swin_t", "head", 768, 232)):
        with torch.device("meta"):
            model = torchvision.models.get_model(name)
        assert backbones._replace_final_layer(model, name) == (head, dim)
        assert isinstance(model.get_submodule(head), torch.nn.Identity)
        preset = torchvision.models.get_model_weights(name).DEFAULT.transforms()
        assert backbones.Preprocessing.of(preset).resize_size == resize
    with pytest.raises(GozError, match="no final 1000-way linear layer"):
        backbones._replace_final_layer(torchvision.models.squeezenet1_0(), "squeezenet1_0")
    for bad, message in (("resnet5", "not a torchvision classification model"), ("foo:bar", "unknown backbone family"),
                         ("timm:no_such_model", "unknown timm model"), ("clip:No-Such", "clip:No-Such: not an open_clip architecture")):
        with pytest.raises(GozError, match=message):
            load_backbone(bad)
    with pytest.raises(GozError, match="unknown weights 'imagenet21k' for resnet50"):
        load_backbone("resnet50", weights="imagenet21k")


def test_weights_named_only_when_the_file_is_the_published_one(tmp_path, images, monkeypatch):
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    digest = sha256_of(tmp_path / "r18.pth")
    assert load_backbone("resnet18", weights_file=tmp_path / "r18.pth").attrs["weights"] == "custom"
    # Pretend torchvision published this very file: its hash prefix is in the published file name.
    published = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    monkeypatch.setattr(backbones, "_published_hash", lambda w: digest[:8] if w is published else "none")
    attrs = load_backbone("resnet18", weights_file=tmp_path / "r18.pth").attrs
    assert (attrs["weights"], attrs["weights_sha256"]) == ("imagenet1k_v1", digest)


def test_timm_backbone_with_timms_preprocessing(tmp_path, images):
    torch.manual_seed(2)
    reference = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    torch.save(reference.state_dict(), tmp_path / "lite0.pth")
    assert main(["extract", str(images), str(tmp_path / "f.h5"), "--backbone", "timm:efficientnet_lite0",
                 "--weights-file", str(tmp_path / "lite0.pth"), "--batch-size", "8", "--quiet"]) == 0
    features, attrs = _stored(tmp_path / "f.h5")
    assert (attrs["backbone"], attrs["dim"], attrs["weights"]) == ("timm:efficientnet_lite0", 1280, "custom")
    assert attrs["preprocessing"].startswith("Resize(256, bicubic, antialias) CenterCrop(224)")
    config = timm.data.resolve_data_config({}, model=reference)
    with torch.no_grad():
        expected = reference.forward_head(reference.forward_features(
            _pixels(images, timm.data.create_transform(**config))), pre_logits=True).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)
    assert main(["verify", str(images), str(tmp_path / "f.h5"), "--recompute", "2"]) == 0


def test_clip_image_tower_random_and_from_a_local_checkpoint(tmp_path, images):
    shards = webdataset_shards(images, tmp_path / "shards")
    extract(shards, tmp_path / "random.h5", backbone="clip:ViT-S-32", batch_size=8, progress=False)
    features, attrs = _stored(tmp_path / "random.h5")
    assert (attrs["backbone"], attrs["dim"]) == ("clip:ViT-S-32", 384)
    assert attrs["weights"] == "random-init (torch seed 0)"
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-S-32", pretrained=None)
    model.eval()
    with torch.no_grad():
        expected = model.encode_image(_pixels(images, preprocess)).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)
    assert verify(shards, tmp_path / "random.h5", recompute=1).ok

    # A local checkpoint: recorded by its sha256 in the spec, which issue 13's text side reads.
    torch.manual_seed(5)
    torch.save(open_clip.create_model("ViT-S-32", pretrained=None).state_dict(), tmp_path / "clip.pt")
    digest = sha256_of(tmp_path / "clip.pt")
    extract(shards, tmp_path / "ckpt.h5", backbone=f"clip:ViT-S-32:{tmp_path / 'clip.pt'}", progress=False)
    other, attrs = _stored(tmp_path / "ckpt.h5")
    assert attrs["backbone"] == f"clip:ViT-S-32:sha256={digest}" and attrs["weights"] == "custom"
    assert not np.allclose(other, features)
    assert verify(shards, tmp_path / "ckpt.h5", recompute=1, weights_file=tmp_path / "clip.pt").ok
    with pytest.raises(GozError, match="was made from a local checkpoint: give that file \(--weights-file PATH"):
        load_backbone(f"clip:ViT-S-32:sha256={digest}")
    with pytest.raises(GozError, match="sha256 differs"):
        load_backbone("clip:ViT-S-32:sha256=0123", weights_file=tmp_path / "clip.pt")


def test_a_store_refuses_another_backbone(tmp_path, images):
    extract(images, tmp_path / "f.h5", backbone="clip:ViT-S-32", classes=["n00000001"], progress=False)
    with pytest.raises(GozError, match="backbone='clip:ViT-S-32'"):
        torch.manual_seed(0)
        torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
        extract(images, tmp_path / "f.h5", backbone="resnet18", weights_file=tmp_path / "r18.pth", progress=False)


@pytest.mark.parametrize("content, message", [
    ({1: torch.zeros(3)}, "key 1 \\(int\\) is not a parameter name"),
    (torch.zeros(3), "holds a value of type Tensor, not a state dict"),
    ([torch.zeros(3)], "holds a value of type list, not a state dict"),
    ({"model": {"fc.weight": torch.zeros(3)}}, "'model' is of type dict, not a tensor"),
    ({"state_dict": {"fc.weight": torch.zeros(3), "epoch": 3}}, "'epoch' is of type int, not a tensor"),
])
def test_a_weights_file_that_is_not_a_state_dict_is_a_clear_error(tmp_path, images, capsys, content, message):
    torch.save(content, tmp_path / "bad.pt")
    for backbone in ("resnet18", "timm:resnet18"):
        with pytest.raises(GozError, match=message) as error:
            load_backbone(backbone, weights_file=tmp_path / "bad.pt")
        assert str(tmp_path / "bad.pt") in str(error.value) and "state_dict()" in str(error.value)
    assert main(["extract", str(images), str(tmp_path / "f.h5"), "--backbone", "resnet18",
                 "--weights-file", str(tmp_path / "bad.pt")]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err and not (tmp_path / "f.h5").exists()
    with pytest.raises(GozError, match=f"{tmp_path / 'bad.pt'}: not an open_clip ViT-S-32 checkpoint"):
        load_backbone("clip:ViT-S-32", weights_file=tmp_path / "bad.pt")
