"""`goz table DIR` and `goz report DIR`: the results table (Markdown, CSV) and a report with plots."""

from __future__ import annotations

ORDER = 80


def add_commands(subparsers) -> None:
    table = subparsers.add_parser("table", help="print the results table (Markdown); write DIR/table.csv and table.md")
    table.add_argument("directory", help="a `goz bench --out` directory")
    table.add_argument("--allow-mixed", action="store_true",
                       help="show results measured on different data side by side (each row marked)")
    table.set_defaults(run=run_table)
    report = subparsers.add_parser("report", help="write DIR/report.md with the table and PNG plots")
    report.add_argument("directory", help="a `goz bench --out` directory")
    report.add_argument("--allow-mixed", action="store_true",
                        help="show results measured on different data side by side (each row marked)")
    report.set_defaults(run=run_report)


def run_table(args) -> int:
    from goz.bench.report import (
        build_table,  # imported on use: matplotlib makes `goz --help` slow
    )

    print(build_table(args.directory, allow_mixed=args.allow_mixed), end="")
    return 0


def run_report(args) -> int:
    from goz.bench.report import build_report

    print(f"report written to {build_report(args.directory, allow_mixed=args.allow_mixed)}")
    return 0
