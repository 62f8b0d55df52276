"""The benchmark run: fit every model once on the seen classes, evaluate it in every setting.

Settings: `zsl` scores the unseen test samples against the unseen classes; `gzsl` scores the
unseen test samples and the test store's held-out seen samples against unseen + seen classes.
Classes without a class vector are dropped (from training, from the candidates and from the
test samples) with a warning, and counted in the results.

Output, per (model, setting), written atomically so that a killed run resumes by skipping the
pairs already finished: `OUT/<model>_<setting>.json` (one flat JSON: metrics, configuration,
counts, versions, timings, memory) and `OUT/<model>_<setting>.predictions.npz` (candidates, true
class, top-5 predictions, sample wnids and ids).

Memory at GOZ scale (1000 classes x 500 samples x 2048 floats): training features are read once
into one preallocated array, as float16 when float32 would pass 1 GiB; a model that declares
`fits_on_class_means = True` gets the streamed class means instead and no sample is held. Test
samples are scored in chunks.
"""

from __future__ import annotations

import json
import logging
import platform
import resource
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

import goz
from goz import models as model_registry
from goz import semantics as semantics_io
from goz import splits
from goz.benchmark.evaluate import evaluate, seen_unseen_curve, topk_predictions
from goz.errors import GozError, StoreError
from goz.home import write_text_atomic
from goz.models.base import TrainingData, ZSLModel
from goz.models.graph_ops import read_classifier_weights
from goz.semantics import SemanticsTable
from goz.store import FeatureStore
from goz.wordnet.edges import load_hierarchy
from goz.wordnet.hierarchy import ClassGraph, Hierarchy

__all__ = ["run_bench", "result_paths", "default_store", "SETTINGS"]

log = logging.getLogger(__name__)

SETTINGS = ("zsl", "gzsl")
TOP_K = 5
SCORE_BATCH = 4096
CURVE_POINTS = 256
FLOAT16_ABOVE_BYTES = 1 << 30


@dataclass
class _Classes:
    """The classes a run uses, after dropping those without a class vector."""

    seen: list[str]
    unseen: list[str]
    seen_dropped: list[str]
    unseen_dropped: list[str]


def result_paths(out: str | Path, model: str, setting: str) -> tuple[Path, Path]:
    """(results JSON, predictions npz) of one (model, setting) pair."""
    out = Path(out)
    return out / f"{model}_{setting}.json", out / f"{model}_{setting}.predictions.npz"


def run_bench(models: Sequence[str], settings: Sequence[str], train: str | Path, test: str | Path,
              semantics: str | Path | SemanticsTable, seen: str | Path | Sequence[str] = "ilsvrc2012",
              unseen: str | Path | Sequence[str] = "goz_v1", out: str | Path = "results", per_class: int | None = 500,
              seed: int = 0, hierarchy: str | Path | Hierarchy | None = None,
              classifier_weights: str | Path | np.ndarray | None = None, device: str = "cpu",
              hyperparameters: Mapping[str, Mapping] | None = None, force: bool = False,
              train_dtype: str | None = None, threads: int | None = None, progress: bool = True) -> list[dict]:
    """Fits each model once and evaluates it in each setting; returns one result dict per pair.

    `seen`/`unseen`: built-in split names, split files or lists of wnids. `per_class`: first N
    training samples per class (the original used 500). `hierarchy`: `"wordnet"`, a
    `child<TAB>parent` edges file or a `Hierarchy`; graph models get its graph induced by the seen
    and unseen classes. `classifier_weights`: (len(seen split), D + 1) array or `.npy` file, rows
    in split order. `hyperparameters`: {model: {name: value}}. Pairs whose JSON exists are skipped
    unless `force`. `train_dtype`: "float16"/"float32" (default: float16 above 1 GiB). `threads`:
    torch CPU threads for this run (default: torch's choice).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GozError(f"--out {out} is a file; results go into a folder")
    models, settings = list(dict.fromkeys(models)), list(dict.fromkeys(settings))
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown or not settings:
        raise GozError(f"unknown setting(s) {unknown or settings}: choose from {', '.join(SETTINGS)}")
    if not models:
        raise GozError(f"no model given; registered models: {', '.join(model_registry.list_models())}")
    models = list(dict.fromkeys(model_registry.canonical_name(m) for m in models))  # aliases: gcn2 is sgcn
    hyperparameters = {model_registry.canonical_name(m): values for m, values in (hyperparameters or {}).items()}
    pending = {m: [s for s in settings if force or _read_result(result_paths(out, m, s)[0]) is None] for m in models}
    for model, todo in pending.items():
        done = [s for s in settings if s not in todo]
        if done:
            log.info("%s: %s already done in %s, skipped (use --force to redo)", model, ", ".join(done), out)
    if any(pending.values()):
        previous_threads = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            _run_pending(pending, train=Path(train), test=Path(test), semantics=semantics, seen=seen,
                         unseen=unseen, out=out, per_class=per_class, seed=seed, hierarchy=hierarchy,
                         classifier_weights=classifier_weights, device=device,
                         hyperparameters=hyperparameters, train_dtype=train_dtype, progress=progress)
        finally:
            torch.set_num_threads(previous_threads)
    return [_read_result(result_paths(out, m, s)[0]) for m in models for s in settings]


def _run_pending(pending: dict[str, list[str]], *, train: Path, test: Path, semantics, seen, unseen, out: Path,
                 per_class, seed, hierarchy, classifier_weights, device, hyperparameters, train_dtype,
                 progress) -> None:
    table = semantics if isinstance(semantics, SemanticsTable) else semantics_io.load(semantics)
    seen_split, unseen_split = _split(seen), _split(unseen)
    gzsl = any("gzsl" in todo for todo in pending.values())
    out.mkdir(parents=True, exist_ok=True)
    with FeatureStore(train) as train_store, FeatureStore(test) as test_store:
        _check_same_clip_model(train_store, test_store, table, semantics)
        _require(train_store, seen_split, "seen classes of the split", "training")
        _require(test_store, unseen_split, "unseen classes of the split", "test")
        if gzsl:
            _require(test_store, seen_split, "seen classes of the split (needed by gzsl)", "test")
        classes = _classes_with_vectors(table, seen_split, unseen_split)
        built = {name: _create(name, hyperparameters.get(name, {}), seed, device, progress) for name in pending
                 if pending[name]}
        # Every seen class is trained on: linear models drop those without a vector themselves, graph
        # models keep them as regression targets (zero input), as the original's graph models did.
        graph = _graph(hierarchy, seen_split + classes.unseen)
        weights = _classifier_weights(classifier_weights, seen_split, seen_split)
        needs_samples = any(not model.fits_on_class_means for model in built.values())
        load_start = time.perf_counter()
        features, labels, means = _read_training(train_store, seen_split, per_class, needs_samples, train_dtype,
                                                 progress)
        load_seconds = time.perf_counter() - load_start
        context = {
            "data": _data_kind(train_store, test_store), "seed": seed, "device": device, "per_class": per_class,
            "train": str(train), "test": str(test), "semantics": _describe(semantics),
            "seen_split": _describe(seen), "unseen_split": _describe(unseen), "hierarchy": _describe(hierarchy),
            "classifier_weights": _describe(classifier_weights),
            "n_seen_classes": len(classes.seen), "n_unseen_classes": len(classes.unseen),
            "n_seen_dropped": len(classes.seen_dropped), "n_unseen_dropped": len(classes.unseen_dropped),
            "seen_dropped": classes.seen_dropped, "unseen_dropped": classes.unseen_dropped,
            "n_train_samples": int(len(labels)), "train_dtype": str(features.dtype) if features is not None else "",
            "load_seconds": load_seconds, "torch_threads": torch.get_num_threads(), **_versions(),
        }
        for name, model in built.items():
            on_means = model.fits_on_class_means
            data = TrainingData(
                means.astype(np.float32) if on_means else features,
                np.arange(len(seen_split), dtype=np.int64) if on_means else labels,
                seen_split, table, graph, weights)
            _seed_everything(seed)
            fit_start = time.perf_counter()
            model.fit(data)
            fit_seconds = time.perf_counter() - fit_start
            for setting in pending[name]:
                _evaluate_and_save(model, name, setting, classes, test_store, out,
                                   context | {"fit_seconds": fit_seconds, "fit_on_class_means": bool(on_means)},
                                   progress)


def _check_same_clip_model(train_store: FeatureStore, test_store: FeatureStore, table: SemanticsTable,
                           semantics) -> None:
    """A store's `backbone` and a table's `encoder` that are both CLIP models (`clip:...`) must be the same model:
    image and text embeddings of two CLIP models do not share a space."""
    encoder = str(table.attrs.get("encoder", ""))
    for store in (train_store, test_store):
        backbone = str(store.attrs.get("backbone", ""))
        if backbone.startswith("clip:") and encoder.startswith("clip:") and backbone != encoder:
            raise GozError(f"{store.path} holds image embeddings of {backbone} but the semantics table "
                           f"{_describe(semantics)} holds text embeddings of {encoder}: two CLIP models do not share "
                           f"an embedding space; embed the classes with `goz embed --encoder {backbone}` or extract "
                           f"the images with `goz extract --backbone {encoder}`")


def _split(value) -> list[str]:
    if isinstance(value, (str, Path)):
        return splits.load(value)
    return splits.validate(list(value), "class list")


def _require(store: FeatureStore, wnids: list[str], what: str, role: str) -> None:
    missing = [w for w in wnids if w not in store]
    if missing:
        raise StoreError(f"{store.path}: the {role} store lacks {len(missing)} of the {len(wnids)} {what}, e.g. "
                         f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")


def _classes_with_vectors(table: SemanticsTable, seen: list[str], unseen: list[str]) -> _Classes:
    seen_kept, _ = table.select(seen, role="seen classes")
    unseen_kept, _ = table.select(unseen, role="unseen classes")
    if not seen_kept:
        raise GozError(f"none of the {len(seen)} seen classes has a class vector in the semantics table")
    if not unseen_kept:
        raise GozError(f"none of the {len(unseen)} unseen classes has a class vector in the semantics table")
    overlap = set(seen_kept) & set(unseen_kept)
    if overlap:
        raise GozError(f"{len(overlap)} classes are both seen and unseen, e.g. {sorted(overlap)[0]}")
    return _Classes(seen_kept, unseen_kept, [w for w in seen if w not in set(seen_kept)],
                    [w for w in unseen if w not in set(unseen_kept)])


def _create(name: str, hyperparameters: Mapping, seed: int, device: str, progress: bool) -> ZSLModel:
    """The model with the run's seed, device and progress (every model takes them); explicit values win."""
    try:
        return model_registry.create(name, **({"seed": seed, "device": device, "progress": progress}
                                              | dict(hyperparameters)))
    except TypeError as error:
        raise GozError(f"model {name}: bad hyper-parameters {dict(hyperparameters)} ({error})") from None


def _read_training(store: FeatureStore, wnids: list[str], per_class: int | None, keep_samples: bool,
                   dtype: str | None, progress: bool) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """One pass over the seen classes: (features or None, labels, float64 class means)."""
    counts = [min(store.count(w), per_class) if per_class else store.count(w) for w in wnids]
    empty = [w for w, n in zip(wnids, counts) if n == 0]
    if empty:
        raise StoreError(f"{store.path}: {len(empty)} seen classes have no training sample, e.g. {empty[0]}")
    total, dim = sum(counts), store.dim
    if dtype is None:
        dtype = "float16" if total * dim * 4 > FLOAT16_ABOVE_BYTES else "float32"
    features = np.empty((total, dim), dtype=dtype) if keep_samples else None
    means = np.empty((len(wnids), dim), dtype=np.float64)
    start = 0
    classes = store.iter_classes(wnids, per_class)
    for row, (_, rows) in enumerate(tqdm(classes, total=len(wnids), desc="loading training features", unit="class",
                                         disable=not progress)):
        means[row] = rows.mean(axis=0, dtype=np.float64)
        if features is not None:
            features[start:start + len(rows)] = rows
        start += len(rows)
    return features, np.repeat(np.arange(len(wnids), dtype=np.int64), counts), means


def _graph(hierarchy, wnids: list[str]) -> ClassGraph | None:
    if hierarchy is None:
        return None
    tree = hierarchy if isinstance(hierarchy, Hierarchy) else load_hierarchy(hierarchy)  # parsed only when asked
    missing = [w for w in wnids if w not in tree]
    if missing:
        raise GozError(f"hierarchy {_describe(hierarchy)}: {len(missing)} classes are not in it, e.g. {missing[0]}")
    return tree.induced_graph(wnids)


def _classifier_weights(weights, seen_split: list[str], seen_kept: list[str]) -> np.ndarray | None:
    if weights is None:
        return None
    if not isinstance(weights, np.ndarray):
        # .pth state dicts (fc.weight/fc.bias, read without unpickling code), .npy or .npz, rows in seen order.
        weights = read_classifier_weights(weights, seen_split)
    if weights.ndim != 2 or len(weights) != len(seen_split):
        raise GozError(f"classifier weights must be (len(seen split) = {len(seen_split)}, D + 1), "
                       f"got shape {weights.shape}")
    row = {w: i for i, w in enumerate(seen_split)}
    return np.asarray(weights[[row[w] for w in seen_kept]], dtype=np.float32)


def _seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


def _evaluate_and_save(model: ZSLModel, name: str, setting: str, classes: _Classes, test_store: FeatureStore,
                       out: Path, context: dict, progress: bool) -> dict:
    candidates = classes.unseen + (classes.seen if setting == "gzsl" else [])
    counts = test_store.counts(candidates)
    n_samples = sum(counts.values())
    scores = np.empty((n_samples, len(candidates)), dtype=np.float32)
    true = np.repeat(np.arange(len(candidates), dtype=np.int64), [counts[w] for w in candidates])
    score_start = time.perf_counter()
    start = 0
    with tqdm(total=n_samples, desc=f"{name} {setting} scoring", unit="sample", disable=not progress) as bar:
        for batch, _ in test_store.iter_batches(candidates, batch_size=SCORE_BATCH):
            batch_scores = np.asarray(model.scores(batch, candidates), dtype=np.float32)
            if batch_scores.shape != (len(batch), len(candidates)):
                raise GozError(f"model {name} returned scores of shape {batch_scores.shape}, "
                               f"expected {(len(batch), len(candidates))}")
            scores[start:start + len(batch)] = batch_scores
            start += len(batch)
            bar.update(len(batch))
    score_seconds = time.perf_counter() - score_start
    seen_wnids = classes.seen if setting == "gzsl" else None
    result = {"model": name, "setting": setting, **context,
              **{f"param_{key}": _json_value(value) for key, value in model.get_params().items()},
              "n_candidates": len(candidates), "n_test_samples": int(n_samples),
              "n_test_unseen_samples": int(sum(counts[w] for w in classes.unseen)),
              "n_test_seen_samples": int(sum(counts[w] for w in classes.seen)) if seen_wnids else 0,
              **evaluate(scores, true, candidates, seen_wnids=seen_wnids, ks=range(1, TOP_K + 1))}
    if seen_wnids:
        curve = seen_unseen_curve(scores, true, candidates, seen_wnids)
        # The curve has a point per distinct threshold (up to one per sample); plots need a few hundred.
        keep = np.unique(np.linspace(0, len(curve["calibrations"]) - 1, CURVE_POINTS).round().astype(int))
        result |= {"ausuc": curve["ausuc"], "curve_calibrations": curve["calibrations"][keep].tolist(),
                   "curve_unseen": curve["unseen_accuracy"][keep].tolist(),
                   "curve_seen": curve["seen_accuracy"][keep].tolist()}
    result |= {"score_seconds": score_seconds, "peak_rss_gb": _peak_rss_gb(),
               "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    sample_ids = np.concatenate([test_store.ids(w) for w in candidates])
    json_path, npz_path = result_paths(out, name, setting)
    _save_npz(npz_path, candidates=np.array(candidates, dtype=str), true=true,
              topk=topk_predictions(scores, TOP_K), sample_wnids=np.array(candidates, dtype=str)[true],
              sample_ids=sample_ids)
    _save_json(json_path, result)  # last: its presence marks the pair as finished
    log.info("%s %s: top1 %.4f%s -> %s", name, setting, result["top1"],
             f", H top1 {result['h_top1']:.4f}" if seen_wnids else "", json_path)
    return result


def _save_npz(path: Path, **arrays) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    temporary.replace(path)


def _save_json(path: Path, result: dict) -> None:
    write_text_atomic(path, json.dumps(result, indent=1))


def _read_result(path: Path) -> dict | None:
    """A finished pair's results, or None (missing or unreadable: the pair is run again)."""
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and "top1" in result else None


def _json_value(value):
    return value if isinstance(value, (bool, int, float, str)) or value is None else str(value)


def _describe(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (str, Path)):
        return str(value)
    if isinstance(value, np.ndarray):
        return f"array{value.shape}"
    if isinstance(value, (Hierarchy, SemanticsTable)):
        return f"{type(value).__name__} in memory"
    return f"{len(value)} classes"


def _data_kind(*stores: FeatureStore) -> str:
    return "synthetic" if any(store.attrs.get("data") == "synthetic" for store in stores) else "real"


def _versions() -> dict:
    return {"version_goz": goz.__version__, "version_python": platform.python_version(),
            "version_numpy": np.__version__, "version_torch": torch.__version__, "version_h5py": h5py.__version__}


def _peak_rss_gb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30


def default_store(name: str) -> Path:
    """The fetched store `data_home()/features/<name>`, or a StoreError saying how to get it."""
    from goz.home import data_home
    path = data_home() / "features" / name
    if not path.exists():
        raise StoreError(f"{path}: no feature store; run `goz fetch features` or pass --train/--test")
    return path

