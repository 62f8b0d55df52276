"""The one owner of the result format: file names, the JSON schema, fingerprints and loading.

One (model, setting) pair gives two files in the results folder: `<model>_<setting>.json` and
`<model>_<setting>.predictions.npz` (candidates, true class, top-k predictions (k = max(5, largest
k asked)), each sample's true rank, sample wnids and ids); with `--protocol dgp` also
`<model>_<setting>.per_class.csv` (each test class's Hit@k, as DGP's `--output`). The JSON, as
CLIP_benchmark's, keeps the metrics apart from what produced them:

    {"schema": "goz-result/2", "model": "eszsl", "setting": "gzsl", "data": "real", "seed": 0,
     "fingerprint": "<sha256 of `fingerprints`>",
     "fingerprints": {"model": ..., "train_store": ..., "semantics": ..., ...},  # what decided it
     "parameters": {...},   # every hyper-parameter of the model
     "metrics": {...},      # top{k} for the k asked (1..5 by default), per-class, u/s/h (gzsl), ausuc
     "protocol": {...},     # goz | dgp, the k asked, which test samples, test classes the store lacked
     "curve": {...},        # gzsl: the seen-unseen curve (calibrations, unseen, seen)
     "classes": {...},      # class and sample counts, classes dropped for lack of a vector
     "inputs": {...},       # the paths and names given (for people; `fingerprints` decides reuse)
     "run": {...}}          # timings, memory, threads, versions, time finished

A finished pair is reused only when its `fingerprint` equals the new run's; the JSON is written
last, so its presence marks the pair as finished.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from goz.errors import GozError
from goz.home import atomic_path, write_text_atomic
from goz.provenance import SYNTHETIC_DATA

SCHEMA = "goz-result/2"
JSON_SUFFIX = ".json"
PREDICTIONS_SUFFIX = ".predictions.npz"
# The fingerprints that say which data a result was measured on: tables refuse to mix them.
# `test_samples` and `protocol` are recorded only when not the default (all samples, the GOZ protocol).
DATA_FINGERPRINTS = ("data", "train_store", "test_store", "seen_classes", "unseen_classes", "per_class",
                     "test_samples", "protocol")
PER_CLASS_SUFFIX = ".per_class.csv"


def result_paths(out: str | Path, model: str, setting: str) -> tuple[Path, Path]:
    """(results JSON, predictions npz) of one (model, setting) pair."""
    out = Path(out)
    return out / f"{model}_{setting}{JSON_SUFFIX}", out / f"{model}_{setting}{PREDICTIONS_SUFFIX}"


def predictions_files(directory: str | Path) -> list[tuple[str, str, Path]]:
    """(model, setting, path) of every predictions file in a results folder, sorted."""
    found = []
    for path in sorted(Path(directory).glob(f"*{PREDICTIONS_SUFFIX}")):
        model, _, setting = path.name.removesuffix(PREDICTIONS_SUFFIX).rpartition("_")
        found.append((model, setting, path) if model else (setting, "", path))
    return found


def digest(value) -> str:
    """sha256 of a JSON-able value or a numpy array (dtype, shape and bytes)."""
    hasher = hashlib.sha256()
    if isinstance(value, np.ndarray):
        hasher.update(f"{value.dtype.str}{value.shape}".encode())
        hasher.update(np.ascontiguousarray(value).tobytes())
    else:
        hasher.update(json.dumps(value, sort_keys=True, default=str).encode())
    return hasher.hexdigest()


def fingerprint(fingerprints: Mapping[str, str]) -> str:
    return digest(dict(fingerprints))


def changes(old: Mapping, new: Mapping) -> list[str]:
    """What differs between an earlier result and the run about to replace it, for the log."""
    before, after = old.get("fingerprints", {}), new["fingerprints"]
    changed = sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))
    described = []
    for key in changed:
        if key == "model":
            params_before, params_after = old.get("parameters", {}), new.get("parameters", {})
            diffs = [f"{name} {params_before.get(name)!r} -> {params_after.get(name)!r}"
                     for name in sorted(set(params_before) | set(params_after))
                     if params_before.get(name) != params_after.get(name)]
            described.append(f"hyper-parameters ({', '.join(diffs)})" if diffs else "model")
        elif key in ("seed", "per_class", "setting", "data", "train_dtype", "goz_version", "protocol", "topk",
                     "test_samples"):
            described.append(f"{key} {before.get(key)} -> {after.get(key)}")
        else:
            described.append(key.replace("_", " "))
    return described or ["unknown (an earlier result format)"]


def new_result(*, model: str, setting: str, data: str, seed: int, fingerprints: Mapping[str, str],
               parameters: Mapping, metrics: Mapping, classes: Mapping, inputs: Mapping, run: Mapping,
               curve: Mapping | None = None, protocol: Mapping | None = None) -> dict:
    result = {"schema": SCHEMA, "model": model, "setting": setting, "data": data, "seed": seed,
              "fingerprint": fingerprint(fingerprints), "fingerprints": dict(fingerprints),
              "parameters": {key: _json_value(value) for key, value in parameters.items()},
              "metrics": dict(metrics), "classes": dict(classes), "inputs": dict(inputs), "run": dict(run)}
    if protocol is not None:
        result["protocol"] = dict(protocol)
    if curve is not None:
        result["curve"] = dict(curve)
    return result


@dataclass
class Predictions:
    """What a `.predictions.npz` holds: per test sample, its true class and its top-k candidates.

    `candidates` (C,) wnids; `true` (N,) and `topk` (N, k) indices into them (best first); `sample_wnids`
    and `sample_ids` (N,) name each sample (`<wnid>_<id>`); `data` the data kind (`goz.provenance`);
    `true_rank` (N,), when known: how many other candidates scored at least as high as the true
    class, capped at the list length k (a Hit@k', ties against, when below k' <= k; k means "k or
    more"; files written before goz recorded it lack it).
    """

    candidates: list[str]
    true: np.ndarray
    topk: np.ndarray
    sample_wnids: np.ndarray
    sample_ids: np.ndarray
    data: str
    true_rank: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {"data": np.array(self.data), "candidates": np.array(self.candidates, dtype=str), "true": self.true,
                  "topk": self.topk, "sample_wnids": self.sample_wnids, "sample_ids": self.sample_ids}
        return arrays | ({} if self.true_rank is None else {"true_rank": self.true_rank})

    @property
    def true_wnids(self) -> list[str]:
        return [self.candidates[i] for i in self.true]

    @property
    def top1_wnids(self) -> list[str]:
        return [self.candidates[i] for i in self.topk[:, 0]]


def per_class_path(out: str | Path, model: str, setting: str) -> Path:
    """The per-class Hit@k table of one (model, setting) pair (written with `--protocol dgp`)."""
    return Path(out) / f"{model}_{setting}{PER_CLASS_SUFFIX}"


def per_class_hits(predictions: Predictions, ks) -> dict[str, list[float]]:
    """{wnid: [Hit@k for k in ks]} over each class's samples (classes without a sample are absent), from
    the recorded true ranks: DGP's per-class `--output`."""
    if predictions.true_rank is None:
        raise GozError("this predictions file has no true ranks (written by an earlier goz); rerun `goz bench`")
    if max(ks) > predictions.topk.shape[1]:
        raise GozError(f"the predictions file keeps ranks up to {predictions.topk.shape[1]}, not {max(ks)}; "
                       f"rerun `goz bench --topk` with k up to {max(ks)}")
    counts = np.bincount(predictions.true, minlength=len(predictions.candidates))
    hits = [np.bincount(predictions.true, weights=predictions.true_rank < k, minlength=len(predictions.candidates))
            for k in ks]
    return {wnid: [float(h[i] / counts[i]) for h in hits] for i, wnid in enumerate(predictions.candidates)
            if counts[i]}


def save_result(out: str | Path, result: dict, predictions: Predictions, per_class_ks=None) -> Path:
    """Writes the predictions (and with `per_class_ks` the per-class table), then the JSON (last: it marks
    the pair as finished). All atomic."""
    json_path, npz_path = result_paths(out, result["model"], result["setting"])
    with atomic_path(npz_path) as temporary, open(temporary, "wb") as handle:
        np.savez_compressed(handle, **predictions.arrays())
    if per_class_ks:
        counts = np.bincount(predictions.true, minlength=len(predictions.candidates))
        lines = ["wnid,samples," + ",".join(f"hit@{k}" for k in per_class_ks)]
        position = {wnid: i for i, wnid in enumerate(predictions.candidates)}
        lines += [f"{wnid},{counts[position[wnid]]}," + ",".join(str(value) for value in values)
                  for wnid, values in per_class_hits(predictions, per_class_ks).items()]
        write_text_atomic(per_class_path(out, result["model"], result["setting"]), "\n".join(lines) + "\n")
    write_text_atomic(json_path, json.dumps(result, indent=1))
    return json_path


def read_predictions(path: str | Path) -> Predictions:
    """A `.predictions.npz`, checked: GozError naming the file when it is not one."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            candidates = [str(w) for w in arrays["candidates"]]
            true, topk = np.asarray(arrays["true"]), np.asarray(arrays["topk"])
            sample_wnids = np.asarray(arrays["sample_wnids"]) if "sample_wnids" in arrays else None
            sample_ids = np.asarray(arrays["sample_ids"]) if "sample_ids" in arrays else np.full(len(true), -1)
            data = str(arrays["data"]) if "data" in arrays else ""
            true_rank = np.asarray(arrays["true_rank"]) if "true_rank" in arrays else None
    except (OSError, KeyError, ValueError, EOFError) as error:
        raise GozError(f"{path}: not a predictions file with candidates, true, topk ({error}); "
                       f"write it again with `goz bench`") from None
    if true.ndim != 1 or topk.ndim != 2 or len(topk) != len(true) or topk.shape[1] < 1:
        raise GozError(f"{path}: expected true (n,) and topk (n, k), found {true.shape} and {topk.shape}")
    for name, indices in (("true", true), ("topk", topk)):
        if indices.size and (not np.issubdtype(indices.dtype, np.integer) or indices.min() < 0
                             or indices.max() >= len(candidates)):
            raise GozError(f"{path}: {name} holds values that are not indices into the {len(candidates)} candidates")
    if sample_wnids is None:  # written before goz named each sample
        sample_wnids = np.array(candidates, dtype=str)[true]
    if true_rank is not None and true_rank.shape != true.shape:
        raise GozError(f"{path}: true_rank has shape {true_rank.shape}, true {true.shape}")
    return Predictions(candidates, true, topk, sample_wnids, sample_ids, data, true_rank)


def result_of_predictions(path: str | Path) -> dict | None:
    """The finished result whose predictions file is `path` (None if it is missing or unreadable)."""
    path = Path(path)
    return read_result(path.with_name(path.name.removesuffix(PREDICTIONS_SUFFIX) + JSON_SUFFIX))


def is_synthetic_result(result: Mapping | None) -> bool:
    return result is not None and result.get("data") == SYNTHETIC_DATA


def read_result(path: str | Path) -> dict | None:
    """A finished pair's result, or None (missing, unreadable or an earlier format: the pair is run again)."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return result if _is_result(result) else None


def load_results(directory: str | Path) -> dict[tuple[str, str], dict]:
    """{(model, setting): result} of every finished `goz bench` JSON in `directory`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise GozError(f"{directory}: no such results directory (write one with `goz bench --out {directory}`)")
    results = {}
    for path in sorted(directory.glob(f"*{JSON_SUFFIX}")):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise GozError(f"{path}: not a readable results JSON ({error})") from None
        if _is_result(result):
            results[result["model"], result["setting"]] = result
        elif isinstance(result, dict) and {"model", "setting", "top1"} <= result.keys():
            raise GozError(f"{path}: a result of an earlier goz (no fingerprint); rerun `goz bench` into "
                           f"{directory} to measure it again")
    if not results:
        raise GozError(f"{directory}: no `goz bench` results (*.json with schema {SCHEMA})")
    return results


def data_identity(result: Mapping) -> str:
    """A short id of the data a result was measured on (stores, class lists, per-class cap)."""
    return digest({key: result.get("fingerprints", {}).get(key) for key in DATA_FINGERPRINTS})[:12]


def is_synthetic(results: Mapping) -> bool:
    """Whether any of {key: result} was measured on synthetic data."""
    return any(is_synthetic_result(result) for result in results.values())


def _is_result(value) -> bool:
    return (isinstance(value, dict) and value.get("schema") == SCHEMA and isinstance(value.get("metrics"), dict)
            and "top1" in value["metrics"] and isinstance(value.get("fingerprint"), str))


def _json_value(value):
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    return value if isinstance(value, (bool, int, float, str)) or value is None else str(value)
