"""`goz table DIR`: the results table (Markdown, CSV)."""

from __future__ import annotations

ORDER = 79


def add_commands(subparsers) -> None:
    table = subparsers.add_parser("table", help="print the results table (Markdown); write DIR/table.csv and table.md")
    table.add_argument("directory", help="a `goz bench --out` directory")
    table.add_argument("--allow-mixed", action="store_true",
                       help="show results measured on different data side by side (each row marked)")
    table.set_defaults(run=run_table)


def run_table(args) -> int:
    from goz.bench.report import (
        build_table,  # imported on use: matplotlib makes `goz --help` slow
    )

    print(build_table(args.directory, allow_mixed=args.allow_mixed), end="")
    return 0
