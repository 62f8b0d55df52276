"""Which lemmas name a class well enough for zero-shot learning (the GOZ lemma filter).

A lemma is kept when it passes every condition asked for:

- its sense (`sense`): `primary`, the class is the word's most frequent noun sense (WordNet's sense
  order, which follows the usage tag counts; the original's `base` rule); `secondary`, the word's
  most frequent sense is another synset (a polysemous name used in a rarer meaning); `tagged`, the
  original's "very" rule: the lemma's tag count in this synset is the word's largest and above 0;
  `any`, no condition;
- optionally the word-vector sense check (the original's `we`): the lemma's vector is closer to the
  mean vector of the lemmas of this synset's neighbours (parents and children) than to those of any
  other synset of the word (`agree`), or not (`disagree`);
- optionally one word only (`single_word`: no `_`), a corpus count within bounds (strict, as in GOZ),
  a word-vector vocabulary.

A class with no lemma left cannot be described by words, so it is no candidate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from goz.errors import GozError
from goz.names import WNID_PATTERN
from goz.semantics import load_word_vectors
from goz.splits.word_counts import read_word_counts  # noqa: F401  (re-exported: its old home)
from goz.wordnet import Hierarchy
from goz.wordnet.hierarchy import Synset

SENSES = ("primary", "secondary", "tagged", "any")
SENSE_CHECKS = ("agree", "disagree")
_TOKEN = re.compile(r"[_\s-]+")


@dataclass(frozen=True)
class SenseVectors:
    """Word vectors for the word-vector sense check: word (lower case) -> vector."""

    vectors: Mapping[str, np.ndarray]

    def vector(self, words: Iterable[str]) -> np.ndarray | None:
        """The mean of the words' vectors (a multi-word lemma: of its tokens found); None if none is found."""
        found = []
        for word in words:
            word = word.lower()
            if word in self.vectors:
                found.append(self.vectors[word])
            else:
                found += [self.vectors[t] for t in _TOKEN.split(word) if t and t in self.vectors]
        return np.mean(found, axis=0) if found else None

    def score(self, hierarchy: Hierarchy, wnid: str, word: str) -> float | None:
        """Cosine of the word's vector and the mean vector of the lemmas of `wnid`'s neighbours."""
        neighbours = [lemma for near in (*hierarchy.parents(wnid), *hierarchy.children(wnid))
                      for lemma in hierarchy.lemmas(near)]
        context, own = self.vector(neighbours), self.vector([word])
        if context is None or own is None:
            return None
        denominator = float(np.linalg.norm(context) * np.linalg.norm(own))
        return float(context @ own) / denominator if denominator > 0 else None

    def agrees(self, hierarchy: Hierarchy, wnid: str, word: str) -> bool:
        """Whether `wnid` is the sense of `word` its vector points at (ties count as agreement)."""
        mine = self.score(hierarchy, wnid, word)
        if mine is None:
            return False
        others = [self.score(hierarchy, other, word) for other in hierarchy.senses(word) if other != wnid]
        return all(s is None or mine >= s for s in others)

    @classmethod
    def from_file(cls, path: str | Path, hierarchy: Hierarchy, wnids: Iterable[str]) -> SenseVectors:
        """The vectors of every word the check needs for `wnids`: their lemmas, and the lemmas of the
        neighbours of every sense of those lemmas (tokens of multi-word lemmas included)."""
        words: set[str] = set()
        for wnid in wnids:
            for lemma in hierarchy.lemmas(wnid):
                for sense in hierarchy.senses(lemma):
                    for near in (sense, *hierarchy.parents(sense), *hierarchy.children(sense)):
                        for word in hierarchy.lemmas(near):
                            words.add(word.lower())
                            words.update(t for t in _TOKEN.split(word.lower()) if t)
        return cls(load_word_vectors(path, words, lowercase=True, progress=False))


@dataclass(frozen=True)
class LemmaFilter:
    """The lemma conditions; `None` (or `any`) disables a condition."""

    sense: str = "primary"                      # primary | secondary | tagged | any
    word_counts: Mapping[str, int] | None = None  # word (lower case, `_` for spaces) -> corpus count
    min_word_count: int | None = None           # kept when count > min (as in GOZ)
    max_word_count: int | None = None           # kept when count < max
    vocabulary: frozenset[str] | None = None    # lower-case words that have a vector
    single_word: bool = False                   # keep lemmas of one word only (no `_`)
    sense_vectors: SenseVectors | None = None   # the word-vector sense check, with `sense_check`
    sense_check: str = "agree"                  # agree | disagree

    def __post_init__(self):
        if self.sense not in SENSES:
            raise GozError(f"unknown sense rule {self.sense!r}: choose from {', '.join(SENSES)}")
        if self.sense_check not in SENSE_CHECKS:
            raise GozError(f"unknown sense check {self.sense_check!r}: choose from {', '.join(SENSE_CHECKS)}")
        if (self.min_word_count is not None or self.max_word_count is not None) and self.word_counts is None:
            raise GozError("word-count bounds need word counts (the built-in wordfreq counts or a counts file)")

    def keeps(self, hierarchy: Hierarchy, wnid: str, lemma: str) -> bool:
        word = lemma.lower()
        if self.single_word and ("_" in word or " " in word):
            return False
        if not sense_matches(hierarchy, wnid, lemma, self.sense):
            return False
        if self.word_counts is not None:
            count = self.word_counts.get(word, 0)
            if self.min_word_count is not None and count <= self.min_word_count:
                return False
            if self.max_word_count is not None and count >= self.max_word_count:
                return False
        if self.vocabulary is not None and word not in self.vocabulary:
            return False
        if self.sense_vectors is not None:
            return self.sense_vectors.agrees(hierarchy, wnid, lemma) == (self.sense_check == "agree")
        return True

    def with_word_bounds(self, low: int | None, high: int | None) -> LemmaFilter:
        return replace(self, min_word_count=low, max_word_count=high)

    def describe(self) -> str:
        parts = {"primary": ["most frequent sense"], "secondary": ["not the most frequent sense"],
                 "tagged": ["most frequent sense with a tag count > 0"], "any": []}[self.sense]
        if self.single_word:
            parts.append("one word")
        if self.word_counts is not None and (self.min_word_count is not None or self.max_word_count is not None):
            low = "-" if self.min_word_count is None else self.min_word_count
            high = "-" if self.max_word_count is None else self.max_word_count
            parts.append(f"word count in ({low}, {high})")
        if self.vocabulary is not None:
            parts.append(f"in a vocabulary of {len(self.vocabulary)} words")
        if self.sense_vectors is not None:
            parts.append(f"word vectors {self.sense_check} with the sense")
        return "; ".join(parts) or "none"


def sense_matches(hierarchy: Hierarchy, wnid: str, lemma: str, sense: str) -> bool:
    """Whether `lemma` names `wnid` in the sense asked for (`SENSES`)."""
    if sense == "any":
        return True
    if sense == "primary":
        return hierarchy.is_most_frequent_sense(wnid, lemma)
    if sense == "secondary":
        return not hierarchy.is_most_frequent_sense(wnid, lemma)
    mine = tag_count(hierarchy, wnid, lemma)
    return mine > 0 and all(tag_count(hierarchy, other, lemma) <= mine for other in hierarchy.senses(lemma))


def tag_count(hierarchy: Hierarchy, wnid: str, lemma: str) -> int:
    """WordNet's usage tag count of `lemma` in the sense `wnid` (0 when untagged)."""
    synset = hierarchy.synsets[wnid]
    key = lemma.lower()
    return max((count for name, count in zip(synset.lemmas, synset.lemma_counts) if name.lower() == key), default=0)


def filter_lemmas(hierarchy: Hierarchy, wnids: Iterable[str], conditions: LemmaFilter) -> dict[str, tuple[str, ...]]:
    """wnid -> its kept lemmas, for every class that keeps at least one."""
    kept = {}
    for wnid in wnids:
        lemmas = tuple(l for l in hierarchy.lemmas(wnid) if conditions.keeps(hierarchy, wnid, l))
        if lemmas:
            kept[wnid] = lemmas
    return kept


def read_vocabulary(path: str | Path, words: Iterable[str]) -> frozenset[str]:
    """Which of `words` (lower case) have a vector in a word-vector file (any format `goz embed` reads)."""
    return frozenset(load_word_vectors(path, {w.lower() for w in words}, lowercase=True))


def candidate_words(hierarchy: Hierarchy, counts: Mapping[str, int], min_images: int) -> set[str]:
    """The lower-cased lemmas of every synset with at least `min_images` images: the words worth looking up."""
    return {lemma.lower() for wnid, n in counts.items() if n >= min_images and wnid in hierarchy
            for lemma in hierarchy.lemmas(wnid)}


def read_lemma_names(path: str | Path, hierarchy: Hierarchy) -> dict[str, tuple[str, ...]]:
    """A lemma file: `wnid<TAB>lemma[,lemma...]` per line (`#` comments), names for classes that the
    hierarchy does not name (a synthetic benchmark's edges file). Unknown wnids are an error naming the line."""
    path = Path(path)
    if not path.is_file():
        raise GozError(f"{path}: no such lemma file (wnid<TAB>lemma[,lemma...] per line)")
    names: dict[str, tuple[str, ...]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        wnid, _, rest = text.partition("\t") if "\t" in text else text.partition(" ")
        lemmas = tuple(l.strip().replace(" ", "_") for l in rest.split(",") if l.strip())
        if not WNID_PATTERN.match(wnid.strip()) or not lemmas:
            raise GozError(f"{path}:{number}: expected 'wnid<TAB>lemma[,lemma...]', found {line[:80]!r}")
        if wnid.strip() not in hierarchy:
            raise GozError(f"{path}:{number}: {wnid.strip()} is not a synset of the hierarchy")
        names[wnid.strip()] = lemmas
    if not names:
        raise GozError(f"{path}: no 'wnid<TAB>lemma' lines")
    return names


def with_lemmas(hierarchy: Hierarchy, names: Mapping[str, Sequence[str]]) -> Hierarchy:
    """The hierarchy with `names` as the lemmas of those synsets (tag count 1 each; sense numbers in
    order of first appearance, as `Hierarchy.from_edges` numbers them)."""
    senses_so_far: dict[str, int] = {}
    for synset in hierarchy.synsets.values():
        if synset.wnid in names:
            continue
        for lemma, number in zip(synset.lemmas, synset.sense_numbers or (1,) * len(synset.lemmas)):
            senses_so_far[lemma.lower()] = max(senses_so_far.get(lemma.lower(), 0), number)
    synsets = []
    for wnid, synset in hierarchy.synsets.items():
        if wnid in names:
            numbers = []
            for lemma in names[wnid]:
                senses_so_far[lemma.lower()] = senses_so_far.get(lemma.lower(), 0) + 1
                numbers.append(senses_so_far[lemma.lower()])
            synset = Synset(wnid, tuple(names[wnid]), tuple(1 for _ in names[wnid]), synset.gloss,
                            synset.hypernyms, synset.instance_hypernyms, tuple(numbers))
        synsets.append(synset)
    return Hierarchy(synsets, hierarchy.attrs)
