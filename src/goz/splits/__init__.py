"""Splits: the registry of built-in splits, split files, and zero-shot split construction.

`load(name_or_path)` reads a built-in split (`goz_v1`, `ilsvrc2012`, the ImageNet ZSL test sets
`2-hops`, `3-hops`, `all`; see `goz.splits.registry`) or a split file. One public function per
action on splits: `check_split`, `build_split`, `hop_split`, `compare_splits`.
"""

from __future__ import annotations

from goz.splits.build import build_split
from goz.splits.check import check_split
from goz.splits.counts import read_counts
from goz.splits.hops import compare_splits, hop_split
from goz.splits.lemmas import LemmaFilter
from goz.splits.registry import (
                                 BUILTIN,
                                 WNID_PATTERN,
                                 BuiltinSplit,
                                 load,
                                 read_pickled_wnids,
                                 read_text_wnids,
                                 save,
                                 validate,
)
from goz.wordnet.edges import load_hierarchy

__all__ = ["BUILTIN", "WNID_PATTERN", "BuiltinSplit", "load", "read_pickled_wnids",
           "read_text_wnids", "save", "validate", "LemmaFilter", "build_split", "check_split", "compare_splits", "hop_split", "load_hierarchy",
           "read_counts"]
