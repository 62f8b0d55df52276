"""The published ImageNet graph of the graph baselines: the graph DGP's code trains on.

The rule of `materials/make_induced_graph.py` in cyvius96/DGP (the code the GOZ paper trained its
graph models with): start from the key classes, the 1000 ILSVRC-2012 classes then the 20,842
ImageNet-21K classes of the `all` test set, both as DGP's `imagenet-split.json` lists them (its
`test` holds the classes of `all` in another order; node positions follow it); walk up their WordNet hypernyms (instance hypernyms are
not followed) breadth first, adding each synset met, but do not walk on from a synset of ImageNet's
`structure_released.xml` (32,295 synsets, shipped as `goz/data/imagenet/imagenet-xml-wnids.json`);
then add every synset of that XML not yet there, in the file's order. Edges are all hypernym links
between the nodes. On WordNet 3.0 that is 32,324 nodes and 32,544 child -> parent edges; the order
of the nodes is DGP's (key classes first, then the hypernyms met, then the rest of the XML).

`imagenet_graph(extra)` adds classes outside those lists (e.g. a custom split) as further key
classes, after the published ones; classes already in the published graph change nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from goz.catalog import imagenet_split, imagenet_xml_wnids
from goz.errors import GozError
from goz.wordnet.hierarchy import ClassGraph, Hierarchy

__all__ = ["PUBLISHED_EDGES", "PUBLISHED_NODES", "imagenet_graph", "imagenet_xml_wnids"]

PUBLISHED_NODES = 32_324   # on WordNet 3.0: 32,295 XML synsets + 29 key classes outside the XML
PUBLISHED_EDGES = 32_544


def _key_classes() -> list[str]:
    # DGP's make_induced_graph.py reads imagenet-split.json, whose `test` holds the classes of `all` in another order
    return imagenet_split("train") + imagenet_split("test")


def imagenet_graph(extra: Sequence[str] = (), hierarchy: Hierarchy | None = None) -> ClassGraph:
    """DGP's ImageNet graph (module docstring), with `extra` classes added as key classes.

    `hierarchy` defaults to the packaged WordNet 3.0; another one must hold every published wnid.
    The graph on the packaged WordNet is cached per `extra`.
    """
    extra = tuple(dict.fromkeys(extra))
    published = _cached_graph(()) if hierarchy is None else _build([], hierarchy)
    if all(w in published.index for w in extra):
        return published  # classes already nodes change nothing (and keep DGP's node order)
    return _cached_graph(extra) if hierarchy is None else _build(list(extra), hierarchy)


@lru_cache(maxsize=4)
def _cached_graph(extra: tuple[str, ...]) -> ClassGraph:
    from goz import wordnet

    return _build(list(extra), wordnet.load())


def _build(extra: list[str], hierarchy: Hierarchy) -> ClassGraph:
    xml = imagenet_xml_wnids()
    keys = list(dict.fromkeys(_key_classes() + extra))
    unknown = [w for w in (*keys, *xml) if w not in hierarchy]
    if unknown:
        outside = [w for w in extra if w in set(unknown)]
        what = (f"{len(outside)} of the given classes are not synsets of the hierarchy, e.g. {outside[0]}" if outside
                else f"the hierarchy lacks {len(unknown)} synsets of the published ImageNet graph, e.g. {unknown[0]}")
        raise GozError(f"imagenet graph: {what}; the imagenet graph needs WordNet 3.0 (use the split graph, "
                       f"`--graph split`, with another hierarchy)")
    stop = set(xml)
    nodes, present = keys, set(keys)
    position = 0
    while position < len(nodes):  # breadth first, as DGP's induce_parents
        wnid = nodes[position]
        position += 1
        if wnid in stop:
            continue
        for parent in hierarchy.synsets[wnid].hypernyms:
            if parent not in present:
                present.add(parent)
                nodes.append(parent)
    nodes += [w for w in xml if w not in present]
    index = {w: i for i, w in enumerate(nodes)}
    rows, cols = [], []
    for wnid in nodes:
        for parent in hierarchy.synsets[wnid].hypernyms:
            if parent in index:
                rows.append(index[wnid])
                cols.append(index[parent])
    edges = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(nodes), len(nodes)))
    return ClassGraph(nodes, edges)
