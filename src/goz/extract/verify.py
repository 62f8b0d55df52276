"""`verify(images, store, recompute=N)`: the reference's four checks of a store against its image folder.

1. the same classes in the folder and in the store;
2. the same number of samples per class;
3. the ids in the store equal the ids in the file names;
4. the features of N random classes, recomputed, equal the stored ones (atol 1e-5, rtol 1e-4).

Files recorded in the skip log (undecodable images) are expected to be absent from the store, and
classes whose every file was skipped are expected to be absent too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from goz.errors import GozError
from goz.extract.backbone import DEFAULT_BACKBONE, Backbone, load_backbone
from goz.extract.dataset import ClassImages
from goz.extract.engines import ClassCollector, run_local
from goz.extract.sources import scan_selected
from goz.extract.writer import parts_dir, read_skip_log
from goz.home import sha256_of
from goz.store import FeatureStore

ATOL, RTOL = 1e-5, 1e-4
SHOWN = 5  # problems listed per check; the rest are counted


@dataclass
class Check:
    name: str
    ok: bool
    details: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    store: Path
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def lines(self) -> list[str]:
        out = []
        for check in self.checks:
            out.append(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}")
            out.extend(f"      {detail}" for detail in check.details)
        out.append(f"{self.store}: {'all checks passed' if self.ok else 'verification FAILED'}")
        return out


def _listed(problems: list[str]) -> list[str]:
    return problems[:SHOWN] + ([f"... and {len(problems) - SHOWN} more"] if len(problems) > SHOWN else [])


def verify(images: str | Path, store: str | Path, recompute: int = 0, *, weights_file: str | Path | None = None,
           source: str | None = None, classes=None, ids=None, device: str = "cpu", batch_size: int = 16,
           workers: int = 0, seed: int = 0, backbone: Backbone | None = None,
           label_map: str | Path | None = None) -> VerifyReport:
    """Checks `store` against the image source `images` (selected by `classes` and `ids` as at
    extraction); `recompute` random classes are extracted again, with the store's backbone, and compared."""

    store = Path(store)
    if not store.is_file():
        raise GozError(f"{store}: no such feature store")
    tree, _ = scan_selected(images, source=source, classes=classes, ids=ids, label_map=label_map)
    skipped = {file for file, (stage, _) in read_skip_log(store).items() if stage == "decode"}
    expected: dict[str, ClassImages] = {}
    for images_of_class in tree.classes:
        kept = [f for f in images_of_class.files if f.name not in skipped]
        if kept:
            expected[images_of_class.wnid] = ClassImages(images_of_class.wnid, kept)
    with FeatureStore(store) as features:
        checks = [_check_classes(expected, features, store), *_check_samples(expected, features)]
        common = sorted(set(expected) & set(features.classes))
        if recompute:
            checks.append(_check_features([expected[w] for w in common], features, recompute,
                                          weights_file, device, batch_size, workers, seed, backbone))
    return VerifyReport(store, checks)


def _check_classes(expected: dict[str, ClassImages], features: FeatureStore, store: Path) -> Check:
    missing = sorted(set(expected) - set(features.classes))
    extra = sorted(set(features.classes) - set(expected))
    details = [f"{len(expected)} classes with images in the folder, {len(features.classes)} in the store"]
    details += _listed([f"{wnid}: in the folder, not in the store" for wnid in missing])
    details += _listed([f"{wnid}: in the store, no image in the folder" for wnid in extra])
    if parts_dir(store).is_dir():
        details.append(f"{parts_dir(store)} holds committed classes not merged yet: rerun `goz extract` to merge them")
    return Check("same classes in folder and store", not missing and not extra, details)


def _check_samples(expected: dict[str, ClassImages], features: FeatureStore) -> list[Check]:
    count_problems, id_problems = [], []
    for wnid in sorted(set(expected) & set(features.classes)):
        files = expected[wnid].files
        stored = features.ids(wnid)
        if len(stored) != len(files):
            count_problems.append(f"{wnid}: {len(files)} images in the folder, {len(stored)} samples in the store")
        names = {f.image_id for f in files}
        missing, extra = sorted(names - set(stored.tolist())), sorted(set(stored.tolist()) - names)
        if missing or extra:
            id_problems.append(f"{wnid}: ids without a stored sample {missing[:SHOWN]}, "
                               f"stored ids without a file {extra[:SHOWN]}")
    return [Check("same number of samples per class", not count_problems, _listed(count_problems)),
            Check("ids in the store equal the file names", not id_problems, _listed(id_problems))]


def _check_features(candidates: list[ClassImages], features: FeatureStore, n: int,
                    weights_file, device: str, batch_size: int, workers: int, seed: int,
                    backbone: Backbone | None) -> Check:
    # A float16 store holds each value rounded to 11 significant bits: compare within that rounding.
    rtol = max(RTOL, 2.0 ** -10) if features.attrs.get("dtype") == "float16" else RTOL
    name = f"recomputed features equal the stored ones (atol {ATOL:g}, rtol {rtol:g})"
    chosen = [candidates[i] for i in sorted(np.random.default_rng(seed).choice(
        len(candidates), size=min(n, len(candidates)), replace=False))]
    if not chosen:
        return Check(name, False, ["no class to recompute"])
    backbone = backbone or _backbone_of(features.attrs, weights_file, device)
    recomputed: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    collector = ClassCollector(chosen, backbone.dim,
                               lambda wnid, x, ids, skipped: recomputed.__setitem__(wnid, (x, ids)))
    gpu_decode = str(features.attrs.get("decoder", "")).startswith("torchvision")
    # The batch size of the extraction, when recorded: batches of one class, so the same numbers.
    batch_size = int(features.attrs.get("batch_size", batch_size))
    run_local(collector, backbone, batch_size=batch_size, workers=workers, gpu_decode=gpu_decode, progress=False)
    problems, worst = [], 0.0
    for images_of_class in chosen:
        wnid = images_of_class.wnid
        x, ids = recomputed[wnid]
        stored_ids, stored = features.ids(wnid), features.features(wnid)
        row_of = {image_id: row for row, image_id in enumerate(stored_ids.tolist())}
        rows = [row_of.get(i) for i in ids.tolist()]
        if None in rows or len(rows) != len(stored_ids):
            problems.append(f"{wnid}: recomputed ids {sorted(ids.tolist())[:SHOWN]} do not match the stored ids")
            continue
        reference = stored[rows]
        if reference.shape != x.shape:
            problems.append(f"{wnid}: stored features {reference.shape}, recomputed {x.shape}")
            continue
        worst = max(worst, float(np.abs(reference - x).max(initial=0.0)))
        bad = ~np.isclose(x, reference, atol=ATOL, rtol=rtol).all(axis=1)
        if bad.any():
            problems.append(f"{wnid}: {int(bad.sum())} of {len(bad)} samples differ, e.g. id "
                            f"{ids[bad][0]} (max abs difference {np.abs(reference - x)[bad].max():.3g})")
    details = [f"{len(chosen)} classes recomputed: {', '.join(c.wnid for c in chosen[:SHOWN])}"
               f"{' ...' if len(chosen) > SHOWN else ''}; max abs difference {worst:.3g}"]
    return Check(name, not problems, details + _listed(problems))


def _backbone_of(attrs: dict, weights_file, device: str) -> Backbone:
    """The extractor described by the store's attributes (backbone spec, weights, preprocessing);
    a weights file must match the recorded sha256."""
    if "weights" not in attrs:
        raise GozError("the store has no extraction attributes (not written by `goz extract`); "
                       "cannot recompute its features")
    spec = str(attrs.get("backbone", DEFAULT_BACKBONE))
    source = str(attrs.get("weights_source", ""))
    if weights_file is None and Path(source).is_file():
        weights_file = source
    if weights_file is not None and sha256_of(Path(weights_file)) != attrs.get("weights_sha256"):
        raise GozError(f"{weights_file}: sha256 differs from the weights the store was extracted with "
                       f"({attrs.get('weights_sha256')})")
    if weights_file is None and attrs.get("weights_sha256") and Path(source).is_absolute():
        raise GozError(f"the store was extracted with the weights file {source}, which is "
                       f"not there: pass --weights-file PATH")
    torchvision_weights = attrs.get("preprocessing_of") if ":" not in spec else None
    backbone = load_backbone(spec, weights=torchvision_weights, weights_file=weights_file, device=device,
                             precision=str(attrs["precision"]),
                             gpu_decode=str(attrs.get("decoder", "")).startswith("torchvision"))
    for key in ("backbone", "weights", "preprocessing"):
        if key in attrs and backbone.attrs[key] != attrs[key]:
            raise GozError(f"cannot rebuild the store's extractor: {key} is {attrs[key]!r} in the store, "
                           f"{backbone.attrs[key]!r} now")
    return backbone
