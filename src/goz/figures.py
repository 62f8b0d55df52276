"""Tables (Markdown, CSV, LaTeX) and PNG figures: the one writer of every report's tables and plots
(matplotlib, Agg backend).

Every file is written atomically: a killed report never leaves half a PNG or half a table. A table
has one cell format (`format_cell`: floats with two decimals), so its Markdown and its LaTeX show the
same numbers; its CSV keeps full precision (`write_csv`), for whoever re-plots it.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from goz.home import atomic_path, write_text_atomic  # noqa: E402


def save_figure(figure, path: str | Path, dpi: int = 100) -> Path:
    """Lays out, writes (atomically, PNG unless the suffix says otherwise) and closes `figure`."""
    path = Path(path)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    plt.close(figure)
    return path


def format_cell(value: object) -> str:
    """A table cell as Markdown and LaTeX show it: floats with two decimals ("n/a" for NaN), the rest as str."""
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table; floats printed with two decimals."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(format_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# Characters LaTeX reads as commands, and the few non-ASCII symbols goz's tables use.
_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "≤": r"$\leq$", "≥": r"$\geq$", "±": r"$\pm$", "ρ": r"$\rho$", "×": r"$\times$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(character, character) for character in text)


def latex_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, caption: str | None = None,
                label: str | None = None) -> str:
    """A booktabs table (`\\toprule`, `\\midrule`, `\\bottomrule`: needs `\\usepackage{booktabs}`), cells
    formatted as `markdown_table` shows them; numeric columns right-aligned. With a caption or a label,
    wrapped in a `table` float."""
    cells = [[format_cell(v) for v in row] for row in rows]

    def numeric(column: int) -> bool:
        values = [row[column] for row in cells if column < len(row) and row[column] not in ("", "n/a")]
        return bool(values) and all(_is_number(v) for v in values)

    spec = "".join("r" if numeric(i) else "l" for i in range(len(headers)))
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(latex_escape(h) for h in headers) + r" \\",
             r"\midrule"]
    lines += [" & ".join(latex_escape(v) for v in row) + r" \\" for row in cells]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption is None and label is None:
        return "\n".join(lines) + "\n"
    wrapped = [r"\begin{table}[t]", r"\centering"]
    if caption is not None:
        wrapped.append(rf"\caption{{{latex_escape(caption)}}}")
    if label is not None:
        wrapped.append(rf"\label{{{label}}}")
    return "\n".join(wrapped + lines + [r"\end{table}"]) + "\n"


def _is_number(text: str) -> bool:
    try:
        float(text.rstrip("%"))
    except ValueError:
        return False
    return True


def write_latex_table(path: str | Path, headers: Sequence[str], rows: Sequence[Sequence[object]], *,
                      caption: str | None = None, label: str | None = None) -> Path:
    """`latex_table` written atomically to `path`."""
    return write_text_atomic(path, latex_table(headers, rows, caption=caption, label=label))


def write_csv(path: str | Path, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
    """A CSV (atomic) with full-precision numbers: every value a figure plots, for whoever re-plots it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows([_csv_value(v) for v in row] for row in rows)
    return write_text_atomic(path, buffer.getvalue())


def _csv_value(value: object) -> object:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return value



def bar_plot(path: Path, labels: Sequence[str], series: Mapping[str, Sequence[float]], *, title: str,
             ylabel: str, stacked: bool = False) -> Path:
    """Grouped (or stacked) bars: one group per label, one bar (or segment) per series."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.arange(len(labels))
    figure, axes = plt.subplots(figsize=(max(6.0, 0.5 * len(labels) + 2), 4.5))
    width = 0.8 if stacked else 0.8 / max(1, len(series))
    bottom = np.zeros(len(labels))
    for i, (name, values) in enumerate(series.items()):
        values = np.asarray(values, dtype=float)
        if stacked:
            axes.bar(x, values, width, bottom=bottom, label=name)
            bottom += values
        else:
            axes.bar(x - 0.4 + width * (i + 0.5), values, width, label=name)
    axes.set_xticks(x, labels, rotation=45 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend(fontsize="small")
    return save_figure(figure, path)
