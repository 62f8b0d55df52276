"""What every analysis shares: reading a results folder, intervals, and the report it writes.

Every analysis writes a Markdown summary (`<name>.md`), a CSV of every number it plots
(`<name>.csv`, full precision, a `data` column saying real or synthetic on each row), PNG figures,
and with `latex=True` its tables as LaTeX (`<name>.tex`, booktabs). Outputs made from synthetic
inputs say SYNTHETIC DATA in every one of them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from goz.bench.results import (
    PREDICTIONS_SUFFIX,
    Predictions,
    data_identity,
    is_synthetic_result,
    predictions_files,
    read_predictions,
    result_of_predictions,
)
from goz.errors import GozError
from goz.figures import latex_table, markdown_table, write_csv
from goz.home import write_text_atomic
from goz.provenance import REAL_DATA, SYNTHETIC_DATA, synthetic_note, synthetic_title

log = logging.getLogger(__name__)

CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 1000


# -- results -------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One `<model>_<setting>.predictions.npz` of a results folder, with its result JSON (None if absent)."""

    model: str
    setting: str
    path: Path
    predictions: Predictions
    result: dict | None

    @property
    def synthetic(self) -> bool:
        return is_synthetic_result(self.result) or self.predictions.data == SYNTHETIC_DATA


def read_runs(results: str | Path, *, allow_mixed: bool = False) -> list[Run]:
    """Every finished (model, setting) of a `goz bench` folder. Results measured on different data
    (stores, class lists) are refused unless `allow_mixed`, as `goz table` refuses them."""
    results = Path(results)
    if not results.is_dir():
        raise GozError(f"{results}: no such results folder (write one with `goz bench --out {results}`)")
    files = predictions_files(results)
    if not files:
        raise GozError(f"{results}: no *{PREDICTIONS_SUFFIX} files (write them with `goz bench`)")
    runs = [Run(model, setting, path, read_predictions(path), result_of_predictions(path))
            for model, setting, path in files]
    groups: dict[str, list[str]] = defaultdict(list)
    for run in runs:
        key = data_identity(run.result) if run.result is not None else f"{run.predictions.data or 'unknown'} (no JSON)"
        groups[key].append(f"{run.model} {run.setting}")
    kinds = {run.synthetic for run in runs}
    if len(kinds) > 1:
        raise GozError(f"{results}: real and SYNTHETIC DATA results in one folder "
                       f"({', '.join(f'{r.model} {r.setting}' for r in runs if r.synthetic)} are synthetic); "
                       f"analyse them apart")
    if len(groups) > 1 and not allow_mixed:
        listing = "; ".join(f"data {key}: {', '.join(names)}" for key, names in groups.items())
        raise GozError(f"{results}: these results were measured on different data ({listing}); analyse one "
                       f"data set at a time, or pass --allow-mixed")
    return runs


def class_accuracy(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """true class -> top-1 accuracy over its samples."""
    hits: dict[str, list[bool]] = defaultdict(list)
    for t, p in zip(truth, predicted):
        hits[t].append(t == p)
    return {w: float(np.mean(h)) for w, h in hits.items()}


# -- intervals -----------------------------------------------------------------------------------------
def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval of the mean of independent draws; (m, m, m) for one draw."""
    values = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if not len(values):
        return float("nan"), float("nan"), float("nan")
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, mean - half, mean + half


def bootstrap_interval(samples: Sequence, statistic: Callable[[np.ndarray], float], *,
                       n: int = BOOTSTRAP_SAMPLES, seed: int = 0,
                       confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic` over `samples` resampled with replacement (rows of
    a 2-D array: e.g. (x, y) pairs for a correlation); NaN when too few samples."""
    samples = np.asarray(samples, dtype=float)
    if len(samples) < 3:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(samples[rng.integers(0, len(samples), len(samples))]) for _ in range(n)])
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    return float(np.quantile(values, 0.5 - confidence / 2)), float(np.quantile(values, 0.5 + confidence / 2))


@dataclass
class Correlation:
    """Pearson r and Spearman rho of (x, y) pairs, with a bootstrap interval of r and the pair count."""

    pearson: float
    spearman: float
    low: float
    high: float
    n: int
    p_value: float = float("nan")

    def text(self) -> str:
        if np.isnan(self.pearson):
            return f"n/a (n={self.n})"
        return (f"r {self.pearson:+.2f} [{self.low:+.2f}, {self.high:+.2f}], ρ {self.spearman:+.2f} "
                f"(n={self.n})")


def correlate(x: Sequence[float], y: Sequence[float], *, seed: int = 0) -> Correlation:
    """Pearson and Spearman of finite (x, y) pairs; NaN when fewer than 3 pairs or a constant variable."""
    pairs = np.array([(a, b) for a, b in zip(x, y) if np.isfinite(a) and np.isfinite(b)], dtype=float)
    if len(pairs) < 3 or np.ptp(pairs[:, 0]) == 0 or np.ptp(pairs[:, 1]) == 0:
        return Correlation(float("nan"), float("nan"), float("nan"), float("nan"), len(pairs))
    pearson = stats.pearsonr(pairs[:, 0], pairs[:, 1])
    low, high = bootstrap_interval(pairs, _pearson, seed=seed)
    return Correlation(float(pearson[0]), float(stats.spearmanr(pairs[:, 0], pairs[:, 1])[0]), low, high,
                       len(pairs), float(pearson[1]))


def _pearson(pairs: np.ndarray) -> float:
    if np.ptp(pairs[:, 0]) == 0 or np.ptp(pairs[:, 1]) == 0:
        return float("nan")
    return float(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1])


# -- the report ----------------------------------------------------------------------------------------
@dataclass
class Report:
    """A Markdown summary built section by section; its tables also go to LaTeX on request."""

    title: str
    synthetic: bool = False
    sections: list[str] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list]]] = field(default_factory=list)

    @property
    def data(self) -> str:
        return SYNTHETIC_DATA if self.synthetic else REAL_DATA

    def text(self, paragraph: str) -> None:
        self.sections.append(paragraph.rstrip() + "\n")

    def table(self, caption: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.sections.append(f"**{caption}**\n\n" + markdown_table(list(headers), [list(r) for r in rows]))
        self.tables.append((caption, list(headers), [list(r) for r in rows]))

    def figure(self, path: Path, caption: str) -> None:
        self.sections.append(f"![{caption}]({path.name})\n\n*{caption}*\n")

    def markdown(self) -> str:
        return (f"# {self.title}{synthetic_title(self.synthetic)}\n\n{synthetic_note(self.synthetic)}"
                + "\n".join(self.sections))

    def latex(self) -> str:
        suffix = synthetic_title(self.synthetic)
        return "\n".join(latex_table(headers, rows, caption=f"{caption}{suffix}")
                         for caption, headers, rows in self.tables)

    def write(self, out: Path, name: str, csv_headers: Sequence[str], csv_rows: Sequence[Sequence[object]], *,
              latex: bool = False) -> list[Path]:
        """`<name>.md`, `<name>.csv` (a `data` column added) and, with `latex`, `<name>.tex`."""
        out.mkdir(parents=True, exist_ok=True)
        written = [write_text_atomic(out / f"{name}.md", self.markdown()),
                   write_csv(out / f"{name}.csv", [*csv_headers, "data"], [[*row, self.data] for row in csv_rows])]
        if latex:
            written.append(write_text_atomic(out / f"{name}.tex", self.latex()))
        return written


def figure_title(title: str, synthetic: bool) -> str:
    return title + synthetic_title(synthetic)


def log_scale_values(values: Sequence[float]) -> np.ndarray:
    """log10 of counts, with 0 mapped to NaN (left out of a log-scale correlation)."""
    values = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)
