"""`goz split check|build|hops|compare`: split rules, the GOZ construction, hop distances."""

from __future__ import annotations

from pathlib import Path

from goz import splits
from goz.commands.options import add_hierarchy_option
from goz.splits import (
    LemmaFilter,
    build_split,
    check_split,
    compare_splits,
    hop_split,
    load_hierarchy,
    read_counts,
)
from goz.splits.lemmas import candidate_words, read_vocabulary, read_word_counts

ORDER = 60


def add_commands(subparsers) -> None:
    split = subparsers.add_parser("split", help="check, build and compare seen/unseen splits")
    actions = split.add_subparsers(dest="split_command", metavar="ACTION", required=True)

    check = actions.add_parser("check", help="report every violation of the split rules (exit 1 if any)")
    check.add_argument("split", help="the unseen split: built-in name, text file or pickle")
    check.add_argument("--seen", help="the seen split (checked together with SPLIT)")
    check.add_argument("--counts", help="image counts: feature store, image folder, ReleaseStatus.xml or URL list")
    check.add_argument("--min-images", type=int, default=1, help="images a class needs (with --counts; default 1)")
    check.add_argument("--semantics", help="a semantics table: every class needs a class vector")
    add_hierarchy_option(check)
    check.set_defaults(run=run_check)

    build = actions.add_parser("build", help="build a GOZ-style unseen split (deterministic under --seed)")
    build.add_argument("--seen", required=True, help="the seen split the unseen classes must stay apart from")
    build.add_argument("--counts", required=True,
                       help="image counts: ReleaseStatus.xml, URL list, image folder or feature store")
    build.add_argument("--size", type=int, required=True, help="number of unseen classes")
    build.add_argument("--out", required=True, help="split file to write (report: OUT.report.md / .png)")
    build.add_argument("--min-images", type=int, default=100, help="images a candidate needs (default 100)")
    build.add_argument("--no-lemma-filter", action="store_true", help="skip the whole lemma filter")
    build.add_argument("--any-sense", action="store_true",
                       help="keep lemmas whose most frequent noun sense is another synset")
    build.add_argument("--word-counts", help="word-frequency file ('word count' per line) for the bounds below")
    build.add_argument("--min-word-count", type=int, help="keep words counted more than this (needs --word-counts)")
    build.add_argument("--max-word-count", type=int, help="keep words counted less than this (needs --word-counts)")
    build.add_argument("--vocabulary", help="word-vector file (as for goz embed): keep lemmas in its vocabulary")
    build.add_argument("--exclude", action="append", default=[], metavar="WNID",
                       help="drop this subtree, root included (repeatable)")
    build.add_argument("--exclude-below", action="append", default=[], metavar="WNID",
                       help="drop this subtree but keep its root (repeatable)")
    build.add_argument("--ratio", type=float, default=1.0,
                       help="1: follow the seen distribution over branches, 0: its inverse (default 1)")
    build.add_argument("--seed", type=int, default=0, help="breaks ties reproducibly (default 0)")
    build.add_argument("--report-depth", type=int, help="spanning-tree depth of the report's branches (default: auto)")
    add_hierarchy_option(build)
    build.set_defaults(run=run_build)

    hops = actions.add_parser("hops", help="candidate classes within K undirected hops of the seen classes")
    hops.add_argument("--seen", required=True, help="the seen split")
    hops.add_argument("--candidates", required=True, help="candidate classes: a split (e.g. 'all') or file")
    hops.add_argument("--max-hops", type=int, required=True, help="largest hop distance kept")
    hops.add_argument("--out", help="split file to write (one wnid per line, nearest first)")
    add_hierarchy_option(hops)
    hops.set_defaults(run=run_hops)

    compare = actions.add_parser("compare", help="overlap of two splits and their hop distances to the seen classes")
    compare.add_argument("a", help="first split")
    compare.add_argument("b", help="second split")
    compare.add_argument("--seen", help="seen split: adds hop-distance histograms")
    compare.add_argument("--out", help="folder for compare.md and compare.png")
    add_hierarchy_option(compare)
    compare.set_defaults(run=run_compare)


def run_check(args) -> int:
    from goz.semantics import load as load_semantics

    report = check_split(splits.load(args.split), splits.load(args.seen) if args.seen else [],
                         hierarchy=load_hierarchy(args.hierarchy),
                         counts=read_counts(args.counts) if args.counts else None, min_images=args.min_images,
                         semantics=load_semantics(args.semantics) if args.semantics else None)
    print(report.summary())
    return 0 if report.ok else 1


def run_build(args) -> int:
    hierarchy, counts = load_hierarchy(args.hierarchy), read_counts(args.counts)
    vocabulary = (read_vocabulary(args.vocabulary, candidate_words(hierarchy, counts, args.min_images))
                  if args.vocabulary else None)
    lemma_filter = None if args.no_lemma_filter else LemmaFilter(
        most_frequent_sense=not args.any_sense,
        word_counts=read_word_counts(args.word_counts) if args.word_counts else None,
        min_word_count=args.min_word_count, max_word_count=args.max_word_count, vocabulary=vocabulary)
    built = build_split(splits.load(args.seen), counts, args.size, hierarchy=hierarchy, min_images=args.min_images,
                        lemma_filter=lemma_filter, exclude=args.exclude, exclude_below=args.exclude_below,
                        ratio=args.ratio, seed=args.seed, report_depth=args.report_depth, out=args.out)
    for step, left in built.stages.items():
        print(f"{left:8d}  {step}")
    print(f"wrote {args.out} ({len(built.unseen)} classes) and {args.out}.report.md / .report.png")
    return 0


def run_hops(args) -> int:
    within = hop_split(splits.load(args.seen), splits.load(args.candidates), args.max_hops,
                       hierarchy=load_hierarchy(args.hierarchy))
    for distance in sorted(set(within.values())):
        print(f"{distance} hops  {sum(d == distance for d in within.values())} classes")
    print(f"total    {len(within)} classes within {args.max_hops} hops")
    if args.out:
        print(f"wrote {splits.save(list(within), Path(args.out))}")
    return 0


def run_compare(args) -> int:
    comparison = compare_splits(splits.load(args.a), splits.load(args.b), names=(args.a, args.b),
                                seen=splits.load(args.seen) if args.seen else (),
                                hierarchy=load_hierarchy(args.hierarchy) if args.seen else None, out=args.out)
    print(comparison.markdown())
    if args.out:
        print(f"wrote {Path(args.out) / 'compare.md'}" + (" and compare.png" if args.seen else ""))
    return 0
