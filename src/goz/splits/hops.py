"""Hop distances to the seen classes: the standard ImageNet ZSL test sets and splits by distance.

The hop distance of a class is the length of the shortest undirected path (parent links, either
direction) from it to the nearest seen class in the whole hierarchy graph, through any synset.
The published `2-hops` / `3-hops` / `all` lists of the graph-ZSL papers are built-in splits
(`goz.splits.registry`) used as published: they do not follow from plain hop counts in WordNet.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from goz.errors import GozError
from goz.figures import bar_plot, markdown_table
from goz.home import write_text_atomic
from goz.wordnet import Hierarchy


def hop_split(seen: Sequence[str], candidates: Sequence[str], max_hops: int, *,
              hierarchy: Hierarchy) -> dict[str, int]:
    """Candidates within `max_hops` undirected hops of the nearest seen class (seen ones excluded),
    with their distance; ordered by distance, then by their order in `candidates`."""
    if max_hops < 1:
        raise GozError(f"--max-hops must be at least 1, got {max_hops}")
    _require_known(hierarchy, candidates, "candidate")
    distances = hierarchy.hop_distances(_require_known(hierarchy, seen, "seen"), max_hops=max_hops)
    within = [(distances[w], i, w) for i, w in enumerate(candidates) if distances.get(w, 0) > 0]
    return {wnid: distance for distance, _, wnid in sorted(within)}


@dataclass
class Comparison:
    names: tuple[str, str]
    sizes: tuple[int, int]
    common: int
    histograms: dict[str, dict[int, int]]   # split name -> hop distance (-1: unreachable) -> classes

    def markdown(self) -> str:
        (a, b), (size_a, size_b) = self.names, self.sizes
        text = "## Overlap\n\n" + markdown_table(
            ["split", "classes", "also in the other", "only here"],
            [[a, size_a, self.common, size_a - self.common], [b, size_b, self.common, size_b - self.common]])
        if self.histograms:
            distances = sorted({d for h in self.histograms.values() for d in h})
            text += "\n## Hop distance to the nearest seen class\n\n" + markdown_table(
                ["split"] + [("unreachable" if d < 0 else str(d)) for d in distances] + ["≤ 2", "≤ 3"],
                [[name] + [h.get(d, 0) for d in distances]
                 + [sum(n for d, n in h.items() if 0 <= d <= 2), sum(n for d, n in h.items() if 0 <= d <= 3)]
                 for name, h in self.histograms.items()])
        return text


def compare_splits(a: Sequence[str], b: Sequence[str], *, names: tuple[str, str] = ("A", "B"),
                   seen: Sequence[str] = (), hierarchy: Hierarchy | None = None,
                   out: str | Path | None = None) -> Comparison:
    """Overlap of two splits and, given the seen classes, each one's histogram of hop distances
    to the nearest seen class; writes `compare.md` and `compare.png` into `out` when given."""
    if names[0] == names[1]:
        names = (f"{names[0]} (A)", f"{names[1]} (B)")
    histograms: dict[str, dict[int, int]] = {}
    if seen:
        if hierarchy is None:
            raise GozError("hop-distance histograms need a hierarchy")
        distances = hierarchy.hop_distances(_require_known(hierarchy, seen, "seen"))
        for name, split in zip(names, (a, b)):
            _require_known(hierarchy, split, name)
            histograms[name] = dict(sorted(Counter(distances.get(w, -1) for w in split).items()))
    comparison = Comparison(names, (len(a), len(b)), len(set(a) & set(b)), histograms)
    if out is not None:
        out = Path(out)
        write_text_atomic(out / "compare.md", f"# {names[0]} vs {names[1]}\n\n" + comparison.markdown())
        if histograms:
            distances = sorted({d for h in histograms.values() for d in h})
            # Shares, not counts: the splits compared often differ in size by an order of magnitude.
            bar_plot(out / "compare.png", [("unreachable" if d < 0 else str(d)) for d in distances],
                     {name: [100.0 * h.get(d, 0) / max(sum(h.values()), 1) for d in distances]
                      for name, h in histograms.items()},
                     title="Hop distance to the nearest seen class", ylabel="% of the split's classes")
    return comparison


def nearest_sources(hierarchy: Hierarchy, wnid: str, sources: set[str]) -> tuple[int, list[str]]:
    """(distance, sorted sources at that distance): the sources nearest to `wnid` by undirected
    hops; (-1, []) when none is reachable. Stops at the first level holding a source."""
    if wnid in sources:
        return 0, [wnid]
    visited, frontier, distance = {wnid}, [wnid], 0
    while frontier:
        distance += 1
        next_frontier = []
        for node in frontier:
            for neighbour in (*hierarchy.parents(node), *hierarchy.children(node)):
                if neighbour not in visited:
                    visited.add(neighbour)
                    next_frontier.append(neighbour)
        found = sorted(w for w in next_frontier if w in sources)
        if found:
            return distance, found
        frontier = next_frontier
    return -1, []


def _require_known(hierarchy: Hierarchy, wnids: Sequence[str], role: str) -> list[str]:
    unknown = [w for w in wnids if w not in hierarchy]
    if unknown:
        raise GozError(f"{len(unknown)} {role} classes are not synsets of the hierarchy, e.g. "
                       f"{', '.join(unknown[:5])}")
    return list(wnids)
