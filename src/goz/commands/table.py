"""`goz table DIR`: the results table (Markdown, CSV; LaTeX with `--format latex`)."""

from __future__ import annotations

import csv
from pathlib import Path

ORDER = 79
FORMATS = ("markdown", "latex")
CSV_ONLY_COLUMNS = ("data", "data id")  # the CSV says which data each row comes from; the tables say it in notes


def add_commands(subparsers) -> None:
    table = subparsers.add_parser("table", help="print the results table (Markdown or LaTeX); write DIR/table.csv, "
                                                "table.md (and table.tex with --format latex)")
    table.add_argument("directory", help="a `goz bench --out` directory")
    table.add_argument("--allow-mixed", action="store_true",
                       help="show results measured on different data side by side (each row marked)")
    table.add_argument("--format", choices=FORMATS, default="markdown",
                       help="latex: also write DIR/table.tex (booktabs, numbers as the Markdown shows them) and "
                            "print it (default: %(default)s)")
    table.set_defaults(run=run_table)


def run_table(args) -> int:
    from goz.bench.report import (
        build_table,  # imported on use: matplotlib makes `goz --help` slow
    )

    markdown = build_table(args.directory, allow_mixed=args.allow_mixed)
    if args.format == "markdown":
        print(markdown, end="")
        return 0
    print(write_latex(Path(args.directory), markdown), end="")
    return 0


def write_latex(directory: Path, markdown: str) -> str:
    """DIR/table.tex from the table.csv that `build_table` wrote (same cells as the Markdown); the
    Markdown's title and notes (SYNTHETIC DATA, MIXED DATA, what the numbers are) become the caption."""
    from goz.figures import latex_table
    from goz.home import write_text_atomic

    with open(directory / "table.csv", newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    keep = [i for i, name in enumerate(header) if name not in CSV_ONLY_COLUMNS]
    lines = markdown.splitlines()
    title = lines[0].lstrip("#").strip() if lines else "goz results"
    notes = [line.strip("* ") for line in lines[1:] if line.strip() and not line.startswith("|")]
    tex = latex_table([header[i] for i in keep], [[row[i] for i in keep] for row in rows],
                      caption=" ".join([title + "."] + notes), label="tab:goz-results")
    write_text_atomic(directory / "table.tex", tex)
    return tex
