"""Which classes are hard: per-class accuracy against the paper's error factors (`Error Factors`).

For every unseen class of a `goz bench` run, its top-1 accuracy beside:

- its image count (any source `read_counts` reads);
- its word count: the largest count among its lemmas kept by the lemma filter (by default those
  whose most frequent sense it is), capped (10,000 as in the original), from the built-in wordfreq
  counts (per billion words) or a counts file;
- its hop distance to the nearest seen class and its mean hop distance to the seen classes;
- its hop distance to the nearest other unseen class and its mean distance to the other unseen
  classes (itself left out: the original averaged a distance of 100 to itself in);
- the ratio of the two nearest distances (seen / other unseen).

Distances are measured in WordNet (`hops="wordnet"`) or in the original's pruned tree over the seen
classes, the unseen classes and the `candidates` pool when given (`hops="pruned"`; see
`goz.bench.analysis.distances`). Correlations: Pearson r with a 95 % bootstrap interval over the
classes, and Spearman's rho; counts are correlated on a log10 scale (classes with 0 left out).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from goz.bench.analysis.common import (
    Correlation,
    Report,
    bootstrap_interval,
    class_accuracy,
    correlate,
    figure_title,
    log_scale_values,
    read_runs,
)
from goz.bench.analysis.distances import hop_matrix, nearest_and_mean
from goz.errors import GozError
from goz.figures import plt, save_figure
from goz.splits.lemmas import LemmaFilter, filter_lemmas
from goz.splits.word_counts import (
    class_word_count,
    describe_word_counts,
    load_word_counts,
)
from goz.wordnet import Hierarchy

WORD_CAP = 10_000
COUNT_FACTORS = ("image count", "word count")
FACTORS = ("image count", "word count", "min hops to seen", "mean hops to seen", "min hops to other unseen",
           "mean hops to other unseen", "ratio min seen / min other unseen")
PRIMARY_SENSE = LemmaFilter()   # a class's word count: over the lemmas it is the first sense of
BINS = 5   # quantile bins of a factor for the binned means in the figures


@dataclass
class RunFactors:
    model: str
    setting: str
    accuracy: dict[str, float]                   # unseen class -> top-1 accuracy (fraction)
    samples: int
    correlations: dict[str, Correlation] = field(default_factory=dict)


@dataclass
class FactorAnalysis:
    runs: list[RunFactors]
    values: dict[str, dict[str, float]]          # factor -> class -> value (NaN: unknown)
    hops: str
    word_source: str
    word_cap: int | None
    notes: list[str] = field(default_factory=list)
    synthetic: bool = False

    def report(self) -> Report:
        report = Report("Error factors: per-class accuracy against class factors", self.synthetic)
        report.text(f"Hop distances measured in {'WordNet' if self.hops == 'wordnet' else 'the pruned tree'} "
                    f"({self.hops}); word counts: {self.word_source}, the largest over a class's kept lemmas"
                    + (f", capped at {self.word_cap:,}" if self.word_cap is not None else "") + ". Counts are "
                    "correlated on a log10 scale. Intervals: 95 % bootstrap over the classes.")
        for note in self.notes:
            report.text(note)
        report.table("Correlation of per-class top-1 accuracy with each factor (Pearson r [95 % interval], "
                     "Spearman ρ, classes)",
                     ["model", "setting", *FACTORS],
                     [[r.model, r.setting, *(r.correlations[f].text() for f in FACTORS)] for r in self.runs])
        classes = sorted({w for r in self.runs for w in r.accuracy})
        summary = []
        for factor in FACTORS:
            known = np.array([self.values[factor].get(w, np.nan) for w in classes], dtype=float)
            known = known[np.isfinite(known)]
            summary.append([factor, len(known), *(float(f(known)) if len(known) else "n/a"
                                                  for f in (np.min, np.median, np.mean, np.max))])
        report.table("The factors over the unseen classes", ["factor", "classes", "min", "median", "mean", "max"],
                     summary)
        return report

    def markdown(self) -> str:
        return self.report().markdown()

    def csv_rows(self) -> tuple[list[str], list[list]]:
        headers = ["model", "setting", "kind", "class", "factor", "x", "top1", "low", "high", "n"]
        rows = []
        for run in self.runs:
            for factor in FACTORS:
                for wnid, accuracy in sorted(run.accuracy.items()):
                    rows.append([run.model, run.setting, "class", wnid, factor,
                                 self.values[factor].get(wnid, float("nan")), accuracy, "", "", 1])
                for low_x, high_x, mean_x, mean_y, low, high, n in binned_means(self._pairs(run, factor)):
                    rows.append([run.model, run.setting, "bin", f"[{low_x:g}, {high_x:g}]", factor,
                                 mean_x, mean_y, low, high, n])
                c = run.correlations[factor]
                rows.append([run.model, run.setting, "pearson", "", factor, "", c.pearson, c.low, c.high, c.n])
                rows.append([run.model, run.setting, "spearman", "", factor, "", c.spearman, "", "", c.n])
        return headers, rows

    def _pairs(self, run: RunFactors, factor: str) -> np.ndarray:
        pairs = [(self.values[factor].get(w, np.nan), a) for w, a in run.accuracy.items()]
        pairs = np.array([p for p in pairs if np.isfinite(p[0])], dtype=float).reshape(-1, 2)
        if factor in COUNT_FACTORS:
            pairs = pairs[pairs[:, 0] > 0]
        return pairs


def analyze_factors(results: str | Path, *, hierarchy: Hierarchy, seen: Sequence[str],
                    counts: Mapping[str, int] | None = None, word_counts: Mapping[str, int] | None = None,
                    word_source: str | Path | None = None, lemma_filter: LemmaFilter | None = PRIMARY_SENSE,
                    word_cap: int | None = WORD_CAP, hops: str = "wordnet", candidates: Sequence[str] = (),
                    allow_mixed: bool = False, seed: int = 0, out: str | Path | None = None,
                    latex: bool = False) -> FactorAnalysis:
    """The Error Factors analysis (module docstring) of every run in `results`. Writes `factors.md`,
    `factors.csv`, `factors_<model>_<setting>.png` (and `factors.tex`) to `out`."""
    runs = read_runs(results, allow_mixed=allow_mixed)
    seen = list(dict.fromkeys(seen))
    if not seen:
        raise GozError("the error factors need the seen classes (--seen)")
    unknown = [w for w in seen if w not in hierarchy]
    if unknown:
        raise GozError(f"{len(unknown)} seen classes are not in the hierarchy, e.g. {', '.join(unknown[:5])}")
    seen_set = set(seen)
    analyzed = []
    for run in runs:
        accuracy = {w: a for w, a in class_accuracy(run.predictions.true_wnids, run.predictions.top1_wnids).items()
                    if w not in seen_set}
        if not accuracy:
            raise GozError(f"{run.path}: no test sample of an unseen class (is --seen the run's unseen split?)")
        analyzed.append(RunFactors(run.model, run.setting, accuracy, len(run.predictions.true)))
    unseen = sorted({w for run in analyzed for w in run.accuracy})
    missing = [w for w in unseen if w not in hierarchy]
    if missing:
        raise GozError(f"{results}: {len(missing)} test classes are not in the hierarchy, e.g. {', '.join(missing[:5])}")
    word_counts = word_counts if word_counts is not None else load_word_counts(word_source)
    analysis = FactorAnalysis(analyzed, {}, hops, describe_word_counts(word_counts, word_source), word_cap,
                              synthetic=any(run.synthetic for run in runs))
    analysis.values = class_factor_values(hierarchy, seen, unseen, counts, word_counts, lemma_filter, word_cap, hops,
                                          candidates, analysis.notes)
    for run in analyzed:
        for factor in FACTORS:
            pairs = analysis._pairs(run, factor)
            x = log_scale_values(pairs[:, 0]) if factor in COUNT_FACTORS else pairs[:, 0]
            run.correlations[factor] = correlate(x, pairs[:, 1], seed=seed)
    if out is not None:
        out = Path(out)
        report = analysis.report()
        for run in analyzed:
            path = out / f"factors_{run.model}_{run.setting}.png"
            _plot(analysis, run, path)
            report.figure(path, f"{run.model} ({run.setting}): per-class top-1 accuracy against each factor "
                                f"({len(run.accuracy)} classes; red: mean per quantile bin, 95 % bootstrap interval)")
        headers, rows = analysis.csv_rows()
        report.write(out, "factors", headers, rows, latex=latex)
    return analysis


def class_factor_values(hierarchy: Hierarchy, seen: list[str], unseen: list[str], counts: Mapping[str, int] | None,
                        word_counts: Mapping[str, int], lemma_filter: LemmaFilter | None, word_cap: int | None,
                        hops: str, candidates: Sequence[str], notes: list[str]) -> dict[str, dict[str, float]]:
    """factor -> unseen class -> value (NaN when unknown); `notes` says what could not be measured."""
    values: dict[str, dict[str, float]] = {}
    if counts is None:
        notes.append("Image counts not given (--counts): the image-count factor is not measured.")
    values["image count"] = {w: float(counts[w]) if counts is not None and w in counts else np.nan for w in unseen}
    kept = filter_lemmas(hierarchy, unseen, lemma_filter) if lemma_filter is not None else \
        {w: hierarchy.lemmas(w) for w in unseen if hierarchy.lemmas(w)}
    if not kept:
        notes.append("No unseen class has a lemma the lemma filter keeps (a synthetic hierarchy names no class: "
                     "give --lemmas): the word-count factor is not measured.")
    values["word count"] = {w: float(class_word_count(kept[w], word_counts, word_cap)) if w in kept else np.nan
                            for w in unseen}
    classes = [*seen, *unseen, *[c for c in candidates if c in hierarchy]]
    to_seen = hop_matrix(hierarchy, seen, unseen, graph=hops, classes=classes)
    among = hop_matrix(hierarchy, unseen, unseen, graph=hops, classes=classes)
    min_seen, mean_seen = nearest_and_mean(to_seen)
    min_other, mean_other = nearest_and_mean(among, exclude_self=np.eye(len(unseen), dtype=bool))
    if len(unseen) < 2:
        notes.append("One unseen class only: the distances to other unseen classes are not measured.")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(min_other > 0, min_seen / min_other, np.nan)
    for name, array in (("min hops to seen", min_seen), ("mean hops to seen", mean_seen),
                        ("min hops to other unseen", min_other), ("mean hops to other unseen", mean_other),
                        ("ratio min seen / min other unseen", ratio)):
        values[name] = {w: float(v) if np.isfinite(v) else np.nan for w, v in zip(unseen, array)}
    return values


def binned_means(pairs: np.ndarray, bins: int = BINS,
                 seed: int = 0) -> list[tuple[float, float, float, float, float, float, int]]:
    """(x low, x high, mean x, mean y, low, high, n) per quantile bin of x (ties kept in one bin)."""
    if len(pairs) < 2:
        return []
    edges = np.unique(np.quantile(pairs[:, 0], np.linspace(0, 1, bins + 1)))
    found = []
    for i, (low, high) in enumerate(itertools.pairwise(edges)):
        last = i == len(edges) - 2
        inside = (pairs[:, 0] >= low) & ((pairs[:, 0] <= high) if last else (pairs[:, 0] < high))
        y = pairs[inside, 1]
        if len(y):
            interval = bootstrap_interval(y, lambda a: float(np.mean(a)), seed=seed)
            found.append((float(low), float(high), float(np.mean(pairs[inside, 0])), float(np.mean(y)), *interval,
                          len(y)))
    return found


def _plot(analysis: FactorAnalysis, run: RunFactors, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = 4
    figure, axes = plt.subplots(2, columns, figsize=(4.2 * columns, 8), squeeze=False)
    for axis, factor in zip(axes.flat, FACTORS):
        pairs = analysis._pairs(run, factor)
        axis.scatter(pairs[:, 0], 100.0 * pairs[:, 1], s=8, alpha=0.4, label="a class")
        bins = binned_means(pairs)
        if bins:
            centers = [b[2] for b in bins]
            means = np.array([100.0 * b[3] for b in bins])
            errors = np.array([[100.0 * (b[3] - b[4]) if np.isfinite(b[4]) else 0.0 for b in bins],
                               [100.0 * (b[5] - b[3]) if np.isfinite(b[5]) else 0.0 for b in bins]])
            axis.errorbar(centers, means, yerr=np.maximum(errors, 0), color="tab:red", marker="o",
                          label="bin mean")
        if factor in COUNT_FACTORS and len(pairs):
            axis.set_xscale("log")
        unit = {"image count": " (images)", "word count": " (per billion words)" if "billion" in analysis.word_source
                else " (occurrences)"}.get(factor, " (hops)" if "hops" in factor else "")
        axis.set(xlabel=factor + unit, ylabel="per-class top-1 accuracy (%)")
        axis.set_title(run.correlations[factor].text(), fontsize="small")
        axis.grid(alpha=0.3)
    axes.flat[-1].axis("off")
    figure.suptitle(figure_title(f"Error factors: {run.model} ({run.setting}), {len(run.accuracy)} unseen classes",
                                 analysis.synthetic))
    save_figure(figure, path)
