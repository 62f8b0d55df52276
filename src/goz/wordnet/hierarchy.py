"""A noun hierarchy (WordNet's, or a synthetic one in tests) and the graph queries goz needs.

Edges go from a synset to its hypernyms and instance hypernyms ("parents"). WordNet is a DAG:
a synset may have several parents, so ancestors are sets and depth is defined by paths.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from goz.errors import GozError


@dataclass(frozen=True)
class Synset:
    wnid: str
    lemmas: tuple[str, ...] = ()
    lemma_counts: tuple[int, ...] = ()    # WordNet tag-count of each lemma in this sense
    gloss: str = ""
    hypernyms: tuple[str, ...] = ()
    instance_hypernyms: tuple[str, ...] = ()
    sense_numbers: tuple[int, ...] = ()   # each lemma's noun sense number (1 = its most frequent sense)

    @property
    def parents(self) -> tuple[str, ...]:
        return self.hypernyms + self.instance_hypernyms


@dataclass
class ClassGraph:
    """The graph induced by some classes and all their ancestors, with a stable node order.

    `parent_edges[i, j] == 1` when node j is a parent of node i (directed child -> parent).
    """

    wnids: list[str]
    parent_edges: sp.csr_matrix
    index: dict[str, int] = field(init=False)

    def __post_init__(self):
        self.index = {wnid: i for i, wnid in enumerate(self.wnids)}

    def __len__(self) -> int:
        return len(self.wnids)

    def fingerprint(self) -> str:
        """sha256 of the nodes (in order) and the child -> parent edges."""
        edges = self.parent_edges.tocoo()
        digest = hashlib.sha256("\n".join(self.wnids).encode())
        digest.update(np.stack([edges.row, edges.col]).astype("<i8")[:, np.lexsort((edges.col, edges.row))].tobytes())
        return digest.hexdigest()

    def undirected_adjacency(self) -> sp.csr_matrix:
        """Symmetric 0/1 adjacency without self-loops."""
        adjacency = self.parent_edges + self.parent_edges.T
        adjacency.data[:] = 1.0
        return adjacency.tocsr()


class Hierarchy:
    """Graph queries over a set of synsets. Construct from `Synset`s or from (child, parent) pairs."""

    def __init__(self, synsets: Iterable[Synset], attrs: dict | None = None):
        self.synsets: dict[str, Synset] = {s.wnid: s for s in synsets}
        self.attrs: dict = dict(attrs or {})
        self._children: dict[str, list[str]] = {wnid: [] for wnid in self.synsets}
        for synset in self.synsets.values():
            for parent in synset.parents:
                if parent not in self.synsets:
                    raise GozError(f"hierarchy: {synset.wnid} has unknown parent {parent}")
                self._children[parent].append(synset.wnid)
        self._parents: dict[str, tuple[str, ...]] = {wnid: s.parents for wnid, s in self.synsets.items()}
        self._ancestors: dict[str, frozenset[str]] = {}
        self._depths: dict[tuple[str, bool], int] = {}

    @classmethod
    def from_edges(cls, edges: Iterable[tuple[str, str]], lemmas: dict[str, Sequence[str]] | None = None) -> Hierarchy:
        """A hierarchy from (child, parent) pairs, e.g. a synthetic tree in tests."""
        parents: dict[str, list[str]] = {}
        for child, parent in edges:
            parents.setdefault(child, []).append(parent)
            parents.setdefault(parent, [])
        lemmas = lemmas or {}
        # Sense numbers follow the order in which a lemma first appears, as in index.noun.
        senses_so_far: dict[str, int] = {}
        synsets = []
        for wnid, synset_parents in parents.items():
            names = tuple(lemmas.get(wnid, ()))
            numbers = []
            for name in names:
                senses_so_far[name.lower()] = senses_so_far.get(name.lower(), 0) + 1
                numbers.append(senses_so_far[name.lower()])
            synsets.append(Synset(wnid, names, tuple(1 for _ in names), "", tuple(synset_parents),
                                  sense_numbers=tuple(numbers)))
        return cls(synsets)

    # -- basic lookups -----------------------------------------------------------------------------
    def __contains__(self, wnid: object) -> bool:
        return wnid in self.synsets

    def __len__(self) -> int:
        return len(self.synsets)

    def _get(self, wnid: str) -> Synset:
        try:
            return self.synsets[wnid]
        except KeyError:
            raise GozError(f"{wnid} is not a synset of this hierarchy") from None

    def lemmas(self, wnid: str) -> tuple[str, ...]:
        return self._get(wnid).lemmas

    def gloss(self, wnid: str) -> str:
        return self._get(wnid).gloss

    def parents(self, wnid: str) -> tuple[str, ...]:
        return self._get(wnid).parents

    def children(self, wnid: str) -> list[str]:
        self._get(wnid)
        return list(self._children[wnid])

    @cached_property
    def roots(self) -> list[str]:
        return [w for w, s in self.synsets.items() if not s.parents]

    # -- word senses -------------------------------------------------------------------------------
    @cached_property
    def _senses(self) -> dict[str, list[str]]:
        """lemma (lower case) -> its synsets by sense number (WordNet's frequency order)."""
        numbered: dict[str, list[tuple[int, str]]] = {}
        for synset in self.synsets.values():
            numbers = synset.sense_numbers or (0,) * len(synset.lemmas)
            for lemma, number in zip(synset.lemmas, numbers):
                numbered.setdefault(lemma.lower(), []).append((number, synset.wnid))
        # dict.fromkeys: a synset listing a lemma twice in different case ("Paris", "paris") counts once.
        return {lemma: list(dict.fromkeys(wnid for _, wnid in sorted(pairs))) for lemma, pairs in numbered.items()}

    @staticmethod
    def _lemma_key(word: str) -> str:
        return word.strip().lower().replace(" ", "_")

    def senses(self, word: str) -> list[str]:
        """The noun synsets of `word` (spaces or underscores, any case), most frequent sense first."""
        return list(self._senses.get(self._lemma_key(word), ()))

    def most_frequent_sense(self, word: str) -> str | None:
        """The synset of `word`'s first (most frequent) noun sense; None if `word` is no noun lemma."""
        senses = self._senses.get(self._lemma_key(word))
        return senses[0] if senses else None

    def is_most_frequent_sense(self, wnid: str, word: str | None = None) -> bool:
        """Whether `wnid` is the most frequent noun sense of `word` (default: of any of its lemmas)."""
        words = [word] if word is not None else self.lemmas(wnid)
        return any(self.most_frequent_sense(w) == wnid for w in words)

    # -- transitive queries ------------------------------------------------------------------------
    def ancestors(self, wnid: str) -> frozenset[str]:
        """Every synset reachable through parents (excluding `wnid`), memoized."""
        memo = self._ancestors
        cached = memo.get(wnid)
        if cached is not None:
            return cached
        self._get(wnid)
        parents_of = self._parents
        # Iterative post-order so deep chains cannot overflow the recursion limit.
        stack = [wnid]
        while stack:
            node = stack[-1]
            parents = parents_of[node]
            pending = [p for p in parents if p not in memo]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            if len(parents) == 1:
                memo[node] = memo[parents[0]].union(parents)
            else:
                memo[node] = frozenset(parents).union(*(memo[p] for p in parents))
        return memo[wnid]

    def descendants(self, wnid: str) -> set[str]:
        self._get(wnid)
        found: set[str] = set()
        queue = deque(self._children[wnid])
        while queue:
            node = queue.popleft()
            if node not in found:
                found.add(node)
                queue.extend(self._children[node])
        return found

    def is_ancestor(self, ancestor: str, wnid: str) -> bool:
        return ancestor in self.ancestors(wnid)

    def depth(self, wnid: str, longest: bool = False) -> int:
        """Edges on the shortest (or longest) path from `wnid` up to a root, memoized."""
        cached = self._depths.get((wnid, longest))
        if cached is not None:
            return cached
        parents = self.parents(wnid)
        depths = [self.depth(parent, longest) for parent in parents]
        result = 1 + (max(depths) if longest else min(depths)) if depths else 0
        self._depths[(wnid, longest)] = result
        return result

    def hop_distance(self, a: str, b: str) -> int:
        """Undirected shortest-path length between two synsets (edges = parent links)."""
        self._get(b)
        return self.hop_distances([a], max_hops=None).get(b, -1)

    def hop_distances(self, sources: Iterable[str], max_hops: int | None = None) -> dict[str, int]:
        """Multi-source undirected BFS: distance of every reachable synset to the nearest source."""
        distance: dict[str, int] = {}
        queue: deque[str] = deque()
        for source in sources:
            self._get(source)
            if source not in distance:
                distance[source] = 0
                queue.append(source)
        while queue:
            node = queue.popleft()
            d = distance[node]
            if max_hops is not None and d >= max_hops:
                continue
            for neighbour in (*self.synsets[node].parents, *self._children[node]):
                if neighbour not in distance:
                    distance[neighbour] = d + 1
                    queue.append(neighbour)
        return distance

    def lowest_common_ancestor(self, a: str, b: str) -> str | None:
        """The common ancestor (or a/b itself) that is deepest, i.e. the most specific; None if none."""
        up_a = self.ancestors(a) | {a}
        common = up_a & (self.ancestors(b) | {b})
        if not common:
            return None
        return max(sorted(common), key=lambda w: self.depth(w, longest=True))

    def induced_graph(self, wnids: Sequence[str]) -> ClassGraph:
        """`wnids` (first, in order) plus all their ancestors (sorted), with parent edges among them."""
        nodes = list(dict.fromkeys(wnids))
        extra = sorted({a for w in nodes for a in self.ancestors(w)} - set(nodes))
        nodes += extra
        index = {w: i for i, w in enumerate(nodes)}
        rows, cols = [], []
        for wnid in nodes:
            for parent in self.synsets[wnid].parents:
                rows.append(index[wnid])
                cols.append(index[parent])
        edges = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(nodes), len(nodes)))
        return ClassGraph(nodes, edges)
