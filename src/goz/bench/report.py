"""Tables and plots from a `goz bench` results directory.

`build_table(DIR)`: the paper-style table (rows: models; standard ZSL top-1..5; generalized H
top-1..5 with u and s at top-1; percents), written as `DIR/table.csv` and `DIR/table.md`.
`build_report(DIR)`: `DIR/report.md` with the table, top-k curves and seen-unseen curves (PNG).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from goz import models
from goz.bench.results import data_identity, is_synthetic, load_results
from goz.errors import GozError
from goz.figures import plt, save_figure
from goz.home import write_text_atomic
from goz.provenance import REAL_DATA, SYNTHETIC_DATA, SYNTHETIC_NOTE, synthetic_title

__all__ = ["load_results", "build_table", "build_report"]

KS = range(1, 6)


def _models(results: dict) -> list[str]:
    names = {model for model, _ in results}
    return models.display_sorted(names)


def _title(results: dict) -> str:
    return "GOZ results" + synthetic_title(is_synthetic(results))


def _table_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    header = ["model"] + [f"zsl top{k}" for k in KS] + [f"gzsl H top{k}" for k in KS] + ["gzsl u top1", "gzsl s top1"]
    rows = []
    for model in _models(results):
        zsl, gzsl = results.get((model, "zsl"), {}), results.get((model, "gzsl"), {})
        zsl, gzsl = zsl.get("metrics", {}), gzsl.get("metrics", {})
        values = [zsl.get(f"top{k}") for k in KS] + [gzsl.get(f"h_top{k}") for k in KS] + \
                 [gzsl.get("u_top1"), gzsl.get("s_top1")]
        label = model + (f" [data {_data_of(results, model)}]" if _is_mixed(results) else "")
        rows.append([label] + ["" if v is None else f"{100 * v:.2f}" for v in values])
    return header, rows


def _data_groups(results: dict) -> dict[str, list[str]]:
    """{data id: ["model setting", ...]}: which results were measured on which data."""
    groups: dict[str, list[str]] = {}
    for (model, setting), result in sorted(results.items()):
        groups.setdefault(data_identity(result), []).append(f"{model} {setting}")
    return groups


def _is_mixed(results: dict) -> bool:
    return len(_data_groups(results)) > 1


def _of_model(results: dict, model: str) -> dict:
    return {key: result for key, result in results.items() if key[0] == model}


def _data_of(results: dict, model: str) -> str:
    return ",".join(sorted({data_identity(r) for r in _of_model(results, model).values()}))


def _load(directory: Path, allow_mixed: bool) -> dict:
    """The results, refused when they were measured on different data (stores, classes) unless `allow_mixed`."""
    results = load_results(directory)
    groups = _data_groups(results)
    if len(groups) > 1 and not allow_mixed:
        listing = "; ".join(f"data {key}: {', '.join(names)}" for key, names in groups.items())
        raise GozError(f"{directory}: these results were measured on different data ({listing}); rerun them on "
                       f"the same stores and splits, or pass --allow-mixed to show them side by side, marked")
    return results


MIXED_NOTE = "MIXED DATA: rows marked [data ID] were measured on different stores or class lists; do not compare them."


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _table_body(results: dict, synthetic_note: bool = True) -> str:
    header, rows = _table_rows(results)
    note = "Cumulative top-k accuracy (%), pooled over samples; H: harmonic mean of u (unseen) and s (seen)."
    return f"{_markdown(header, rows)}\n{note}\n" + (f"\n{MIXED_NOTE}\n" if _is_mixed(results) else "") + \
        (f"\n{SYNTHETIC_NOTE}\n" if synthetic_note and is_synthetic(results) else "")


def build_table(directory: str | Path, allow_mixed: bool = False) -> str:
    """Writes `table.csv` and `table.md` in `directory`; returns the Markdown (title, table, note).

    Results measured on different data are refused unless `allow_mixed` (then each row names its data).
    """
    directory = Path(directory)
    return _write_table(directory, _load(directory, allow_mixed))


def _write_table(directory: Path, results: dict) -> str:
    markdown = f"## {_title(results)}\n\n{_table_body(results)}"
    buffer = io.StringIO()
    header, rows = _table_rows(results)
    # Each CSV row says which data it comes from: a CSV travels without the Markdown's notes.
    kinds = [(SYNTHETIC_DATA if is_synthetic(_of_model(results, model)) else REAL_DATA, _data_of(results, model))
             for model in _models(results)]
    csv.writer(buffer, lineterminator="\n").writerows(
        [header + ["data", "data id"]] + [row + list(kind) for row, kind in zip(rows, kinds)])
    write_text_atomic(directory / "table.csv", buffer.getvalue())
    write_text_atomic(directory / "table.md", markdown)
    return markdown


def build_report(directory: str | Path, allow_mixed: bool = False) -> Path:
    """Writes `report.md` with the table and PNG plots (top-k curves, seen-unseen curves); returns its path."""
    directory = Path(directory)
    results = _load(directory, allow_mixed)
    _write_table(directory, results)
    sections = [f"# {_title(results)}\n"]
    if is_synthetic(results):
        sections.append(f"**{SYNTHETIC_NOTE}**\n")
    sections += [_table_body(results, synthetic_note=False), _run_summary(results)]
    if _plot_topk(results, directory / "topk.png"):
        sections.append("## Top-k accuracy\n\n![top-k accuracy per model](topk.png)\n")
    if _plot_seen_unseen(results, directory / "seen_unseen.png"):
        sections.append("## Seen-unseen accuracy curves (gzsl, calibrated stacking)\n\n"
                        "![seen-unseen curves](seen_unseen.png)\n\n" + _ausuc_lines(results))
    path = directory / "report.md"
    write_text_atomic(path, "\n".join(sections))
    return path


def _run_summary(results: dict) -> str:
    lines = ["## Runs\n", "| model | setting | candidates | test samples | fit s | score s | peak RSS GB |",
             "|---|---|---|---|---|---|---|"]
    for model in _models(results):
        for setting in ("zsl", "gzsl"):
            r = results.get((model, setting))
            if r:
                counts, run = r["classes"], r["run"]
                lines.append(f"| {model} | {setting} | {counts.get('n_candidates', '')} | "
                             f"{counts.get('n_test_samples', '')} | {run.get('fit_seconds', 0):.1f} | "
                             f"{run.get('score_seconds', 0):.1f} | {run.get('peak_rss_gb', 0):.2f} |")
    return "\n".join(lines) + "\n"


def _ausuc_lines(results: dict) -> str:
    return "\n".join(f"- {model}: AUSUC {100 * results[model, 'gzsl']['metrics']['ausuc']:.2f}"
                     for model in _models(results)
                     if "ausuc" in results.get((model, "gzsl"), {}).get("metrics", {})) + "\n"


def _plot_topk(results: dict, path: Path) -> bool:
    panels = [(setting, prefix, label) for setting, prefix, label in
              (("zsl", "top", "standard ZSL top-k (%)"), ("gzsl", "h_top", "generalized H top-k (%)"))
              if any(s == setting for _, s in results)]
    if not panels:
        return False
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for axis, (setting, prefix, label) in zip(axes[0], panels):
        for model in _models(results):
            result = results.get((model, setting))
            if result:
                axis.plot(list(KS), [100 * result["metrics"][f"{prefix}{k}"] for k in KS], marker="o", label=model)
        axis.set(xlabel="k", ylabel=label, xticks=list(KS), title=setting)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(_title(results))
    save_figure(figure, path)
    return True


def _plot_seen_unseen(results: dict, path: Path) -> bool:
    curves = [(model, results[model, "gzsl"]) for model in _models(results)
              if "curve" in results.get((model, "gzsl"), {})]
    if not curves:
        return False
    figure, axis = plt.subplots(figsize=(5, 5))
    for model, result in curves:
        axis.plot([100 * u for u in result["curve"]["unseen"]], [100 * s for s in result["curve"]["seen"]],
                  label=f"{model} (AUSUC {100 * result['metrics']['ausuc']:.2f})")
    axis.set(xlabel="unseen accuracy (%)", ylabel="seen accuracy (%)", xlim=(0, 100), ylim=(0, 100),
             title=_title(results))
    axis.grid(alpha=0.3)
    axis.legend()
    save_figure(figure, path)
    return True


