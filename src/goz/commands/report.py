"""`goz report DIR`: a report with the results table and plots."""

from __future__ import annotations

ORDER = 80


def add_commands(subparsers) -> None:
    report = subparsers.add_parser("report", help="write DIR/report.md with the table and PNG plots")
    report.add_argument("directory", help="a `goz bench --out` directory")
    report.add_argument("--allow-mixed", action="store_true",
                        help="show results measured on different data side by side (each row marked)")
    report.set_defaults(run=run_report)


def run_report(args) -> int:
    from goz.bench.report import (
        build_report,  # imported on use: matplotlib makes `goz --help` slow
    )

    print(f"report written to {build_report(args.directory, allow_mixed=args.allow_mixed)}")
    return 0
