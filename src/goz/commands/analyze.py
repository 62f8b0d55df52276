"""`goz analyze errors|factors|sweep|bias|population`: the GOZ paper's analyses.

Each writes a Markdown summary, a CSV of every plotted number and PNG figures into its output
folder (LaTeX tables too with `--format latex`), labelled SYNTHETIC DATA when the inputs are.
"""

from __future__ import annotations

import json
from pathlib import Path

from goz import splits
from goz.commands.bench import parse_assignments
from goz.commands.options import (
    add_hierarchy_option,
    add_quiet_option,
    non_negative_int,
    positive_int,
)
from goz.commands.split import add_lemma_options, hierarchy_with_lemmas, lemma_filter_of
from goz.errors import GozError
from goz.splits import read_counts

ORDER = 90
FORMATS = ("markdown", "latex")
SWEEPS = ("words", "images", "sense", "ratio", "size")  # the owner is goz.bench.analysis.sweep (imported on use)
HOP_GRAPHS = ("wordnet", "pruned")


def add_commands(subparsers) -> None:
    analyze = subparsers.add_parser("analyze", help="the paper's analyses: errors, factors, sweeps, bias, population")
    actions = analyze.add_subparsers(dest="analyze_command", metavar="ACTION", required=True)

    errors = actions.add_parser("errors", help="top-1 errors by relation to the true class; the global error breakdown")
    errors.add_argument("results", help="folder of goz bench outputs (<model>_<setting>.predictions.npz)")
    errors.add_argument("--max-hops", type=positive_int, default=4, help="'within d hops' category bound (default 4)")
    errors.add_argument("--seen", help="seen split: adds per-class accuracy against hop distance to it")
    errors.add_argument("--counts", help="image counts (store, image folder, ReleaseStatus.xml, URL list)")
    errors.add_argument("--noisy", metavar="FILE",
                        help="noisy images (<wnid>_<id> per line): measures the visual share of the breakdown "
                             "(without it, that share is not measured)")
    add_lemma_options(errors)
    errors.set_defaults(min_word_count=500)   # well named, as the original's breakdown: counted more than 500 times
    _common(errors, "RESULTS/analysis")
    errors.add_argument("--allow-mixed", action="store_true", help="accept results measured on different data")
    errors.set_defaults(run=run_errors)

    factors = actions.add_parser("factors", help="per-class accuracy against image count, word count and hop distances")
    factors.add_argument("results", help="folder of goz bench outputs")
    factors.add_argument("--seen", required=True, help="the seen split of the runs")
    factors.add_argument("--counts", help="image counts (store, image folder, ReleaseStatus.xml, URL list)")
    factors.add_argument("--word-cap", type=non_negative_int, default=10_000,
                         help="cap of the word count (default 10000, as the original; 0: none)")
    factors.add_argument("--hops", choices=HOP_GRAPHS, default="wordnet",
                         help="measure hops in the whole hierarchy (default) or the original's pruned tree")
    factors.add_argument("--candidates", help="the candidate pool (split file): part of the pruned tree")
    add_lemma_options(factors)
    _common(factors, "RESULTS/factors")
    factors.add_argument("--allow-mixed", action="store_true", help="accept results measured on different data")
    factors.set_defaults(run=run_factors)

    sweep = actions.add_parser("sweep", help="accuracy against word counts, image counts, sense, split ratio or "
                                             "size, over random draws of splits")
    sweep.add_argument("kind", choices=SWEEPS)
    sweep.add_argument("--seen", required=True, help="the seen split")
    sweep.add_argument("--counts", required=True, help="image counts (store, image folder, ReleaseStatus.xml, URL list)")
    sweep.add_argument("--train", required=True, help="training feature store")
    sweep.add_argument("--test", required=True, help="test feature store (holds every candidate's test images)")
    sweep.add_argument("--semantics", required=True, help="class semantics table")
    sweep.add_argument("--models", default="eszsl,sgcn", help="comma-separated models (default eszsl,sgcn)")
    sweep.add_argument("--settings", default="zsl", help="comma-separated: zsl, gzsl (default zsl)")
    sweep.add_argument("--bins", help="comma-separated: count edges (words, images), senses, ratios or sizes "
                                      "(default: the paper's)")
    sweep.add_argument("--draws", type=positive_int, help="random draws per bin (default 5; sense 15)")
    sweep.add_argument("--classes", type=positive_int, default=100, help="unseen classes per draw (default 100)")
    sweep.add_argument("--seed", type=int, default=0, help="draw d of every bin uses seed + d (default 0)")
    sweep.add_argument("--min-images", type=non_negative_int, default=1, help="images a candidate needs (default 1)")
    sweep.add_argument("--exclude", action="append", default=[], metavar="WNID", help="drop this subtree (repeatable)")
    sweep.add_argument("--per-class", type=non_negative_int, default=500, help="training samples per class (0: all)")
    sweep.add_argument("--graph", choices=("imagenet", "split"), help="graph models' class graph (as goz bench)")
    sweep.add_argument("--classifier-weights", help="seen-class fc weights for graph models (as goz bench)")
    sweep.add_argument("--set", action="append", default=[], metavar="MODEL.PARAM=VALUE",
                       help="a hyper-parameter, e.g. --set sgcn.epochs=200 (repeatable)")
    sweep.add_argument("--metric", default="top1", help="the metric plotted (default top1)")
    sweep.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="ray: run the draws as Ray tasks (RAY_ADDRESS, or a local Ray)")
    sweep.add_argument("--threads", type=positive_int, help="torch CPU threads per draw")
    sweep.add_argument("--device", default="cpu", help="torch device")
    add_lemma_options(sweep)
    _common(sweep, "./sweep-KIND")
    add_quiet_option(sweep)
    sweep.set_defaults(run=run_sweep)

    bias = actions.add_parser("bias", help="the trivial structural baseline of a split; --compare: sliding windows "
                                           "over a candidate pool, beside the models")
    bias.add_argument("--seen", required=True, help="seen split")
    bias.add_argument("--unseen", required=True, help="unseen split (with --compare: the candidate pool)")
    bias.add_argument("--train", help="feature store with the seen classes (with --test: score the baseline)")
    bias.add_argument("--test", help="feature store with the unseen classes")
    bias.add_argument("--per-class", type=positive_int, help="images per class to use (default all)")
    bias.add_argument("--model", default="eszsl", help="model scoring the baseline (default eszsl)")
    bias.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                      help="baseline model hyper-parameter (repeatable), e.g. --param gamma=100")
    bias.add_argument("--compare", action="store_true",
                      help="sliding windows over --unseen sorted by hops to the seen classes: the baseline beside "
                           "--models (needs --train, --test, --semantics)")
    bias.add_argument("--semantics", help="with --compare: the models' class semantics table")
    bias.add_argument("--models", default="eszsl", help="with --compare: comma-separated models (default eszsl)")
    bias.add_argument("--set", action="append", default=[], metavar="MODEL.PARAM=VALUE",
                      help="with --compare: a model hyper-parameter (repeatable)")
    bias.add_argument("--window", type=positive_int, default=100, help="with --compare: classes per window (100)")
    bias.add_argument("--step", type=positive_int, default=10, help="with --compare: window step (10)")
    bias.add_argument("--hops", choices=HOP_GRAPHS, default="wordnet", help="with --compare: where hops are measured")
    bias.add_argument("--graph", choices=("imagenet", "split"),
                      help="with --compare: graph models' class graph (default imagenet on WordNet, else split)")
    bias.add_argument("--classifier-weights", help="with --compare: seen-class fc weights for graph models")
    bias.add_argument("--seed", type=int, default=0)
    _common(bias, "./bias")
    add_quiet_option(bias)
    bias.set_defaults(run=run_bias)

    population = actions.add_parser("population", help="image-count and word-count distributions, images per depth")
    population.add_argument("--counts", required=True, help="image counts (store, image folder, ReleaseStatus.xml, "
                                                            "URL list)")
    population.add_argument("--classes", help="restrict to these classes (a split)")
    population.add_argument("--min-images", type=non_negative_int, default=1, help="images a class needs (default 1)")
    population.add_argument("--word-counts", metavar="wordfreq|FILE", help="word counts (default: wordfreq)")
    population.add_argument("--every-lemma", action="store_true",
                            help="count lemmas of several words too (the original plotted single words)")
    population.add_argument("--lemmas", metavar="FILE", help="names for classes the hierarchy does not name")
    _common(population, "./population")
    population.set_defaults(run=run_population)


def _common(parser, default_out: str) -> None:
    parser.add_argument("--out", help=f"output folder (default {default_out})")
    parser.add_argument("--format", choices=FORMATS, default="markdown",
                        help="latex: also write the tables as LaTeX (booktabs) (default: %(default)s)")
    add_hierarchy_option(parser)


def _counts_synthetic(source: str | None) -> bool:
    """Whether an image-count source is a synthetic feature store."""
    if not source or not Path(source).is_file():
        return False
    with open(source, "rb") as handle:
        if not handle.read(8).startswith(b"\x89HDF"):
            return False
    from goz.store import FeatureStore

    with FeatureStore(source) as store:
        return store.is_synthetic


def run_errors(args) -> int:
    from goz.bench.analysis import (
        analyze_errors,  # imported on use: scipy.stats and matplotlib are slow to load
        read_noisy,
    )

    out = Path(args.out) if args.out else Path(args.results) / "analysis"
    hierarchy = hierarchy_with_lemmas(args)
    classes = _result_classes(args.results)
    analysis = analyze_errors(args.results, hierarchy=hierarchy, max_hops=args.max_hops,
                              seen=splits.load(args.seen) if args.seen else (),
                              counts=read_counts(args.counts) if args.counts else None,
                              lemma_filter=lemma_filter_of(args, hierarchy, [w for w in classes if w in hierarchy]),
                              noisy=read_noisy(args.noisy) if args.noisy else None, allow_mixed=args.allow_mixed,
                              out=out, latex=args.format == "latex")
    print(analysis.markdown())
    print(f"wrote {out / 'errors.md'}, errors.csv, errors.png, errors_breakdown.png and factors_*.png")
    return 0


def _result_classes(results: str) -> list[str]:
    from goz.bench.analysis.common import read_runs

    try:
        runs = read_runs(results, allow_mixed=True)
    except GozError:
        return []  # the analysis itself says what is wrong with the folder
    return sorted({w for run in runs for w in run.predictions.candidates})


def run_factors(args) -> int:
    from goz.bench.analysis.factors import analyze_factors
    from goz.splits.word_counts import load_word_counts

    out = Path(args.out) if args.out else Path(args.results) / "factors"
    hierarchy = hierarchy_with_lemmas(args)
    classes = [w for w in _result_classes(args.results) if w in hierarchy]
    args_filter = lemma_filter_of(args, hierarchy, classes)
    analysis = analyze_factors(args.results, hierarchy=hierarchy, seen=splits.load(args.seen),
                               counts=read_counts(args.counts) if args.counts else None,
                               word_counts=load_word_counts(args.word_counts), word_source=args.word_counts,
                               lemma_filter=args_filter, word_cap=args.word_cap or None, hops=args.hops,
                               candidates=splits.load(args.candidates) if args.candidates else (),
                               allow_mixed=args.allow_mixed, out=out, latex=args.format == "latex")
    print(analysis.markdown())
    print(f"wrote {out / 'factors.md'}, factors.csv and factors_*.png")
    return 0


def run_sweep(args) -> int:
    from goz.bench.analysis.sweep import sweep

    out = Path(args.out) if args.out else Path(f"sweep-{args.kind}")
    hierarchy, counts = hierarchy_with_lemmas(args), read_counts(args.counts)
    candidates = [w for w, n in counts.items() if n >= args.min_images and w in hierarchy]
    result = sweep(args.kind, seen=splits.load(args.seen), counts=counts, hierarchy=hierarchy, train=args.train,
                   test=args.test, semantics=args.semantics, models=_names(args.models),
                   settings=_names(args.settings), bins=args.bins.split(",") if args.bins else None, draws=args.draws,
                   classes=args.classes, seed=args.seed, min_images=args.min_images,
                   lemma_filter=lemma_filter_of(args, hierarchy, candidates), word_source=args.word_counts,
                   exclude=args.exclude, bench_hierarchy=args.hierarchy, graph=args.graph,
                   classifier_weights=args.classifier_weights, per_class=args.per_class or None,
                   hyperparameters=parse_assignments(args.set), metric=args.metric, device=args.device,
                   threads=args.threads, engine=args.engine, out=out, latex=args.format == "latex",
                   progress=not args.quiet)
    print(result.markdown())
    print(f"wrote {out / 'sweep.md'}, sweep.csv, sweep.png and the draws under {out / 'draws'}")
    return 0


def run_bias(args) -> int:
    from goz.bench.analysis import analyze_bias, compare_bias

    out = Path(args.out) if args.out else Path("bias")
    hierarchy = _hierarchy(args)
    seen, unseen = splits.load(args.seen), splits.load(args.unseen)
    if not args.compare:
        analysis = analyze_bias(seen, unseen, hierarchy=hierarchy, train=args.train, test=args.test,
                                per_class=args.per_class, model=args.model, model_params=_parse_params(args.param),
                                out=out, latex=args.format == "latex")
        print(analysis.markdown())
        print(f"wrote {out / 'bias.md'}, bias.csv and bias.png")
        return 0
    missing = [flag for flag, value in (("--train", args.train), ("--test", args.test), ("--semantics", args.semantics))
               if not value]
    if missing:
        raise GozError(f"goz analyze bias --compare needs {', '.join(missing)}")
    hyperparameters = parse_assignments(args.set)
    hyperparameters.setdefault(args.model, {}).update(_parse_params(args.param))
    comparison = compare_bias(seen, unseen, hierarchy=hierarchy, train=args.train, test=args.test,
                              semantics=args.semantics, models=_names(args.models), hyperparameters=hyperparameters,
                              baseline=args.model, window=args.window, step=args.step, per_class=args.per_class,
                              graph=args.graph or ("imagenet" if str(args.hierarchy) == "wordnet" else "split"),
                              classifier_weights=args.classifier_weights, hops=args.hops, seed=args.seed, out=out,
                              latex=args.format == "latex", progress=not args.quiet)
    print(comparison.markdown())
    print(f"wrote {out / 'bias_compare.md'}, bias_compare.csv and bias_compare.png")
    return 0


def run_population(args) -> int:
    from goz.bench.analysis.population import analyze_population
    from goz.splits.word_counts import load_word_counts

    out = Path(args.out) if args.out else Path("population")
    hierarchy = hierarchy_with_lemmas(args) if args.lemmas else _hierarchy(args)
    population = analyze_population(read_counts(args.counts), hierarchy=hierarchy,
                                    classes=splits.load(args.classes) if args.classes else None,
                                    word_counts=load_word_counts(args.word_counts), word_source=args.word_counts,
                                    single_word=not args.every_lemma, min_images=args.min_images,
                                    synthetic=_counts_synthetic(args.counts), out=out, latex=args.format == "latex")
    print(population.report().markdown())
    print(f"wrote {out / 'population.md'}, population.csv and population_*.png")
    return 0


def _hierarchy(args):
    from goz.splits import load_hierarchy

    return load_hierarchy(args.hierarchy)


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


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
