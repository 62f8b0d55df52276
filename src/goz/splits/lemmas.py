"""Which lemmas name a class well enough for zero-shot learning (the GOZ lemma filter).

A lemma is kept when the class is that word's most frequent noun sense (WordNet sense order,
which follows the usage tag counts), optionally when the word's corpus frequency lies within
bounds, and optionally when the word is in a word-vector vocabulary. A class with no lemma left
cannot be described by words, so it is no candidate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from goz.errors import GozError
from goz.semantics import load_word_vectors
from goz.wordnet import Hierarchy


@dataclass(frozen=True)
class LemmaFilter:
    """The lemma conditions; `None` disables a condition."""

    most_frequent_sense: bool = True
    word_counts: dict[str, int] | None = None   # word (lower case, `_` for spaces) -> corpus count
    min_word_count: int | None = None           # kept when count > min (as in GOZ)
    max_word_count: int | None = None           # kept when count < max
    vocabulary: frozenset[str] | None = None    # lower-case words that have a vector

    def keeps(self, hierarchy: Hierarchy, wnid: str, lemma: str) -> bool:
        word = lemma.lower()
        if self.most_frequent_sense and not hierarchy.is_most_frequent_sense(wnid, lemma):
            return False
        if self.word_counts is not None:
            count = self.word_counts.get(word, 0)
            if self.min_word_count is not None and count <= self.min_word_count:
                return False
            if self.max_word_count is not None and count >= self.max_word_count:
                return False
        return self.vocabulary is None or word in self.vocabulary


def filter_lemmas(hierarchy: Hierarchy, wnids: Iterable[str], conditions: LemmaFilter) -> dict[str, tuple[str, ...]]:
    """wnid -> its kept lemmas, for every class that keeps at least one."""
    kept = {}
    for wnid in wnids:
        lemmas = tuple(l for l in hierarchy.lemmas(wnid) if conditions.keeps(hierarchy, wnid, l))
        if lemmas:
            kept[wnid] = lemmas
    return kept


def read_word_counts(path: str | Path) -> dict[str, int]:
    """A word-frequency file: `word count` (space or tab separated) per line; words lower-cased."""
    path = Path(path)
    counts: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or not fields[1].isdigit():
                raise GozError(f"{path}:{number}: expected 'word count', found {line[:80]!r}")
            word = fields[0].lower()
            counts[word] = counts.get(word, 0) + int(fields[1])
    return counts


def read_vocabulary(path: str | Path, words: Iterable[str]) -> frozenset[str]:
    """Which of `words` (lower case) have a vector in a word-vector file (any format `goz embed` reads)."""
    return frozenset(load_word_vectors(path, {w.lower() for w in words}, lowercase=True))


def candidate_words(hierarchy: Hierarchy, counts: dict[str, int], min_images: int) -> set[str]:
    """The lower-cased lemmas of every synset with at least `min_images` images: the words worth looking up."""
    return {lemma.lower() for wnid, n in counts.items() if n >= min_images and wnid in hierarchy
            for lemma in hierarchy.lemmas(wnid)}
