"""Reading ImageNet-style URL lists: `<wnid>_<imageid><TAB><url>` per line.

The real lists are not clean: some lines are not UTF-8 (read as latin-1), some are blank or cut.
Bad lines are counted and reported, never fatal. Names come only from a validated wnid and a
numeric id, so a line cannot make the downloader write outside its output folder.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from goz.errors import GozError
from goz.names import IMAGE_KEY_PATTERN

BOM = b"\xef\xbb\xbf"
CHUNK_LINES = 1 << 16  # lines parsed, checked for duplicates and handed on at a time
URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S.*$")


@dataclass(frozen=True, slots=True)  # slots: the fall-2011 list holds 14 million of them
class ListEntry:
    """One image to fetch: its class, its numeric id in that class, and its URL."""

    wnid: str
    image_id: int
    url: str

    @property
    def key(self) -> str:
        """The file stem `<wnid>_<imageid>` (also the manifest key)."""
        return f"{self.wnid}_{self.image_id}"


@dataclass
class ListStats:
    """What reading the list found: line counts and why lines were dropped."""

    lines: int = 0
    entries: int = 0
    blank: int = 0
    malformed: int = 0
    latin1: int = 0
    duplicates: int = 0
    filtered: int = 0
    malformed_examples: list[str] = field(default_factory=list)

    def note_malformed(self, number: int, line: str) -> None:
        self.malformed += 1
        if len(self.malformed_examples) < 5:
            self.malformed_examples.append(f"line {number}: {line[:120]!r}")


def parse_line(raw: bytes) -> tuple[str, bool]:
    """The line as text, and whether it had to be read as latin-1 (not valid UTF-8)."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("latin-1"), True


def read_url_list(path: str | Path, *, classes: Iterable[str] | None = None,
                  per_class: int | None = None, limit: int | None = None) -> tuple[list[ListEntry], ListStats]:
    """The entries of a URL list in file order, filtered, and the reading statistics (see `stream_url_list`)."""
    stats = ListStats()
    entries = list(stream_url_list(path, stats, classes=classes, per_class=per_class, limit=limit))
    return entries, stats


def stream_url_list(path: str | Path, stats: ListStats, *, classes: Iterable[str] | None = None,
                    per_class: int | None = None, limit: int | None = None) -> Iterator[ListEntry]:
    """Yields the entries of a URL list in file order, filtered; counts what it read in `stats`.

    `classes` keeps only those wnids; `per_class` keeps the first N entries of each class;
    `limit` stops after N entries in total. A repeated `<wnid>_<imageid>` keeps its first URL.
    Memory does not grow with the list beyond 8 bytes per distinct key (see `KeysSeen`).
    GozError when the file is missing or holds no well-formed line (empty, or not a URL list);
    raised once the stream is exhausted.
    """
    path = Path(path)
    if path.is_dir():
        raise GozError(f"URL list {path} is a folder, not a file of `<wnid>_<imageid><TAB><url>` lines")
    if not path.is_file():
        raise GozError(f"URL list {path} does not exist (get the ImageNet list with `goz fetch imagenet-urls`)")
    wanted = set(classes) if classes is not None else None
    seen = KeysSeen()
    per_class_count: Counter[str] = Counter()
    with open(path, "rb") as handle:
        for chunk in _parsed_chunks(handle, stats):
            for entry, fresh in zip(chunk, seen.fresh([e.key for e in chunk])):
                if not fresh:
                    stats.duplicates += 1
                    continue
                if (wanted is not None and entry.wnid not in wanted) or (
                        per_class is not None and per_class_count[entry.wnid] >= per_class):
                    stats.filtered += 1
                    continue
                per_class_count[entry.wnid] += 1
                stats.entries += 1
                yield entry
                if limit is not None and stats.entries >= limit:
                    return _check_not_empty(path, stats)
    _check_not_empty(path, stats)


def _parsed_chunks(handle: BinaryIO, stats: ListStats) -> Iterator[list[ListEntry]]:
    """The well-formed lines of the list as entries, CHUNK_LINES at a time (duplicates still in)."""
    size = CHUNK_LINES
    chunk: list[ListEntry] = []
    for number, raw in enumerate(handle, start=1):
        if number == 1 and raw.startswith(BOM):  # a UTF-8 byte-order mark is not part of the first key
            raw = raw[len(BOM):]
        stats.lines += 1
        text, was_latin1 = parse_line(raw)
        stats.latin1 += was_latin1
        text = text.strip()
        if not text:
            stats.blank += 1
            continue
        parts = text.split(None, 1)
        match = IMAGE_KEY_PATTERN.match(parts[0])
        if len(parts) != 2 or not match or not URL_PATTERN.match(parts[1].strip()):
            stats.note_malformed(number, text)
            continue
        chunk.append(ListEntry(match.group(1), int(match.group(2)), parts[1].strip()))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _check_not_empty(path: Path, stats: ListStats) -> None:
    if stats.lines == stats.blank:
        raise GozError(f"URL list {path} is empty")
    if stats.lines == stats.blank + stats.malformed:
        examples = "; ".join(stats.malformed_examples[:3])
        raise GozError(f"URL list {path} has no `<wnid>_<imageid><TAB><url>` line ({stats.lines} lines, "
                       f"{stats.malformed} malformed{': ' + examples if examples else ''})")


class KeysSeen:
    """The keys met so far as 64-bit hashes in 256 sorted runs (by top byte): 8 bytes a key, not a set
    of strings, and an insertion copies one run, not all of them.

    Two distinct keys share a 64-bit hash with odds of about 1 in 200,000 per 14-million-key list;
    the second would be counted as a duplicate.
    """

    def __init__(self) -> None:
        self._runs = [np.empty(0, dtype=np.int64) for _ in range(256)]

    def fresh(self, keys: list[str]) -> np.ndarray:
        """For each key in order: True for its first occurrence ever (this batch and all before)."""
        hashes = np.fromiter((hash(k) for k in keys), dtype=np.int64, count=len(keys))
        first = np.zeros(len(keys), dtype=bool)
        first[np.unique(hashes, return_index=True)[1]] = True
        candidates = np.flatnonzero(first)
        order = np.argsort(hashes[candidates])
        candidates, values = candidates[order], hashes[candidates][order]
        runs = ((values >> 56) + 128).astype(np.intp)  # the top byte, ascending with the values
        edges = np.searchsorted(runs, np.arange(257))
        for run in np.flatnonzero(np.diff(edges)):
            low, high = edges[run], edges[run + 1]
            held, new = self._runs[run], values[low:high]
            if len(held):
                seen = held[np.minimum(np.searchsorted(held, new), len(held) - 1)] == new
                first[candidates[low:high][seen]] = False
                new = new[~seen]
            self._runs[run] = np.insert(held, np.searchsorted(held, new), new) if len(held) else new.copy()
        return first


def read_shard_list(path: str | Path) -> list[ListEntry]:
    """The entries of a shard list written by the planner (`<key><TAB><url>` lines, already checked)."""
    entries = []
    with open(path, encoding="utf-8", newline="\n") as handle:
        for line in handle:
            key, _, url = line.rstrip("\n").partition("\t")
            match = IMAGE_KEY_PATTERN.match(key)
            if match:
                entries.append(ListEntry(match.group(1), int(match.group(2)), url))
    return entries
