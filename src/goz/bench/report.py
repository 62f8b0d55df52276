"""Tables and plots from a `goz bench` results directory.

`build_table(DIR)`: the paper-style table (rows: models; standard ZSL top-k; generalized H top-k
with u and s at the first k; percents; the k are those the results hold, 1..5 by default; Hit@k
for `--protocol dgp` results), written as `DIR/table.csv` and `DIR/table.md`.
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

def _models(results: dict) -> list[str]:
    names = {model for model, _ in results}
    return models.display_sorted(names)


def _title(results: dict) -> str:
    name = "ImageNet-21K results (DGP protocol)" if _is_dgp(results) else "GOZ results"
    return name + synthetic_title(is_synthetic(results))


def _metric_ks(results: dict, setting: str, prefix: str) -> list[int]:
    """The k of every `{prefix}{k}` metric the results of `setting` hold, ascending."""
    return sorted({int(key[len(prefix):]) for (_, s), result in results.items() if s == setting
                   for key in result.get("metrics", {}) if key.startswith(prefix) and key[len(prefix):].isdigit()})


def _is_dgp(results: dict) -> bool:
    return all(result.get("protocol", {}).get("name") == "dgp" for result in results.values())


def _columns(results: dict) -> list[tuple[str, str, str]]:
    """(header, setting, metric) of each column the results hold: zsl top-k; gzsl H top-k with u and s at
    the first k; `gzsl top-k` of gzsl results without u and s (dgp's --consider-trains: test-set samples only)."""
    word = "Hit@" if _is_dgp(results) else "top"
    columns = [(f"zsl {word}{k}", "zsl", f"top{k}") for k in _metric_ks(results, "zsl", "top")]
    h_ks = _metric_ks(results, "gzsl", "h_top")
    columns += [(f"gzsl H top{k}", "gzsl", f"h_top{k}") for k in h_ks]
    if h_ks:
        columns += [(f"gzsl {group} top{h_ks[0]}", "gzsl", f"{group}_top{h_ks[0]}") for group in ("u", "s")]
    columns += [(f"gzsl {word}{k}", "gzsl", f"top{k}")
                for k in _metric_ks({key: r for key, r in results.items() if not _has_groups(r)}, "gzsl", "top")]
    return columns


def _has_groups(result: dict) -> bool:
    """A gzsl result with u, s and H (the GOZ protocol's); dgp's gzsl scores the test set's samples only."""
    return any(key.startswith("h_top") for key in result.get("metrics", {}))


def _value(results: dict, model: str, setting: str, metric: str) -> float | None:
    result = results.get((model, setting), {})
    if setting == "gzsl" and metric.startswith("top") and _has_groups(result):
        return None  # a GOZ gzsl result shows H, u and s; its pooled top-k has no column
    return result.get("metrics", {}).get(metric)


def _missing_classes(results: dict, model: str) -> int:
    return max((r.get("classes", {}).get("n_test_classes_missing", 0) for r in _of_model(results, model).values()),
               default=0)


def _table_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    columns = _columns(results)
    header = ["model"] + [name for name, _, _ in columns]
    rows = []
    for model in _models(results):
        values = [_value(results, model, setting, metric) for _, setting, metric in columns]
        label = model + (f" [data {_data_of(results, model)}]" if _is_mixed(results) else "")
        missing = _missing_classes(results, model)
        label += f" [{missing} test classes missing]" if missing else ""
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


MISSING_NOTE = ("MISSING CLASSES: rows marked [N test classes missing] were evaluated without the samples of test "
                "classes their test store lacks (--skip-missing-classes); the result JSON lists them.")
DGP_NOTE = ("Hit@k (%), DGP's evaluate_imagenet.py rule: a hit when at most k candidates, the true class included, "
            "score at least as high; pooled over the test set's samples. zsl: the test set's classes are the "
            "candidates; gzsl: the training (seen) classes too (--consider-trains).")


def _table_body(results: dict, synthetic_note: bool = True) -> str:
    header, rows = _table_rows(results)
    note = DGP_NOTE if _is_dgp(results) else \
        "Cumulative top-k accuracy (%), pooled over samples; H: harmonic mean of u (unseen) and s (seen)."
    samples = sorted({r.get("protocol", {}).get("test_samples", "all") for r in results.values()} - {"all"})
    if samples:
        note += f" Test samples: {', '.join(samples)} of each test class, chosen by the seed."
    missing = any(_missing_classes(results, model) for model in _models(results))
    return f"{_markdown(header, rows)}\n{note}\n" + (f"\n{MIXED_NOTE}\n" if _is_mixed(results) else "") + \
        (f"\n{MISSING_NOTE}\n" if missing else "") + \
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
    panels = [(setting, prefix, label, ks) for setting, prefix, label in
              (("zsl", "top", "standard ZSL top-k (%)"), ("gzsl", "h_top", "generalized H top-k (%)"))
              if (ks := _metric_ks(results, setting, prefix))]
    if not panels:
        return False
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for axis, (setting, prefix, label, ks) in zip(axes[0], panels):
        for model in _models(results):
            metrics = results.get((model, setting), {}).get("metrics", {})
            points = [(k, 100 * metrics[f"{prefix}{k}"]) for k in ks if f"{prefix}{k}" in metrics]
            if points:
                axis.plot(*zip(*points), marker="o", label=model)
        axis.set(xlabel="k", ylabel=label, xticks=ks, xscale="log" if ks[-1] > 10 else "linear", title=setting)
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


