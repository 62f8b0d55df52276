"""Generates goz's packaged WordNet noun hierarchy from WordNet's database files.

    python tools/build_wordnet.py [--wordnet /usr/share/wordnet] [--out src/goz/data/wordnet/wordnet30_nouns.tsv.gz]

Reads data.noun, index.noun and cntlist.rev (Debian/Ubuntu: `apt-get install wordnet-base`).
The output is deterministic: the same database gives the same bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from goz.errors import GozError
from goz.wordnet.database import read_database, write_resource

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "src" / "goz" / "data" / "wordnet" / "wordnet30_nouns.tsv.gz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"), help="WordNet dict directory")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="resource to write")
    args = parser.parse_args(argv)
    try:
        synsets, metadata = read_database(args.wordnet)
        path = write_resource(synsets, metadata, args.out)
    except GozError as error:
        print(f"build_wordnet: error: {error}", file=sys.stderr)
        return 2
    print(f"{path}: {metadata['synsets']} synsets, {metadata['word_senses']} word senses, "
          f"{metadata['hypernym_edges']} hypernym + {metadata['instance_hypernym_edges']} instance edges, "
          f"{path.stat().st_size / 2**20:.2f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
