"""Sweeps: accuracy against one property of the unseen classes, over random draws of splits.

The GOZ paper's `Quantify semantic factors` and `Quantify visual factors` notebooks build, for each
bin of a class property, the pool of candidate classes (`goz split build`'s filters and hierarchy
filter), draw several random splits of N classes from it, benchmark ESZSL and a graph model on each
draw, and plot accuracy against the property. A sweep here does the same with any registered models:

| sweep | a bin is | default bins | draws | the original |
|---|---|---|---|---|
| `words` | a range of word counts: a class keeps the lemmas counted within it | 11: 0, 25, 50, 100, 500, 1k, 2k, 3k, 5k, 10k, 50k, 100k | 5 of 100 | the same bins, Wikipedia counts |
| `images` | a range of image counts, [low, high) | 8: 0, 10, 50, 100, 500, 1k, 1.5k, 2k, 10k | 5 of 100 | the same bins, (low, high) |
| `sense` | the lemma's sense: primary (the class is its most frequent sense) or secondary | primary, secondary | 15 of 100 | "strict" vs "not strict" with the GloVe sense check |
| `ratio` | the distribution-matching ratio (1: like the seen classes, 0: the inverse) | 0, 0.2, ..., 1 | 5 (seeds) of 100 | one draw of 100 and of 1,000 |
| `size` | the split size, ratio 1 | 200, 500, 1000, 1500, 2000 | 5 (seeds) | one draw each |

Every draw is a split file (`draws/<bin>/<draw>/split.txt`, with the `goz split build` command that
rebuilds it) and a `goz bench` results folder beside it; `run_bench` reuses a result whose
fingerprint is identical, so a killed sweep run again recomputes only the draws it had not finished.
`engine="ray"` runs the draws as Ray tasks (one CPU each; every node must see the same paths).

Aggregated per bin and model: the mean over draws with a 95 % Student interval, the draws
themselves, and the x of the bin (the mean over draws of the drawn classes' mean word or image
count); Pearson r of accuracy on log10(x) over the draws, as the original computed it.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from goz.bench.analysis.common import (
    Report,
    correlate,
    figure_title,
    log_scale_values,
    mean_interval,
)
from goz.errors import GozError, SplitError
from goz.figures import plt, save_figure
from goz.home import write_text_atomic
from goz.progress import progress_bar
from goz.provenance import SYNTHETIC_DATA
from goz.splits import build_split
from goz.splits import save as save_split
from goz.splits.lemmas import LemmaFilter
from goz.splits.word_counts import class_word_count, load_word_counts
from goz.wordnet import Hierarchy

log = logging.getLogger(__name__)

SWEEPS = ("words", "images", "sense", "ratio", "size")
ENGINES = ("local", "ray")
DEFAULT_BINS: dict[str, list] = {
    "words": [0, 25, 50, 100, 500, 1000, 2000, 3000, 5000, 10000, 50000, 100000],
    "images": [0, 10, 50, 100, 500, 1000, 1500, 2000, 10000],
    "sense": ["primary", "secondary"],
    "ratio": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
    "size": [200, 500, 1000, 1500, 2000],
}
DEFAULT_DRAWS = {"words": 5, "images": 5, "sense": 15, "ratio": 5, "size": 5}
X_LABELS = {"words": "mean word count of the drawn classes", "images": "mean image count of the drawn classes (images)",
            "sense": "sense of the lemmas naming the classes", "ratio": "distribution-matching ratio",
            "size": "unseen classes in the split"}
LOG_X = ("words", "images")


@dataclass(frozen=True)
class SweepBin:
    label: str
    options: dict          # build_split keywords of this bin (bounds, sense, ratio, size)
    value: float | None    # the bin's own x (ratio, size, sense position); None: measured per draw


@dataclass
class DrawTask:
    """One draw: everything `run_bench` needs, picklable (a Ray task's argument)."""

    bin: int
    index: int
    seed: int
    classes: list[str]
    folder: str
    models: list[str]
    settings: list[str]
    train: str
    test: str
    semantics: object
    seen: list[str]
    hierarchy: object
    graph: str | None
    classifier_weights: object
    per_class: int | None
    model_seed: int
    device: str
    hyperparameters: dict
    threads: int | None


@dataclass
class Draw:
    bin: int
    index: int
    seed: int
    classes: list[str]
    pool: int                                   # candidates the draw was taken from
    x: float                                    # the draw's value of the swept property
    folder: Path
    metrics: dict[tuple[str, str], dict] = field(default_factory=dict)  # (model, setting) -> metrics


@dataclass
class SweepResult:
    kind: str
    bins: list[SweepBin]
    draws: list[Draw]
    skipped: dict[str, str]                     # bin label -> why no draw was made
    models: list[str]
    settings: list[str]
    classes: int
    metric: str
    synthetic: bool = False
    word_source: str = ""

    def runs(self) -> list[tuple[str, str]]:
        return [(m, s) for m in self.models for s in self.settings]

    def values(self, bin_index: int, run: tuple[str, str]) -> list[float]:
        return [d.metrics[run][self.metric] for d in self.draws if d.bin == bin_index and run in d.metrics
                and self.metric in d.metrics[run]]

    def bin_x(self, bin_index: int) -> float:
        xs = [d.x for d in self.draws if d.bin == bin_index]
        return float(np.mean(xs)) if xs else float("nan")

    def aggregate(self) -> list[dict]:
        """One row per (bin with draws, model, setting): x, draws, mean and its interval, std."""
        rows = []
        for i, sweep_bin in enumerate(self.bins):
            pools = [d.pool for d in self.draws if d.bin == i]
            if not pools:
                continue
            for model, setting in self.runs():
                values = self.values(i, (model, setting))
                mean, low, high = _accuracy_interval(values)
                rows.append({"bin": sweep_bin.label, "x": self.bin_x(i), "model": model, "setting": setting,
                             "draws": len(values), "candidates": float(np.mean(pools)), "mean": mean, "low": low,
                             "high": high, "std": float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")})
        return rows

    def correlations(self) -> dict[tuple[str, str], object]:
        """(model, setting) -> Pearson of the metric on x (log10 x for word and image counts) over every draw."""
        if self.kind == "sense":
            return {}
        found = {}
        for run in self.runs():
            draws = [d for d in self.draws if run in d.metrics]
            x = [d.x for d in draws]
            found[run] = correlate(log_scale_values(x) if self.kind in LOG_X else x,
                                   [d.metrics[run][self.metric] for d in draws])
        return found

    def report(self) -> Report:
        report = Report(f"Sweep `{self.kind}`: {self.metric} against {X_LABELS[self.kind]}", self.synthetic)
        made = len({d.bin for d in self.draws})
        x_note = (f" x: the mean over the draws of the drawn classes' mean {'word' if self.kind == 'words' else 'image'}"
                  f" count." if self.kind in LOG_X else "")
        report.text(f"{len(self.draws)} draws of {self.classes} unseen classes in {made} bins; models "
                    f"{', '.join(self.models)}; settings {', '.join(self.settings)}. Each cell: the mean over the "
                    f"bin's draws with its 95 % Student t interval [low, high] (clipped to [0, 100] %).{x_note}"
                    + (f" Word counts: {self.word_source}." if self.word_source else ""))
        if self.skipped:
            report.text("Skipped bins (recorded, not drawn): " + "; ".join(f"{label}: {why}" for label, why
                                                                          in self.skipped.items()) + ".")
        rows = self.aggregate()
        by_bin: dict[str, dict] = {}
        for row in rows:
            entry = by_bin.setdefault(row["bin"], {"x": row["x"], "candidates": row["candidates"],
                                                   "draws": row["draws"]})
            entry[(row["model"], row["setting"])] = row
        headers = ["bin", "x", "candidates", "draws", *(f"{m} {s} {self.metric} %" for m, s in self.runs())]
        table = [[label, entry["x"], entry["candidates"], entry["draws"],
                  *(_cell(entry.get(run)) for run in self.runs())] for label, entry in by_bin.items()]
        report.table(f"{self.metric} (%) per bin", headers, table)
        correlations = self.correlations()
        if correlations:
            scale = "log10 x" if self.kind in LOG_X else "x"
            report.table(f"Pearson r of {self.metric} on {scale} over the draws (95 % bootstrap interval), Spearman ρ",
                         ["model", "setting", "correlation"],
                         [[m, s, c.text()] for (m, s), c in correlations.items()])
        return report

    def markdown(self) -> str:
        return self.report().markdown()

    def csv_rows(self) -> tuple[list[str], list[list]]:
        headers = ["kind", "bin", "draw", "seed", "model", "setting", "x", "candidates", "classes", self.metric,
                   "low", "high", "std", "folder"]
        rows = []
        for d in self.draws:
            for run in self.runs():
                if run in d.metrics:
                    rows.append(["draw", self.bins[d.bin].label, d.index, d.seed, *run, d.x, d.pool, len(d.classes),
                                 d.metrics[run].get(self.metric, float("nan")), "", "", "", str(d.folder)])
        for row in self.aggregate():
            rows.append(["bin mean", row["bin"], "", "", row["model"], row["setting"], row["x"], row["candidates"],
                         self.classes, row["mean"], row["low"], row["high"], row["std"], ""])
        return headers, rows


def _accuracy_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """The t interval of the mean over draws, clipped to [0, 1] (an accuracy cannot leave it)."""
    mean, low, high = mean_interval(values)
    return mean, max(low, 0.0) if math.isfinite(low) else low, min(high, 1.0) if math.isfinite(high) else high


def _cell(row: dict | None) -> str:
    if row is None or not math.isfinite(row["mean"]):
        return "n/a"
    return f"{100 * row['mean']:.2f} [{100 * row['low']:.2f}, {100 * row['high']:.2f}]"


def sweep_bins(kind: str, bins: Sequence | None = None) -> list[SweepBin]:
    """The bins of a sweep: edges for `words` / `images`, values for `ratio` / `size`, senses for `sense`."""
    if kind not in SWEEPS:
        raise GozError(f"unknown sweep {kind!r}: choose from {', '.join(SWEEPS)}")
    values = list(bins) if bins is not None else DEFAULT_BINS[kind]
    if kind in ("words", "images"):
        edges = [int(v) for v in values]
        if len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges)) or edges[0] < 0:
            raise GozError(f"--bins for `{kind}`: at least two increasing counts >= 0, got {values}")
        if kind == "words":   # a lemma is kept when low < count < high (strict, as in GOZ)
            return [SweepBin(f"({a}, {b})", {"min_word_count": a, "max_word_count": b}, None)
                    for a, b in itertools.pairwise(edges)]
        return [SweepBin(f"[{a}, {b})", {"min_images": a, "max_images": b}, None) for a, b in itertools.pairwise(edges)]
    if kind == "sense":
        if not values or any(v not in ("primary", "secondary") for v in values):
            raise GozError(f"--bins for `sense`: primary and/or secondary, got {values}")
        return [SweepBin(v, {"sense": v}, float(i)) for i, v in enumerate(values)]
    if kind == "ratio":
        ratios = [float(v) for v in values]
        if not ratios or any(not 0.0 <= r <= 1.0 for r in ratios):
            raise GozError(f"--bins for `ratio`: values in [0, 1], got {values}")
        return [SweepBin(f"ratio {r:g}", {"ratio": r}, r) for r in ratios]
    sizes = [int(v) for v in values]
    if not sizes or any(s < 1 for s in sizes):
        raise GozError(f"--bins for `size`: split sizes >= 1, got {values}")
    return [SweepBin(f"{s} classes", {"size": s}, float(s)) for s in sizes]


def sweep(kind: str, *, seen: Sequence[str], counts: Mapping[str, int], hierarchy: Hierarchy,
          train: str | Path, test: str | Path, semantics: str | Path | object, models: Sequence[str] = ("eszsl",),
          settings: Sequence[str] = ("zsl",), bins: Sequence | None = None, draws: int | None = None,
          classes: int = 100, seed: int = 0, min_images: int = 1, lemma_filter: LemmaFilter | None = None,
          word_source: str | Path | None = None, exclude: Sequence[str] = (), exclude_below: Sequence[str] = (),
          bench_hierarchy: str | Path | Hierarchy | None = None, graph: str | None = None,
          classifier_weights: str | Path | None = None, per_class: int | None = 500,
          hyperparameters: Mapping[str, Mapping] | None = None, metric: str = "top1", device: str = "cpu",
          threads: int | None = None, engine: str = "local", out: str | Path = "sweep", latex: bool = False,
          progress: bool = True) -> SweepResult:
    """A sweep (module docstring). `counts`: image counts per class; `hierarchy`: builds the splits
    (with lemmas); `bench_hierarchy`: what `run_bench` gets (default `hierarchy`; a path or
    "wordnet" keeps Ray tasks light). `lemma_filter`: the lemma conditions every bin shares (the
    bin sets its own bounds or sense); word counts default to the built-in wordfreq counts. Writes
    `sweep.json` (the plan), `draws/`, `sweep.md`, `sweep.csv`, `sweep.png` (and `sweep.tex`) to `out`."""
    from goz.semantics import load as load_semantics
    from goz.store import FeatureStore

    if engine not in ENGINES:
        raise GozError(f"unknown engine {engine!r}: choose from {', '.join(ENGINES)}")
    if classes < 1:
        raise GozError(f"a draw needs at least 1 class, got {classes}")
    sweep_plan = sweep_bins(kind, bins)
    draws = draws if draws is not None else DEFAULT_DRAWS[kind]
    if draws < 1:
        raise GozError(f"a sweep needs at least 1 draw per bin, got {draws}")
    out = Path(out)
    seen = list(dict.fromkeys(seen))
    lemma_filter = lemma_filter if lemma_filter is not None else LemmaFilter()
    if kind == "words" and lemma_filter.word_counts is None:
        lemma_filter = replace(lemma_filter, word_counts=load_word_counts(word_source))
    table = semantics if not isinstance(semantics, (str, Path)) else load_semantics(semantics)
    with FeatureStore(test) as store:
        available = set(store.classes)
        synthetic = store.is_synthetic
    with FeatureStore(train) as store:
        synthetic = synthetic or store.is_synthetic
    if _needs_vectors(models):
        available &= {w for w in available if w in table}
    tasks, planned, skipped = [], [], {}
    for index, sweep_bin in enumerate(sweep_plan):
        for draw in range(draws):
            draw_seed = seed + draw
            try:
                built = _build(kind, sweep_bin, seen, counts, hierarchy, classes, draw_seed, min_images, lemma_filter,
                               exclude, exclude_below, available)
            except SplitError as error:
                skipped[sweep_bin.label] = str(error)
                log.warning("sweep %s, bin %s: skipped (%s)", kind, sweep_bin.label, error)
                break
            folder = out / "draws" / f"{index:02d}" / f"draw{draw:02d}"
            x = sweep_bin.value if sweep_bin.value is not None else _draw_x(kind, built, counts, lemma_filter)
            planned.append(Draw(index, draw, draw_seed, list(built.unseen), len(built.candidates), x, folder))
            tasks.append(DrawTask(index, draw, draw_seed, list(built.unseen), str(folder), list(models), list(settings),
                                  str(train), str(test), semantics if isinstance(semantics, (str, Path)) else table,
                                  seen, bench_hierarchy if bench_hierarchy is not None else hierarchy, graph,
                                  classifier_weights, per_class, seed, device, dict(hyperparameters or {}), threads))
            _save_draw_split(built.unseen, folder, kind, sweep_bin, draw_seed, classes, min_images)
    if not planned:
        raise GozError(f"sweep {kind}: no bin has enough candidates for a draw of {classes} classes "
                       f"({'; '.join(f'{k}: {v}' for k, v in skipped.items())})")
    write_text_atomic(out / "sweep.json", json.dumps({
        "kind": kind, "classes": classes, "draws": draws, "seed": seed, "models": list(models),
        "settings": list(settings), "bins": [asdict(b) for b in sweep_plan], "skipped": skipped,
        "planned": [{"bin": d.bin, "draw": d.index, "seed": d.seed, "folder": str(d.folder), "classes": d.classes}
                    for d in planned]}, indent=1))
    results = _run(tasks, engine, progress)
    for draw, found in zip(planned, results):
        draw.metrics = {(r["model"], r["setting"]): r["metrics"] for r in found}
        synthetic = synthetic or any(r.get("data") == SYNTHETIC_DATA for r in found)
    word_source_text = ""
    if kind == "words" or lemma_filter.word_counts is not None:
        from goz.splits.word_counts import describe_word_counts

        word_source_text = describe_word_counts(lemma_filter.word_counts or {}, word_source)
    result = SweepResult(kind, sweep_plan, planned, skipped, _canonical(models), list(settings), classes, metric,
                         synthetic, word_source_text)
    _write(result, out, latex)
    return result


def _needs_vectors(models: Sequence[str]) -> bool:
    from goz import models as registry  # torch: on use

    return any(registry.model_class(m).needs_class_vectors and not registry.model_class(m).uses_graph for m in models)


def _canonical(models: Sequence[str]) -> list[str]:
    from goz import models as registry

    return list(dict.fromkeys(registry.canonical_name(m) for m in models))


def _build(kind: str, sweep_bin: SweepBin, seen, counts, hierarchy, classes, draw_seed, min_images, lemma_filter,
           exclude, exclude_below, available):
    options = dict(sweep_bin.options)
    bin_filter = lemma_filter
    if kind == "words":
        bin_filter = lemma_filter.with_word_bounds(options.pop("min_word_count"), options.pop("max_word_count"))
    elif kind == "sense":
        sense = options.pop("sense")
        check = "agree" if sense == "primary" else "disagree"  # the original: strict + we, not strict + not we
        bin_filter = replace(lemma_filter, sense=sense, sense_check=check)
    # ratio and size: distribution matching (seeded ties), as the original's select_subset; else a random draw
    size = options.pop("size", classes) if kind in ("ratio", "size") else None
    ratio = options.pop("ratio", 1.0)
    bounds = {"min_images": options.pop("min_images", min_images), "max_images": options.pop("max_images", None)}
    return build_split(seen, counts, size, sample=None if size is not None else classes, hierarchy=hierarchy,
                       lemma_filter=bin_filter, exclude=exclude, exclude_below=exclude_below, ratio=ratio,
                       seed=draw_seed, available=available, **bounds)


def _draw_x(kind: str, built, counts: Mapping[str, int], lemma_filter: LemmaFilter) -> float:
    """The draw's value of the swept property: the mean over its classes of their word (or image) count."""
    if kind == "words":
        return float(np.mean([class_word_count(built.lemmas.get(w, ()), lemma_filter.word_counts) for w in built.unseen]))
    return float(np.mean([counts.get(w, 0) for w in built.unseen]))


def _save_draw_split(unseen: Sequence[str], folder: Path, kind: str, sweep_bin: SweepBin, seed: int, classes: int,
                     min_images: int) -> None:
    options = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in sweep_bin.options.items()
                       if v is not None and k != "size")
    how = f"--size {sweep_bin.options.get('size', classes)}" if kind in ("ratio", "size") else f"--sample {classes}"
    if kind != "images":
        options += f" --min-images {min_images}"
    save_split(list(unseen), folder / "split.txt",
               header=f"sweep {kind}, bin {sweep_bin.label}: goz split build {how} --seed {seed} {options} "
                      f"(plus the sweep's lemma options)")


def run_draw(task: DrawTask) -> list[dict]:
    """Benchmarks one draw (a Ray task, or a call in the local engine): `run_bench` into its folder."""
    from goz.bench.run import run_bench

    return run_bench(task.models, task.settings, task.train, task.test, task.semantics, task.seen, task.classes,
                     out=task.folder, per_class=task.per_class, seed=task.model_seed, hierarchy=task.hierarchy,
                     graph=task.graph, classifier_weights=task.classifier_weights, device=task.device,
                     hyperparameters=task.hyperparameters, threads=task.threads, progress=False)


def _run(tasks: list[DrawTask], engine: str, progress: bool) -> list[list[dict]]:
    if engine == "local":
        return [run_draw(task) for task in progress_bar(tasks, desc="sweep draws", unit="draw", enabled=progress)]
    try:
        import ray
    except ImportError:
        raise GozError("--engine ray needs Ray: pip install 'goz[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(run_draw)
    pending = {remote.remote(task): i for i, task in enumerate(tasks)}
    results: list[list[dict] | None] = [None] * len(tasks)
    with progress_bar(total=len(tasks), desc="sweep draws (ray)", unit="draw", enabled=progress) as bar:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                results[pending.pop(ref)] = ray.get(ref)
                bar.update(1)
    return results  # type: ignore[return-value]


def _write(result: SweepResult, out: Path, latex: bool) -> None:
    report = result.report()
    figure, axis = plt.subplots(figsize=(7.5, 4.8))
    bins_with_draws = sorted({d.bin for d in result.draws})
    for number, run in enumerate(result.runs()):
        xs, means, lows, highs = [], [], [], []
        for i in bins_with_draws:
            values = result.values(i, run)
            if not values:
                continue
            x = float(i) if result.kind == "sense" else result.bin_x(i)
            mean, low, high = _accuracy_interval(values)
            xs.append(x), means.append(100 * mean), lows.append(100 * low), highs.append(100 * high)
            draw_x = [x if result.kind == "sense" else d.x for d in result.draws if d.bin == i and run in d.metrics]
            jitter = 0.05 * (number - (len(result.runs()) - 1) / 2) if result.kind == "sense" else 0.0
            axis.scatter(np.array(draw_x) + jitter, [100 * v for v in values], s=10, alpha=0.35,
                         color=f"C{number}")
        if xs:
            axis.errorbar(xs, means, yerr=[np.array(means) - np.array(lows), np.array(highs) - np.array(means)],
                          marker="o", capsize=3, color=f"C{number}", label=f"{run[0]} ({run[1]})")
    if result.kind in LOG_X and all(result.bin_x(i) > 0 for i in bins_with_draws):
        axis.set_xscale("log")
    if result.kind == "sense":
        axis.set_xticks(range(len(result.bins)), [b.label for b in result.bins])
        axis.set_xlim(-0.5, len(result.bins) - 0.5)
    unit = ("" if result.kind != "words" else " (per billion words)" if "billion" in result.word_source
            else " (occurrences)")
    axis.set(xlabel=X_LABELS[result.kind] + unit + (" (log scale)" if axis.get_xscale() == "log" else ""),
             ylabel=f"{result.metric} accuracy (%)")
    draws_per_bin = max((sum(d.bin == i for d in result.draws) for i in bins_with_draws), default=0)
    axis.set_title(figure_title(f"Sweep {result.kind}: mean and 95 % interval over {draws_per_bin} draws of "
                                f"{result.classes} classes per bin", result.synthetic), fontsize="medium")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    save_figure(figure, out / "sweep.png")
    report.figure(out / "sweep.png", f"{result.metric} per bin: mean over the draws with its 95 % interval (bars) "
                                     f"and every draw (points)")
    headers, rows = result.csv_rows()
    report.write(out, "sweep", headers, rows, latex=latex)
