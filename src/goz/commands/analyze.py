"""`goz analyze errors|bias`: error structure of benchmark predictions, structural bias of a split."""

from __future__ import annotations

import json
from pathlib import Path

from goz import splits
from goz.commands.options import add_hierarchy_option
from goz.errors import GozError
from goz.splits import load_hierarchy, read_counts

ORDER = 90


def add_commands(subparsers) -> None:
    analyze = subparsers.add_parser("analyze", help="error structure of results, structural bias of splits")
    actions = analyze.add_subparsers(dest="analyze_command", metavar="ACTION", required=True)

    errors = actions.add_parser("errors", help="top-1 errors by relation to the true class, per-class factors")
    errors.add_argument("results", help="folder of goz bench outputs (<model>_<setting>.predictions.npz)")
    errors.add_argument("--max-hops", type=int, default=4, help="'within d hops' category bound (default 4)")
    errors.add_argument("--seen", help="seen split: adds per-class accuracy against hop distance to it")
    errors.add_argument("--counts", help="image counts (store, image folder, ReleaseStatus.xml, URL list)")
    errors.add_argument("--out", help="output folder (default RESULTS/analysis)")
    add_hierarchy_option(errors)
    errors.set_defaults(run=run_errors)

    bias = actions.add_parser("bias", help="the trivial structural baseline of a split")
    bias.add_argument("--seen", required=True, help="seen split")
    bias.add_argument("--unseen", required=True, help="unseen split")
    bias.add_argument("--train", help="feature store with the seen classes (with --test: score the baseline)")
    bias.add_argument("--test", help="feature store with the unseen classes")
    bias.add_argument("--per-class", type=int, help="images per class to use (default all)")
    bias.add_argument("--model", default="eszsl", help="model scoring the baseline (default eszsl)")
    bias.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                      help="model hyper-parameter (repeatable), e.g. --param gamma=100")
    bias.add_argument("--out", default="bias", help="output folder (default ./bias)")
    add_hierarchy_option(bias)
    bias.set_defaults(run=run_bias)


def run_errors(args) -> int:
    from goz.bench.analysis import (
        analyze_errors,  # imported on use: scipy.stats and matplotlib are slow to load
    )

    out = Path(args.out) if args.out else Path(args.results) / "analysis"
    analysis = analyze_errors(args.results, hierarchy=load_hierarchy(args.hierarchy), max_hops=args.max_hops,
                              seen=splits.load(args.seen) if args.seen else (),
                              counts=read_counts(args.counts) if args.counts else None, out=out)
    print(analysis.markdown())
    print(f"wrote {out / 'errors.md'}, {out / 'errors.png'} and factors_*.png")
    return 0


def run_bias(args) -> int:
    from goz.bench.analysis import analyze_bias

    analysis = analyze_bias(splits.load(args.seen), splits.load(args.unseen), hierarchy=load_hierarchy(args.hierarchy),
                            train=args.train, test=args.test, per_class=args.per_class, model=args.model,
                            model_params=_parse_params(args.param), out=args.out)
    print(analysis.markdown())
    print(f"wrote {Path(args.out) / 'bias.md'} and {Path(args.out) / 'bias.png'}")
    return 0


def _parse_params(pairs: list[str]) -> dict[str, object]:
    params: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise GozError(f"--param expects KEY=VALUE, got {pair!r}")
        try:
            params[key] = json.loads(value)  # numbers, booleans, lists
        except json.JSONDecodeError:
            params[key] = value
    return params
