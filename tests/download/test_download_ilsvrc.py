import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import checkout
import scipy.io

from goz.errors import GozError
from goz.download.ilsvrc import prepare_val

WNIDS = ["n01440764", "n01443537", "n01484850"]
# image number -> class index, two images per class, in a shuffled order like the real set.
LABELS = {1: 2, 2: 0, 3: 1, 4: 0, 5: 2, 6: 1}
SRC = str(checkout.SRC)


@pytest.fixture
def val_dir(tmp_path):
    folder = tmp_path / "val"
    folder.mkdir()
    for number in LABELS:
        (folder / f"ILSVRC2012_val_{number:08d}.JPEG").write_bytes(f"image {number}".encode())
    return folder


def write_kaggle(path: Path) -> Path:
    rows = [f"ILSVRC2012_val_{n:08d},{WNIDS[c]} 10 20 30 40 {WNIDS[c]} 1 2 3 4" for n, c in LABELS.items()]
    path.write_text("ImageId,PredictionString\n" + "\n".join(reversed(rows)) + "\n")
    return path


def write_devkit(folder: Path) -> Path:
    # The devkit numbers classes 1..1000 in its own order; the order here differs from WNIDS on purpose.
    devkit_ids = {WNIDS[0]: 3, WNIDS[1]: 1, WNIDS[2]: 2}
    synsets = np.array([(devkit_ids[w], w, "words", 0) for w in WNIDS] + [(1001, "n00001740", "entity", 5)],
                       dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("num_children", "O")])
    scipy.io.savemat(folder / "meta.mat", {"synsets": synsets})
    truth = folder / "ILSVRC2012_validation_ground_truth.txt"
    truth.write_text("".join(f"{devkit_ids[WNIDS[LABELS[n]]]}\n" for n in sorted(LABELS)))
    return truth


def expected_tree():
    return sorted(f"{WNIDS[c]}/{WNIDS[c]}_{n}.JPEG" for n, c in LABELS.items())


def tree(out: Path):
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def test_kaggle_solution_makes_symlinks(val_dir, tmp_path):
    out = tmp_path / "out"
    result = prepare_val(val_dir, write_kaggle(tmp_path / "LOC_val_solution.csv"), out, expected_per_class=2,
                         progress=False)
    assert tree(out) == expected_tree()
    link = out / WNIDS[2] / f"{WNIDS[2]}_1.JPEG"
    assert link.is_symlink() and link.read_bytes() == b"image 1"
    assert result.per_class == {w: 2 for w in WNIDS} and result.wrong_count == {} and result.missing_images == []
    again = prepare_val(val_dir, tmp_path / "LOC_val_solution.csv", out, expected_per_class=2, progress=False)
    assert again.images == 6 and tree(out) == expected_tree()


def test_devkit_ground_truth_with_meta_mat_and_copies(val_dir, tmp_path):
    devkit = tmp_path / "devkit"
    devkit.mkdir()
    out = tmp_path / "out"
    (val_dir / "ILSVRC2012_val_00000006.JPEG").unlink()
    result = prepare_val(val_dir, write_devkit(devkit), out, copy=True, progress=False)
    assert tree(out) == [p for p in expected_tree() if not p.endswith("_6.JPEG")]
    copied = out / WNIDS[0] / f"{WNIDS[0]}_4.JPEG"
    assert not copied.is_symlink() and copied.read_bytes() == b"image 4"
    assert result.missing_images == ["ILSVRC2012_val_00000006"]
    assert result.wrong_count == {WNIDS[0]: 2, WNIDS[1]: 1, WNIDS[2]: 2}  # every class short of 50


def test_cli_reports_counts(val_dir, tmp_path):
    labels = write_kaggle(tmp_path / "LOC_val_solution.csv")
    cli = subprocess.run([sys.executable, "-m", "goz", "ilsvrc", "prepare-val", str(val_dir), "--labels", str(labels),
                          "--out", str(tmp_path / "out"), "--per-class", "2"],
                         env=dict(os.environ, PYTHONPATH=SRC), capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert "6 images in 3 classes" in cli.stdout and "ok: 2 images in every class" in cli.stdout


def test_bad_labels_are_reported_with_their_line(val_dir, tmp_path):
    bad = tmp_path / "LOC_val_solution.csv"
    bad.write_text("ImageId,PredictionString\nILSVRC2012_val_00000001,../../etc 1 2 3 4\n")
    with pytest.raises(GozError, match="line 2"):
        prepare_val(val_dir, bad, tmp_path / "out", progress=False)
    truth = tmp_path / "ILSVRC2012_validation_ground_truth.txt"
    truth.write_text("1\n")
    with pytest.raises(GozError, match="meta.mat"):
        prepare_val(val_dir, truth, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_temporary_left_by_a_killed_run_is_replaced_and_the_source_untouched(val_dir, tmp_path):
    labels, out = write_kaggle(tmp_path / "LOC_val_solution.csv"), tmp_path / "out"
    target = out / WNIDS[0] / f"{WNIDS[0]}_2.JPEG"
    target.parent.mkdir(parents=True)
    # A killed run left the temporary (goz.home.atomic_path's name) as a symlink to another validation image.
    stale = target.with_name(f"{target.name}.tmp")
    stale.symlink_to(val_dir / "ILSVRC2012_val_00000004.JPEG")
    prepare_val(val_dir, labels, out, copy=True, progress=False)
    assert tree(out) == expected_tree() and not stale.is_symlink()
    assert target.read_bytes() == b"image 2" and not target.is_symlink()
    assert (val_dir / "ILSVRC2012_val_00000004.JPEG").read_bytes() == b"image 4"  # not written through the link
