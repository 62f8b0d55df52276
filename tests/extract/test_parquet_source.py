"""The Hugging Face `datasets` Parquet image source: same store as the folder tree; bad Parquet input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from extract_helpers import assert_same_store, make_tree, store_contents, tiny_backbone
from goz.cli import main
from goz.errors import GozError
from goz.extract import extract, verify
from goz.extract.sources import open_source, read_label_map

COUNTS = {"n00000001": 3, "n00000002": 2, "n00000003": 4}
WNIDS = sorted(COUNTS)
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


@pytest.fixture
def tree(tmp_path) -> Path:
    images = make_tree(tmp_path / "tree", COUNTS)
    Image.open(images / "n00000003" / "n00000003_3.jpg").save(images / "n00000003" / "n00000003_100.png")
    return images


def _rows(tree: Path, shuffled: bool = True) -> list[dict]:
    """One row per image of the tree: {bytes, path (the file name), label (index of its wnid), key}."""
    files = sorted(tree.glob("n*/*.*"))
    if shuffled:
        files = files[1::2] + files[::2]  # classes spread over files and row groups, out of name order
    return [{"bytes": f.read_bytes(), "path": f.name, "label": WNIDS.index(f.parent.name), "key": f.stem}
            for f in files]


def _hf_metadata(names: list[str]) -> dict:
    features = {"image": {"_type": "Image"}, "label": {"names": names, "_type": "ClassLabel"}}
    return {"huggingface": json.dumps({"info": {"features": features}})}


def write_parquet(path: Path, rows: list[dict], *, names: list[str] | None = WNIDS, image: str = "struct",
                  with_path: bool = True, key_column: str | None = None, row_group_size: int = 2) -> Path:
    """A Parquet file as Hugging Face `datasets` writes an Image + ClassLabel dataset (`image` a struct of
    bytes and path; the class names in the schema metadata), or with a plain binary `image` column."""
    columns = {}
    if image == "struct":
        columns["image"] = pa.array([{"bytes": r["bytes"], "path": r["path"] if with_path else None} for r in rows],
                                    type=IMAGE_TYPE)
    else:
        columns["image"] = pa.array([r["bytes"] for r in rows], type=pa.binary())
    columns["label"] = pa.array([r["label"] for r in rows], type=pa.int64())
    if key_column:
        columns[key_column] = pa.array([r["key"] for r in rows], type=pa.string())
    table = pa.table(columns)
    if names is not None:
        table = table.replace_schema_metadata(_hf_metadata(names))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def parquet_shards(tree: Path, out: Path, shards: int = 2, **options) -> Path:
    rows = _rows(tree)
    size = -(-len(rows) // shards)
    for number in range(shards):
        write_parquet(out / f"train-{number:05d}-of-{shards:05d}.parquet", rows[number * size:(number + 1) * size],
                      **options)
    return out


def _extract(location, store: Path, **options):
    return extract(location, store, backbone=tiny_backbone(), batch_size=2, progress=False, **options)


def test_parquet_shards_give_the_folder_trees_store(tmp_path, tree):
    _extract(tree, tmp_path / "tree.h5")
    shards = parquet_shards(tree, tmp_path / "hf" / "data")
    assert open_source(shards).kind == "parquet"
    result = _extract(shards, tmp_path / "hf.h5", workers=2)  # forked workers open their own readers
    assert (result.source, result.images, result.skipped) == ("parquet", 10, [])
    assert_same_store(tmp_path / "hf.h5", tmp_path / "tree.h5")
    # A glob, a brace pattern, plain binary images with a __key__ column: the same store again.
    glob = str(shards / "train-*.parquet")
    assert _extract(glob, tmp_path / "glob.h5").images == 10
    assert_same_store(tmp_path / "glob.h5", tmp_path / "tree.h5")
    brace = str(shards / "train-{00000..00001}-of-00002.parquet")
    assert _extract(brace, tmp_path / "brace.h5").images == 10
    assert_same_store(tmp_path / "brace.h5", tmp_path / "tree.h5")
    binary = parquet_shards(tree, tmp_path / "binary", shards=3, image="binary", key_column="__key__")
    assert _extract(binary, tmp_path / "binary.h5").skipped == []
    assert_same_store(tmp_path / "binary.h5", tmp_path / "tree.h5")
    # Images are read by file, row group and row; verify rebuilds the same references.
    refs = open_source(shards).scan().classes[0].files
    assert {(ref.row_group, ref.row) for ref in refs} and all(ref.row >= 0 for ref in refs)
    assert verify(glob, tmp_path / "hf.h5", recompute=3, backbone=tiny_backbone()).ok


def test_without_an_id_column_ids_are_positions_in_the_class(tmp_path, tree):
    _extract(tree, tmp_path / "tree.h5")
    # Rows in the folder's name order, no path: ids 0, 1, ... in row order, features those of the folder's rows.
    write_parquet(tmp_path / "hf" / "a.parquet", _rows(tree, shuffled=False), with_path=False, row_group_size=3)
    result = _extract(tmp_path / "hf", tmp_path / "hf.h5")
    assert result.skipped == []
    positional, reference = store_contents(tmp_path / "hf.h5"), store_contents(tmp_path / "tree.h5")
    for wnid, count in COUNTS.items():
        expected = count + (wnid == "n00000003")
        assert positional[wnid][1].tolist() == list(range(expected))
        np.testing.assert_array_equal(positional[wnid][0], reference[wnid][0])
    # Stable: the same files give the same ids and features.
    again = _extract(tmp_path / "hf" / "a.parquet", tmp_path / "again.h5")
    assert again.images == 10
    assert_same_store(tmp_path / "again.h5", tmp_path / "hf.h5")


def test_label_map_gives_the_wnids(tmp_path, tree, capsys, monkeypatch):
    import goz.extract as api

    _extract(tree, tmp_path / "tree.h5")
    shards = parquet_shards(tree, tmp_path / "hf", names=None)  # no class names in the schema
    with pytest.raises(GozError, match=r"train-00000-of-00002\.parquet: no class names .*--label-map FILE"):
        _extract(shards, tmp_path / "none.h5")
    # LOC_synset_mapping.txt's form (wnid, then the class name) and a JSON list.
    text_map = tmp_path / "labels.txt"
    text_map.write_text("".join(f"{wnid} class {i}\n" for i, wnid in enumerate(WNIDS)) + "\n")
    json_map = tmp_path / "labels.json"
    json_map.write_text(json.dumps(WNIDS))
    assert read_label_map(text_map) == read_label_map(json_map) == WNIDS
    monkeypatch.setattr(api, "load_backbone", lambda *args, **kwargs: tiny_backbone())
    assert main(["extract", str(shards), str(tmp_path / "map.h5"), "--label-map", str(text_map), "--quiet",
                 "--batch-size", "2"]) == 0
    assert "images     10 in" in capsys.readouterr().out
    assert_same_store(tmp_path / "map.h5", tmp_path / "tree.h5")
    assert main(["verify", str(shards), str(tmp_path / "map.h5"), "--label-map", str(json_map)]) == 0
    # A label map overrides the dataset's own names; it does not apply to other sources.
    named = parquet_shards(tree, tmp_path / "named", names=["n00000009", "n00000008", "n00000007"])
    assert _extract(named, tmp_path / "named.h5", label_map=json_map).images == 10
    with pytest.raises(GozError, match="label_map does not apply to a folder source"):
        _extract(tree, tmp_path / "folder.h5", label_map=json_map)


def test_bad_label_maps_and_class_names_are_clear_errors(tmp_path, tree):
    rows = _rows(tree)
    bad_maps = {
        "line.txt": ("n00000001\nn00000002\ntench\n", r"line.txt: line 3 \('tench'\) does not start with a WordNet id"),
        "blank.txt": ("n00000001\n\nn00000003\n", r"blank.txt: line 2 \(''\) does not start with a WordNet id"),
        "json.json": ('["n00000001", 7]', r"json.json: entry 1 \(7\) is not a WordNet id"),
        "dict.json": ("[1", r"dict.json: not valid JSON"),
        "twice.txt": ("n00000001\nn00000001\n", r"twice.txt: n00000001 is the class of labels 0 and 1"),
        "empty.txt": ("\n\n", r"empty.txt: the label map is empty"),
    }
    write_parquet(tmp_path / "hf" / "a.parquet", rows, names=None)
    for name, (text, message) in bad_maps.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(GozError, match=message):
            _extract(tmp_path / "hf", tmp_path / "f.h5", label_map=tmp_path / name)
    with pytest.raises(GozError, match="zero: not a regular file"):
        _extract(tmp_path / "hf", tmp_path / "f.h5", label_map="/dev/zero")
    # Class names that are not wnids (the ILSVRC copies name classes in English): pass a label map.
    write_parquet(tmp_path / "english" / "a.parquet", rows, names=["tench", "goldfish", "shark"])
    with pytest.raises(GozError, match=r"a\.parquet: the dataset's class names are not WordNet ids \(e\.g\. 'tench'"):
        _extract(tmp_path / "english", tmp_path / "f.h5")
    assert not (tmp_path / "f.h5").exists()


def test_bad_parquet_files_are_clear_errors(tmp_path, tree):
    rows = _rows(tree)
    good = write_parquet(tmp_path / "good.parquet", rows)
    table = pq.read_table(good)
    cases = {
        "no_image": (table.drop_columns(["image"]), r"no_image\.parquet: no 'image' column \(columns: label\)"),
        "no_label": (table.drop_columns(["label"]), r"no_label\.parquet: no 'label' column"),
        "text_label": (table.set_column(1, "label", pa.array([str(r["label"]) for r in rows])),
                       r"text_label\.parquet: the 'label' column is string, not integers"),
        "text_image": (table.set_column(0, "image", pa.array([r["path"] for r in rows])),
                       r"text_image\.parquet: the 'image' column is string, not encoded bytes"),
    }
    for name, (bad, message) in cases.items():
        pq.write_table(bad.replace_schema_metadata(_hf_metadata(WNIDS)), tmp_path / f"{name}.parquet")
        with pytest.raises(GozError, match=message):
            _extract(tmp_path / f"{name}.parquet", tmp_path / "f.h5")
    # Not Parquet at all, and a truncated download: alone, an error naming the file; among good shards, a skip.
    (tmp_path / "junk.parquet").write_bytes(b"<html>404</html>")
    with pytest.raises(GozError, match=r"junk\.parquet is a file, neither a tar archive nor a Parquet file"):
        _extract(tmp_path / "junk.parquet", tmp_path / "f.h5")
    (tmp_path / "cut.parquet").write_bytes(good.read_bytes()[:3000])
    with pytest.raises(GozError, match=r"cut\.parquet: no image found .*cut\.parquet: not a readable Parquet file"):
        _extract(tmp_path / "cut.parquet", tmp_path / "f.h5")
    shards = parquet_shards(tree, tmp_path / "shards")
    data = (shards / "train-00001-of-00002.parquet").read_bytes()
    (shards / "train-00001-of-00002.parquet").write_bytes(data[: len(data) // 2])
    (shards / "train-00002-of-00002.parquet").write_bytes(b"PAR1 and nothing else")
    result = _extract(shards, tmp_path / "f.h5")
    reasons = {file: reason for _, file, reason in result.skipped}
    assert "not a readable Parquet file" in reasons["train-00001-of-00002.parquet"]
    assert "not a readable Parquet file" in reasons["train-00002-of-00002.parquet"]
    assert result.images == 5
    assert not list(tmp_path.glob("f.h5.tmp*")) and (tmp_path / "f.h5").exists()
    # A damaged row group: the rows before it are read, the rest recorded.
    damaged = write_parquet(tmp_path / "damaged" / "a.parquet", rows, row_group_size=4)
    page = pq.ParquetFile(damaged).metadata.row_group(1).column(2).data_page_offset  # label of rows 4-7
    data = bytearray(damaged.read_bytes())
    data[page:page + 64] = b"\xab" * 64
    damaged.write_bytes(bytes(data))
    result = _extract(damaged.parent, tmp_path / "d.h5")
    assert result.images == 4 and [file for _, file, _ in result.skipped] == ["a.parquet"]
    assert "unreadable row group 1" in result.skipped[0][2] and "4 rows are" in result.skipped[0][2]


def test_bad_rows_are_recorded_skips(tmp_path, tree):
    rows = _rows(tree)
    jpeg = rows[0]["bytes"]
    rows += [
        {"bytes": jpeg, "path": "n00000001_500.jpg", "label": 7, "key": ""},                  # label outside the names
        {"bytes": jpeg, "path": "n00000002_501.jpg", "label": 0, "key": ""},                  # path of another class
        {"bytes": jpeg, "path": "photo.jpg", "label": 0, "key": ""},                          # path is no <wnid>_<id>
        {"bytes": b"<html>404</html>", "path": "n00000001_502.jpg", "label": 0, "key": ""},   # undecodable
        {"bytes": None, "path": "n00000001_503.jpg", "label": 0, "key": ""},                  # no bytes, a path only
        {"bytes": jpeg, "path": "n00000001_3.jpg", "label": 0, "key": ""},                    # duplicate id
        {"bytes": jpeg, "path": "n00000001_504.jpg", "label": 0, "key": ""},                  # a good one
    ]
    write_parquet(tmp_path / "hf" / "a.parquet", rows, row_group_size=4)
    result = _extract(tmp_path / "hf", tmp_path / "f.h5")
    reasons = {file: (stage, reason) for stage, file, reason in result.skipped}
    assert reasons["a.parquet[10]"] == ("scan", "label 7 is outside the 3 class names (0 to 2)")
    assert "image.path names class n00000002, label 0 is n00000001" in reasons["a.parquet[11]"][1]
    assert "'photo.jpg' is not <wnid>_<id>" in reasons["a.parquet[12]"][1]
    assert reasons["a.parquet[13]"] == ("decode", "not a recognised image format")
    assert reasons["a.parquet[14]"][0] == "decode" and "no image bytes" in reasons["a.parquet[14]"][1]
    assert "duplicate image n00000001_3" in reasons["a.parquet[15]"][1]
    assert len(reasons) == 6
    assert store_contents(tmp_path / "f.h5")["n00000001"][1].tolist() == [13, 23, 3, 504]
