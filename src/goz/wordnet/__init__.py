"""The WordNet 3.0 noun hierarchy and graph queries."""

from goz.wordnet.hierarchy import ClassGraph, Hierarchy, Synset

__all__ = ["ClassGraph", "Hierarchy", "Synset"]
