"""The WordNet 3.0 noun hierarchy and graph queries.

`load()` returns the WordNet 3.0 noun hierarchy shipped with goz (`goz.wordnet.packaged`);
`load_hierarchy(source)` that one or an edges file (`goz.wordnet.edges`, cycle-checked).
"""

from __future__ import annotations

from goz.wordnet.edges import load_edges, load_hierarchy, save_edges
from goz.wordnet.hierarchy import ClassGraph, Hierarchy, Synset
from goz.wordnet.packaged import RESOURCE, load, noun_synsets

__all__ = ["ClassGraph", "Hierarchy", "Synset", "load", "noun_synsets", "load_edges", "load_hierarchy", "save_edges",
           "RESOURCE"]
