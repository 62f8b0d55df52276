"""`goz download-report OUT`: the classes of a download folder short of a target count."""

from __future__ import annotations

import json

from goz.commands.options import non_negative_int
from goz.download import defaults, report

ORDER = 21


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser("download-report", help="classes of a download folder short of a target count")
    parser.add_argument("out", help="a folder written by `goz download`")
    parser.add_argument("--target", type=non_negative_int, default=defaults.REPORT_TARGET, metavar="N",
                        help="images wanted per class (default %(default)s)")
    parser.add_argument("--classes", metavar="SPLIT",
                        help="classes to check: split name or file (default: the class folders present)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run_report)


def run_report(args) -> int:
    result = report(args.out, target=args.target, classes=args.classes)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    print(f"{len(result.counts)} classes, {sum(result.counts.values())} images; "
          f"{len(result.short)} classes have fewer than {result.target}")
    for wnid, count in sorted(result.short.items(), key=lambda item: item[1]):
        failures = ", ".join(f"{o} {n}" for o, n in sorted(result.failures[wnid].items()))
        print(f"{wnid}  {count:>5}  missing {result.target - count:>5}  {failures}")
    return 0
