"""`goz bench`: fit ZSL models on the seen classes and evaluate them in the zsl and gzsl settings."""

from __future__ import annotations

import json

from goz.commands.options import add_quiet_option
from goz.errors import GozError

ORDER = 70


def add_commands(subparsers) -> None:
    bench = subparsers.add_parser(
        "bench", help="fit models, evaluate them in the zsl/gzsl settings, write one JSON per (model, setting)")
    bench.add_argument("--models", default="conse,devise,eszsl", help="comma-separated registered model names")
    bench.add_argument("--settings", default="zsl,gzsl", help="comma-separated: zsl, gzsl")
    bench.add_argument("--train", help="training feature store (default: the fetched one under GOZ_HOME)")
    bench.add_argument("--test", help="test feature store (default: the fetched one under GOZ_HOME)")
    bench.add_argument("--semantics", required=True,
                       help="class semantics table (.h5 or .npz, from `goz embed`), or `published`: the original "
                            "benchmark's class vectors installed by `goz fetch published`")
    bench.add_argument("--seen", default="ilsvrc2012", help="seen classes: built-in split name or split file")
    bench.add_argument("--unseen", default="goz_v1", help="unseen classes: built-in split name or split file")
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


def run(args) -> int:
    from goz.bench.run import (
        run_bench,  # imported on use: torch and h5py make `goz --help` slow
    )

    results = run_bench(
        models=[m.strip() for m in args.models.split(",") if m.strip()],
        settings=[s.strip() for s in args.settings.split(",") if s.strip()],
        train=args.train, test=args.test, semantics=args.semantics, seen=args.seen, unseen=args.unseen, out=args.out,
        per_class=args.per_class or None, seed=args.seed, hierarchy=args.hierarchy, graph=args.graph,
        classifier_weights=args.classifier_weights, device=args.device,
        hyperparameters=parse_assignments(args.set), force=args.force, threads=args.threads,
        allow_links=args.allow_links,
        progress=not args.quiet)
    for result in results:
        metrics = result["metrics"]
        gzsl = f"  H top1 {100 * metrics['h_top1']:.2f}" if result["setting"] == "gzsl" else ""
        print(f"{result['model']:>8} {result['setting']:<5} top1 {100 * metrics['top1']:6.2f}  "
              f"top5 {100 * metrics['top5']:6.2f}{gzsl}")
    print(f"results in {args.out} (`goz table {args.out}` for the table)")
    return 0
