"""Checking and building zero-shot splits over a noun hierarchy, and hop-distance splits.

One public function per action: `check_split`, `build_split`, `hop_split`, `compare_splits`.
Importing this package also registers the standard ImageNet ZSL test sets (`2-hops`, `3-hops`,
`all`) as built-in splits of `goz.splits.load`.
"""

from __future__ import annotations

from pathlib import Path

from goz.errors import GozError
from goz.split.build import build_split
from goz.split.check import check_split
from goz.split.counts import read_counts
from goz.split.hops import compare_splits, hop_split
from goz.split.lemmas import LemmaFilter
from goz.synthetic import load_hierarchy as load_edges
from goz.wordnet import Hierarchy
from goz.wordnet import load as load_wordnet

__all__ = ["LemmaFilter", "build_split", "check_split", "compare_splits", "hop_split", "load_hierarchy",
           "read_counts"]


def load_hierarchy(source: str | Path = "wordnet") -> Hierarchy:
    """`wordnet` (the packaged WordNet 3.0 nouns) or an edges file: `child<TAB>parent` per line
    (read by `goz.synthetic.load_hierarchy`, the format `goz demo` writes), refused if it has a cycle."""
    if str(source) == "wordnet":
        return load_wordnet()
    hierarchy = load_edges(source)
    _require_acyclic(hierarchy, Path(source))
    return hierarchy


def _require_acyclic(hierarchy: Hierarchy, path: Path) -> None:
    # Kahn's algorithm: graph queries (ancestors, depth) assume a DAG and would never end on a cycle.
    pending = {w: len(hierarchy.parents(w)) for w in hierarchy.synsets}
    ready = [w for w, n in pending.items() if n == 0]
    done = 0
    while ready:
        node = ready.pop()
        done += 1
        for child in hierarchy.children(node):
            pending[child] -= 1
            if pending[child] == 0:
                ready.append(child)
    if done < len(hierarchy):
        cycle = sorted(w for w, n in pending.items() if n > 0)
        raise GozError(f"{path}: the edges form a cycle through {', '.join(cycle[:5])}")
