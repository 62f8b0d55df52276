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

Protocols. `goz` (the default): the GOZ paper's, top-1..5 (`ks` changes them). `dgp`: DGP's
`evaluate_imagenet.py` on the ImageNet-21K test sets (`2-hops`, `3-hops`, `all`): Hit@1, 2, 5, 10,
20 over the test set's samples only; `zsl` has the test set's classes as candidates, `gzsl` adds
the 1,000 training classes (DGP's `--consider-trains`); seen classes give no test sample; graph
models score with their bias (`score_bias`), as DGP's `(x | 1) . w`; a deterministic 10 % of each
class's samples, chosen by the seed (DGP's `--keep-ratio 0.1` shuffles without a seed). The tie
rule is the same in both: a hit at k when at most k candidates, the true class included, score at
least as high as the true class.

Memory at GOZ scale (1000 classes x 500 samples x 2048 floats): training features are read once
into one preallocated array, as float16 when float32 would pass 1 GiB; a model that declares
`fits_on_class_means = True` gets the streamed class means instead and no sample is held. The test
store is read and scored in chunks of rows (`StreamingEvaluation`): per chunk one (rows x
candidates) score block, per sample only its true rank, its top-k list and (gzsl) one threshold,
so memory does not grow with samples x candidates (see `score_chunk_rows`).
"""

from __future__ import annotations

import logging
import platform
import resource
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

import goz
from goz import models as model_registry
from goz import semantics as semantics_io
from goz import splits
from goz.bench import results
from goz.bench.evaluate import StreamingEvaluation
from goz.bench.results import read_result, result_paths
from goz.catalog import feature_store_path, imagenet_testset, published_table_path
from goz.device import resolve_device
from goz.errors import GozError, StoreError
from goz.models.base import TrainingData, ZSLModel
from goz.models.graph_ops import read_classifier_weights
from goz.progress import progress_bar
from goz.provenance import data_kind
from goz.semantics import SemanticsTable
from goz.store import FeatureStore
from goz.wordnet.edges import load_hierarchy
from goz.wordnet.hierarchy import ClassGraph, Hierarchy

__all__ = ["run_bench", "result_paths", "SETTINGS", "PROTOCOLS", "PUBLISHED_SEMANTICS", "score_chunk_rows"]

log = logging.getLogger(__name__)

SETTINGS = ("zsl", "gzsl")
PUBLISHED_SEMANTICS = "published"  # the original benchmark's class vectors (`goz fetch published`)
PROTOCOLS = ("goz", "dgp")
GOZ_KS = (1, 2, 3, 4, 5)
DGP_KS = (1, 2, 5, 10, 20)
DGP_TEST_FRACTION = 0.1          # DGP's --keep-ratio default
TOP_K = 5                        # the predictions file keeps at least the top 5
SCORE_BLOCK_BYTES = 128 << 20    # one float32 score block (rows x candidates) of about this size
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
              test: str | Path | None = None, semantics: str | Path | SemanticsTable = PUBLISHED_SEMANTICS,
              seen: str | Path | Sequence[str] | None = None, unseen: str | Path | Sequence[str] | None = None,
              out: str | Path = "results", per_class: int | None = 500,
              seed: int = 0, hierarchy: str | Path | Hierarchy | None = None, graph: str | None = None,
              classifier_weights: str | Path | np.ndarray | None = None, device: str = "cpu",
              hyperparameters: Mapping[str, Mapping] | None = None, force: bool = False,
              train_dtype: str | None = None, threads: int | None = None, allow_links: bool = False,
              protocol: str = "goz", ks: Sequence[int] | None = None, test_fraction: float | None = None,
              test_per_class: int | None = None, skip_missing_classes: bool = False,
              score_chunk: int | None = None, progress: bool = True) -> list[dict]:
    """Fits each model once and evaluates it in each setting; returns one result dict per pair.

    `train`/`test`: feature stores (default: the published ones `goz fetch features` installs).
    `semantics`: a semantics table (file or in memory), or `"published"` (the default): the original
    benchmark's class vectors that `goz fetch published` installs.
    `seen`/`unseen`: built-in split names, split files or lists of wnids (default: `ilsvrc2012` and
    `goz_v1`; with `protocol="dgp"` DGP's 1,000 training classes, and `unseen` must be given: `2-hops`,
    `3-hops` or `all`). `per_class`: first N
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

    `protocol`: `"goz"` or `"dgp"` (see the module's doc). `ks`: the k of the top-k metrics (default
    1..5; 1, 2, 5, 10, 20 with dgp). `test_fraction` / `test_per_class`: score only that fraction
    (at least one sample; DGP's rounding) or at most N samples of each test class, chosen by the seed
    (default: all; 0.1 with dgp). A test class the test store lacks is an error unless
    `skip_missing_classes` (the result lists it; it stays a candidate). `score_chunk`: test rows per
    scoring block (default: `score_chunk_rows`).
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
    evaluation = _protocol(protocol, ks, test_fraction, test_per_class, skip_missing_classes, score_chunk)
    if protocol == "dgp":
        if unseen is None:
            raise GozError("--protocol dgp evaluates an ImageNet test set: give --unseen 2-hops, 3-hops or all")
        seen = imagenet_testset("train") if seen is None else seen
    seen = "ilsvrc2012" if seen is None else seen
    unseen = "goz_v1" if unseen is None else unseen
    models = list(dict.fromkeys(model_registry.canonical_name(m) for m in models))  # aliases: gcn2 is sgcn
    hyperparameters = {model_registry.canonical_name(m): values for m, values in (hyperparameters or {}).items()}
    built = {name: _create(name, evaluation.model_defaults(name) | dict(hyperparameters.get(name, {})), seed,
                           device, progress) for name in models}
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with _Inputs(train, test, semantics, seen, unseen, hierarchy, graph, classifier_weights, settings,
                     uses_graph=any(model.uses_graph for model in built.values()), allow_links=allow_links,
                     evaluation=evaluation, progress=progress) as inputs:
            plans = {name: _plan(model, settings, inputs, out, per_class, seed, train_dtype, force)
                     for name, model in built.items()}
            pending = {name: plan for name, plan in plans.items() if plan}
            if pending:
                _fit_and_evaluate(pending, built, inputs, out, per_class, seed, device, train_dtype, progress)
    finally:
        torch.set_num_threads(previous_threads)
    return [read_result(result_paths(out, m, s)[0]) for m in models for s in settings]


@dataclass(frozen=True)
class _Evaluation:
    """How the test store is evaluated: the protocol, its k, which test samples, missing classes."""

    protocol: str
    ks: tuple[int, ...]
    test_fraction: float | None = None
    test_per_class: int | None = None
    skip_missing_classes: bool = False
    score_chunk: int | None = None
    fingerprints: dict = field(default_factory=dict)

    def sample_classes(self, classes: _Classes, setting: str) -> list[str]:
        """The classes whose test samples are scored: dgp scores the test set's samples only."""
        return classes.unseen + (classes.seen if setting == "gzsl" and self.protocol == "goz" else [])

    def seen_wnids(self, classes: _Classes, setting: str) -> list[str] | None:
        """Seen classes for u / s / H and the curve: the GOZ protocol's gzsl only."""
        return classes.seen if setting == "gzsl" and self.protocol == "goz" else None

    def model_defaults(self, name: str) -> dict:
        """dgp scores graph classifiers with their bias, as `evaluate_imagenet.py`'s `(x | 1) . w`."""
        if self.protocol == "dgp" and "score_bias" in model_registry.hyperparameter_names(
                model_registry.model_class(name)):
            return {"score_bias": True}
        return {}

    def test_samples(self) -> str:
        if self.test_fraction is not None:
            return f"fraction {self.test_fraction}"
        return f"per_class {self.test_per_class}" if self.test_per_class is not None else "all"

    def test_rows(self, store: FeatureStore, wnids: list[str], seed: int) -> tuple[dict[str, np.ndarray], list[int]]:
        """({wnid: rows to score} for the classes subsampled, the count scored per class)."""
        rows, counts = {}, []
        for wnid in wnids:
            n = store.count(wnid)
            if self.test_fraction is None and self.test_per_class is None:
                counts.append(n)
                continue
            # DGP keeps max(1, round(n * ratio)) of a class's shuffled files; here the shuffle is the seed's.
            keep = min(n, self.test_per_class) if self.test_per_class is not None else \
                (max(1, round(n * self.test_fraction)) if n else 0)
            chosen = np.random.default_rng([seed, int(wnid[1:])]).permutation(n)[:keep]
            rows[wnid] = np.sort(chosen)
            counts.append(keep)
        return rows, counts


def _protocol(protocol: str, ks, test_fraction, test_per_class, skip_missing_classes, score_chunk) -> _Evaluation:
    if protocol not in PROTOCOLS:
        raise GozError(f"unknown protocol {protocol!r}: choose from {', '.join(PROTOCOLS)}")
    default_ks = DGP_KS if protocol == "dgp" else GOZ_KS
    try:
        ks = tuple(sorted({int(k) for k in ks})) if ks is not None else default_ks
    except (TypeError, ValueError):
        raise GozError(f"top-k values must be positive integers, got {ks!r}") from None
    if not ks or ks[0] < 1:
        raise GozError(f"top-k values must be positive integers, got {list(ks)}")
    if test_fraction is not None and test_per_class is not None:
        raise GozError("give --test-fraction or --test-per-class, not both")
    if test_fraction is not None and not (isinstance(test_fraction, (int, float)) and 0 < test_fraction <= 1):
        raise GozError(f"--test-fraction must be in (0, 1], got {test_fraction!r}")
    if test_per_class is not None and (isinstance(test_per_class, bool) or not isinstance(test_per_class, int)
                                       or test_per_class < 1):
        raise GozError(f"--test-per-class must be a positive integer, got {test_per_class!r}")
    if score_chunk is not None and (isinstance(score_chunk, bool) or not isinstance(score_chunk, int)
                                    or score_chunk < 1):
        raise GozError(f"score_chunk must be a positive integer, got {score_chunk!r}")
    if protocol == "dgp" and test_fraction is None and test_per_class is None:
        test_fraction = DGP_TEST_FRACTION
    if test_fraction == 1:
        test_fraction = None  # every sample: the same data as no selection
    evaluation = _Evaluation(protocol, ks, None if test_fraction is None else float(test_fraction), test_per_class,
                             bool(skip_missing_classes), score_chunk)
    # Recorded only when not the default, so that earlier GOZ results keep their fingerprints.
    if protocol != "goz":
        evaluation.fingerprints["protocol"] = protocol
    if ks != GOZ_KS:
        evaluation.fingerprints["topk"] = ",".join(map(str, ks))
    if evaluation.test_samples() != "all":
        evaluation.fingerprints["test_samples"] = evaluation.test_samples()
    return evaluation


def score_chunk_rows(n_candidates: int, block_bytes: int = SCORE_BLOCK_BYTES) -> int:
    """Test rows scored at once: a float32 (rows x candidates) block of about `block_bytes`, 64..8192 rows."""
    return int(min(8192, max(64, block_bytes // (4 * max(1, n_candidates)))))


class _Inputs:
    """Everything a run reads, opened once, with the fingerprint of each part."""

    def __init__(self, train, test, semantics, seen, unseen, hierarchy, graph, classifier_weights, settings, *,
                 uses_graph: bool, evaluation: _Evaluation, allow_links: bool = False, progress: bool):
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
        self.evaluation = evaluation
        self.missing_test_classes: list[str] = []

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
        } | self.evaluation.fingerprints
        return self

    def _check_stores(self) -> None:
        for store in (self.train_store, self.test_store):
            _check_links(store, self.allow_links)
        _check_same_clip_model(self.train_store, self.test_store, self.table, self.descriptions["semantics"])
        _require(self.train_store, self.seen_split, "seen classes of the split", "training")
        tested = list(self.unseen_split)
        if "gzsl" in self.settings and self.evaluation.protocol == "goz":
            tested += self.seen_split
        missing = [w for w in tested if w not in self.test_store]
        if missing and (not self.evaluation.skip_missing_classes or len(missing) == len(tested)):
            listed = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
            raise StoreError(f"{self.test_path}: the test store lacks {len(missing)} of the {len(tested)} test "
                             f"classes ({listed})" + ("" if len(missing) == len(tested) else
                             "; pass --skip-missing-classes to evaluate without their samples (they stay "
                             "candidates; the result lists them)"))
        if missing:
            log.warning("%s: the test store lacks %d of the %d test classes, evaluated without them "
                        "(--skip-missing-classes), e.g. %s", self.test_path, len(missing), len(tested), missing[0])
        self.missing_test_classes = missing

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
    needs_samples = any(not _fits_on_means(built[name], inputs) for name in pending)
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
        on_means = _fits_on_means(model, inputs)
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


def _fits_on_means(model: ZSLModel, inputs: _Inputs) -> bool:
    # A graph model given the seen classifiers regresses them: no training sample enters its fit.
    return model.fits_on_class_means or (model.uses_graph and inputs.weights is not None)


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
    # Classes sharing one vector cap every model's accuracy on them: the reader is told, the run goes on.
    table.warn_duplicate_vectors(seen_kept + unseen_kept, role="candidate classes")
    return _Classes(seen_kept, unseen_kept, [w for w in seen if w not in set(seen_kept)],
                    [w for w in unseen if w not in set(unseen_kept)])


def _create(name: str, hyperparameters: Mapping, seed: int, device: str, progress: bool) -> ZSLModel:
    """The model with the run's seed, device and progress (every model takes them); explicit values win."""
    try:
        return model_registry.create(name, **({"seed": seed, "device": device, "progress": progress}
                                              | dict(hyperparameters)))
    except TypeError as error:
        raise GozError(f"model {name}: bad hyper-parameters {dict(hyperparameters)} ({error})") from None


# Class means of the last few (store content, seen classes, per-class cap): a sweep runs goz bench on many
# draws of unseen classes against one training store, and reading it is most of each draw's time.
_CLASS_MEANS: dict[tuple, np.ndarray] = {}
_CLASS_MEANS_KEPT = 4


def _read_training(store: FeatureStore, wnids: list[str], per_class: int | None, keep_samples: bool,
                   dtype: str | None, progress: bool) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """One pass over the seen classes: (features or None, labels, float64 class means). Means alone are
    reused in this process when the store's content, the classes and the cap are the same."""
    counts = [min(store.count(w), per_class) if per_class else store.count(w) for w in wnids]
    empty = [w for w, n in zip(wnids, counts) if n == 0]
    if empty:
        raise StoreError(f"{store.path}: {len(empty)} seen classes have no training sample, e.g. {empty[0]}")
    labels = np.repeat(np.arange(len(wnids), dtype=np.int64), counts)
    key = (store.content_fingerprint(), tuple(wnids), per_class or None)
    if not keep_samples and key in _CLASS_MEANS:
        return None, labels, _CLASS_MEANS[key].copy()
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
    _CLASS_MEANS[key] = means.copy()
    while len(_CLASS_MEANS) > _CLASS_MEANS_KEPT:
        del _CLASS_MEANS[next(iter(_CLASS_MEANS))]
    return features, labels, means


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
    classes, test_store, name, evaluation = _model_classes(model, inputs), inputs.test_store, model.name, inputs.evaluation
    candidates = classes.unseen + (classes.seen if setting == "gzsl" else [])
    missing = set(inputs.missing_test_classes)
    missing_here = [w for w in evaluation.sample_classes(classes, setting) if w in missing]
    tested = [w for w in evaluation.sample_classes(classes, setting) if w not in missing]
    rows, per_class = evaluation.test_rows(test_store, tested, seed)
    position = {wnid: i for i, wnid in enumerate(candidates)}
    true = np.repeat(np.array([position[w] for w in tested], dtype=np.int64), per_class)
    n_samples = len(true)
    if n_samples == 0:
        raise StoreError(f"{test_store.path}: no test sample in the {len(tested)} test classes of {name} {setting}")
    seen_wnids = evaluation.seen_wnids(classes, setting)
    streamed = StreamingEvaluation(candidates, true, seen_wnids=seen_wnids, ks=evaluation.ks,
                                   predictions=max(TOP_K, max(evaluation.ks)))
    scorer = _Scorer(model, candidates, run_facts["device"])
    chunk_rows = evaluation.score_chunk or score_chunk_rows(len(candidates))
    sample_ids = np.empty(n_samples, dtype=np.int64)
    score_start, score_cpu_start = time.perf_counter(), time.process_time()
    start = 0
    with progress_bar(total=n_samples, desc=f"{name} {setting} scoring", unit="sample", enabled=progress) as bar:
        for chunk in _read_ahead(test_store.iter_chunks(tested, rows, chunk_rows)):
            streamed.update(scorer(chunk.features))
            sample_ids[start:start + len(chunk.ids)] = chunk.ids
            start += len(chunk.ids)
            bar.update(len(chunk.ids))
    finished = streamed.finish()
    # CPU seconds of every thread: on a machine shared with other jobs, wall time also counts waiting for a core.
    score_seconds, score_cpu_seconds = time.perf_counter() - score_start, time.process_time() - score_cpu_start
    metrics, curve = finished.metrics, None
    if finished.curve is not None:
        full = finished.curve
        # The curve has a point per distinct threshold (up to one per sample); plots need a few hundred.
        keep = np.unique(np.linspace(0, len(full["calibrations"]) - 1, CURVE_POINTS).round().astype(int))
        metrics["ausuc"] = full["ausuc"]
        curve = {"calibrations": full["calibrations"][keep].tolist(), "unseen": full["unseen_accuracy"][keep].tolist(),
                 "seen": full["seen_accuracy"][keep].tolist()}
    by_class = dict(zip(tested, per_class))
    class_counts = counts | _class_counts(classes) | _graph_counts(model, inputs) | {
        "n_candidates": len(candidates), "n_test_samples": int(n_samples),
        "n_test_unseen_samples": int(sum(by_class.get(w, 0) for w in classes.unseen)),
        "n_test_seen_samples": int(sum(by_class.get(w, 0) for w in classes.seen)) if seen_wnids else 0,
        "n_test_classes_missing": len(missing_here), "test_classes_missing": missing_here}
    protocol = {"name": evaluation.protocol, "ks": list(evaluation.ks), "test_samples": evaluation.test_samples(),
                "consider_trains": evaluation.protocol == "dgp" and setting == "gzsl",
                "skip_missing_classes": evaluation.skip_missing_classes}
    result = results.new_result(
        model=name, setting=setting, data=inputs.data_kind, seed=seed, fingerprints=fingerprints,
        parameters=model.get_params(), metrics=metrics, classes=class_counts, inputs=inputs.descriptions,
        run=run_facts | {"score_seconds": score_seconds, "score_cpu_seconds": score_cpu_seconds,
                         "score_chunk_rows": chunk_rows, "score_path": scorer.path,
                         "peak_rss_gb": _peak_rss_gb(), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        curve=curve, protocol=protocol)
    predictions = results.Predictions(candidates, true, finished.topk, np.array(candidates, dtype=str)[true],
                                      sample_ids, inputs.data_kind, finished.true_ranks)
    json_path = results.save_result(out, result, predictions,
                                    per_class_ks=evaluation.ks if evaluation.protocol == "dgp" else None)
    first, last = evaluation.ks[0], evaluation.ks[-1]
    log.info("%s %s: top%d %.4f, top%d %.4f%s -> %s", name, setting, first, metrics[f"top{first}"], last,
             metrics[f"top{last}"], f", H top{first} {metrics[f'h_top{first}']:.4f}" if seen_wnids else "", json_path)
    return result


class _Scorer:
    """Scores of test rows against the candidates, as a torch tensor: `x @ W (+ b)` on the run's device
    for models that expose their matrix (`ZSLModel.score_matrix`), else the model's own `scores`."""

    def __init__(self, model: ZSLModel, candidates: list[str], device: str):
        self.model, self.candidates = model, candidates
        matrix = model.score_matrix(candidates)
        self.path = "scores" if matrix is None else "matrix"
        self._out: torch.Tensor | None = None
        if matrix is not None:
            target = resolve_device(device)
            weights, bias = matrix
            if tuple(weights.shape) != (weights.shape[0], len(candidates)) or \
                    (bias is not None and tuple(bias.shape) != (len(candidates),)):
                raise GozError(f"model {model.name}: score_matrix gave {tuple(weights.shape)} weights for "
                               f"{len(candidates)} candidates")
            self.weights = weights.to(target, torch.float32)
            self.bias = None if bias is None else bias.to(target, torch.float32)

    def __call__(self, features: np.ndarray) -> torch.Tensor:
        if self.path == "matrix":
            # float16 rows travel as float16 and widen on the device (exact either way).
            rows = torch.from_numpy(features).to(self.weights.device).to(torch.float32)
            if self.weights.device.type == "cpu":
                # One output block for every chunk: a fresh one would be paged in again each time. The
                # evaluation is done with a block before the next chunk is scored.
                if self._out is None or self._out.shape[0] < len(rows):
                    self._out = torch.empty(len(rows), self.weights.shape[1])
                scores = torch.matmul(rows, self.weights, out=self._out[:len(rows)])
                return scores if self.bias is None else scores.add_(self.bias)
            scores = rows @ self.weights
            return scores if self.bias is None else scores + self.bias
        scores = np.asarray(self.model.scores(features.astype(np.float32, copy=False), self.candidates),
                            dtype=np.float32)
        if scores.shape != (len(features), len(self.candidates)):
            raise GozError(f"model {self.model.name} returned scores of shape {scores.shape}, "
                           f"expected {(len(features), len(self.candidates))}")
        return torch.from_numpy(scores)


def _read_ahead(chunks: Iterator) -> Iterator:
    """The same items, the next one read by a thread while the caller scores this one (HDF5 reads and
    torch's kernels overlap: both leave Python's lock while they work)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="goz-read") as reader:
        upcoming = reader.submit(next, chunks, None)
        while True:
            item = upcoming.result()
            if item is None:
                return
            upcoming = reader.submit(next, chunks, None)
            yield item


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

