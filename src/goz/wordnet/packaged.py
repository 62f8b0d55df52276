"""The WordNet 3.0 noun hierarchy shipped with goz (`goz/data/wordnet/`, generated from Princeton's database
files by `tools/build_wordnet.py`; licence in the same folder), and the check of classes against it."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from goz.errors import GozError
from goz.wordnet.database import read_resource
from goz.wordnet.hierarchy import Hierarchy

RESOURCE = "wordnet30_nouns.tsv.gz"


@lru_cache(maxsize=1)
def load() -> Hierarchy:
    """The packaged WordNet 3.0 noun hierarchy (82,115 synsets), read once and cached."""
    with resources.as_file(resources.files("goz") / "data" / "wordnet" / RESOURCE) as path:
        return read_resource(path)


def noun_synsets(wnids, hierarchy: Hierarchy | None = None) -> tuple[Hierarchy, list[str]]:
    """(the hierarchy, `wnids` de-duplicated in order): the packaged WordNet unless one is given;
    GozError naming the classes that are not in it."""
    hierarchy = hierarchy if hierarchy is not None else load()
    wnids = list(dict.fromkeys(wnids))
    unknown = [w for w in wnids if w not in hierarchy]
    if unknown:
        raise GozError(f"{len(unknown)} class(es) are not WordNet noun synsets: {', '.join(unknown[:10])}"
                       f"{' ...' if len(unknown) > 10 else ''}")
    return hierarchy, wnids
