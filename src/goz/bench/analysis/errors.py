"""What a model's mistakes look like: the error structure and the global error breakdown.

`analyze_errors` sorts every top-1 prediction of `goz bench` by its relation to the true class in
the hierarchy (the original's `count_struct`, with siblings, "within k hops" and unrelated added),
relates per-class accuracy to a few class factors (hop distance to the seen classes, image count,
WordNet tag counts; `goz analyze factors` has the paper's full set), and breaks every run's samples
down as the paper's "Global Error Distribution" did:

- exact: top-1 is the true class;
- structural: top-1 is an ancestor or a descendant of the true class (a right answer at another
  level of the hierarchy);
- semantic: what is gained by keeping only the samples of well-named classes (some lemma passes the
  lemma filter: by default its most frequent sense, counted more than 500 times per billion words);
- visual: what is gained by leaving out the samples listed as noisy (`noisy`: `<wnid>_<id>` keys).
  The original compared a store of every image with a cleaned one; goz has no list of noisy
  images, so without one this share is not measured, and the report says so;
- model error: the rest.

The shares follow the original's `summarize`: with accuracy a(v, s, m) under each relaxation
(visual, structural, semantic; 0 strict, 1 relaxed), a factor's share is the mean gain of relaxing
it alone over every setting of the others, scaled so that the shares add up to a(1, 1, 1) - a(0, 0, 0).
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from goz.bench.analysis.common import (
    Report,
    Run,
    class_accuracy,
    correlate,
    figure_title,
    read_runs,
)
from goz.errors import GozError
from goz.figures import bar_plot, plt, save_figure
from goz.names import parse_image_key
from goz.splits.lemmas import LemmaFilter, filter_lemmas
from goz.wordnet import Hierarchy

log = logging.getLogger(__name__)

FACTORS = ("visual", "structural", "semantic")


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
class Breakdown:
    """The global error breakdown of one run: accuracies under each relaxation, and the shares."""

    factors: list[str]                       # the relaxations measured, in FACTORS order
    accuracy: dict[tuple[int, ...], float]   # 0/1 per factor -> top-1 accuracy (fraction)
    samples: dict[tuple[int, ...], int]      # how many samples each accuracy is over
    shares: dict[str, float]                 # "exact", each factor, "model error" -> fraction of samples
    skipped: dict[str, str] = field(default_factory=dict)  # factor -> why it is not measured


@dataclass
class RunErrors:
    model: str
    setting: str
    samples: int
    categories: dict[str, int]                    # category -> samples
    class_accuracy: dict[str, float]              # true class -> top-1 accuracy
    correlations: dict[str, tuple[float, float]] = field(default_factory=dict)  # factor -> (pearson, spearman)
    breakdown: Breakdown | None = None


@dataclass
class ErrorAnalysis:
    runs: list[RunErrors]
    categories: list[str]
    synthetic: bool = False  # some results came from goz.synthetic's stores: every output says so

    def report(self) -> Report:
        report = Report("Error structure of top-1 predictions", self.synthetic)
        report.table("Top-1 predictions by relation to the true class (% of samples)",
                     ["model", "setting", "samples", *(f"{c} %" for c in self.categories)],
                     [[r.model, r.setting, r.samples, *(100.0 * r.categories.get(c, 0) / max(r.samples, 1)
                                                         for c in self.categories)] for r in self.runs])
        factors = sorted({f for r in self.runs for f in r.correlations})
        if factors:
            report.table("Per-class accuracy against class factors (Pearson r / Spearman ρ)",
                         ["model", "setting", *factors],
                         [[r.model, r.setting, *(_pair(r.correlations.get(f)) for f in factors)] for r in self.runs])
        breakdowns = [r for r in self.runs if r.breakdown is not None]
        if breakdowns:
            columns = ["exact", *FACTORS, "model error"]
            report.table("Global error breakdown (% of samples; the original's Global Error Distribution)",
                         ["model", "setting", "samples", *(f"{c} %" for c in columns)],
                         [[r.model, r.setting, r.samples,
                           *(100.0 * r.breakdown.shares[c] if c in r.breakdown.shares else "n/a" for c in columns)]
                          for r in breakdowns])
            skipped = {f"{factor}: {why}" for r in breakdowns for factor, why in r.breakdown.skipped.items()}
            if skipped:
                report.text("Not measured: " + "; ".join(sorted(skipped)) + ".")
            report.text("exact: top-1 is the true class; structural: top-1 is an ancestor or a descendant of "
                        "it; semantic: gained by keeping only well-named classes; visual: gained by leaving out "
                        "the samples listed as noisy; model error: the rest.")
        return report

    def markdown(self) -> str:
        return self.report().markdown()

    def csv_rows(self) -> tuple[list[str], list[list]]:
        headers = ["model", "setting", "measure", "value", "samples"]
        rows = []
        for r in self.runs:
            rows += [[r.model, r.setting, f"category {c} (fraction)", r.categories.get(c, 0) / max(r.samples, 1),
                      r.samples] for c in self.categories]
            if r.breakdown is not None:
                b = r.breakdown
                for flags, accuracy in sorted(b.accuracy.items()):
                    relaxed = " + ".join(f for f, on in zip(b.factors, flags) if on) or "none"
                    rows.append([r.model, r.setting, f"accuracy relaxed: {relaxed}", accuracy, b.samples[flags]])
                rows += [[r.model, r.setting, f"share {name}", value, r.samples] for name, value in b.shares.items()]
        return headers, rows


def analyze_errors(results: str | Path, *, hierarchy: Hierarchy, max_hops: int = 4,
                   seen: Sequence[str] = (), counts: Mapping[str, int] | None = None,
                   lemma_filter: LemmaFilter | None = None, noisy: Collection[str] | None = None,
                   allow_mixed: bool = False, out: str | Path | None = None, latex: bool = False) -> ErrorAnalysis:
    """Error categories of every `<model>_<setting>.predictions.npz` in `results`; per-class accuracy
    against hop distance to `seen` (when given), image count (when `counts` is given) and lemma usage
    count; the global error breakdown (semantic factor with `lemma_filter`, visual factor with the
    `noisy` sample keys). Writes `errors.md`, `errors.csv`, `errors.png`, `errors_breakdown.png` (when
    any factor is measured) and `factors_<model>_<setting>.png` to `out`."""
    runs = read_runs(results, allow_mixed=allow_mixed)
    classify = ErrorClassifier(hierarchy, max_hops)
    seen_set = set(seen)
    unknown_seen = [w for w in seen if w not in hierarchy]
    if unknown_seen:
        raise GozError(f"{len(unknown_seen)} seen classes are not in the hierarchy, e.g. {', '.join(unknown_seen[:5])}")
    seen_distance = hierarchy.hop_distances(list(seen)) if seen else None
    noisy_keys = _noisy_keys(noisy) if noisy is not None else None
    synthetic = any(run.synthetic for run in runs)
    analyzed = []
    for run in runs:
        truth, predicted = read_top1(run, hierarchy)
        pair_counts = Counter(zip(truth, predicted))
        categories: Counter[str] = Counter()
        for (t, p), n in pair_counts.items():
            categories[classify(t, p)] += n
        accuracy = class_accuracy(truth, predicted)
        factors = class_factors(hierarchy, [w for w in accuracy if w not in seen_set], seen_distance, counts)
        result = RunErrors(run.model, run.setting, len(truth), dict(categories), accuracy)
        result.correlations = {name: _as_pair(correlate(list(values.values()), [accuracy[w] for w in values]))
                               for name, values in factors.items()}
        well_named = (set(filter_lemmas(hierarchy, sorted(set(truth)), lemma_filter))
                      if lemma_filter is not None else None)
        result.breakdown = breakdown(run, truth, predicted, hierarchy, well_named, noisy_keys)
        analyzed.append(result)
        if out is not None:
            _scatter_factors(Path(out) / f"factors_{run.model}_{run.setting}.png", result, factors, synthetic)
    analysis = ErrorAnalysis(analyzed, classify.categories, synthetic)
    if out is not None:
        _write(analysis, Path(out), latex)
    return analysis


def _write(analysis: ErrorAnalysis, out: Path, latex: bool) -> None:
    runs, synthetic = analysis.runs, analysis.synthetic
    report = analysis.report()
    bar_plot(out / "errors.png", [f"{r.model}\n{r.setting}" for r in runs],
             {c: [100.0 * r.categories.get(c, 0) / max(r.samples, 1) for r in runs] for c in analysis.categories},
             title=figure_title("Top-1 predictions by relation to the true class", synthetic),
             ylabel="% of test samples", stacked=True)
    report.figure(out / "errors.png", f"Top-1 predictions by relation to the true class "
                                      f"({', '.join(f'{r.model} {r.setting}: n={r.samples}' for r in runs)} samples)")
    broken = [r for r in runs if r.breakdown is not None]
    if broken:
        columns = ["exact", *FACTORS, "model error"]
        bar_plot(out / "errors_breakdown.png", [f"{r.model}\n{r.setting}" for r in broken],
                 {c: [100.0 * r.breakdown.shares.get(c, 0.0) for r in broken] for c in columns},
                 title=figure_title("Global error breakdown", synthetic), ylabel="% of test samples", stacked=True)
        report.figure(out / "errors_breakdown.png", "Global error breakdown: each run's samples split into exact, "
                                                    "structural, semantic, visual and model error")
    headers, rows = analysis.csv_rows()
    report.write(out, "errors", headers, rows, latex=latex)


def read_top1(run: Run, hierarchy: Hierarchy) -> tuple[list[str], list[str]]:
    """(true wnid, top-1 predicted wnid) per sample of a run, checked against the hierarchy."""
    predictions = run.predictions
    unknown = sorted({w for w in predictions.candidates if w not in hierarchy})
    if unknown:
        raise GozError(f"{run.path}: {len(unknown)} candidates are not in the hierarchy, e.g. {', '.join(unknown[:5])}")
    return predictions.true_wnids, predictions.top1_wnids


def breakdown(run: Run, truth: Sequence[str], predicted: Sequence[str], hierarchy: Hierarchy,
              well_named: set[str] | None, noisy: set[tuple[str, int]] | None) -> Breakdown | None:
    """The run's global error breakdown (module docstring); None when no factor can be measured."""
    truth_array, predicted_array = np.asarray(truth), np.asarray(predicted)
    exact = truth_array == predicted_array
    structural = exact | np.array([p in hierarchy.ancestors(t) or t in hierarchy.ancestors(p)
                                   for t, p in zip(truth, predicted)], dtype=bool)
    masks: dict[str, tuple[np.ndarray, np.ndarray]] = {}   # factor -> (strict subset, relaxed subset) of samples
    everything = np.ones(len(truth), dtype=bool)
    skipped: dict[str, str] = {}
    if noisy is None:
        skipped["visual"] = "no list of noisy images (--noisy)"
    else:
        keys = zip(run.predictions.sample_wnids.tolist(), run.predictions.sample_ids.tolist())
        clean = np.array([(str(w), int(i)) not in noisy for w, i in keys], dtype=bool)
        if not clean.any():
            skipped["visual"] = "every sample is listed as noisy"
        else:
            masks["visual"] = (everything, clean)
    if well_named is None:
        skipped["semantic"] = "no lemma filter"
    else:
        named = np.isin(truth_array, sorted(well_named))
        if not named.any():
            skipped["semantic"] = "no test class is well named (no lemma passes the lemma filter)"
        else:
            masks["semantic"] = (everything, named)
    factors = [f for f in FACTORS if f == "structural" or f in masks]
    accuracy, samples = {}, {}
    for flags in itertools.product((0, 1), repeat=len(factors)):
        subset = everything.copy()
        hits = exact
        for factor, on in zip(factors, flags):
            if factor == "structural":
                hits = structural if on else exact
            else:
                subset &= masks[factor][on]
        samples[flags] = int(subset.sum())
        accuracy[flags] = float(hits[subset].mean()) if subset.any() else float("nan")
    return Breakdown(factors, accuracy, samples, _shares(factors, accuracy), skipped)


def _shares(factors: list[str], accuracy: Mapping[tuple[int, ...], float]) -> dict[str, float]:
    grid = np.empty((2,) * len(factors))
    for flags, value in accuracy.items():
        grid[flags] = value
    strict, relaxed = grid[(0,) * len(factors)], grid[(1,) * len(factors)]
    gains = np.array([np.mean(grid.take(1, axis=i) - grid.take(0, axis=i)) for i in range(len(factors))])
    total = relaxed - strict
    if gains.sum() != 0:
        gains = gains * (total / gains.sum())
    return {"exact": float(strict), **{f: float(g) for f, g in zip(factors, gains)}, "model error": float(1 - relaxed)}


def read_noisy(path: str | Path) -> set[str]:
    """A list of noisy images: `<wnid>_<id>` per line (a file name's extension is ignored; `#` comments)."""
    path = Path(path)
    if not path.is_file():
        raise GozError(f"{path}: no such list of noisy images (<wnid>_<id> per line)")
    keys = set()
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key = Path(text.split()[0]).name.split(".")[0]
        if parse_image_key(key) is None:
            raise GozError(f"{path}:{number}: expected an image key <wnid>_<id>, found {line[:80]!r}")
        keys.add(key)
    return keys


def _noisy_keys(keys: Collection[str]) -> set[tuple[str, int]]:
    parsed = set()
    for key in keys:
        wnid_id = parse_image_key(key)
        if wnid_id is None:
            raise GozError(f"noisy image {key!r} is not an image key <wnid>_<id>")
        parsed.add(wnid_id)
    return parsed


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
    return _as_pair(correlate(factor, accuracy))


def _as_pair(found) -> tuple[float, float]:
    return found.pearson, found.spearman


def _scatter_factors(path: Path, run: RunErrors, factors: Mapping[str, Mapping[str, float]],
                     synthetic: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(1, len(factors), figsize=(4.5 * len(factors), 4), squeeze=False)
    for ax, (name, values) in zip(axes[0], factors.items()):
        ax.scatter(list(values.values()), [100.0 * run.class_accuracy[w] for w in values], s=8, alpha=0.6)
        if name != "hop distance to seen":
            ax.set_xscale("symlog")  # counts span orders of magnitude and include 0
        ax.set_xlabel(name + (" (hops)" if "hop" in name else ""))
        ax.set_ylabel("per-class top-1 accuracy (%)")
        ax.set_title(f"Pearson r / Spearman ρ: {_pair(run.correlations.get(name))} (n={len(values)} classes)",
                     fontsize="small")
    figure.suptitle(figure_title(f"{run.model} ({run.setting})", synthetic))
    save_figure(figure, path)


def _pair(values: tuple[float, float] | None) -> str:
    return "n/a" if values is None or np.isnan(values[0]) else f"{values[0]:+.2f} / {values[1]:+.2f}"
