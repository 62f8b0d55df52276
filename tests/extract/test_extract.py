"""goz extract: exact features, bad images, resume after kill -9, lock, offline weights."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import h5py
import numpy as np
import pytest

import checkout
import torch
import torchvision.transforms as T
from PIL import Image
from torchvision.models import resnet50

from extract_helpers import make_tree, random_resnet50_file, store_contents, tiny_backbone
from goz.cli import main
from goz.errors import GozError
from goz.extract import extract
from goz.extract.dataset import parse_image_name
from goz.extract.writer import StoreWriter
from goz.home import sha256_of
from goz.store import FeatureStore

SRC = checkout.SRC


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    return random_resnet50_file(tmp_path_factory.mktemp("weights") / "resnet50_random.pth")


def test_features_equal_torchvision_forward(tmp_path, weights_file):
    images = make_tree(tmp_path / "images", {"n00000001": 2, "n00000002": 1}, size=(300, 200))
    result = extract(images, tmp_path / "f.h5", weights_file=weights_file, workers=1, progress=False)
    assert (result.extracted_classes, result.images, result.skipped) == (2, 3, [])

    # The reference: its own transform pipeline, torchvision's ResNet-50 forward up to avgpool.
    reference_transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                                     T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    model = resnet50()
    model.load_state_dict(torch.load(weights_file, weights_only=True))
    model.fc = torch.nn.Identity()
    model.eval()
    files = sorted(images.glob("*/*.jpg"))
    with torch.no_grad():
        expected = model(torch.stack([reference_transform(Image.open(f).convert("RGB")) for f in files])).numpy()
    stored = store_contents(tmp_path / "f.h5")
    assert list(stored) == ["n00000001", "n00000002"]
    np.testing.assert_array_equal(stored["n00000001"][1], [13, 3])  # sorted names, as the reference
    # Same operations on the same batch in the same process: bit for bit the reference's numbers.
    np.testing.assert_array_equal(np.concatenate([x for x, _ in stored.values()]), expected)
    with h5py.File(tmp_path / "f.h5", "r") as h5:  # the original notebooks' access pattern
        assert h5["images/n00000001"].shape == (2, 2048) and h5["images/n00000001"].dtype == np.float32
        assert h5["idx/n00000002"].dtype == np.int64
        # A random weights file is not the published IMAGENET1K_V1: recorded as custom, with its sha256.
        assert h5.attrs["weights"] == "custom" and h5.attrs["backbone"] == "resnet50"
        assert h5.attrs["weights_sha256"] == sha256_of(weights_file) and h5.attrs["dim"] == 2048
        assert "Resize(256" in h5.attrs["preprocessing"] and h5.attrs["preprocessing_of"] == "imagenet1k_v1"


def test_file_names_give_image_ids():
    assert parse_image_name("n01440764", "n01440764_10026.JPEG") == 10026  # ILSVRC-2012 training tree
    assert parse_image_name("n01440764", "ILSVRC2012_val_00000293.JPEG") == 293  # validation, sorted by class
    assert parse_image_name("n01440764", "n01440764_7.jpg") == 7  # goz download
    assert "of class n01443537" in parse_image_name("n01440764", "n01443537_1.jpg")
    assert "not an image extension" in parse_image_name("n01440764", "n01440764_1.txt")
    assert "is not <wnid>_<imageid>" in parse_image_name("n01440764", "n01440764_1.jpg.part")
    assert "is not <wnid>_<imageid>" in parse_image_name("n01440764", "photo.jpg")


def _save(path: Path, image: Image.Image, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)


def test_bad_and_unusual_images(tmp_path):
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8))
    a, b = tmp_path / "images" / "n00000001", tmp_path / "images" / "n00000002"
    _save(a / "n00000001_1.jpg", rgb)
    encoded = io.BytesIO()
    rgb.save(encoded, "JPEG")
    (a / "n00000001_2.jpg").write_bytes(encoded.getvalue()[: len(encoded.getvalue()) // 2])  # truncated
    (a / "n00000001_3.jpg").write_bytes(b"")
    (a / "n00000001_4.jpg").write_bytes(b"<html><body>404 Not Found</body></html>")
    _save(a / "n00000001_5.jpg", rgb.convert("CMYK"))
    gray16 = rng.integers(0, 65536, (60, 80), dtype=np.uint16)
    _save(a / "n00000001_6.png", Image.fromarray(gray16))
    _save(a / "n00000001_7.png", Image.fromarray((gray16 >> 8).astype(np.uint8)))  # its 8-bit version
    frames = [Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)) for _ in range(3)]
    _save(a / "n00000001_8.gif", frames[0], save_all=True, append_images=frames[1:])
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90; the reference did not apply it, neither does goz
    _save(a / "n00000001_9.jpg", rgb, exif=exif)
    _save(a / "n00000001_10.png", Image.new("1", (20000, 10000)))  # 200 Mpixel: decompression bomb
    _save(a / "n00000001_11.png", rgb.convert("P"), transparency=0)
    _save(a / "n00000001_12.png", rgb.convert("LA"))
    _save(a / "n00000001_13.tif", rgb.convert("RGBA"))
    (a / "notes.txt").write_text("not an image")
    (a / "n00000002_1.jpg").write_bytes(encoded.getvalue())  # another class's name in this folder
    _save(b / "n00000002_1.jpg", rgb)
    (tmp_path / "images" / "misc").mkdir()
    (tmp_path / "images" / ".goz" / "manifest").mkdir(parents=True)  # `goz download` bookkeeping: ignored
    (a / ".DS_Store").write_bytes(b"\0")

    store = tmp_path / "f.h5"
    result = extract(tmp_path / "images", store, backbone=tiny_backbone(), progress=False)
    reasons = {file: reason for _, file, reason in result.skipped}
    assert set(reasons) == {"n00000001/n00000001_2.jpg", "n00000001/n00000001_3.jpg", "n00000001/n00000001_4.jpg",
                            "n00000001/n00000001_10.png", "n00000001/notes.txt", "n00000001/n00000002_1.jpg",
                            "misc/"}
    assert "truncated" in reasons["n00000001/n00000001_2.jpg"]
    assert "empty" in reasons["n00000001/n00000001_3.jpg"]
    assert "not a recognised image" in reasons["n00000001/n00000001_4.jpg"]
    assert "decompression bomb" in reasons["n00000001/n00000001_10.png"]
    assert (store.with_name("f.h5.skipped.tsv")).read_text().count("\n") == 1 + len(reasons)

    contents = store_contents(store)
    features, ids = contents["n00000001"]
    np.testing.assert_array_equal(ids, [1, 11, 12, 13, 5, 6, 7, 8, 9])  # sorted file names, as the reference
    row = dict(zip(ids.tolist(), features))
    np.testing.assert_array_equal(row[6], row[7])  # 16-bit image scaled to 8 bits, not clipped to white
    np.testing.assert_allclose(row[9], row[1], rtol=1e-6)  # EXIF orientation not applied, as the reference
    assert contents["n00000002"][1].tolist() == [1]


def test_resume_after_kill_equals_clean_run(tmp_path, weights_file):
    # Three images a class, batches of two: batches across classes would make a class's numbers depend
    # on where the run started (the original code's 1.5e-5); batches of one class never do.
    counts = {f"n0000000{i}": 3 for i in range(1, 5)}
    clean = make_tree(tmp_path / "clean", counts)
    extract(clean, tmp_path / "clean.h5", weights_file=weights_file, workers=0, batch_size=2, progress=False)

    images = make_tree(tmp_path / "images", {"n00000001": 3})
    store = tmp_path / "f.h5"
    extract(images, store, weights_file=weights_file, workers=0, batch_size=2, progress=False)
    make_tree(tmp_path / "images", counts)  # three new classes (same pixels: same seed)

    command = [sys.executable, "-m", "goz", "extract", str(images), str(store), "--weights-file",
               str(weights_file), "--batch-size", "2", "--workers", "0", "--quiet"]
    process = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(SRC)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = tmp_path / "f.h5.parts"
    deadline = time.monotonic() + 120
    while not list(parts.glob("*.h5")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run ended before the first class was committed"

    committed = sorted(p.stem for p in parts.glob("*.h5"))
    assert committed and set(committed) < {"n00000002", "n00000003", "n00000004"}
    with FeatureStore(store) as before:  # the store still opens and holds the earlier classes
        assert before.classes == ["n00000001"]
    for part in parts.glob("*.h5"):
        with FeatureStore(part) as class_part:
            assert class_part.classes == [part.stem] and class_part.count(part.stem) == 3
    # A kill during a merge or a commit leaves half-written temporary files: they must be ignored.
    store.with_name("f.h5.tmp").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    (parts / "n00000004.h5.tmp").write_bytes(b"garbage")

    result = extract(images, store, weights_file=weights_file, workers=0, batch_size=2, progress=False)
    assert result.already_done == 1 + len(committed)
    assert not parts.exists()
    resumed, reference = store_contents(store), store_contents(tmp_path / "clean.h5")
    assert list(resumed) == list(reference)
    for wnid in reference:
        np.testing.assert_array_equal(resumed[wnid][1], reference[wnid][1])
        # Batches hold one class: a resumed run gives bit for bit the numbers of an uninterrupted one.
        np.testing.assert_array_equal(resumed[wnid][0], reference[wnid][0])


def test_lock_refuses_second_writer(tmp_path):
    images = make_tree(tmp_path / "images", {"n00000001": 1})
    backbone = tiny_backbone()
    with StoreWriter(tmp_path / "f.h5"):
        with pytest.raises(GozError, match="being written by another process"):
            extract(images, tmp_path / "f.h5", backbone=backbone, progress=False)
    assert not (tmp_path / "f.h5").exists()
    extract(images, tmp_path / "f.h5", backbone=backbone, progress=False)  # released: now it works
    assert store_contents(tmp_path / "f.h5")["n00000001"][1].tolist() == [3]


def test_refuses_to_mix_extractors(tmp_path):
    images = make_tree(tmp_path / "images", {"n00000001": 1})
    extract(images, tmp_path / "f.h5", backbone=tiny_backbone(), progress=False)
    other = tiny_backbone()
    other.attrs["precision"] = "bf16"
    make_tree(tmp_path / "images", {"n00000002": 1})
    with pytest.raises(GozError, match="precision='fp32'"):
        extract(images, tmp_path / "f.h5", backbone=other, progress=False)


def test_weights_unavailable_offline_gives_clear_error(tmp_path, monkeypatch, capsys):
    images = make_tree(tmp_path / "images", {"n00000001": 1})
    with socket.socket() as probe:  # a port nobody listens on: the proxy refuses, as no network would
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, dead)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(urllib.request, "_opener", None)  # urlopen's cached opener would keep old proxies
    assert main(["extract", str(images), str(tmp_path / "f.h5"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    assert "could not get the ResNet-50 weights imagenet1k_v1" in error
    assert "--weights-file PATH" in error and "resnet50-0676ba61.pth" in error
    assert not (tmp_path / "f.h5").exists()


def test_arguments_are_checked_before_any_weights_download(tmp_path, monkeypatch, capsys):
    import torchvision.models._api
    calls = []

    def no_download(url, *args, **kwargs):
        calls.append(url)
        raise OSError("no network in the tests")

    for module, name in ((torchvision.models._api, "load_state_dict_from_url"),
                         (torch.hub, "load_state_dict_from_url"), (torch.hub, "download_url_to_file")):
        monkeypatch.setattr(module, name, no_download)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cached weights either
    images = make_tree(tmp_path / "images", {"n00000001": 1})
    (tmp_path / "file").write_text("not a folder")

    def error_of(images_arg, store_arg) -> str:
        assert main(["extract", str(images_arg), str(store_arg), "--weights", "imagenet1k_v1", "--quiet"]) == 2
        error = capsys.readouterr().err
        assert "Traceback" not in error
        return error

    assert "is a folder; the feature store is a file" in error_of(images, tmp_path)
    assert "no such image folder or archive" in error_of(tmp_path / "missing", tmp_path / "f.h5")
    assert "is a file, neither a tar archive nor a Parquet file; IMAGES is a folder" in error_of(tmp_path / "file", tmp_path / "f.h5")
    assert "cannot create the folder of the feature store" in error_of(images, tmp_path / "file" / "f.h5")
    with StoreWriter(tmp_path / "locked.h5"):
        assert "being written by another process" in error_of(images, tmp_path / "locked.h5")
    assert calls == []
    # Good arguments: now, and only now, the weights are fetched (and here refused).
    assert "could not get the ResNet-50 weights imagenet1k_v1" in error_of(images, tmp_path / "out" / "f.h5")
    assert calls == [torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url]
    assert not (tmp_path / "out" / "f.h5").exists()


def test_cuda_without_gpu_is_a_clear_error(tmp_path, weights_file, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    images = make_tree(tmp_path / "images", {"n00000001": 1})
    with pytest.raises(GozError, match="CUDA is not available"):
        extract(images, tmp_path / "f.h5", weights_file=weights_file, device="cuda", progress=False)


def test_bad_weights_file_is_a_clear_error(tmp_path):
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    images = make_tree(tmp_path / "images", {"n00000001": 1})
    with pytest.raises(GozError, match="not a loadable torch state dict"):
        extract(images, tmp_path / "f.h5", weights_file=tmp_path / "bad.pth", progress=False)
    with pytest.raises(GozError, match="not a torchvision resnet50 state dict"):
        extract(images, tmp_path / "f.h5", weights_file=tmp_path / "wrong.pth", progress=False)
    with pytest.raises(GozError, match="no such weights file"):
        extract(images, tmp_path / "f.h5", weights_file=tmp_path / "missing.pth", progress=False)


def test_device_jpeg_decoding_path(tmp_path):
    # --gpu-decode decodes with torchvision.io on the model's device; on this machine that device is the CPU.
    images = make_tree(tmp_path / "images", {"n00000001": 2, "n00000002": 1}, size=(300, 200))
    rgb = Image.open(images / "n00000001" / "n00000001_3.jpg").convert("RGB")
    _save(images / "n00000002" / "n00000002_5.png", rgb)  # not a JPEG: Pillow in the worker
    _save(images / "n00000002" / "n00000002_6.jpg", rgb.convert("CMYK"))  # CMYK: Pillow in the worker
    encoded = (images / "n00000001" / "n00000001_13.jpg").read_bytes()
    (images / "n00000002" / "n00000002_7.jpg").write_bytes(encoded[: len(encoded) // 2])  # truncated: skipped
    pillow = extract(images, tmp_path / "pillow.h5", backbone=tiny_backbone(), progress=False)
    device = extract(images, tmp_path / "device.h5", backbone=tiny_backbone(), gpu_decode=True, progress=False)
    assert [s[1] for s in device.skipped] == [s[1] for s in pillow.skipped] == ["n00000002/n00000002_7.jpg"]
    expected, actual = store_contents(tmp_path / "pillow.h5"), store_contents(tmp_path / "device.h5")
    for wnid in expected:
        np.testing.assert_array_equal(actual[wnid][1], expected[wnid][1])
        x, y = actual[wnid][0], expected[wnid][0]
        cosine = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
        assert cosine.min() > 0.999  # libjpeg/nvJPEG + tensor resize: close to Pillow, not bit-exact
    np.testing.assert_allclose(actual["n00000002"][0][1:], expected["n00000002"][0][1:], rtol=1e-5)  # via Pillow


def test_cli_choices_match_the_registries():
    import goz.extract as api
    from goz.commands import extract as extract_command
    from goz.extract import backbone, sources

    assert set(extract_command.SOURCES) == set(sources.SOURCES)
    assert set(extract_command.PRECISIONS) == set(backbone.PRECISIONS)
    assert extract_command.DTYPES == api.DTYPES
