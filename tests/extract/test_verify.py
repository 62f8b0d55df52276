"""goz verify: the four checks pass on a fresh store and catch every kind of tampering."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from extract_helpers import make_tree, random_resnet50_file, tiny_backbone
from goz.cli import main
from goz.extract import extract, verify


@pytest.fixture
def extracted(tmp_path):
    images = make_tree(tmp_path / "images", {"n00000001": 2, "n00000002": 3, "n00000003": 1})
    (images / "n00000002" / "n00000002_99.jpg").write_bytes(b"")  # skipped at extraction: expected absent
    store = tmp_path / "f.h5"
    extract(images, store, backbone=tiny_backbone(), progress=False)
    return images, store


def _failed(report) -> list[str]:
    return [check.name for check in report.checks if not check.ok]


def test_fresh_store_passes_all_checks(extracted):
    images, store = extracted
    report = verify(images, store, recompute=3, backbone=tiny_backbone())
    assert report.ok and len(report.checks) == 4, report.lines()
    assert main(["verify", str(images), str(store)]) == 0


def test_changed_feature_is_caught(extracted, tmp_path):
    images, store = extracted
    with h5py.File(store, "r+") as h5:
        h5["images/n00000002"][1, 3] += 1e-2
    report = verify(images, store, recompute=3, backbone=tiny_backbone())
    assert _failed(report) == [report.checks[3].name]
    assert any("n00000002: 1 of 3 samples differ, e.g. id 23" in line for line in report.lines())


def test_missing_id_is_caught(extracted, tmp_path):
    images, store = extracted
    with h5py.File(store, "r+") as h5:
        features, ids = h5["images/n00000001"][:1], h5["idx/n00000001"][:1]
        del h5["images/n00000001"], h5["idx/n00000001"]
        h5["images/n00000001"], h5["idx/n00000001"] = features, ids
    report = verify(images, store)
    assert _failed(report) == ["same number of samples per class", "ids in the store equal the file names"]
    assert main(["verify", str(images), str(store)]) == 1


def test_wrong_id_is_caught(extracted):
    images, store = extracted
    with h5py.File(store, "r+") as h5:
        h5["idx/n00000003"][0] = 4
    report = verify(images, store, recompute=1, backbone=tiny_backbone(), seed=0)
    assert "ids in the store equal the file names" in _failed(report)


def test_extra_and_missing_classes_are_caught(extracted, tmp_path):
    images, store = extracted
    with h5py.File(store, "r+") as h5:
        h5["images/n00000009"] = np.zeros((1, 8), np.float32)
        h5["idx/n00000009"] = np.array([1])
    shutil.rmtree(images / "n00000003")
    make_tree(images, {"n00000004": 1})
    report = verify(images, store)
    assert _failed(report) == ["same classes in folder and store"]
    text = "\n".join(report.lines())
    assert "n00000009: in the store, no image in the folder" in text
    assert "n00000004: in the folder, not in the store" in text
    assert "n00000003: in the store, no image in the folder" in text
    assert main(["verify", str(images), str(store)]) == 1


def test_recompute_with_resnet50_from_the_store_attributes(tmp_path):
    images = make_tree(tmp_path / "images", {"n00000001": 1, "n00000002": 1})
    weights = random_resnet50_file(tmp_path / "w.pth")
    store = tmp_path / "f.h5"
    assert main(["extract", str(images), str(store), "--weights-file", str(weights), "--quiet"]) == 0
    assert main(["verify", str(images), str(store), "--recompute", "1"]) == 0  # weights file found from attrs
    with h5py.File(store, "r+") as h5:
        h5["images/n00000001"][0, 0] *= 1.01
        h5["images/n00000002"][0, 0] *= 1.01
    assert main(["verify", str(images), str(store), "--recompute", "1"]) == 1
