"""What a model's mistakes look like, and how much a split gives away through its structure.

`analyze_errors` sorts every top-1 prediction of `goz bench` by its relation to the true class in
the hierarchy and relates per-class accuracy to a class's hop distance to the seen classes, its
image count and its lemmas' usage counts. `analyze_bias` scores the trivial structural baseline
of GOZ: seen classes as one-hot vectors, each unseen class as the uniform vector over its nearest
seen classes; a split on which that baseline does well is structurally biased.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from goz.bench.results import (
    PREDICTIONS_SUFFIX,
    is_synthetic_result,
    predictions_files,
    read_predictions,
    result_of_predictions,
)
from goz.errors import GozError
from goz.figures import bar_plot, markdown_table, plt, save_figure
from goz.home import write_text_atomic
from goz.provenance import synthetic_note as _synthetic_note
from goz.provenance import synthetic_title as _synthetic_title
from goz.semantics import SemanticsTable
from goz.splits.hops import nearest_sources
from goz.store import FeatureStore
from goz.wordnet import Hierarchy

log = logging.getLogger(__name__)



# -- error structure ------------------------------------------------------------------------------
def error_categories(max_hops: int) -> list[str]:
    return ["correct", "ancestor", "descendant", "sibling", f"within {max_hops} hops", "unrelated"]


class ErrorClassifier:
    """The relation of a predicted class to the true class, first match in `error_categories` order."""

    def __init__(self, hierarchy: Hierarchy, max_hops: int):
        self.hierarchy, self.max_hops = hierarchy, max_hops
        self.categories = error_categories(max_hops)
        self._near: dict[str, dict[str, int]] = {}

    def __call__(self, true: str, predicted: str) -> str:
        h = self.hierarchy
        if predicted == true:
            return "correct"
        if predicted in h.ancestors(true):
            return "ancestor"
        if true in h.ancestors(predicted):
            return "descendant"
        if set(h.parents(true)) & set(h.parents(predicted)):
            return "sibling"
        if true not in self._near:
            self._near[true] = h.hop_distances([true], max_hops=self.max_hops)
        return self.categories[4] if predicted in self._near[true] else "unrelated"


@dataclass
class RunErrors:
    model: str
    setting: str
    samples: int
    categories: dict[str, int]                    # category -> samples
    class_accuracy: dict[str, float]              # true class -> top-1 accuracy
    correlations: dict[str, tuple[float, float]] = field(default_factory=dict)  # factor -> (pearson, spearman)


@dataclass
class ErrorAnalysis:
    runs: list[RunErrors]
    categories: list[str]
    synthetic: bool = False  # some results came from goz.synthetic's stores: every output says so

    def markdown(self) -> str:
        text = "# Error structure of top-1 predictions" + _synthetic_title(self.synthetic) + "\n\n" \
            + _synthetic_note(self.synthetic) + markdown_table(
            ["model", "setting", "samples", *(f"{c} %" for c in self.categories)],
            [[r.model, r.setting, r.samples, *(100.0 * r.categories.get(c, 0) / max(r.samples, 1)
                                                for c in self.categories)] for r in self.runs])
        factors = sorted({f for r in self.runs for f in r.correlations})
        if factors:
            text += ("\n## Per-class accuracy against class factors (Pearson r / Spearman ρ)\n\n"
                     + markdown_table(["model", "setting", *factors],
                                      [[r.model, r.setting, *(_pair(r.correlations.get(f)) for f in factors)]
                                       for r in self.runs]))
        return text


def analyze_errors(results: str | Path, *, hierarchy: Hierarchy, max_hops: int = 4,
                   seen: Sequence[str] = (), counts: Mapping[str, int] | None = None,
                   out: str | Path | None = None) -> ErrorAnalysis:
    """Error categories of every `<model>_<setting>.predictions.npz` in `results`, and per-class
    accuracy against hop distance to `seen` (when given), image count (when `counts` is given) and
    lemma usage count. Writes `errors.md`, `errors.png` and `factors_<model>_<setting>.png` to `out`."""
    results = Path(results)
    files = predictions_files(results)
    if not files:
        raise GozError(f"{results}: no *{PREDICTIONS_SUFFIX} files (write them with `goz bench`)")
    classify = ErrorClassifier(hierarchy, max_hops)
    seen_set = set(seen)
    seen_distance = hierarchy.hop_distances([w for w in seen if w in hierarchy]) if seen else None
    runs = []
    synthetic = any(is_synthetic_result(result_of_predictions(path)) for _, _, path in files)
    for model, setting, path in files:
        truth, predicted = read_top1(path, hierarchy)
        pair_counts = Counter(zip(truth, predicted))
        categories: Counter[str] = Counter()
        for (t, p), n in pair_counts.items():
            categories[classify(t, p)] += n
        class_accuracy = _class_accuracy(truth, predicted)
        factors = class_factors(hierarchy, [w for w in class_accuracy if w not in seen_set], seen_distance, counts)
        run = RunErrors(model, setting, len(truth), dict(categories), class_accuracy)
        run.correlations = {name: correlation([class_accuracy[w] for w in values], list(values.values()))
                            for name, values in factors.items()}
        runs.append(run)
        if out is not None:
            _scatter_factors(Path(out) / f"factors_{model}_{setting}.png", run, factors, synthetic)
    analysis = ErrorAnalysis(runs, classify.categories, synthetic)
    if out is not None:
        out = Path(out)
        write_text_atomic(out / "errors.md", analysis.markdown())
        bar_plot(out / "errors.png", [f"{r.model}\n{r.setting}" for r in runs],
                 {c: [100.0 * r.categories.get(c, 0) / max(r.samples, 1) for r in runs] for c in analysis.categories},
                 title="Top-1 predictions by relation to the true class" + _synthetic_title(synthetic),
                 ylabel="% of samples", stacked=True)
    return analysis


def read_top1(path: Path, hierarchy: Hierarchy) -> tuple[list[str], list[str]]:
    """(true wnid, top-1 predicted wnid) per sample of a predictions file, checked against the hierarchy."""
    predictions = read_predictions(path)
    unknown = sorted({w for w in predictions.candidates if w not in hierarchy})
    if unknown:
        raise GozError(f"{path}: {len(unknown)} candidates are not in the hierarchy, e.g. {', '.join(unknown[:5])}")
    return predictions.true_wnids, predictions.top1_wnids


def class_factors(hierarchy: Hierarchy, classes: Sequence[str], seen_distance: Mapping[str, int] | None,
                  counts: Mapping[str, int] | None) -> dict[str, dict[str, float]]:
    """factor name -> {class: value}: hop distance to the nearest seen class, image count, lemma usage."""
    factors: dict[str, dict[str, float]] = {}
    if seen_distance is not None:
        factors["hop distance to seen"] = {w: seen_distance[w] for w in classes if w in seen_distance}
    if counts is not None:
        factors["image count"] = {w: counts[w] for w in classes if w in counts}
    factors["lemma usage count"] = {w: sum(hierarchy.synsets[w].lemma_counts) for w in classes}
    return factors


def correlation(accuracy: Sequence[float], factor: Sequence[float]) -> tuple[float, float]:
    """(Pearson r, Spearman ρ); NaN when fewer than 3 classes or a constant variable."""
    if len(accuracy) < 3 or np.ptp(accuracy) == 0 or np.ptp(factor) == 0:
        return float("nan"), float("nan")
    return float(stats.pearsonr(factor, accuracy)[0]), float(stats.spearmanr(factor, accuracy)[0])


def _class_accuracy(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    hits: dict[str, list[bool]] = defaultdict(list)
    for t, p in zip(truth, predicted):
        hits[t].append(t == p)
    return {w: float(np.mean(h)) for w, h in hits.items()}


def _scatter_factors(path: Path, run: RunErrors, factors: Mapping[str, Mapping[str, float]],
                     synthetic: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(1, len(factors), figsize=(4.5 * len(factors), 4), squeeze=False)
    for ax, (name, values) in zip(axes[0], factors.items()):
        ax.scatter(list(values.values()), [run.class_accuracy[w] for w in values], s=8, alpha=0.6)
        if name != "hop distance to seen":
            ax.set_xscale("symlog")  # counts span orders of magnitude and include 0
        ax.set_xlabel(name)
        ax.set_ylabel("per-class top-1 accuracy")
        ax.set_title(f"Pearson r / Spearman ρ: {_pair(run.correlations.get(name))}", fontsize="small")
    figure.suptitle(f"{run.model} ({run.setting}){_synthetic_title(synthetic)}")
    save_figure(figure, path)


def _pair(values: tuple[float, float] | None) -> str:
    return "n/a" if values is None or np.isnan(values[0]) else f"{values[0]:+.2f} / {values[1]:+.2f}"


# -- structural bias ------------------------------------------------------------------------------
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

    def markdown(self) -> str:
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
                 out: str | Path | None = None) -> BiasAnalysis:
    """The trivial structural baseline on a split. Without feature stores: how far each unseen class
    lies from the seen ones and how many share their trivial vector; with `train` and `test`
    stores: the baseline's per-class top-1 accuracy per hop-distance window, scored with `model`.
    Writes `bias.md` and `bias.png` to `out`."""
    seen = list(dict.fromkeys(seen))
    missing = [w for w in [*seen, *unseen] if w not in hierarchy]
    if missing:
        raise GozError(f"{len(missing)} classes are not in the hierarchy, e.g. {', '.join(missing[:5])}")
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
        write_text_atomic(out / "bias.md", analysis.markdown())
        windows = [(label, wnids) for label, wnids in analysis.windows() if wnids]
        series = {"unseen classes %": [100.0 * len(w) / max(len(unseen), 1) for _, w in windows]}
        if analysis.class_accuracy:
            series["trivial baseline top-1 %"] = [
                100.0 * float(np.mean([analysis.class_accuracy[w] for w in wnids if w in analysis.class_accuracy] or [0.0]))
                for _, wnids in windows]
        bar_plot(out / "bias.png", [label for label, _ in windows], series,
                 title="Trivial structural baseline by hop distance to the seen classes"
                 + _synthetic_title(analysis.synthetic), ylabel="%")
    return analysis


def _store_is_synthetic(path: str | Path) -> bool:
    with FeatureStore(path) as store:
        return store.is_synthetic


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
