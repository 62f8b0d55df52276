"""The benchmark run: fit every model once on the seen classes, evaluate it in every setting.

Settings: `zsl` scores the unseen test samples against the unseen classes; `gzsl` scores the
unseen test samples and the test store's held-out seen samples against unseen + seen classes.
Linear models drop the classes without a class vector (from training, from the candidates and
from the test samples) with a warning; graph models keep every class, as the original did (a
candidate's classifier comes from the graph, not from its vector). Counted in the results either way.

Graph models use the published ImageNet graph of the DGP code by default (`graph="imagenet"`,
`goz.wordnet.imagenet_graph`: 32,324 nodes), or the seen and unseen classes with their ancestors
(`graph="split"`, the default when `hierarchy` is an edges file or a `Hierarchy`). The graph's
node, edge and vector-less node counts go into the result's `classes`.

Output, per (model, setting): `OUT/<model>_<setting>.json` and `.predictions.npz`, in the format
`goz.bench.results` owns; a pair is reused only when its fingerprint is identical, so a killed
run resumes where it stopped.

Memory at GOZ scale (1000 classes x 500 samples x 2048 floats): training features are read once
into one preallocated array, as float16 when float32 would pass 1 GiB; a model that declares
`fits_on_class_means = True` gets the streamed class means instead and no sample is held. Test
samples are scored in chunks.
"""

from __future__ import annotations

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

import goz
from goz import models as model_registry
from goz import semantics as semantics_io
from goz import splits
from goz.bench import results
from goz.bench.evaluate import evaluate, seen_unseen_curve, topk_predictions
from goz.bench.results import read_result, result_paths
from goz.catalog import feature_store_path, published_table_path
from goz.errors import GozError, StoreError
from goz.models.base import TrainingData, ZSLModel
from goz.models.graph_ops import read_classifier_weights
from goz.progress import progress_bar
from goz.provenance import data_kind
from goz.semantics import SemanticsTable
from goz.store import FeatureStore
from goz.wordnet.edges import load_hierarchy
from goz.wordnet.hierarchy import ClassGraph, Hierarchy

__all__ = ["run_bench", "result_paths", "SETTINGS", "PUBLISHED_SEMANTICS"]

log = logging.getLogger(__name__)

SETTINGS = ("zsl", "gzsl")
PUBLISHED_SEMANTICS = "published"  # the original benchmark's class vectors (`goz fetch published`)
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


def run_bench(models: Sequence[str], settings: Sequence[str], train: str | Path | None = None,
              test: str | Path | None = None, semantics: str | Path | SemanticsTable = PUBLISHED_SEMANTICS, seen: str | Path | Sequence[str] = "ilsvrc2012",
              unseen: str | Path | Sequence[str] = "goz_v1", out: str | Path = "results", per_class: int | None = 500,
              seed: int = 0, hierarchy: str | Path | Hierarchy | None = None, graph: str | None = None,
              classifier_weights: str | Path | np.ndarray | None = None, device: str = "cpu",
              hyperparameters: Mapping[str, Mapping] | None = None, force: bool = False,
              train_dtype: str | None = None, threads: int | None = None, allow_links: bool = False,
              progress: bool = True) -> list[dict]:
    """Fits each model once and evaluates it in each setting; returns one result dict per pair.

    `train`/`test`: feature stores (default: the published ones `goz fetch features` installs).
    `semantics`: a semantics table (file or in memory), or `"published"` (the default): the original
    benchmark's class vectors that `goz fetch published` installs.
    `seen`/`unseen`: built-in split names, split files or lists of wnids. `per_class`: first N
    training samples per class (the original used 500). `hierarchy`: `"wordnet"` (default), a
    `child<TAB>parent` edges file or a `Hierarchy`. `graph`: the graph models' class graph,
    `"imagenet"` (the published graph of the DGP code, with any seen or unseen class it lacks added;
    the default on WordNet) or `"split"` (seen + unseen + their ancestors; the default for another
    hierarchy). `classifier_weights`: (len(seen split), D + 1) array or `.npy` file, rows
    in split order. `hyperparameters`: {model: {name: value}}. A pair whose earlier result has the
    same fingerprint (everything that decides it: see `goz.bench.results`) is reused unless
    `force`; any other is recomputed and the log says what changed. `train_dtype`:
    "float16"/"float32" (default: float16 above 1 GiB). `threads`: torch CPU threads for this run
    (default: torch's choice). A store holding HDF5 soft or external links (values read from
    elsewhere) is refused unless `allow_links`.
    """
    out = Path(out)
    train, test = (_published_store(path, name) for path, name in ((train, "train"), (test, "test")))
    semantics = _published_semantics(semantics)
    if out.exists() and not out.is_dir():
        raise GozError(f"--out {out} is a file; results go into a folder")
    settings = list(dict.fromkeys(settings))
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown or not settings:
        raise GozError(f"unknown setting(s) {unknown or settings}: choose from {', '.join(SETTINGS)}")
    if not models:
        raise GozError(f"no model given; registered models: {', '.join(model_registry.list_models())}")
    models = list(dict.fromkeys(model_registry.canonical_name(m) for m in models))  # aliases: gcn2 is sgcn
    hyperparameters = {model_registry.canonical_name(m): values for m, values in (hyperparameters or {}).items()}
    built = {name: _create(name, hyperparameters.get(name, {}), seed, device, progress) for name in models}
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with _Inputs(train, test, semantics, seen, unseen, hierarchy, graph, classifier_weights, settings,
                     uses_graph=any(model.uses_graph for model in built.values()), allow_links=allow_links,
                     progress=progress) as inputs:
            plans = {name: _plan(model, settings, inputs, out, per_class, seed, train_dtype, force)
                     for name, model in built.items()}
            pending = {name: plan for name, plan in plans.items() if plan}
            if pending:
                _fit_and_evaluate(pending, built, inputs, out, per_class, seed, device, train_dtype, progress)
    finally:
        torch.set_num_threads(previous_threads)
    return [read_result(result_paths(out, m, s)[0]) for m in models for s in settings]


class _Inputs:
    """Everything a run reads, opened once, with the fingerprint of each part."""

    def __init__(self, train, test, semantics, seen, unseen, hierarchy, graph, classifier_weights, settings, *,
                 uses_graph: bool, allow_links: bool = False, progress: bool):
        self.train_path, self.test_path = Path(train), Path(test)
        self.table = semantics if isinstance(semantics, SemanticsTable) else semantics_io.load(semantics)
        self.seen_split, self.unseen_split = _split(seen), _split(unseen)
        self.descriptions = {"train": str(train), "test": str(test), "semantics": _describe(semantics),
                             "seen_split": _describe(seen), "unseen_split": _describe(unseen),
                             "hierarchy": _describe(hierarchy), "classifier_weights": _describe(classifier_weights)}
        self.classes = _classes_with_vectors(self.table, self.seen_split, self.unseen_split)
        self.graph_kind = _graph_kind(graph, hierarchy) if uses_graph else ""
        self.descriptions["graph"] = self.graph_kind
        self.graph = _graph(hierarchy, self.graph_kind, self.seen_split + self.unseen_split) if uses_graph else None
        self.weights = _classifier_weights(classifier_weights, self.seen_split)
        self.settings, self.progress, self.allow_links = settings, progress, allow_links

    def __enter__(self) -> _Inputs:
        self.train_store = FeatureStore(self.train_path)
        try:
            self.test_store = FeatureStore(self.test_path)
        except BaseException:
            self.train_store.close()
            raise
        try:
            self._check_stores()
        except BaseException:
            self.__exit__()
            raise
        self.data_kind = data_kind(self.train_store.is_synthetic, self.test_store.is_synthetic)
        # What graph models read besides the common inputs: hashed once, not per model and setting.
        self.graph_fingerprints = {
            "graph": self.graph.fingerprint() if self.graph is not None else "",
            "classifier_weights": results.digest(self.weights) if self.weights is not None else ""}
        self.fingerprints = {
            "data": self.data_kind,
            "train_store": self.train_store.content_fingerprint(progress=self.progress),
            "test_store": self.test_store.content_fingerprint(progress=self.progress),
            "semantics": self.table.fingerprint(),
            "seen_classes": results.digest(self.seen_split),
            "unseen_classes": results.digest(self.unseen_split),
            "goz_version": goz.__version__,
        }
        return self

    def _check_stores(self) -> None:
        for store in (self.train_store, self.test_store):
            _check_links(store, self.allow_links)
        _check_same_clip_model(self.train_store, self.test_store, self.table, self.descriptions["semantics"])
        _require(self.train_store, self.seen_split, "seen classes of the split", "training")
        _require(self.test_store, self.unseen_split, "unseen classes of the split", "test")
        if "gzsl" in self.settings:
            _require(self.test_store, self.seen_split, "seen classes of the split (needed by gzsl)", "test")

    def __exit__(self, *exc) -> None:
        self.train_store.close()
        self.test_store.close()

    def model_fingerprints(self, model: ZSLModel) -> dict[str, str]:
        """The run's fingerprints plus what this model reads: the graph and the classifier weights, and
        the files it reads itself (`ZSLModel.input_fingerprints`: e.g. a published classifier table)."""
        return (self.fingerprints | (self.graph_fingerprints if model.uses_graph else {})
                | model.input_fingerprints())


def _model_fingerprint(model: ZSLModel) -> str:
    """The model's name and every hyper-parameter that can change its numbers (not its progress bar)."""
    parameters = {key: value for key, value in model.get_params().items() if key != "progress"}
    return results.digest({"model": model.name, "parameters": parameters})


def _plan(model: ZSLModel, settings: list[str], inputs: _Inputs, out: Path, per_class, seed, train_dtype,
          force: bool) -> dict[str, dict[str, str]]:
    """{setting: fingerprints} of the pairs to compute; a pair with an identical earlier result is reused."""
    todo = {}
    for setting in settings:
        fingerprints = inputs.model_fingerprints(model) | {
            "model": _model_fingerprint(model), "setting": setting, "seed": str(seed), "per_class": str(per_class),
            "train_dtype": str(train_dtype)}
        earlier = read_result(result_paths(out, model.name, setting)[0])
        if earlier is None or force:
            todo[setting] = fingerprints
        elif earlier["fingerprint"] == results.fingerprint(fingerprints):
            log.info("%s %s: an identical run is already in %s, reused (use --force to redo)", model.name, setting, out)
        else:
            what = results.changes(earlier, {"fingerprints": fingerprints, "parameters": model.get_params()})
            log.warning("%s %s: recomputed, the earlier result in %s differs in: %s", model.name, setting, out,
                        "; ".join(what))
            todo[setting] = fingerprints
    return todo


def _fit_and_evaluate(pending: dict[str, dict[str, dict]], built: dict[str, ZSLModel], inputs: _Inputs, out: Path,
                      per_class, seed, device, train_dtype, progress) -> None:
    out.mkdir(parents=True, exist_ok=True)
    seen_split = inputs.seen_split
    needs_samples = any(not built[name].fits_on_class_means for name in pending)
    load_start = time.perf_counter()
    # Every seen class is trained on: linear models drop those without a vector themselves, graph
    # models keep them as regression targets (zero input), as the original's graph models did.
    if any(built[name].needs_training_features for name in pending):
        features, labels, means = _read_training(inputs.train_store, seen_split, per_class, needs_samples,
                                                 train_dtype, progress)
    else:  # nothing to learn (e.g. published classifier tables): the training store is not read
        features, labels = None, np.zeros(0, dtype=np.int64)
        means = np.zeros((len(seen_split), inputs.train_store.dim), dtype=np.float64)
    load_seconds = time.perf_counter() - load_start
    counts = {"n_train_samples": int(len(labels))}  # the class counts are each model's (`_model_classes`)
    run_facts = {"device": device, "per_class": per_class, "load_seconds": load_seconds,
                 "train_dtype": str(features.dtype) if features is not None else "",
                 "torch_threads": torch.get_num_threads(), **_versions()}
    for name, todo in pending.items():
        model = built[name]
        on_means = model.fits_on_class_means
        data = TrainingData(
            means.astype(np.float32) if on_means else features,
            np.arange(len(seen_split), dtype=np.int64) if on_means else labels,
            seen_split, inputs.table, inputs.graph, inputs.weights)
        _seed_everything(seed)
        fit_start = time.perf_counter()
        model.fit(data)
        fit_seconds = time.perf_counter() - fit_start
        for setting, fingerprints in todo.items():
            _evaluate_and_save(model, setting, fingerprints, inputs, out, counts,
                               run_facts | {"fit_seconds": fit_seconds, "fit_on_class_means": bool(on_means)}, seed,
                               progress)


def _check_same_clip_model(train_store: FeatureStore, test_store: FeatureStore, table: SemanticsTable,
                           semantics: str) -> None:
    """A store's `backbone` and a table's `encoder` that are both CLIP models (`clip:...`) must be the same model:
    image and text embeddings of two CLIP models do not share a space."""
    encoder = str(table.attrs.get("encoder", ""))
    for store in (train_store, test_store):
        backbone = str(store.attrs.get("backbone", ""))
        if backbone.startswith("clip:") and encoder.startswith("clip:") and backbone != encoder:
            raise GozError(f"{store.path} holds image embeddings of {backbone} but the semantics table "
                           f"{semantics} holds text embeddings of {encoder}: two CLIP models do not share "
                           f"an embedding space; embed the classes with `goz embed --encoder {backbone}` or extract "
                           f"the images with `goz extract --backbone {encoder}`")


def _split(value) -> list[str]:
    if isinstance(value, (str, Path)):
        return splits.load(value)
    return splits.validate(list(value), "class list")


def _check_links(store: FeatureStore, allow_links: bool) -> None:
    links = store.links()
    if links and not allow_links:
        raise StoreError(f"{store.path}: {len(links)} groups or datasets are HDF5 soft or external links, so its "
                         f"values come from elsewhere, e.g. {links[0]}; copy the data into the store, or pass "
                         f"--allow-links to use it as it is")
    if links:
        log.warning("%s: %d HDF5 links followed (--allow-links), e.g. %s", store.path, len(links), links[0])


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
    for row, (_, rows) in enumerate(progress_bar(classes, total=len(wnids), desc="loading training features",
                                                 unit="class", enabled=progress)):
        means[row] = rows.mean(axis=0, dtype=np.float64)
        if features is not None:
            features[start:start + len(rows)] = rows
        start += len(rows)
    return features, np.repeat(np.arange(len(wnids), dtype=np.int64), counts), means


GRAPHS = ("imagenet", "split")


def _graph_kind(graph: str | None, hierarchy) -> str:
    if graph is None:
        return "imagenet" if hierarchy is None or str(hierarchy) == "wordnet" else "split"
    if graph not in GRAPHS:
        raise GozError(f"unknown graph {graph!r}: choose from {', '.join(GRAPHS)}")
    return graph


def _graph(hierarchy, kind: str, wnids: list[str]) -> ClassGraph:
    """`imagenet`: the published graph (`goz.wordnet.imagenet_graph`) plus any of `wnids` it lacks;
    `split`: `wnids` and all their ancestors in the hierarchy."""
    packaged = hierarchy is None or str(hierarchy) == "wordnet"
    tree = None if packaged else hierarchy if isinstance(hierarchy, Hierarchy) else load_hierarchy(hierarchy)
    if kind == "imagenet":
        # imported here: reads the packaged lists only when asked
        from goz.wordnet.imagenet_graph import imagenet_graph

        return imagenet_graph(wnids, hierarchy=tree)
    tree = tree if tree is not None else load_hierarchy("wordnet")
    missing = [w for w in wnids if w not in tree]
    if missing:
        raise GozError(f"hierarchy {_describe(hierarchy)}: {len(missing)} classes are not in it, e.g. {missing[0]}")
    return tree.induced_graph(wnids)


def _model_classes(model: ZSLModel, inputs: _Inputs) -> _Classes:
    """A graph model keeps every class (its classifiers come from the graph), as the original's GCN
    notebook kept all 1,500, and so does any model that needs no class vector (published classifier
    tables); the others keep the classes with a class vector."""
    if model.uses_graph or not model.needs_class_vectors:
        return _Classes(list(inputs.seen_split), list(inputs.unseen_split), [], [])
    return inputs.classes


def _class_counts(classes: _Classes) -> dict:
    return {"n_seen_classes": len(classes.seen), "n_unseen_classes": len(classes.unseen),
            "n_seen_dropped": len(classes.seen_dropped), "n_unseen_dropped": len(classes.unseen_dropped),
            "seen_dropped": classes.seen_dropped, "unseen_dropped": classes.unseen_dropped}


def _graph_counts(model: ZSLModel, inputs: _Inputs) -> dict:
    if not model.uses_graph or inputs.graph is None:
        return {}
    from goz.models.graph import nodes_without_vector
    return {"graph": inputs.graph_kind, "graph_nodes": len(inputs.graph),
            "graph_edges": int(inputs.graph.parent_edges.nnz),
            "graph_nodes_without_vector": nodes_without_vector(inputs.table, inputs.graph)}


def _classifier_weights(weights, seen_split: list[str]) -> np.ndarray | None:
    if weights is None:
        return None
    if not isinstance(weights, np.ndarray):
        # .pth state dicts (fc.weight/fc.bias, read without unpickling code), .npy or .npz, rows in seen order.
        weights = read_classifier_weights(weights, seen_split)
    if weights.ndim != 2 or len(weights) != len(seen_split):
        raise GozError(f"classifier weights must be (len(seen split) = {len(seen_split)}, D + 1), "
                       f"got shape {weights.shape}")
    return np.asarray(weights, dtype=np.float32)


def _seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


def _evaluate_and_save(model: ZSLModel, setting: str, fingerprints: dict[str, str], inputs: _Inputs, out: Path,
                       counts: dict, run_facts: dict, seed: int, progress: bool) -> dict:
    classes, test_store, name = _model_classes(model, inputs), inputs.test_store, model.name
    candidates = classes.unseen + (classes.seen if setting == "gzsl" else [])
    per_candidate = test_store.counts(candidates)
    n_samples = sum(per_candidate.values())
    scores = np.empty((n_samples, len(candidates)), dtype=np.float32)
    true = np.repeat(np.arange(len(candidates), dtype=np.int64), [per_candidate[w] for w in candidates])
    score_start = time.perf_counter()
    start = 0
    with progress_bar(total=n_samples, desc=f"{name} {setting} scoring", unit="sample", enabled=progress) as bar:
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
    metrics = evaluate(scores, true, candidates, seen_wnids=seen_wnids, ks=range(1, TOP_K + 1))
    curve = None
    if seen_wnids:
        full = seen_unseen_curve(scores, true, candidates, seen_wnids)
        # The curve has a point per distinct threshold (up to one per sample); plots need a few hundred.
        keep = np.unique(np.linspace(0, len(full["calibrations"]) - 1, CURVE_POINTS).round().astype(int))
        metrics["ausuc"] = full["ausuc"]
        curve = {"calibrations": full["calibrations"][keep].tolist(), "unseen": full["unseen_accuracy"][keep].tolist(),
                 "seen": full["seen_accuracy"][keep].tolist()}
    class_counts = counts | _class_counts(classes) | _graph_counts(model, inputs) | {
        "n_candidates": len(candidates), "n_test_samples": int(n_samples),
        "n_test_unseen_samples": int(sum(per_candidate[w] for w in classes.unseen)),
        "n_test_seen_samples": int(sum(per_candidate[w] for w in classes.seen)) if seen_wnids else 0}
    result = results.new_result(
        model=name, setting=setting, data=inputs.data_kind, seed=seed, fingerprints=fingerprints,
        parameters=model.get_params(), metrics=metrics, classes=class_counts, inputs=inputs.descriptions,
        run=run_facts | {"score_seconds": score_seconds, "peak_rss_gb": _peak_rss_gb(),
                         "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        curve=curve)
    sample_ids = np.concatenate([test_store.ids(w) for w in candidates])
    predictions = results.Predictions(candidates, true, topk_predictions(scores, TOP_K),
                                      np.array(candidates, dtype=str)[true], sample_ids, inputs.data_kind)
    json_path = results.save_result(out, result, predictions)
    log.info("%s %s: top1 %.4f%s -> %s", name, setting, metrics["top1"],
             f", H top1 {metrics['h_top1']:.4f}" if seen_wnids else "", json_path)
    return result


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


def _versions() -> dict:
    return {"version_goz": goz.__version__, "version_python": platform.python_version(),
            "version_numpy": np.__version__, "version_torch": torch.__version__, "version_h5py": h5py.__version__}


def _peak_rss_gb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30


def _published_store(path: str | Path | None, role: str) -> str | Path:
    """`path`, or the published store of `role` that `goz fetch features` installs (a StoreError if absent)."""
    if path is not None:
        return path
    path = feature_store_path(f"{role}_features.h5")
    if not path.exists():
        raise StoreError(f"{path}: no feature store; run `goz fetch features`, or give the {role} store "
                         f"(--{role} / {role}=)")
    return path


def _published_semantics(semantics):
    """`semantics`, or for `"published"` the original benchmark's class vectors (a GozError if not installed)."""
    if not (isinstance(semantics, str) and semantics == PUBLISHED_SEMANTICS):
        return semantics
    path = published_table_path("glove")
    if not path.is_file():
        raise GozError(f"--semantics published: {path} is not installed; run `goz fetch published`")
    return path

