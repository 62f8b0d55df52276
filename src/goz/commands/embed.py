"""`goz embed`: class vectors (mean word vector of each class's lemmas) for one or more splits."""

from __future__ import annotations

from goz import splits
from goz.home import data_home
from goz.semantics import LEMMA_CASES, VECTOR_FORMATS, embed

ORDER = 50


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser("embed", help="build class semantics from word vectors (GloVe, word2vec, fastText)")
    parser.add_argument("--vectors", default=str(data_home() / "glove" / "glove.6B.zip"),
                        help="word-vector file: .txt, .vec, .bin, .gz, or a .zip such as GloVe's glove.6B.zip "
                             "(default: %(default)s, where `goz fetch` puts it)")
    parser.add_argument("--classes", nargs="+", metavar="SPLIT", default=["ilsvrc2012", "goz_v1"],
                        help="split names or split files whose classes are embedded (default: %(default)s)")
    parser.add_argument("--out", required=True, help="semantics table to write (.h5, or .npz)")
    parser.add_argument("--format", choices=VECTOR_FORMATS, help="file format (default: guessed from name and first line)")
    parser.add_argument("--member", help="file to read inside a .zip (default: the largest, e.g. glove.6B.300d.txt)")
    parser.add_argument("--normalize", action="store_true", help="scale every class vector to unit L2 norm")
    parser.add_argument("--lemma-case", choices=LEMMA_CASES, default="lower",
                        help="lower: lemmas and the file's words lower-cased (default; with GloVe 6B 11 of the "
                             "1000 ILSVRC classes get no vector); as-spelled: lemmas as WordNet spells them, "
                             "the file's words as they are, as the DGP and GOZ code did (30 without a vector)")
    parser.set_defaults(run=run_embed)


def run_embed(args) -> int:
    wnids = [wnid for split in args.classes for wnid in splits.load(split)]
    table = embed(args.vectors, wnids, fmt=args.format, member=args.member, normalize=args.normalize,
                  lemma_case=args.lemma_case)
    path = table.save(args.out)
    print(f"{path}: {len(table)} of {table.attrs['classes']} classes, dimension {table.dim}, "
          f"from {table.attrs['vectors']} ({table.attrs['format']})")
    if table.attrs["missing_count"]:
        print(f"without a vector ({table.attrs['missing_count']}): {table.attrs['missing']}")
    return 0
