"""Bad input to `goz extract` (issue 18): each a one-line error naming the file, or a recorded skip."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import os
import pickle
import tarfile
import time
from pathlib import Path

import braceexpand
import pytest

from extract_helpers import make_tree, tiny_backbone, webdataset_shards
from goz.cli import main
from goz.errors import GozError
from goz.extract import extract, sources
from goz.extract.sources import expand_files, open_source
from goz.extract.writer import read_skip_log
from goz.store import FeatureStore

COUNTS = {"n00000001": 3, "n00000002": 2}


@pytest.fixture
def tree(tmp_path) -> Path:
    return make_tree(tmp_path / "tree", COUNTS)


@pytest.fixture
def cli(monkeypatch):
    import goz.extract as api

    monkeypatch.setattr(api, "load_backbone", lambda *args, **kwargs: tiny_backbone())
    return main


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _ids(store: Path) -> dict[str, list[int]]:
    with FeatureStore(store) as features:
        return {wnid: features.ids(wnid).tolist() for wnid in features.classes}


def test_a_huge_brace_pattern_is_refused_before_any_name_is_made(tmp_path):
    started = time.perf_counter()
    with pytest.raises(GozError, match=r"shard-\{0000000000\.\.9999999999\}\.tar: the brace pattern names "
                                       r"10,000,000,000 files, more than the 1,000,000"):
        open_source(str(tmp_path / "shard-{0000000000..9999999999}.tar")).scan()
    assert time.perf_counter() - started < 2  # counted, not enumerated (braceexpand would build the list)
    # A glob is enumerated lazily and bounded too.
    for number in range(4):
        (tmp_path / f"s-{number}.tar").write_bytes(b"")
    sources.MAX_PATTERN_NAMES, limit = 3, sources.MAX_PATTERN_NAMES
    try:
        with pytest.raises(GozError, match=r"s-\*\.tar: the pattern matches more than 3 files; narrow it"):
            expand_files(str(tmp_path / "s-*.tar"), ".tar")
    finally:
        sources.MAX_PATTERN_NAMES = limit


def test_brace_expansion_is_webdatasets_and_missing_shards_are_one_problem(tmp_path, tree):
    for pattern in ("a{0000..0011}.tar", "a{1..10}b{x,y{1..2}}c", "{0..10..3}", "{5..1}", "{a..c}{08..10}",
                    "plain.tar", "{single}.tar", "x{a,b}::y{07..9}"):
        count, names = sources._brace_names(pattern)
        expected = [name for part in pattern.split("::") for name in braceexpand.braceexpand(part)]
        assert list(names) == expected and count == len(expected), pattern
    shards = webdataset_shards(tree, tmp_path / "shards", per_shard=2)  # shard-0000 .. shard-0002
    problems = []
    found = expand_files(str(shards / "shard-{0000..0005}.tar"), ".tar", problems)
    assert [Path(f).name for f in found] == ["shard-0000.tar", "shard-0001.tar", "shard-0002.tar"]
    assert problems == [(str(shards / "shard-{0000..0005}.tar"), f"3 of the 6 files the pattern names do not exist "
                         f"(e.g. {shards}/shard-0003.tar); the 3 that exist are read")]
    result = extract(str(shards / "shard-{0000..0005}.tar"), tmp_path / "f.h5", backbone=tiny_backbone(),
                     progress=False)
    assert result.images == 5 and [reason for _, _, reason in result.skipped] == [problems[0][1]]
    with pytest.raises(GozError, match="missing environment variable"):
        expand_files(str(shards / "shard-${NO_SUCH_GOZ_VARIABLE}-{0..1}.tar"), ".tar")


def test_webdataset_json_ids_that_are_no_image_id_are_skips(tmp_path, tree):
    shards = webdataset_shards(tree, tmp_path / "shards", per_shard=20)
    jpeg = (tree / "n00000001" / "n00000001_3.jpg").read_bytes()
    bad_ids = {"sample0001": 10**30, "sample0002": -5, "sample0003": "1" * 30, "sample0004": True,
               "sample0005": "٣", "sample0006": 2.5, "sample0007": None}
    with tarfile.open(shards / "shard-0001.tar", "w") as tar:
        for key, image_id in bad_ids.items():
            _add(tar, f"{key}.jpg", jpeg)
            _add(tar, f"{key}.json", json.dumps({"wnid": "n00000002", "id": image_id}).encode())
        _add(tar, "sample0008.jpg", jpeg)
        _add(tar, "sample0008.json", json.dumps({"wnid": "n00000002", "id": "77"}).encode())
    result = extract(shards, tmp_path / "f.h5", backbone=tiny_backbone(), progress=False)
    reasons = {file: reason for _, file, reason in result.skipped}
    for key, image_id in bad_ids.items():
        assert reasons[f"shard-0001.tar/{key}"].startswith(f"json id {str(image_id)[:40]!r} is not an image id"), key
    assert len(reasons) == len(bad_ids)
    assert _ids(tmp_path / "f.h5")["n00000002"] == [13, 3, 77]


def test_classes_and_ids_errors_name_the_file(tmp_path, tree, cli, capsys):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(Payload()))
    store = tmp_path / "f.h5"
    assert cli(["extract", str(tree), str(store), "--classes", str(evil), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert f"{evil}: refusing to load pickle" in error and error.count("\n") == 1 and not marker.exists()
    assert cli(["extract", str(tree), str(store), "--classes", "/dev/zero", "--quiet"]) == 2
    assert "/dev/zero: not a regular file (a device, fifo or socket); --classes takes" in capsys.readouterr().err
    assert cli(["extract", str(tree), str(store), "--ids", "/dev/zero", "--quiet"]) == 2
    assert "/dev/zero: not a regular file; --ids takes" in capsys.readouterr().err
    assert not store.exists()
    # A wholly missing class is counted as a class, not as "0 requested images".
    split = tmp_path / "split.txt"
    split.write_text("n00000001\nn00000009\n")
    assert cli(["extract", str(tree), str(store), "--classes", str(split), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "missing    1 requested class not in the source" in out and "n00000009: the whole class" in out
    assert "0 requested images" not in out
    keys = tmp_path / "keys.txt"
    keys.write_text("n00000001_3\nn00000001_99\nn00000002_3\n")
    assert cli(["extract", str(tree), str(tmp_path / "g.h5"), "--ids", str(keys), "--classes", str(split),
                "--quiet"]) == 0
    assert "missing    1 requested images of 1 classes not in" in capsys.readouterr().out  # --ids decide


def test_malformed_ids_lines_are_recorded(tmp_path, tree, cli, capsys):
    keys = tmp_path / "keys.txt"
    keys.write_text("# the test images\nn00000001_3\nn0000001_13\nn00000001_23 http://a\n\nimage 7\n"
                    "n00000002_" + "9" * 30 + "\n")
    assert cli(["extract", str(tree), str(tmp_path / "f.h5"), "--ids", str(keys), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "skipped    3 files" in out and f"{keys}:3: --ids line is not <wnid>_<id>" in out
    log = read_skip_log(tmp_path / "f.h5")
    assert sorted(file for file, (stage, _) in log.items() if stage == "scan") == [f"{keys}:3", f"{keys}:6",
                                                                                   f"{keys}:7"]
    assert "'image 7'" in log[f"{keys}:6"][1]
    assert _ids(tmp_path / "f.h5") == {"n00000001": [23, 3]}


def test_a_folder_of_compressed_shards_says_gunzip(tmp_path, tree, cli, capsys):
    shards = webdataset_shards(tree, tmp_path / "shards", per_shard=3)
    for shard in sorted(shards.glob("*.tar")):
        shard.with_name(shard.name + ".gz").write_bytes(gzip.compress(shard.read_bytes()))
        shard.unlink()
    assert cli(["extract", str(shards), str(tmp_path / "f.h5"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert f"{shards}: holds 2 compressed tars (e.g. shard-0000.tar.gz) and no uncompressed one" in error
    assert f"gunzip {shards}/*.tar.gz" in error and error.count("\n") == 1
    assert not (tmp_path / "f.h5").exists()


def test_link_and_duplicate_tar_members_are_recorded(tmp_path, tree):
    first = (tree / "n00000001" / "n00000001_3.jpg").read_bytes()
    second = (tree / "n00000001" / "n00000001_13.jpg").read_bytes()
    tars = tmp_path / "tars"
    tars.mkdir()
    with tarfile.open(tars / "n00000001.tar", "w") as tar:
        _add(tar, "n00000001_3.jpg", first)
        _add(tar, "n00000001_3.jpg", second)  # the same name again: the first is kept
        for name, kind in (("n00000001_4.jpg", tarfile.SYMTYPE), ("n00000001_5.jpg", tarfile.LNKTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "n00000001_3.jpg"
            tar.addfile(info)
        info = tarfile.TarInfo("n00000001_6.jpg")
        info.type = tarfile.FIFOTYPE
        tar.addfile(info)
        tar.addfile(_folder("photos"))
    result = extract(tars, tmp_path / "f.h5", backbone=tiny_backbone(), progress=False)
    reasons = {file: reason for _, file, reason in result.skipped}
    duplicate = next(file for file in reasons if file.startswith("n00000001.tar/n00000001_3.jpg@"))
    assert "a second member of the same name" in reasons[duplicate]
    assert reasons["n00000001.tar/n00000001_4.jpg"].startswith("a symbolic link (to n00000001_3.jpg): not read")
    assert reasons["n00000001.tar/n00000001_5.jpg"].startswith("a hard link (to n00000001_3.jpg): not read")
    assert reasons["n00000001.tar/n00000001_6.jpg"].startswith("not a regular file")
    assert len(reasons) == 4  # the folder member is no problem
    # The first member of the name is the one read: its features are those of the folder's n00000001_3.jpg.
    reference = extract(tree, tmp_path / "tree.h5", backbone=tiny_backbone(), classes=["n00000001"], progress=False)
    assert reference.images == 3
    with FeatureStore(tmp_path / "f.h5") as got, FeatureStore(tmp_path / "tree.h5") as expected:
        assert got.ids("n00000001").tolist() == [3]
        assert (got.features("n00000001")[0] == expected.features("n00000001")[2]).all()  # rows 13, 23, 3
    # In a WebDataset shard, the same member name twice and two images of one extension are recorded too.
    shards = tmp_path / "shards"
    shards.mkdir()
    with tarfile.open(shards / "shard-0000.tar", "w") as tar:
        _add(tar, "n00000001_3.jpg", first)
        _add(tar, "n00000001_3.jpg", second)
        _add(tar, "n00000001_3.JPG", second)
        _add(tar, "n00000002_3.jpg", first)
    scanned = open_source(shards).scan()
    assert sorted(reason.split(";")[0].split(" (")[0] for _, reason in scanned.problems) == [
        "a second .jpg member of sample n00000001_3", "a second member of the same name in this tar"]
    assert [len(c.files) for c in scanned.classes] == [1, 1]


def _folder(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


def test_brace_names_are_lazy(tmp_path):
    count, names = sources._brace_names("x{0000000000..9999999999}y{a,b}")
    assert count == 2 * 10**10
    assert list(itertools.islice(names, 3)) == ["x0000000000ya", "x0000000000yb", "x0000000001ya"]
