"""The one owner of the result format: file names, the JSON schema, fingerprints and loading.

One (model, setting) pair gives two files in the results folder: `<model>_<setting>.json` and
`<model>_<setting>.predictions.npz` (candidates, true class, top-5 predictions, sample wnids and
ids). The JSON, as CLIP_benchmark's, keeps the metrics apart from what produced them:

    {"schema": "goz-result/2", "model": "eszsl", "setting": "gzsl", "data": "real", "seed": 0,
     "fingerprint": "<sha256 of `fingerprints`>",
     "fingerprints": {"model": ..., "train_store": ..., "semantics": ..., ...},  # what decided it
     "parameters": {...},   # every hyper-parameter of the model
     "metrics": {...},      # top1..5, per-class, u/s/h (gzsl), ausuc
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
DATA_FINGERPRINTS = ("data", "train_store", "test_store", "seen_classes", "unseen_classes", "per_class")


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
        elif key in ("seed", "per_class", "setting", "data", "train_dtype", "goz_version"):
            described.append(f"{key} {before.get(key)} -> {after.get(key)}")
        else:
            described.append(key.replace("_", " "))
    return described or ["unknown (an earlier result format)"]


def new_result(*, model: str, setting: str, data: str, seed: int, fingerprints: Mapping[str, str],
               parameters: Mapping, metrics: Mapping, classes: Mapping, inputs: Mapping, run: Mapping,
               curve: Mapping | None = None) -> dict:
    result = {"schema": SCHEMA, "model": model, "setting": setting, "data": data, "seed": seed,
              "fingerprint": fingerprint(fingerprints), "fingerprints": dict(fingerprints),
              "parameters": {key: _json_value(value) for key, value in parameters.items()},
              "metrics": dict(metrics), "classes": dict(classes), "inputs": dict(inputs), "run": dict(run)}
    if curve is not None:
        result["curve"] = dict(curve)
    return result


@dataclass
class Predictions:
    """What a `.predictions.npz` holds: per test sample, its true class and its top-k candidates.

    `candidates` (C,) wnids; `true` (N,) and `topk` (N, k) indices into them (best first); `sample_wnids`
    and `sample_ids` (N,) name each sample (`<wnid>_<id>`); `data` the data kind (`goz.provenance`).
    """

    candidates: list[str]
    true: np.ndarray
    topk: np.ndarray
    sample_wnids: np.ndarray
    sample_ids: np.ndarray
    data: str

    def arrays(self) -> dict[str, np.ndarray]:
        return {"data": np.array(self.data), "candidates": np.array(self.candidates, dtype=str), "true": self.true,
                "topk": self.topk, "sample_wnids": self.sample_wnids, "sample_ids": self.sample_ids}

    @property
    def true_wnids(self) -> list[str]:
        return [self.candidates[i] for i in self.true]

    @property
    def top1_wnids(self) -> list[str]:
        return [self.candidates[i] for i in self.topk[:, 0]]


def save_result(out: str | Path, result: dict, predictions: Predictions) -> Path:
    """Writes the predictions, then the JSON (last: it marks the pair as finished). Both atomic."""
    json_path, npz_path = result_paths(out, result["model"], result["setting"])
    with atomic_path(npz_path) as temporary, open(temporary, "wb") as handle:
        np.savez_compressed(handle, **predictions.arrays())
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
    return Predictions(candidates, true, topk, sample_wnids, sample_ids, data)


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
