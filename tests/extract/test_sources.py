"""Image sources: folder tree, per-synset tars, tar of tars, WebDataset shards; selection; bad archives."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from extract_helpers import (
    assert_same_store,
    batch_dependent_backbone,
    make_tree,
    store_contents,
    synset_tars,
    tar_of_tars,
    tiny_backbone,
    webdataset_shards,
)
from goz.cli import main
from goz.errors import GozError
from goz.extract import extract, verify
from goz.extract.sources import open_source, read_image_keys
from goz.extract.writer import read_skip_log

COUNTS = {"n00000001": 3, "n00000002": 2, "n00000003": 4}


@pytest.fixture
def tree(tmp_path) -> Path:
    images = make_tree(tmp_path / "tree", COUNTS)
    Image.open(images / "n00000003" / "n00000003_3.jpg").save(images / "n00000003" / "n00000003_100.png")
    return images


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_every_source_gives_the_folder_trees_store(tmp_path, tree):
    reference = extract(tree, tmp_path / "tree.h5", backbone=tiny_backbone(), batch_size=2, progress=False)
    assert reference.source == "folder" and reference.images == 10
    shards = webdataset_shards(tree, tmp_path / "shards", per_shard=3)
    sources = {
        "synset-tars": synset_tars(tree, tmp_path / "tars"),
        "tar-of-tars": tar_of_tars(tree, tmp_path / "train.tar"),
        "webdataset": shards,
    }
    for kind, location in sources.items():
        result = extract(location, tmp_path / f"{kind}.h5", backbone=tiny_backbone(), batch_size=2, progress=False)
        assert (result.source, result.images, result.skipped) == (kind, 10, []), kind
        assert_same_store(tmp_path / f"{kind}.h5", tmp_path / "tree.h5")
    # One shard, a brace pattern, timm's style (opaque keys, the name in the json, integer cls): same again.
    brace = str(shards / "shard-{0000..0003}.tar")
    assert len(open_source(brace).scan().classes) == 3
    assert extract(brace, tmp_path / "brace.h5", backbone=tiny_backbone(), batch_size=2, progress=False).images == 10
    assert_same_store(tmp_path / "brace.h5", tmp_path / "tree.h5")
    timm_style = webdataset_shards(tree, tmp_path / "timm", per_shard=4, json_only=True)
    result = extract(timm_style, tmp_path / "timm.h5", backbone=tiny_backbone(), batch_size=2, progress=False)
    assert result.skipped == []
    assert_same_store(tmp_path / "timm.h5", tmp_path / "tree.h5")
    single = open_source(shards / "shard-0000.tar").scan()
    assert single.kind == "webdataset" and sum(len(c.files) for c in single.classes) == 3
    # verify reads the same sources, names in the skip log are the archive's.
    assert verify(sources["synset-tars"], tmp_path / "synset-tars.h5", recompute=2, backbone=tiny_backbone()).ok
    assert verify(brace, tmp_path / "brace.h5", recompute=3, backbone=tiny_backbone()).ok
    assert main(["verify", str(shards), str(tmp_path / "webdataset.h5")]) == 0


def test_selection_by_classes_and_ids_reports_missing_images(tmp_path, tree, capsys):
    tars = synset_tars(tree, tmp_path / "tars")
    urls = tmp_path / "urls.txt"
    urls.write_text("n00000001_3\thttp://a/1.jpg\nn00000001_13\thttp://a/2.jpg\nn00000001_999\thttp://gone\n"
                    "n00000003_100\thttp://b/3.png\nn00000009_1\thttp://c\n\nnot a line\n")
    assert read_image_keys(urls) == {"n00000001": {3, 13, 999}, "n00000003": {100}, "n00000009": {1}}
    store = tmp_path / "f.h5"
    assert main(["extract", str(tars), str(store), "--ids", str(urls), "--batch-size", "2", "--quiet"]) == 2  # no weights
    capsys.readouterr()
    result = extract(tars, store, backbone=tiny_backbone(), ids=urls, progress=False)
    assert result.missing == {"n00000001": [999], "n00000009": [1]}
    contents = store_contents(store)
    assert {wnid: ids.tolist() for wnid, (_, ids) in contents.items()} == {"n00000001": [13, 3], "n00000003": [100]}
    log = read_skip_log(store)
    assert log["n00000001_999"][0] == "missing" and log["n00000009_1"][0] == "missing"
    assert all(stage != "missing" for stage, _, _ in result.skipped)
    # A key file (no URLs) and a class split together: only the classes of the split.
    keys = tmp_path / "keys.txt"
    keys.write_text("# GOZ test images\nn00000001_3\nn00000002_3\nn00000003_3\n")
    split = tmp_path / "split.txt"
    split.write_text("n00000002\nn00000003\n")
    result = extract(tars, tmp_path / "g.h5", backbone=tiny_backbone(), ids=keys, classes=split, progress=False)
    assert result.missing == {} and sorted(store_contents(tmp_path / "g.h5")) == ["n00000002", "n00000003"]
    result = extract(tree, tmp_path / "h.h5", backbone=tiny_backbone(), classes=["n00000002", "n00000007"],
                     progress=False)
    assert result.missing == {"n00000007": []} and list(store_contents(tmp_path / "h.h5")) == ["n00000002"]
    # verify with the same selection passes; without it, the store lacks classes.
    assert verify(tars, store, ids=urls, recompute=2, backbone=tiny_backbone()).ok
    assert not verify(tars, store, backbone=tiny_backbone()).ok
    with pytest.raises(GozError, match="none of the requested images"):
        extract(tars, tmp_path / "i.h5", backbone=tiny_backbone(), ids={"n00000005": {1}}, progress=False)
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    with pytest.raises(GozError, match="no <wnid>_<id> key"):
        read_image_keys(tmp_path / "empty.txt")


def test_cli_reports_missing_images(tmp_path, tree, capsys, monkeypatch):
    import goz.extract as api

    monkeypatch.setattr(api, "load_backbone", lambda *args, **kwargs: tiny_backbone())
    keys = tmp_path / "keys.txt"
    keys.write_text("n00000001_3\nn00000001_4\nn00000001_5\n")
    assert main(["extract", str(tree), str(tmp_path / "f.h5"), "--ids", str(keys), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "in the folder source" in out
    assert "missing    2 requested images of 1 classes not in the source" in out and "n00000001: 2 images" in out


def test_source_without_images_is_an_error(tmp_path, capsys):
    for name, build in {
        "empty": lambda p: p.mkdir(),
        "not_images": lambda p: (p / "n00000001").mkdir(parents=True) or (p / "n00000001" / "a.txt").write_text("x"),
        "empty_tars": lambda p: p.mkdir() or tarfile.open(p / "n00000001.tar", "w").close(),
        "empty_shards": lambda p: p.mkdir() or tarfile.open(p / "shard-0000.tar", "w").close(),
    }.items():
        build(tmp_path / name)
        with pytest.raises(GozError, match="no image found"):
            extract(tmp_path / name, tmp_path / f"{name}.h5", backbone=tiny_backbone(), progress=False)
        assert not (tmp_path / f"{name}.h5").exists()
        assert main(["extract", str(tmp_path / name), str(tmp_path / f"{name}.h5"), "--quiet"]) == 2
        assert "no image found" in capsys.readouterr().err
    with pytest.raises(GozError, match="brace pattern names 3 files, none exists"):
        extract(str(tmp_path / "shard-{0..2}.tar"), tmp_path / "f.h5", backbone=tiny_backbone(), progress=False)
    (tmp_path / "file.tar.gz").write_bytes(b"\x1f\x8b not really")
    with pytest.raises(GozError, match="neither a tar archive nor a Parquet file"):
        extract(tmp_path / "file.tar.gz", tmp_path / "f.h5", backbone=tiny_backbone(), progress=False)


def test_bad_archives_are_recorded_skips_and_the_store_stays_whole(tmp_path, tree):
    tars = synset_tars(tree, tmp_path / "tars")
    good = store_contents(extract(tars, tmp_path / "good.h5", backbone=tiny_backbone(), progress=False).store)
    # A truncated tar: the members before the cut are kept, the rest recorded.
    data = (tars / "n00000003.tar").read_bytes()
    (tars / "n00000003.tar").write_bytes(data[: len(data) // 2])
    # A member that climbs out, a member that is not an image, a compressed tar.
    with tarfile.open(tars / "n00000004.tar", "w") as tar:
        _add(tar, "../n00000004_1.jpg", (tree / "n00000001" / "n00000001_3.jpg").read_bytes())
        _add(tar, "/etc/n00000004_2.jpg", b"x")
        _add(tar, "n00000004_3.jpg", b"<html>404</html>")
        _add(tar, "n00000004_4.jpg", (tree / "n00000001" / "n00000001_3.jpg").read_bytes())
    with tarfile.open(tars / "n00000005.tar", "w:gz") as tar:
        _add(tar, "n00000005_1.jpg", b"x")
    result = extract(tars, tmp_path / "f.h5", backbone=tiny_backbone(), progress=False)
    reasons = {file: reason for _, file, reason in result.skipped}
    assert "truncated" in reasons["n00000003.tar"]
    assert "climbs out" in reasons["n00000004.tar/../n00000004_1.jpg"]
    assert "climbs out" in reasons["n00000004.tar//etc/n00000004_2.jpg"]
    assert "not a recognised image" in reasons["n00000004.tar/n00000004_3.jpg"]
    assert "not a readable uncompressed tar" in reasons["n00000005.tar"]
    contents = store_contents(tmp_path / "f.h5")
    assert contents["n00000004"][1].tolist() == [4]
    assert 0 < len(contents["n00000003"][1]) < 5
    kept = contents["n00000003"][1].tolist()
    # The members read are the full images: their features are those of the intact archive.
    full = dict(zip(good["n00000003"][1].tolist(), good["n00000003"][0]))
    assert all(np.isfinite(row).all() for row in contents["n00000003"][0]) and set(kept) <= set(full)


def test_bad_webdataset_samples(tmp_path, tree):
    shards = webdataset_shards(tree, tmp_path / "shards", per_shard=20)
    jpeg = (tree / "n00000001" / "n00000001_3.jpg").read_bytes()
    with tarfile.open(shards / "shard-0001.tar", "w") as tar:
        _add(tar, "n00000004_1.jpg", jpeg)
        _add(tar, "n00000004_1.cls", b"n00000005")  # cls disagrees with the key
        _add(tar, "n00000004_2.jpg", jpeg)
        _add(tar, "n00000004_2.json", json.dumps({"wnid": "n00000006", "id": 2}).encode())  # json disagrees
        _add(tar, "n00000004_3.json", b"{}")  # no image
        _add(tar, "n00000004_4.jpg", b"GIF89a not really")  # not an image: a decode skip
        _add(tar, "../n00000004_5.jpg", jpeg)  # climbs out
        _add(tar, "n00000001_3.jpg", jpeg)  # a duplicate of shard 0's
        _add(tar, "photo7.jpg", jpeg)  # no identity
        _add(tar, "n00000004_6.jpg", jpeg)
        _add(tar, "n00000004_6.cls", b"n00000004")
    result = extract(shards, tmp_path / "f.h5", backbone=tiny_backbone(), progress=False)
    reasons = {file: reason for _, file, reason in result.skipped}
    assert "cls n00000005 disagrees" in reasons["shard-0001.tar/n00000004_1"]
    assert "json wnid n00000006 disagrees" in reasons["shard-0001.tar/n00000004_2"]
    assert "without an image" in reasons["shard-0001.tar/n00000004_3"]
    assert "not a recognised image" in reasons["shard-0001.tar/n00000004_4.jpg"]
    assert "climbs out" in reasons["shard-0001.tar/../n00000004_5.jpg"]
    assert "duplicate image n00000001_3" in reasons["shard-0001.tar/n00000001_3.jpg"]
    assert "key is not <wnid>_<id>" in reasons["shard-0001.tar/photo7"]
    contents = store_contents(tmp_path / "f.h5")
    assert contents["n00000004"][1].tolist() == [6] and len(contents["n00000001"][1]) == 3
    # An integer cls must name one class everywhere.
    timm_style = webdataset_shards(tree, tmp_path / "timm", per_shard=20, json_only=True)
    with tarfile.open(timm_style / "shard-0001.tar", "w") as tar:
        _add(tar, "x1.jpg", jpeg)
        _add(tar, "x1.json", json.dumps({"filename": "n00000002_77.JPEG"}).encode())
        _add(tar, "x1.cls", b"0")  # 0 is n00000001 in shard 0
    scanned = open_source(timm_style).scan()
    assert any("cls 0 is class n00000001" in reason for _, reason in scanned.problems)


def test_resumed_run_equals_a_clean_run_even_with_a_batch_dependent_model(tmp_path, tree):
    # Features that depend on the batch: equal only if a class's batches never depend on the other classes
    # of a run nor on where it started (a run over one class, then the rest, as after a kill).
    shards = webdataset_shards(tree, tmp_path / "shards", per_shard=3)
    clean = extract(shards, tmp_path / "clean.h5", backbone=batch_dependent_backbone(), batch_size=3, progress=False)
    assert clean.images == 10
    partial = extract(shards, tmp_path / "f.h5", backbone=batch_dependent_backbone(), batch_size=3,
                      classes=["n00000002"], progress=False)
    assert partial.extracted_classes == 1
    resumed = extract(shards, tmp_path / "f.h5", backbone=batch_dependent_backbone(), batch_size=3, progress=False)
    assert (resumed.already_done, resumed.extracted_classes) == (1, 2)
    assert_same_store(tmp_path / "f.h5", tmp_path / "clean.h5")
    # The model is batch-dependent indeed: other batches give other numbers.
    other = extract(shards, tmp_path / "other.h5", backbone=batch_dependent_backbone(), batch_size=2, progress=False)
    assert other.images == 10
    assert not np.array_equal(store_contents(tmp_path / "other.h5")["n00000001"][0], store_contents(tmp_path / "clean.h5")["n00000001"][0])
