"""The population of classes: how many images they have, how deep they sit, how often they are named.

No model here: the distributions behind the paper's visual and semantic factors.

- the cumulative distribution of image counts over the classes (`Quantify visual factors`);
- the mean image count per depth in the hierarchy (the original plotted each class's count against
  the length of its shortest hypernym path, which counts nodes: depth in edges + 1; goz reports
  depth in edges, 0 at the root);
- the cumulative distribution of word counts over the distinct lemmas of the classes with images
  (`Quantify semantic factors`: single words only, as the original plotted them; `single_word=False`
  keeps every lemma).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from goz.bench.analysis.common import Report, bootstrap_interval, figure_title
from goz.errors import GozError
from goz.figures import plt, save_figure
from goz.splits.word_counts import describe_word_counts, lemma_count, load_word_counts
from goz.wordnet import Hierarchy

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


@dataclass
class Population:
    image_counts: dict[str, int]                         # class -> images (classes of the hierarchy)
    depth: dict[str, int]                                # class -> shortest depth in edges
    word_counts: dict[str, int]                          # distinct lemma (lower case) -> count
    word_source: str
    left_out: dict[str, list[str]] = field(default_factory=dict)   # why -> classes or words left out
    synthetic: bool = False

    def by_depth(self, seed: int = 0) -> list[tuple[int, int, float, float, float, float]]:
        """(depth, classes, mean images, low, high, median) per depth."""
        groups: dict[int, list[int]] = defaultdict(list)
        for wnid, n in self.image_counts.items():
            groups[self.depth[wnid]].append(n)
        rows = []
        for depth in sorted(groups):
            values = np.array(groups[depth], dtype=float)
            low, high = bootstrap_interval(values, lambda a: float(np.mean(a)), seed=seed)
            rows.append((depth, len(values), float(values.mean()), low, high, float(np.median(values))))
        return rows

    def report(self) -> Report:
        report = Report("The population of classes: images, depth, names", self.synthetic)
        for why, items in self.left_out.items():
            report.text(f"Left out: {len(items)} {why} (e.g. {', '.join(items[:5])}).")
        images = np.array(sorted(self.image_counts.values()), dtype=float)
        words = np.array(sorted(self.word_counts.values()), dtype=float)
        rows = [["images per class", len(images), *(_quantile(images, q) for q in QUANTILES)]]
        if len(words):
            rows.append([f"word count per lemma ({self.word_source})", len(words),
                         *(_quantile(words, q) for q in QUANTILES)])
        report.table("Quantiles", ["distribution", "n", *(f"{int(100 * q)} %" for q in QUANTILES)], rows)
        report.table("Mean image count per depth (edges from the root; 95 % bootstrap interval)",
                     ["depth", "classes", "mean images", "low", "high", "median"], [list(r) for r in self.by_depth()])
        return report

    def csv_rows(self) -> tuple[list[str], list[list]]:
        headers = ["distribution", "item", "x", "y", "low", "high", "n"]
        rows = []
        images = sorted(self.image_counts.items(), key=lambda item: (item[1], item[0]))
        rows += [["images cdf", w, n, 100.0 * (i + 1) / len(images), "", "", 1] for i, (w, n) in enumerate(images)]
        rows += [["images per depth", depth, depth, mean, low, high, n]
                 for depth, n, mean, low, high, _ in self.by_depth()]
        words = sorted(self.word_counts.items(), key=lambda item: (item[1], item[0]))
        rows += [["words cdf", w, n, 100.0 * (i + 1) / len(words), "", "", 1] for i, (w, n) in enumerate(words)]
        return headers, rows


def analyze_population(counts: Mapping[str, int], *, hierarchy: Hierarchy, classes: Sequence[str] | None = None,
                       word_counts: Mapping[str, int] | None = None, word_source: str | Path | None = None,
                       single_word: bool = True, min_images: int = 1, synthetic: bool = False,
                       out: str | Path | None = None, latex: bool = False) -> Population:
    """Image-count and word-count distributions of the classes with at least `min_images` images
    (restricted to `classes` when given). Writes `population.md`, `.csv`, `population_images.png`,
    `population_depth.png`, `population_words.png` (and `.tex`) to `out`."""
    wanted = set(classes) if classes is not None else None
    selected = {w: int(n) for w, n in counts.items() if n >= min_images and (wanted is None or w in wanted)}
    left_out: dict[str, list[str]] = {}
    unknown = sorted(w for w in selected if w not in hierarchy)
    if unknown:
        left_out["classes of the counts that are not in the hierarchy"] = unknown
    selected = {w: n for w, n in selected.items() if w in hierarchy}
    if not selected:
        raise GozError(f"no class of the hierarchy has at least {min_images} images in the counts given")
    word_counts = word_counts if word_counts is not None else load_word_counts(word_source)
    lemmas = {lemma.lower() for w in selected for lemma in hierarchy.lemmas(w)}
    if single_word:
        several = sorted(l for l in lemmas if "_" in l or " " in l)
        if several:
            left_out["lemmas of several words"] = several
        lemmas -= set(several)
    if not lemmas:
        left_out["classes without lemmas: no word distribution (a synthetic hierarchy names no class: give "
                 "--lemmas)"] = sorted(selected)[:5]
    population = Population(selected, {w: hierarchy.depth(w) for w in selected},
                            {l: lemma_count(l, word_counts) for l in sorted(lemmas)},
                            describe_word_counts(word_counts, word_source), left_out, synthetic)
    if out is not None:
        _write(population, Path(out), latex)
    return population


def _quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if len(values) else float("nan")


def _cdf(axis, values: Sequence[float], xlabel: str, title: str) -> None:
    values = np.sort(np.asarray(values, dtype=float))
    axis.plot(values, 100.0 * np.arange(1, len(values) + 1) / len(values))
    if len(values) and values[0] > 0:
        axis.set_xscale("log")
    else:
        axis.set_xscale("symlog")
    axis.set(xlabel=xlabel, ylabel="% at or below", title=title)
    axis.grid(alpha=0.3)


def _write(population: Population, out: Path, latex: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report = population.report()
    synthetic = population.synthetic
    figure, axis = plt.subplots(figsize=(6, 4.2))
    _cdf(axis, list(population.image_counts.values()), "images per class (log scale)",
         figure_title(f"Image counts of {len(population.image_counts)} classes", synthetic))
    save_figure(figure, out / "population_images.png")
    report.figure(out / "population_images.png", "Cumulative distribution of the image counts")
    figure, axis = plt.subplots(figsize=(6, 4.2))
    rows = population.by_depth()
    depths = [r[0] for r in rows]
    means = np.array([r[2] for r in rows])
    errors = np.array([[r[2] - r[3] if np.isfinite(r[3]) else 0.0 for r in rows],
                       [r[4] - r[2] if np.isfinite(r[4]) else 0.0 for r in rows]])
    axis.errorbar(depths, means, yerr=np.maximum(errors, 0), marker="o", capsize=3)
    for depth, n, mean, *_ in rows:
        axis.annotate(f"n={n}", (depth, mean), fontsize="x-small", textcoords="offset points", xytext=(3, 3))
    axis.set(xlabel="depth in the hierarchy (edges from the root)", ylabel="mean images per class",
             title=figure_title("Mean image count per depth (95 % bootstrap interval)", synthetic))
    axis.grid(alpha=0.3)
    save_figure(figure, out / "population_depth.png")
    report.figure(out / "population_depth.png", "Mean image count per depth, with each depth's number of classes")
    if population.word_counts:
        figure, axis = plt.subplots(figsize=(6, 4.2))
        _cdf(axis, list(population.word_counts.values()), f"word count ({population.word_source})",
             figure_title(f"Word counts of {len(population.word_counts)} lemmas", synthetic))
        save_figure(figure, out / "population_words.png")
        report.figure(out / "population_words.png", "Cumulative distribution of the lemmas' word counts")
    headers, csv_rows = population.csv_rows()
    report.write(out, "population", headers, csv_rows, latex=latex)
