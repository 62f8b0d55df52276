"""`goz split check|build|hops|compare`: split rules, the GOZ construction, hop distances."""

from __future__ import annotations

from pathlib import Path

from goz import splits
from goz.commands.options import add_hierarchy_option, non_negative_int, positive_int
from goz.splits import (
    build_split,
    check_split,
    compare_splits,
    hop_split,
    load_hierarchy,
    read_counts,
)
from goz.splits.lemmas import (
    SENSE_CHECKS,
    SENSES,
    LemmaFilter,
    SenseVectors,
    read_lemma_names,
    read_vocabulary,
    with_lemmas,
)
from goz.splits.word_counts import load_word_counts

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
    how = build.add_mutually_exclusive_group(required=True)
    how.add_argument("--size", type=positive_int, help="number of unseen classes (distribution matching)")
    how.add_argument("--sample", type=positive_int, metavar="N",
                     help="draw N classes uniformly from the candidate pool under --seed (the paper's random draws)")
    build.add_argument("--out", required=True, help="split file to write (report: OUT.report.md / .png)")
    build.add_argument("--write-candidates", metavar="FILE",
                       help="also write the candidate pool (what passes every filter and the hierarchy filter)")
    build.add_argument("--min-images", type=non_negative_int, default=100, help="images a candidate needs (default 100)")
    build.add_argument("--max-images", type=positive_int, help="keep candidates with fewer images than this")
    add_lemma_options(build)
    build.add_argument("--exclude", action="append", default=[], metavar="WNID",
                       help="drop this subtree, root included (repeatable)")
    build.add_argument("--exclude-below", action="append", default=[], metavar="WNID",
                       help="drop this subtree but keep its root (repeatable)")
    build.add_argument("--ratio", type=float, default=1.0,
                       help="1: follow the seen distribution over branches, 0: its inverse (default 1)")
    build.add_argument("--seed", type=int, default=0, help="breaks ties and draws --sample reproducibly (default 0)")
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


def add_lemma_options(parser) -> None:
    """The lemma filter's options, shared by `goz split build` and the `goz analyze` sweeps."""
    parser.add_argument("--no-lemma-filter", action="store_true", help="skip the whole lemma filter")
    parser.add_argument("--sense", choices=SENSES, default="primary",
                        help="primary: the class is the lemma's most frequent noun sense (default); secondary: it "
                             "is not; tagged: primary with a WordNet tag count above 0 (the original's 'very' rule); "
                             "any")
    parser.add_argument("--any-sense", dest="sense", action="store_const", const="any", help="same as --sense any")
    parser.add_argument("--single-word", action="store_true", help="keep lemmas of one word only (no '_')")
    parser.add_argument("--word-counts", metavar="wordfreq|FILE",
                        help="word counts for the bounds below: 'wordfreq' (built in, occurrences per billion words; "
                             "the default when a bound is given) or a file ('word count' per line, or the original's "
                             "pickled Counter)")
    parser.add_argument("--min-word-count", type=int, help="keep words counted more than this")
    parser.add_argument("--max-word-count", type=int, help="keep words counted less than this")
    parser.add_argument("--vocabulary", help="word-vector file (as for goz embed): keep lemmas in its vocabulary")
    parser.add_argument("--sense-vectors", metavar="VECTORS",
                        help="word-vector file for the sense check: keep a lemma only when its vector points at "
                             "this sense (--sense-check agree) or at another one (disagree)")
    parser.add_argument("--sense-check", choices=SENSE_CHECKS, default="agree", help="with --sense-vectors")
    parser.add_argument("--lemmas", metavar="FILE",
                        help="names for classes the hierarchy does not name (wnid<TAB>lemma[,lemma...] per line), "
                             "e.g. a synthetic benchmark's classes")


def lemma_filter_of(args, hierarchy, wnids) -> LemmaFilter | None:
    """The LemmaFilter the options ask for; `wnids`: the classes whose words need looking up (vocabulary, vectors)."""
    if args.no_lemma_filter:
        return None
    bounded = args.min_word_count is not None or args.max_word_count is not None
    word_counts = load_word_counts(args.word_counts) if (args.word_counts or bounded) else None
    words = {lemma.lower() for wnid in wnids for lemma in hierarchy.lemmas(wnid)}
    return LemmaFilter(
        sense=args.sense, word_counts=word_counts, min_word_count=args.min_word_count,
        max_word_count=args.max_word_count, single_word=args.single_word,
        vocabulary=read_vocabulary(args.vocabulary, words) if args.vocabulary else None,
        sense_vectors=SenseVectors.from_file(args.sense_vectors, hierarchy, wnids) if args.sense_vectors else None,
        sense_check=args.sense_check)


def hierarchy_with_lemmas(args):
    """--hierarchy, with the names of --lemmas when given."""
    hierarchy = load_hierarchy(args.hierarchy)
    return with_lemmas(hierarchy, read_lemma_names(args.lemmas, hierarchy)) if args.lemmas else hierarchy


def run_build(args) -> int:
    hierarchy, counts = hierarchy_with_lemmas(args), read_counts(args.counts)
    wnids = [w for w, n in counts.items() if n >= args.min_images and w in hierarchy]
    built = build_split(splits.load(args.seen), counts, args.size, hierarchy=hierarchy, min_images=args.min_images,
                        max_images=args.max_images, lemma_filter=lemma_filter_of(args, hierarchy, wnids),
                        exclude=args.exclude, exclude_below=args.exclude_below, ratio=args.ratio, seed=args.seed,
                        sample=args.sample, report_depth=args.report_depth, out=args.out,
                        candidates_out=args.write_candidates)
    for step, left in built.stages.items():
        print(f"{left:8d}  {step}")
    print(f"wrote {args.out} ({len(built.unseen)} classes) and {args.out}.report.md / .report.png")
    if args.write_candidates:
        print(f"wrote {args.write_candidates} (the pool of {len(built.candidates)} candidates)")
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
