"""Markdown tables and PNG figures: the one writer of every report's tables and plots (matplotlib, Agg backend).

Figures are written atomically (`save_figure`): a killed report never leaves half a PNG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from goz.home import atomic_path  # noqa: E402


def save_figure(figure, path: str | Path, dpi: int = 100) -> Path:
    """Lays out, writes (atomically, PNG unless the suffix says otherwise) and closes `figure`."""
    path = Path(path)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    plt.close(figure)
    return path


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table; floats printed with two decimals."""
    def cell(value: object) -> str:
        return f"{value:.2f}" if isinstance(value, float) else str(value)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"



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
