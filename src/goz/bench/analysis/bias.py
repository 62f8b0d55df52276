"""How much a split gives away through its structure: the trivial baseline, alone or side by side.

The trivial structural baseline of GOZ: seen classes are one-hot vectors over the seen classes, an
unseen class is the uniform vector over its nearest seen classes (undirected hops). A split on which
that baseline does well is structurally biased: a model can score there without knowing anything
about the unseen classes but where they hang in the hierarchy.

`analyze_bias` scores it per hop-distance window of a split. `compare_bias` redoes the original's
`Structural Bias` notebook: a pool of candidate classes sorted by hop distance to the seen classes,
sliding windows (100 classes, step 10), and in each window the trivial baseline, word-vector models
and graph models side by side, against the window's mean distance to the seen classes, its mean
distance to the other candidates and their ratio; with the trivial baseline's prediction
consistency (how often the samples of one class project onto the same seen class) and the number
of distinct nearest seen classes the window's trivial vectors use.

Every model is fitted once on the seen classes (graph models on the graph of the seen classes and
the whole pool) and scores each window's test samples against that window's classes, as the
original scored windows with one set of published classifiers. The original also picked ESZSL's
regularizers per window on the test accuracy (a 5 x 5 grid); goz uses fixed hyper-parameters.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from goz.bench.analysis.common import Report, bootstrap_interval, figure_title
from goz.bench.analysis.distances import hop_matrix, nearest_and_mean
from goz.errors import GozError
from goz.figures import bar_plot, markdown_table, plt, save_figure
from goz.home import write_text_atomic
from goz.progress import progress_bar
from goz.provenance import synthetic_note as _synthetic_note
from goz.provenance import synthetic_title as _synthetic_title
from goz.semantics import SemanticsTable
from goz.splits.hops import nearest_sources
from goz.store import FeatureStore
from goz.wordnet import Hierarchy

log = logging.getLogger(__name__)

WINDOW, STEP = 100, 10
BOOTSTRAP_WINDOW = 200   # resamples of a window's classes for its interval


# -- the trivial baseline per hop distance ------------------------------------------------------------
@dataclass
class BiasAnalysis:
    distance: dict[str, int]               # unseen class -> hops to its nearest seen classes (-1: none)
    nearest: dict[str, list[str]]          # unseen class -> its nearest seen classes
    class_accuracy: dict[str, float] = field(default_factory=dict)  # trivial baseline, when scored
    model: str = "eszsl"
    synthetic: bool = False  # scored on goz.synthetic's stores: every output says so

    def windows(self) -> list[tuple[str, list[str]]]:
        """(label, unseen classes) per exact hop distance, then cumulative windows."""
        by_distance: dict[int, list[str]] = defaultdict(list)
        for wnid, d in self.distance.items():
            by_distance[d].append(wnid)
        exact = [(("unreachable" if d < 0 else f"{d} hops"), by_distance[d]) for d in sorted(by_distance)]
        reachable = sorted(d for d in by_distance if d > 0)
        cumulative = [(f"≤ {d} hops", [w for w, e in self.distance.items() if 0 < e <= d]) for d in reachable[:-1]]
        return exact + cumulative + [("all", list(self.distance))]

    def table(self) -> tuple[list[str], list[list]]:
        signatures = Counter(tuple(v) for v in self.nearest.values())
        header = ["window", "unseen classes", "mean nearest seen", "distinct trivial vectors %"]
        rows = []
        for label, wnids in self.windows():
            row = [label, len(wnids), float(np.mean([len(self.nearest[w]) for w in wnids])) if wnids else 0.0,
                   100.0 * sum(signatures[tuple(self.nearest[w])] == 1 for w in wnids) / max(len(wnids), 1)]
            if self.class_accuracy:
                scored = [self.class_accuracy[w] for w in wnids if w in self.class_accuracy]
                row.append(100.0 * float(np.mean(scored)) if scored else "n/a")
            rows.append(row)
        if self.class_accuracy:
            header.append(f"trivial baseline top-1 % ({self.model}, per class)")
        return header, rows

    def markdown(self) -> str:
        header, rows = self.table()
        chance = 100.0 / max(len(self.class_accuracy or self.distance), 1)
        return ("# Structural bias: the trivial baseline" + _synthetic_title(self.synthetic) + "\n\n"
                + _synthetic_note(self.synthetic) + "Seen classes are one-hot vectors over the seen "
                "classes; an unseen class is the uniform vector over its nearest seen classes (undirected "
                "hops). A class whose trivial vector is shared with another unseen class cannot be told apart "
                f"by structure alone. Chance level: {chance:.2f} %.\n\n" + markdown_table(header, rows))


def trivial_semantics(seen: Sequence[str], nearest: Mapping[str, Sequence[str]]) -> SemanticsTable:
    """One-hot vectors of the seen classes and, for every unseen class, the uniform vector over its nearest seen classes."""
    position = {w: i for i, w in enumerate(seen)}
    vectors = np.zeros((len(seen) + len(nearest), len(seen)), np.float32)
    vectors[np.arange(len(seen)), np.arange(len(seen))] = 1.0
    for row, neighbours in enumerate(nearest.values(), start=len(seen)):
        if neighbours:
            vectors[row, [position[w] for w in neighbours]] = 1.0 / len(neighbours)
    return SemanticsTable([*seen, *nearest], vectors, {"kind": "trivial structural baseline"})


def analyze_bias(seen: Sequence[str], unseen: Sequence[str], *, hierarchy: Hierarchy,
                 train: str | Path | None = None, test: str | Path | None = None, per_class: int | None = None,
                 model: str = "eszsl", model_params: Mapping[str, object] | None = None,
                 out: str | Path | None = None, latex: bool = False) -> BiasAnalysis:
    """The trivial structural baseline on a split. Without feature stores: how far each unseen class
    lies from the seen ones and how many share their trivial vector; with `train` and `test`
    stores: the baseline's per-class top-1 accuracy per hop-distance window, scored with `model`.
    Writes `bias.md`, `bias.csv` and `bias.png` (and `bias.tex` with `latex`) to `out`."""
    seen = list(dict.fromkeys(seen))
    _require_known(hierarchy, [*seen, *unseen])
    seen_set = set(seen)
    overlap = [w for w in unseen if w in seen_set]
    if overlap:
        raise GozError(f"{len(overlap)} unseen classes are also seen, e.g. {', '.join(overlap[:5])}")
    analysis = BiasAnalysis({}, {}, model=model)
    for wnid in unseen:
        analysis.distance[wnid], analysis.nearest[wnid] = nearest_sources(hierarchy, wnid, seen_set)
    if (train is None) != (test is None):
        raise GozError("the trivial baseline needs both --train and --test feature stores (or neither)")
    if train is not None:
        analysis.synthetic = any(_store_is_synthetic(path) for path in (train, test))
        analysis.class_accuracy = _score_trivial_baseline(seen, analysis.nearest, train, test, per_class,
                                                          model, dict(model_params or {}))
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "bias.md", analysis.markdown())
        header, rows = analysis.table()
        report = Report("Structural bias: the trivial baseline", analysis.synthetic)
        report.table("The trivial baseline per hop-distance window", header, rows)
        if latex:
            write_text_atomic(out / "bias.tex", report.latex())
        from goz.figures import write_csv

        write_csv(out / "bias.csv", [*header, "data"], [[*row, report.data] for row in rows])
        windows = [(label, wnids) for label, wnids in analysis.windows() if wnids]
        series = {"unseen classes %": [100.0 * len(w) / max(len(unseen), 1) for _, w in windows]}
        if analysis.class_accuracy:
            series["trivial baseline top-1 %"] = [
                100.0 * float(np.mean([analysis.class_accuracy[w] for w in wnids if w in analysis.class_accuracy] or [0.0]))
                for _, wnids in windows]
        bar_plot(out / "bias.png", [f"{label}\n(n={len(wnids)})" for label, wnids in windows], series,
                 title="Trivial structural baseline by hop distance to the seen classes"
                 + _synthetic_title(analysis.synthetic), ylabel="%")
    return analysis


def _store_is_synthetic(path: str | Path) -> bool:
    with FeatureStore(path) as store:
        return store.is_synthetic


def _require_known(hierarchy: Hierarchy, wnids: Sequence[str]) -> None:
    missing = [w for w in wnids if w not in hierarchy]
    if missing:
        raise GozError(f"{len(missing)} classes are not in the hierarchy, e.g. {', '.join(missing[:5])}")


def _score_trivial_baseline(seen: list[str], nearest: Mapping[str, list[str]], train: str | Path,
                            test: str | Path, per_class: int | None, model_name: str,
                            params: dict) -> dict[str, float]:
    from goz.bench.evaluate import topk_hits
    from goz.models import (  # the model registry imports torch: only when scoring
        TrainingData,
        create,
    )

    semantics = trivial_semantics(seen, nearest)
    with FeatureStore(train) as store:
        trained = [w for w in seen if w in store]
        if len(trained) < len(seen):
            log.warning("%d seen classes have no training features and are left out", len(seen) - len(trained))
        features, labels = store.load(trained, per_class=per_class)
    scored = [w for w, n in nearest.items() if n]
    with FeatureStore(test) as store:
        absent = [w for w in scored if w not in store]
        if absent:
            log.warning("%d unseen classes have no test features and are left out", len(absent))
        scored = [w for w in scored if w in store]
        test_features, test_labels = store.load(scored, per_class=per_class)
    if not scored or not trained:
        raise GozError("the trivial baseline needs seen classes in --train and reachable unseen classes in --test")
    fitted = create(model_name, **params).fit(TrainingData(features, labels, trained, semantics))
    # topk_hits counts a tie as a miss: unseen classes sharing a trivial vector are indistinguishable.
    hits = topk_hits(fitted.scores(test_features, scored), test_labels, 1)[:, 0]
    return {w: float(np.mean(hits[test_labels == i])) for i, w in enumerate(scored)}


# -- sliding windows, side by side -------------------------------------------------------------------
TRIVIAL = "trivial"


@dataclass
class Window:
    start: int
    classes: list[str]
    accuracy: dict[str, float]                  # model -> mean per-class top-1 (fraction)
    interval: dict[str, tuple[float, float]]    # model -> bootstrap interval over the window's classes
    min_seen: float                             # mean over the window of each class's hops to its nearest seen class
    mean_seen: float                            # ... of its mean hops to the seen classes
    min_other: float                            # ... of its hops to the nearest other candidate of the pool
    mean_other: float                           # ... of its mean hops to the other candidates
    ratio: float                                # mean of (hops to nearest seen) / (hops to nearest other candidate)
    consistency: float                          # trivial baseline: mean share of a class's samples on its modal seen class
    distinct_nearest: int                       # distinct seen classes the window's trivial vectors use


@dataclass
class BiasComparison:
    models: list[str]                           # the trivial baseline first
    windows: list[Window]
    pool: list[str]                             # the candidates, nearest to the seen classes first
    dropped: dict[str, list[str]]               # why -> pool classes left out
    window_size: int
    step: int
    hops: str
    synthetic: bool = False

    COLUMNS = ("min hops to seen", "mean hops to seen", "min hops to other candidates",
               "mean hops to other candidates", "ratio min seen / min other", "consistency", "distinct nearest seen")

    def _measures(self, w: Window) -> list:
        return [w.min_seen, w.mean_seen, w.min_other, w.mean_other, w.ratio, w.consistency, w.distinct_nearest]

    def report(self) -> Report:
        report = Report("Structural bias: the trivial baseline beside the models", self.synthetic)
        report.text(f"{len(self.pool)} candidate classes sorted by hop distance ({self.hops}) to their nearest "
                    f"seen class; windows of {self.window_size} classes, step {self.step} ({len(self.windows)} "
                    f"windows). Top-1 accuracy is the mean per-class accuracy of a window's classes, each model "
                    f"scoring the window's test samples against the window's classes only; intervals: 95 % "
                    f"bootstrap over the window's classes. `{TRIVIAL}`: the trivial structural baseline "
                    f"(seen classes one-hot, each candidate the mean of its nearest seen classes).")
        if self.dropped:
            report.text("Left out of the pool: " + "; ".join(f"{len(w)} {why} (e.g. {', '.join(w[:3])})"
                                                             for why, w in self.dropped.items()) + ".")
        report.table("Top-1 accuracy (%) per window",
                     ["window", "first class", *self.models, "min hops to seen", "ratio min seen / min other",
                      "consistency %", "distinct nearest seen"],
                     [[i, w.classes[0], *(100.0 * w.accuracy[m] for m in self.models), w.min_seen, w.ratio,
                       100.0 * w.consistency, w.distinct_nearest] for i, w in enumerate(self.windows)])
        return report

    def markdown(self) -> str:
        return self.report().markdown()

    def csv_rows(self) -> tuple[list[str], list[list]]:
        headers = ["window", "first position", "classes", "model", "top1", "top1 low", "top1 high", *self.COLUMNS]
        rows = [[i, w.start, len(w.classes), m, w.accuracy[m], *w.interval[m], *self._measures(w)]
                for i, w in enumerate(self.windows) for m in self.models]
        return headers, rows


def compare_bias(seen: Sequence[str], pool: Sequence[str], *, hierarchy: Hierarchy, train: str | Path,
                 test: str | Path, semantics: str | Path | SemanticsTable, models: Sequence[str] = ("eszsl",),
                 hyperparameters: Mapping[str, Mapping] | None = None, baseline: str = "eszsl",
                 window: int = WINDOW, step: int = STEP, per_class: int | None = None, graph: str = "split",
                 classifier_weights: str | Path | np.ndarray | None = None, hops: str = "wordnet",
                 seed: int = 0, device: str = "cpu", out: str | Path | None = None, latex: bool = False,
                 progress: bool = True) -> BiasComparison:
    """The original's Structural Bias analysis (module docstring) on `pool`, the candidate classes
    (e.g. `goz split build --write-candidates`). `models`: registered models compared with the
    trivial baseline (scored with `baseline`); `graph`: the graph models' class graph, `split` (seen +
    pool + their ancestors) or `imagenet` (DGP's published graph plus the pool). Writes
    `bias_compare.md`, `.csv`, `.png` (and `.tex`) to `out`."""
    from goz import models as registry  # imported on use: torch
    from goz.semantics import load as load_semantics

    if window < 2 or step < 1:
        raise GozError(f"windows need at least 2 classes and a step of at least 1, got {window} and {step}")
    seen = list(dict.fromkeys(seen))
    pool = [w for w in dict.fromkeys(pool) if w not in set(seen)]
    _require_known(hierarchy, [*seen, *pool])
    table = semantics if isinstance(semantics, SemanticsTable) else load_semantics(semantics)
    hyperparameters = {registry.canonical_name(m): dict(v) for m, v in (hyperparameters or {}).items()}
    names = list(dict.fromkeys(registry.canonical_name(m) for m in models))
    built = {name: registry.create(name, **({"seed": seed, "device": device, "progress": False}
                                            | hyperparameters.get(name, {}))) for name in names}
    dropped: dict[str, list[str]] = {}
    with FeatureStore(train) as train_store, FeatureStore(test) as test_store:
        synthetic = train_store.is_synthetic or test_store.is_synthetic
        _drop(pool, dropped, "candidates without test features", lambda w: w in test_store)
        trained = [w for w in seen if w in train_store]
        if len(trained) < len(seen):
            raise GozError(f"{train}: {len(seen) - len(trained)} seen classes have no training features, "
                           f"e.g. {', '.join(w for w in seen if w not in train_store)[:60]}")
        if any(not model.uses_graph and model.needs_class_vectors for model in built.values()):
            _drop(pool, dropped, "candidates without a class vector", lambda w: w in table)
        distances = hop_matrix(hierarchy, seen, pool, graph=hops, classes=[*seen, *pool])
        min_seen, mean_seen = nearest_and_mean(distances)
        reachable = {w for w, d in zip(pool, min_seen) if np.isfinite(d)}
        _drop(pool, dropped, "candidates not connected to any seen class", reachable.__contains__)
        keep = [i for i, _ in enumerate(min_seen) if np.isfinite(min_seen[i])]
        distances, min_seen, mean_seen = distances[:, keep], min_seen[keep], mean_seen[keep]
        if len(pool) < window:
            raise GozError(f"a pool of {len(pool)} candidate classes is smaller than one window of {window}; "
                           f"lower --window or give more candidates")
        order = sorted(range(len(pool)), key=lambda i: (min_seen[i], pool[i]))
        pool = [pool[i] for i in order]
        distances, min_seen, mean_seen = distances[:, order], min_seen[order], mean_seen[order]
        among = hop_matrix(hierarchy, pool, pool, graph=hops, classes=[*seen, *pool])
        min_other, mean_other = nearest_and_mean(among, exclude_self=np.eye(len(pool), dtype=bool))
        nearest = {w: [seen[i] for i in np.flatnonzero(distances[:, j] == min_seen[j])] for j, w in enumerate(pool)}
        test_features, test_labels = test_store.load(pool, per_class=per_class)
        fitted = _fit_models(built, trained, train_store, table, hierarchy, pool, graph, classifier_weights,
                             per_class, progress)
        trivial = _fit_trivial(baseline, hyperparameters.get(registry.canonical_name(baseline), {}), trained,
                               nearest, train_store, per_class, seed, device)
    windows = []
    starts = list(range(0, len(pool) - window + 1, step))
    for start in progress_bar(starts, desc="bias windows", unit="window", enabled=progress):
        classes = pool[start:start + window]
        rows = np.flatnonzero((test_labels >= start) & (test_labels < start + window))
        features, labels = test_features[rows], test_labels[rows] - start
        accuracy, interval = {}, {}
        for name, model in [(TRIVIAL, trivial), *fitted.items()]:
            per_class_accuracy = _per_class_top1(model.scores(features, classes), labels, len(classes))
            accuracy[name] = float(np.mean(per_class_accuracy))
            interval[name] = bootstrap_interval(per_class_accuracy, lambda a: float(np.mean(a)),
                                                n=BOOTSTRAP_WINDOW, seed=seed)
        seen_votes = np.asarray(trivial.scores(features, trained)).argmax(axis=1)
        consistency = float(np.mean([np.unique(seen_votes[labels == i], return_counts=True)[1].max() / np.sum(labels == i)
                                     for i in range(len(classes)) if np.any(labels == i)]))
        span = slice(start, start + window)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = float(np.nanmean(min_seen[span] / min_other[span]))
        windows.append(Window(start, classes, accuracy, interval, float(np.mean(min_seen[span])),
                              float(np.mean(mean_seen[span])), float(np.mean(min_other[span])),
                              float(np.nanmean(mean_other[span])), ratio, consistency,
                              len({s for w in classes for s in nearest[w]})))
    comparison = BiasComparison([TRIVIAL, *fitted], windows, pool, dropped, window, step, hops, synthetic)
    if out is not None:
        _write_comparison(comparison, Path(out), latex)
    return comparison


def _drop(pool: list[str], dropped: dict[str, list[str]], why: str, keep) -> None:
    gone = [w for w in pool if not keep(w)]
    if gone:
        log.warning("%d %s left out of the pool", len(gone), why)
        dropped[why] = gone
        pool[:] = [w for w in pool if keep(w)]


def _per_class_top1(scores: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    from goz.bench.evaluate import topk_hits

    hits = topk_hits(np.asarray(scores, dtype=np.float32), labels, 1)[:, 0]
    return np.array([hits[labels == i].mean() for i in range(n_classes) if np.any(labels == i)])


def _training(store: FeatureStore, seen: list[str], per_class: int | None, samples: bool):
    if samples:
        return store.load(seen, per_class=per_class)
    return store.class_means(seen, per_class).astype(np.float32), np.arange(len(seen), dtype=np.int64)


def _fit_models(built: dict, seen: list[str], store: FeatureStore, table: SemanticsTable, hierarchy: Hierarchy,
                pool: list[str], graph: str, classifier_weights, per_class: int | None, progress: bool) -> dict:
    from goz.models.base import TrainingData
    from goz.models.graph_ops import read_classifier_weights

    weights = None
    if classifier_weights is not None:
        weights = (np.asarray(classifier_weights, dtype=np.float32) if isinstance(classifier_weights, np.ndarray)
                   else read_classifier_weights(classifier_weights, seen))
    class_graph = None
    if any(model.uses_graph for model in built.values()):
        if graph == "imagenet":
            from goz.wordnet.imagenet_graph import imagenet_graph

            class_graph = imagenet_graph([*seen, *pool], hierarchy=hierarchy)
        elif graph == "split":
            class_graph = hierarchy.induced_graph([*seen, *pool])
        else:
            raise GozError(f"unknown graph {graph!r}: choose from imagenet, split")
    cache: dict[bool, tuple] = {}
    fitted = {}
    for name, model in progress_bar(list(built.items()), desc="fitting models", unit="model", enabled=progress):
        samples = not model.fits_on_class_means and not (model.uses_graph and weights is not None)
        if samples not in cache:
            cache[samples] = _training(store, seen, per_class, samples)
        features, labels = cache[samples]
        kept = seen if model.uses_graph or not model.needs_class_vectors else [w for w in seen if w in table]
        if len(kept) < len(seen):
            rows = np.isin(labels, [i for i, w in enumerate(seen) if w in table])
            index = {w: i for i, w in enumerate(kept)}
            features, labels = features[rows], np.array([index[seen[i]] for i in labels[rows]], dtype=np.int64)
        fitted[name] = model.fit(TrainingData(features, labels, kept, table, class_graph,
                                              weights if model.uses_graph else None))
    return fitted


def _fit_trivial(name: str, params: Mapping, seen: list[str], nearest: Mapping[str, list[str]],
                 store: FeatureStore, per_class: int | None, seed: int, device: str):
    from goz.models import TrainingData, create

    model = create(name, **({"seed": seed, "device": device, "progress": False} | dict(params)))
    features, labels = _training(store, seen, per_class, not model.fits_on_class_means)
    return model.fit(TrainingData(features, labels, seen, trivial_semantics(seen, nearest)))


def _write_comparison(comparison: BiasComparison, out: Path, latex: bool) -> None:
    report = comparison.report()
    windows, synthetic = comparison.windows, comparison.synthetic
    figure, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    panels = ((axes[0], [w.min_seen for w in windows], "window mean hops to the nearest seen class"),
              (axes[1], [w.ratio for w in windows], "window mean ratio: hops to nearest seen / to nearest other"))
    for axis, x, label in panels:
        for name in comparison.models:
            y = np.array([100.0 * w.accuracy[name] for w in windows])
            low = np.array([100.0 * w.interval[name][0] for w in windows])
            high = np.array([100.0 * w.interval[name][1] for w in windows])
            order = np.argsort(x, kind="stable")
            axis.plot(np.asarray(x)[order], y[order], marker=".", label=name)
            if np.all(np.isfinite(low)):
                axis.fill_between(np.asarray(x)[order], low[order], high[order], alpha=0.15)
        axis.set(xlabel=label, ylabel="top-1 accuracy (%)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    x = [w.start for w in windows]   # windows in the pool's order: nearest to the seen classes first
    axes[2].plot(x, [100.0 * w.consistency for w in windows], marker=".", label="consistency (% of a class's samples)")
    axes[2].set(xlabel="window's first position in the pool (sorted by hops to the nearest seen class)",
                ylabel="trivial baseline consistency (%)")
    twin = axes[2].twinx()
    twin.plot(x, [w.distinct_nearest for w in windows], color="tab:red", marker="x", label="distinct nearest seen")
    twin.set_ylabel("distinct nearest seen classes (count)")
    axes[2].grid(alpha=0.3)
    figure.suptitle(figure_title(f"Structural bias: {len(windows)} windows of {comparison.window_size} classes "
                                 f"(step {comparison.step}), {len(comparison.pool)} candidates", synthetic))
    save_figure(figure, out / "bias_compare.png")
    report.figure(out / "bias_compare.png", "Top-1 accuracy per window against the window's distance to the seen "
                                            "classes and the distance ratio (bands: 95 % bootstrap intervals); "
                                            "the trivial baseline's consistency and distinct nearest seen classes")
    headers, rows = comparison.csv_rows()
    report.write(out, "bias_compare", headers, rows, latex=latex)


__all__ = ["BiasAnalysis", "BiasComparison", "Window", "analyze_bias", "compare_bias", "trivial_semantics"]
