"""`goz bench`: fit ZSL models on the seen classes and evaluate them in the zsl and gzsl settings."""

from __future__ import annotations

import argparse
import json

from goz.commands.options import add_quiet_option
from goz.errors import GozError

ORDER = 70


class GozDefault(str):
    """A default split of the GOZ protocol (the CLI fetches it first, as any split named); --protocol dgp drops it."""


class _ProtocolAction(argparse.Action):
    """--protocol dgp drops the GOZ protocol's default splits while parsing, so that the CLI fetches none of them
    (run_bench then takes DGP's training classes and needs --unseen)."""

    def __call__(self, parser, namespace, value, option_string=None):
        setattr(namespace, self.dest, value)
        if value != "goz":
            for name in ("seen", "unseen"):
                if isinstance(getattr(namespace, name, None), GozDefault):
                    setattr(namespace, name, None)


def add_commands(subparsers) -> None:
    bench = subparsers.add_parser(
        "bench", help="fit models, evaluate them in the zsl/gzsl settings, write one JSON per (model, setting)")
    bench.add_argument("--models", default="conse,devise,eszsl", help="comma-separated registered model names")
    bench.add_argument("--settings", help="comma-separated: zsl, gzsl (default: zsl,gzsl; zsl with --protocol dgp)")
    bench.add_argument("--train", help="training feature store (default: the fetched one under GOZ_HOME)")
    bench.add_argument("--test", help="test feature store (default: the fetched one under GOZ_HOME)")
    bench.add_argument("--semantics", required=True,
                       help="class semantics table (.h5 or .npz, from `goz embed`), or `published`: the original "
                            "benchmark's class vectors installed by `goz fetch published`")
    bench.add_argument("--seen", default=GozDefault("ilsvrc2012"),
                       help="seen classes: built-in split name or split file (default: ilsvrc2012; with "
                            "--protocol dgp DGP's 1,000 training classes)")
    bench.add_argument("--unseen", default=GozDefault("goz_v1"),
                       help="unseen (test) classes: built-in split name or split file (default: goz_v1; "
                            "--protocol dgp needs one of 2-hops, 3-hops, all)")
    bench.add_argument("--protocol", choices=("goz", "dgp"), default="goz", action=_ProtocolAction,
                       help="goz: the GOZ paper's protocol; dgp: DGP's evaluate_imagenet.py on the ImageNet-21K "
                            "test sets (Hit@1,2,5,10,20 over the test set's samples, 10%% of each class's samples)")
    bench.add_argument("--consider-trains", action="store_true",
                       help="--protocol dgp: the 1,000 training classes are candidates too (the gzsl setting)")
    bench.add_argument("--topk", help="comma-separated k of the top-k metrics (default 1,2,3,4,5; "
                                      "1,2,5,10,20 with --protocol dgp), e.g. 1,2,5,10,20")
    bench.add_argument("--test-fraction", type=float,
                       help="score this fraction of each test class's samples (at least one), chosen by --seed "
                            "(default: all; 0.1 with --protocol dgp, as its --keep-ratio)")
    bench.add_argument("--test-per-class", type=int, help="score at most N samples of each test class, chosen by --seed")
    bench.add_argument("--skip-missing-classes", action="store_true",
                       help="evaluate without the test classes the test store lacks (they stay candidates; the "
                            "result lists them and `goz table` marks it) instead of stopping")
    bench.add_argument("--score-chunk", type=int, help="test rows scored at once (default: a 128 MiB score block)")
    bench.add_argument("--per-class", type=int, default=500, help="first N training samples per class (0: all)")
    bench.add_argument("--hierarchy", help="for graph models: 'wordnet' (default) or a child<TAB>parent edges file")
    bench.add_argument("--graph", choices=("imagenet", "split"),
                       help="graph models' class graph: 'imagenet', the published graph of the DGP code (32,324 "
                            "WordNet nodes; default on WordNet), or 'split', the seen and unseen classes with their "
                            "ancestors (default with an edges file)")
    bench.add_argument("--classifier-weights",
                       help="seen-class fc weights for graph models: a torchvision state dict (.pth, fc.weight/fc.bias, rows in sorted-wnid order) or .npy/.npz (rows in seen-split order)")
    bench.add_argument("--set", action="append", default=[], metavar="MODEL.PARAM=VALUE",
                       help="a hyper-parameter, e.g. --set devise.n_batches=200 (repeatable; VALUE parsed as JSON)")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1")
    bench.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    bench.add_argument("--force", action="store_true", help="redo (model, setting) pairs already finished")
    bench.add_argument("--allow-links", action="store_true",
                       help="accept feature stores whose datasets are HDF5 soft or external links (refused by default)")
    add_quiet_option(bench)
    bench.add_argument("--out", required=True, help="results directory")
    bench.set_defaults(run=run)


def parse_assignments(assignments: list[str]) -> dict[str, dict]:
    """['devise.n_batches=200'] -> {'devise': {'n_batches': 200}} (values parsed as JSON, else kept as str)."""
    parsed: dict[str, dict] = {}
    for assignment in assignments:
        key, equals, text = assignment.partition("=")
        model, dot, name = key.partition(".")
        if not (equals and dot and model and name):
            raise GozError(f"--set {assignment!r}: expected MODEL.PARAM=VALUE, e.g. devise.n_batches=200")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        parsed.setdefault(model, {})[name] = value
    return parsed


def parse_topk(text: str | None) -> list[int] | None:
    """'1,2,5,10,20' -> [1, 2, 5, 10, 20]."""
    if text is None:
        return None
    try:
        ks = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise GozError(f"--topk {text!r}: expected comma-separated positive integers, e.g. 1,2,5,10,20") from None
    if not ks or min(ks) < 1:
        raise GozError(f"--topk {text!r}: expected comma-separated positive integers, e.g. 1,2,5,10,20")
    return ks


def settings_of(args) -> list[str]:
    """--settings, or the protocol's default; --consider-trains is dgp's gzsl."""
    if args.consider_trains and args.protocol != "dgp":
        raise GozError("--consider-trains belongs to --protocol dgp (in the GOZ protocol, gzsl already has the "
                       "seen classes as candidates)")
    if args.settings is None:
        return ["gzsl"] if args.consider_trains else ["zsl"] if args.protocol == "dgp" else ["zsl", "gzsl"]
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    if args.consider_trains and "gzsl" not in settings:
        raise GozError(f"--consider-trains is the gzsl setting of --protocol dgp, but --settings is {args.settings}")
    return settings


def run(args) -> int:
    from goz.bench.run import (
        run_bench,  # imported on use: torch and h5py make `goz --help` slow
    )

    results = run_bench(
        models=[m.strip() for m in args.models.split(",") if m.strip()],
        settings=settings_of(args),
        train=args.train, test=args.test, semantics=args.semantics, seen=args.seen, unseen=args.unseen, out=args.out,
        per_class=args.per_class or None, seed=args.seed, hierarchy=args.hierarchy, graph=args.graph,
        classifier_weights=args.classifier_weights, device=args.device,
        hyperparameters=parse_assignments(args.set), force=args.force, threads=args.threads,
        allow_links=args.allow_links, protocol=args.protocol, ks=parse_topk(args.topk),
        test_fraction=args.test_fraction, test_per_class=args.test_per_class,
        skip_missing_classes=args.skip_missing_classes, score_chunk=args.score_chunk,
        progress=not args.quiet)
    for result in results:
        metrics = result["metrics"]
        ks = sorted(int(key[3:]) for key in metrics if key.startswith("top") and key[3:].isdigit())
        gzsl = f"  H top{ks[0]} {100 * metrics[f'h_top{ks[0]}']:.2f}" if f"h_top{ks[0]}" in metrics else ""
        print(f"{result['model']:>8} {result['setting']:<5} " +
              "  ".join(f"top{k} {100 * metrics[f'top{k}']:6.2f}" for k in ks) + gzsl)
    print(f"results in {args.out} (`goz table {args.out}` for the table)")
    return 0
