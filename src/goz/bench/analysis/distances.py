"""Hop distances between classes, in the full hierarchy or in the original's pruned tree.

A hop is a parent link walked either way. `wordnet` measures in the whole hierarchy (every synset,
every hypernym and instance-hypernym link): what `goz split hops` and `goz analyze bias` use.
`pruned` measures in the graph the GOZ notebooks measured in (`experiments/src/tree.py`,
`get_tree`): the hierarchy cut down to the given classes and their ancestors (`prune_empty_branches`),
then each ancestor that is not a class and has exactly one parent and one child replaced by a
direct link (`prune_dummy_nodes`, one pass in wnid order, as networkx visited WordNet's synsets).
Contracting chains shortens paths, so pruned distances are never longer than WordNet's.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import shortest_path

from goz.errors import GozError
from goz.wordnet import Hierarchy

HOP_GRAPHS = ("wordnet", "pruned")
SOURCES_PER_PASS = 64   # rows of the distance matrix computed at once (WordNet: 82,115 columns each)

_ADJACENCY_CACHE: dict[int, tuple[Hierarchy, sp.csr_matrix, dict[str, int]]] = {}


def hop_matrix(hierarchy: Hierarchy, sources: Sequence[str], targets: Sequence[str], *, graph: str = "wordnet",
               classes: Collection[str] | None = None) -> np.ndarray:
    """(len(sources), len(targets)) undirected hop distances (inf: unreachable). `graph="pruned"`:
    in the original's pruned tree over `classes` (default: sources and targets)."""
    if graph not in HOP_GRAPHS:
        raise GozError(f"unknown hop graph {graph!r}: choose from {', '.join(HOP_GRAPHS)}")
    missing = [w for w in (*sources, *targets) if w not in hierarchy]
    if missing:
        raise GozError(f"{len(missing)} classes are not in the hierarchy, e.g. {', '.join(sorted(set(missing))[:5])}")
    if graph == "wordnet":
        adjacency, index = _full_adjacency(hierarchy)
    else:
        adjacency, index = pruned_adjacency(hierarchy, set(classes) if classes is not None
                                            else {*sources, *targets})
    absent = [w for w in (*sources, *targets) if w not in index]
    if absent:
        raise GozError(f"{len(absent)} classes are not in the pruned tree (pass them in `classes`), "
                       f"e.g. {', '.join(absent[:5])}")
    rows = np.array([index[w] for w in sources], dtype=np.int64)
    columns = np.array([index[w] for w in targets], dtype=np.int64)
    if len(columns) < len(rows):   # hops are symmetric: search from the smaller side
        return _searched(adjacency, columns, rows).T
    return _searched(adjacency, rows, columns)


def _searched(adjacency: sp.csr_matrix, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    distances = np.empty((len(rows), len(columns)))
    for start in range(0, len(rows), SOURCES_PER_PASS):
        chunk = rows[start:start + SOURCES_PER_PASS]
        distances[start:start + len(chunk)] = shortest_path(adjacency, method="D", directed=False, unweighted=True,
                                                            indices=chunk)[:, columns]
    return distances


def _full_adjacency(hierarchy: Hierarchy) -> tuple[sp.csr_matrix, dict[str, int]]:
    cached = _ADJACENCY_CACHE.get(id(hierarchy))
    if cached is not None and cached[0] is hierarchy:
        return cached[1], cached[2]
    index = {w: i for i, w in enumerate(hierarchy.synsets)}
    edges = [(index[w], index[p]) for w in hierarchy.synsets for p in hierarchy.parents(w)]
    adjacency = _adjacency(edges, len(index))
    _ADJACENCY_CACHE.clear()  # one hierarchy at a time: WordNet's matrix is a few MB
    _ADJACENCY_CACHE[id(hierarchy)] = (hierarchy, adjacency, index)
    return adjacency, index


def pruned_parents(hierarchy: Hierarchy, classes: Collection[str]) -> dict[str, set[str]]:
    """node -> its parents in the original's pruned tree over `classes` (module docstring)."""
    keep = set(classes)
    for wnid in classes:
        keep |= hierarchy.ancestors(wnid)
    parents = {w: {p for p in hierarchy.parents(w) if p in keep} for w in keep}
    children: dict[str, set[str]] = {w: set() for w in keep}
    for child, found in parents.items():
        for parent in found:
            children[parent].add(child)
    for node in sorted(keep - set(classes)):
        if len(parents[node]) == 1 and len(children[node]) == 1:
            (parent,), (child,) = parents[node], children[node]
            children[parent].discard(node)
            parents[child].discard(node)
            children[parent].add(child)
            parents[child].add(parent)
            del parents[node], children[node]
    return parents


def pruned_adjacency(hierarchy: Hierarchy, classes: Collection[str]) -> tuple[sp.csr_matrix, dict[str, int]]:
    parents = pruned_parents(hierarchy, classes)
    index = {w: i for i, w in enumerate(sorted(parents))}
    return _adjacency([(index[c], index[p]) for c, found in parents.items() for p in found], len(index)), index


def _adjacency(edges: list[tuple[int, int]], size: int) -> sp.csr_matrix:
    edges_array = np.array(edges, dtype=np.int64).reshape(-1, 2)
    data = np.ones(len(edges_array), dtype=np.float64)
    matrix = sp.coo_matrix((data, (edges_array[:, 0], edges_array[:, 1])), shape=(size, size)).tocsr()
    return ((matrix + matrix.T) > 0).astype(np.float64).tocsr()


def nearest_and_mean(distances: np.ndarray, exclude_self: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(min, mean) over each column of a (sources, targets) distance matrix; with `exclude_self` (a
    boolean mask of the same shape) those entries are left out (a class's distance to itself)."""
    values = distances.astype(float).copy()
    if exclude_self is not None:
        values[exclude_self] = np.nan
    with np.errstate(invalid="ignore"):
        finite = np.where(np.isfinite(values), values, np.nan)
        return np.nanmin(np.where(np.isnan(values), np.inf, values), axis=0), np.nanmean(finite, axis=0)
