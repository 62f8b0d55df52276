"""How often a class's name is used: corpus word counts of WordNet lemmas, built in or from a file.

The GOZ paper related zero-shot accuracy to how often a class's lemmas occur in Wikipedia; the
original's counts (`experiments/data/materials/wiki_counts`, a pickled `Counter` of words) were never
published. goz ships a default instead: the `wordfreq` package (Robyn Speer; code Apache-2.0, data
CC-BY-SA 4.0; English frequencies from Wikipedia, subtitles, news, books, web text and Twitter,
combined), read offline. A word's built-in count is its frequency per billion words (wordfreq's
Zipf scale is log10 of that), rounded: "dog" 126,000, "beagle" 1,150, "anteater" 191. English
Wikipedia holds a few billion words, so the original's bins (25, 500, 10,000 occurrences) sit within
a small factor of the same numbers here; the README lists what differs.

A lemma of several words ("hot_dog") gets wordfreq's estimate for the phrase (1/f = sum of 1/f_i over
its tokens: close to its rarest token, an upper bound on the phrase); a count file has the phrase
itself or nothing (0), as the original's word counts did. `--single-word` keeps one-word lemmas only.

A counts file is `word count` per line (`word<TAB>count` when the word holds spaces; `#` comments),
or the original's form: a pickled dict or `collections.Counter` of word -> count (read by an
unpickler that accepts nothing else).
"""

from __future__ import annotations

import functools
import io
import pickle
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from goz.errors import GozError

WORDFREQ = "wordfreq"          # the name of the built-in source on the command line
WORDFREQ_LANGUAGE = "en"
PER_WORDS = 1_000_000_000     # built-in counts are occurrences per billion words
# Tokens wordfreq splits a lemma into; WordNet writes spaces as underscores.
_SEPARATORS = str.maketrans({"_": " "})


class WordfreqCounts(Mapping[str, int]):
    """word (lower case, `_` for spaces) -> occurrences per billion words, from `wordfreq` (looked up lazily,
    cached). Missing words count 0, as in a Counter."""

    source = "wordfreq (English; occurrences per billion words)"

    def __init__(self, language: str = WORDFREQ_LANGUAGE):
        try:
            import wordfreq  # noqa: F401  (a base dependency; checked here for a clear message)
        except ImportError:
            raise GozError("the built-in word counts need the `wordfreq` package: pip install wordfreq "
                           "(or pass a counts file)") from None
        self.language = language
        self._count = functools.lru_cache(maxsize=None)(self._lookup)

    def _lookup(self, word: str) -> int:
        from wordfreq import word_frequency

        return round(word_frequency(word.translate(_SEPARATORS), self.language) * PER_WORDS)

    def __getitem__(self, word: str) -> int:
        return self._count(word.lower())

    def get(self, word: str, default: int = 0) -> int:
        return self[word]

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str)

    def __iter__(self) -> Iterator[str]:
        raise TypeError("the wordfreq counts cannot be listed: look words up one by one")

    def __len__(self) -> int:
        raise TypeError("the wordfreq counts cannot be listed: look words up one by one")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordfreqCounts) and other.language == self.language

    def __hash__(self) -> int:
        return hash((WordfreqCounts, self.language))


def load_word_counts(source: str | Path | None = WORDFREQ) -> Mapping[str, int]:
    """`wordfreq` (or None): the built-in counts; else a counts file (`read_word_counts`)."""
    if source is None or str(source) == WORDFREQ:
        return WordfreqCounts()
    return read_word_counts(source)


def describe_word_counts(counts: Mapping[str, int], source: str | Path | None = None) -> str:
    """One line for reports: where the word counts come from."""
    if isinstance(counts, WordfreqCounts):
        return counts.source
    return f"{source} ({len(counts):,} words)" if source is not None else f"a table of {len(counts):,} words"


def read_word_counts(path: str | Path) -> dict[str, int]:
    """A word-count file: text (`word count` per line) or the original's pickled dict / Counter.
    Words are lower-cased (the counts of two spellings add up); a bad line is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise GozError(f"{path}: no such word-count file ('word count' per line, or a pickled Counter; "
                       f"or use the built-in `{WORDFREQ}`)")
    with open(path, "rb") as handle:
        head = handle.read(2)
    if head[:1] == b"\x80":
        return _read_pickled_counts(path)
    counts: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            word, count = _split_line(text)
            if word is None or not count.isdigit():
                raise GozError(f"{path}:{number}: expected 'word count' (a word, then a whole number), "
                               f"found {line.rstrip()[:80]!r}")
            word = word.lower().replace(" ", "_")
            counts[word] = counts.get(word, 0) + int(count)
    if not counts:
        raise GozError(f"{path}: no 'word count' lines")
    return counts


def _split_line(text: str) -> tuple[str | None, str]:
    if "\t" in text:
        word, _, count = text.rpartition("\t")
        return (word.strip() or None), count.strip()
    fields = text.split()
    return (fields[0], fields[1]) if len(fields) == 2 else (None, "")


class _CounterUnpickler(pickle.Unpickler):
    """Accepts a dict or a collections.Counter of str -> int, refuses every other global (no code runs)."""

    ALLOWED = frozenset({("collections", "Counter"), ("collections", "OrderedDict")})

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            import collections

            return getattr(collections, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def _read_pickled_counts(path: Path) -> dict[str, int]:
    try:
        value = _CounterUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise GozError(f"{path}: not a pickled dict or Counter of word -> count ({error}); a pandas Series "
                       f"must be converted first (e.g. series.to_dict())") from None
    if not isinstance(value, dict):
        raise GozError(f"{path}: the pickle holds a {type(value).__name__}, not a dict of word -> count")
    counts: dict[str, int] = {}
    for word, count in value.items():
        if not isinstance(word, str) or isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise GozError(f"{path}: entry {word!r}: {count!r} is not word -> count (a whole number >= 0)")
        counts[word.lower()] = counts.get(word.lower(), 0) + count
    return counts


def lemma_count(lemma: str, counts: Mapping[str, int]) -> int:
    """The count of one lemma (lower case, WordNet's `_` for spaces)."""
    return int(counts.get(lemma.lower(), 0))


def class_word_count(lemmas: Iterable[str], counts: Mapping[str, int], cap: int | None = None) -> int:
    """A class's word count as the GOZ analyses define it: the largest count among its lemmas, capped
    at `cap` when given (the original's Error Factors capped at 10,000); 0 without lemmas."""
    best = max((lemma_count(lemma, counts) for lemma in lemmas), default=0)
    return min(best, cap) if cap is not None else best
