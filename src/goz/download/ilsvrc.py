"""ILSVRC-2012 validation images (one flat folder) -> one folder per wnid, the seen-class test
images of the generalized setting. Labels come from Kaggle's `LOC_val_solution.csv` or from the
devkit's `ILSVRC2012_validation_ground_truth.txt` with its `meta.mat` (ILSVRC2012_ID -> WNID).

Files are named `<wnid>/<wnid>_<n>.JPEG`, n the number of `ILSVRC2012_val_000000NN`, so that
`goz extract` reads image ids from the names like for downloaded images.
"""

from __future__ import annotations

import csv
import re
import shutil
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.io

from goz.errors import GozError
from goz.home import atomic_path
from goz.names import WNID_PATTERN
from goz.progress import progress_bar

VAL_NAME = re.compile(r"^ILSVRC2012_val_(\d{8})$")


@dataclass
class PreparedVal:
    """What prepare_val did: images filed per class, and what did not add up."""

    out: str
    images: int
    classes: int
    per_class: dict[str, int]
    wrong_count: dict[str, int]
    missing_images: list[str]
    expected_per_class: int

    def as_dict(self) -> dict:
        return asdict(self)


def prepare_val(val_dir: str | Path, labels: str | Path, out: str | Path, *, meta: str | Path | None = None,
                copy: bool = False, expected_per_class: int = 50, progress: bool = True) -> PreparedVal:
    """Files every validation image of `val_dir` into `out/<wnid>/` (symlinks, or copies with `copy`).

    labels: `LOC_val_solution.csv` (Kaggle) or `ILSVRC2012_validation_ground_truth.txt` (devkit; then
    `meta` is the devkit's meta.mat, by default next to the labels file). Idempotent: rerun to resume.
    """
    val_dir, out = Path(val_dir), Path(out)
    if not val_dir.is_dir():
        raise GozError(f"{val_dir} is not a folder of ILSVRC2012_val_*.JPEG images")
    if out.exists() and not out.is_dir():
        raise GozError(f"output folder {out} is an existing file, not a folder")
    label_of = read_val_labels(Path(labels), Path(meta) if meta else None)
    images = {match.group(1): path for path in val_dir.iterdir()
              if (match := VAL_NAME.match(path.stem)) and path.is_file()}
    missing = sorted(f"ILSVRC2012_val_{number}" for number in label_of if number not in images)
    per_class: Counter[str] = Counter()
    for number, wnid in progress_bar(sorted(label_of.items()), enabled=progress, unit="img", desc="prepare-val"):
        source = images.get(number)
        if source is None:
            continue
        target = out / wnid / f"{wnid}_{int(number)}{source.suffix}"
        if not target.exists():
            _place(source.resolve(), target, copy)
        per_class[wnid] += 1
    wrong = {w: n for w, n in sorted(per_class.items()) if n != expected_per_class}
    return PreparedVal(str(out), sum(per_class.values()), len(per_class), dict(sorted(per_class.items())),
                       wrong, missing, expected_per_class)


def _place(source: Path, target: Path, copy: bool) -> None:
    """A symlink or a copy under a temporary name, then renamed: no half-written file after a kill."""
    with atomic_path(target) as temporary:
        temporary.unlink(missing_ok=True)  # left by a killed run: a symlink does not overwrite
        if copy:
            shutil.copyfile(source, temporary)
        else:
            temporary.symlink_to(source)


def read_val_labels(labels: Path, meta: Path | None = None) -> dict[str, str]:
    """{'00000001': wnid, ...} from either label format (told apart by the file's content)."""
    if not labels.is_file():
        raise GozError(f"labels file {labels} {'is a folder' if labels.is_dir() else 'does not exist'}")
    with open(labels, encoding="utf-8", errors="replace") as handle:
        first = handle.readline()
    try:
        if first.startswith("ImageId"):
            return _read_kaggle_solution(labels)
        return _read_devkit_ground_truth(labels, meta or labels.parent / "meta.mat")
    except (UnicodeDecodeError, csv.Error) as error:
        raise GozError(f"{labels}: not a UTF-8 text labels file ({error})") from None


def _read_kaggle_solution(path: Path) -> dict[str, str]:
    label_of = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if number == 1:
                continue
            match = VAL_NAME.match(row[0]) if row else None
            wnid = row[1].split()[0] if len(row) > 1 and row[1].split() else ""
            if not match or not WNID_PATTERN.match(wnid):
                raise GozError(f"{path}, line {number}: expected `ILSVRC2012_val_NNNNNNNN,<wnid> ...`, got {row!r}")
            label_of[match.group(1)] = wnid
    return label_of


def _read_devkit_ground_truth(path: Path, meta: Path) -> dict[str, str]:
    wnid_of_id = read_devkit_meta(meta)
    label_of = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text.isdigit() or int(text) not in wnid_of_id:
                raise GozError(f"{path}, line {number}: expected an ILSVRC2012_ID of {meta}, got {text!r}")
            label_of[f"{number:08d}"] = wnid_of_id[int(text)]
    return label_of


def read_devkit_meta(meta: Path) -> dict[int, str]:
    """The devkit's ILSVRC2012_ID -> WNID table from meta.mat (the `synsets` struct array)."""
    if not meta.is_file():
        raise GozError(f"{meta} {'is a folder' if meta.is_dir() else 'does not exist'}: the devkit ground truth "
                       f"needs the devkit's data/meta.mat (--meta)")
    try:
        synsets = np.atleast_1d(scipy.io.loadmat(meta, squeeze_me=True)["synsets"])
        table = {int(np.squeeze(s["ILSVRC2012_ID"])): str(np.squeeze(s["WNID"])) for s in synsets}
    except (scipy.io.matlab.MatReadError, KeyError, ValueError, TypeError, OSError, IndexError) as error:
        raise GozError(f"{meta}: not a devkit meta.mat with a `synsets` table ({error})") from None
    bad = [w for w in table.values() if not WNID_PATTERN.match(w)]
    if bad:
        raise GozError(f"{meta}: synsets hold invalid WordNet ids, e.g. {bad[0]!r}")
    return table
