"""Reading the WordNet noun database files (format of wndb(5)) and goz's compact copy of them.

`read_database(directory)` parses `data.noun`, `index.noun` and `cntlist.rev` as distributed
(Princeton WordNet 3.0, Debian's `wordnet-base`). `write_resource` / `read_resource` store the
noun synsets as one gzip'd tab-separated file, the resource shipped inside the package:

    line 1:  "# " + JSON metadata (source, sha256 of the source files, counts, column names)
    then:    wnid  lemmas  tag_counts  sense_numbers  hypernyms  instance_hypernyms  gloss

Multi-valued columns are space-separated (WordNet lemmas never contain spaces or tabs).
"""

from __future__ import annotations

import gc
import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from goz.errors import GozError
from goz.home import atomic_path, sha256_of
from goz.wordnet.hierarchy import Hierarchy, Synset

SOURCE_FILES = ("data.noun", "index.noun", "cntlist.rev")
COLUMNS = ("wnid", "lemmas", "tag_counts", "sense_numbers", "hypernyms", "instance_hypernyms", "gloss")


def _content_lines(path: Path) -> Iterator[tuple[int, list[str], str]]:
    """(line number, whitespace fields, raw line) of each line, skipping the license header
    (lines starting with two spaces) that WordNet puts at the top of its files."""
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.startswith("  ") or not line.strip():
                    continue
                yield number, line.split(), line
    except OSError as error:
        raise GozError(f"{path}: cannot read the WordNet database file ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise GozError(f"{path}: not a text file ({error})") from None


def _read_index(path: Path) -> dict[str, list[str]]:
    """lemma (lower case) -> its noun synset offsets in index.noun order (most frequent first)."""
    senses: dict[str, list[str]] = {}
    for number, fields, _ in _content_lines(path):
        try:
            synset_count, pointer_count = int(fields[2]), int(fields[3])
            offsets = fields[4 + pointer_count + 2:]
            if fields[1] != "n" or len(offsets) != synset_count:
                raise ValueError("synset count does not match the offsets listed")
        except (IndexError, ValueError) as error:
            raise GozError(f"{path}:{number}: malformed index line ({error})") from None
        senses[fields[0]] = offsets
    return senses


def _read_tag_counts(path: Path) -> dict[str, int]:
    """sense key -> tag count (how often the word was tagged with this sense in the corpora)."""
    counts: dict[str, int] = {}
    for number, fields, _ in _content_lines(path):
        try:
            key, _sense_number, count = fields
            counts[key] = int(count)
        except ValueError as error:
            raise GozError(f"{path}:{number}: malformed cntlist line ({error})") from None
    return counts


def _parse_data_line(fields: list[str]) -> tuple[str, str, list[tuple[str, int]], list[str], list[str]]:
    """(offset, lex_filenum, [(lemma, lex_id)], hypernym offsets, instance hypernym offsets)."""
    offset, lex_filenum, ss_type = fields[0], fields[1], fields[2]
    if ss_type != "n" or len(offset) != 8 or not offset.isdigit():
        raise ValueError(f"not a noun synset line (offset {offset!r}, type {ss_type!r})")
    word_count = int(fields[3], 16)
    words = [(fields[4 + 2 * i], int(fields[5 + 2 * i], 16)) for i in range(word_count)]
    position = 4 + 2 * word_count
    pointer_count = int(fields[position])
    hypernyms, instance_hypernyms = [], []
    for i in range(pointer_count):
        symbol, target, pos, _source_target = fields[position + 1 + 4 * i: position + 5 + 4 * i]
        if symbol == "@" and pos == "n":
            hypernyms.append(target)
        elif symbol == "@i" and pos == "n":
            instance_hypernyms.append(target)
    if fields[position + 1 + 4 * pointer_count] != "|":
        raise ValueError("the gloss separator '|' is not where the pointer count says")
    return offset, lex_filenum, words, hypernyms, instance_hypernyms


def read_database(directory: str | Path) -> tuple[list[Synset], dict]:
    """Every noun synset of the WordNet database in `directory`, in data.noun order, and metadata
    (sha256 of the source files, counts). Sense numbers come from index.noun's order, which WordNet
    sorts by tag count; tag counts come from cntlist.rev (0 for senses never tagged)."""
    directory = Path(directory)
    index = _read_index(directory / "index.noun")
    tag_counts = _read_tag_counts(directory / "cntlist.rev")
    data_path = directory / "data.noun"
    synsets = []
    for number, fields, line in _content_lines(data_path):
        try:
            offset, lex_filenum, words, hypernyms, instance_hypernyms = _parse_data_line(fields)
        except (IndexError, ValueError) as error:
            raise GozError(f"{data_path}:{number}: malformed synset line ({error})") from None
        gloss = line.split(" | ", 1)[1].strip() if " | " in line else ""
        sense_numbers, counts = [], []
        for lemma, lex_id in words:
            offsets = index.get(lemma.lower(), ())
            if offset not in offsets:
                raise GozError(f"{data_path}:{number}: {lemma!r} of synset {offset} is not listed in index.noun")
            sense_numbers.append(offsets.index(offset) + 1)
            # Sense key of a noun: lemma%1:lex_filenum:lex_id:: (wndb(5), senseidx(5)). cntlist.rev also
            # holds keys of senses that WordNet 3.0 no longer has; those are never looked up.
            counts.append(tag_counts.get(f"{lemma.lower()}%1:{lex_filenum}:{lex_id:02d}::", 0))
        synsets.append(Synset(
            wnid=f"n{offset}",
            lemmas=tuple(lemma for lemma, _ in words),
            lemma_counts=tuple(counts),
            gloss=gloss,
            hypernyms=tuple(f"n{o}" for o in hypernyms),
            instance_hypernyms=tuple(f"n{o}" for o in instance_hypernyms),
            sense_numbers=tuple(sense_numbers),
        ))
    metadata = {
        "source": "WordNet 3.0 noun database (Princeton University), see LICENSE",
        "sha256": {name: sha256_of(directory / name) for name in SOURCE_FILES},
        **resource_counts(synsets),
        "columns": list(COLUMNS),
    }
    return synsets, metadata


def resource_counts(synsets: Iterable[Synset]) -> dict[str, int]:
    """The counts recorded in the resource's header (and checked against it when reading)."""
    synsets = list(synsets)
    return {
        "synsets": len(synsets),
        "word_senses": sum(len(s.lemmas) for s in synsets),
        "hypernym_edges": sum(len(s.hypernyms) for s in synsets),
        "instance_hypernym_edges": sum(len(s.instance_hypernyms) for s in synsets),
    }


def write_resource(synsets: Iterable[Synset], metadata: dict, path: str | Path) -> Path:
    """Writes the compact resource (gzip'd TSV, deterministic bytes: no name or timestamp in the gzip header)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in synsets:
        fields = (s.wnid, " ".join(s.lemmas), " ".join(map(str, s.lemma_counts)), " ".join(map(str, s.sense_numbers)),
                  " ".join(s.hypernyms), " ".join(s.instance_hypernyms), s.gloss)
        if any("\t" in f or "\n" in f for f in fields):
            raise GozError(f"synset {s.wnid}: a field holds a tab or a newline and cannot be stored")
        rows.append("\t".join(fields))
    text = "# " + json.dumps(metadata, sort_keys=True) + "\n" + "\n".join(rows) + "\n"
    with atomic_path(path) as temporary, open(temporary, "wb") as raw, \
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=9, mtime=0) as handle:
        handle.write(text.encode("utf-8"))
    return path


def read_resource(path: str | Path) -> Hierarchy:
    """The hierarchy stored by `write_resource`; its header metadata becomes `Hierarchy.attrs`."""
    path = Path(path)
    # The cyclic GC would rescan the growing heap of synsets many times over: paused, loading is 2x faster.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            header, *rows = handle.read().splitlines()
        metadata = json.loads(header[2:])
        synsets = [
            Synset(wnid, tuple(lemmas.split()), tuple(map(int, counts.split())), gloss, tuple(hypernyms.split()),
                   tuple(instances.split()), tuple(map(int, senses.split())))
            for wnid, lemmas, counts, senses, hypernyms, instances, gloss in (row.split("\t") for row in rows)
        ]
        hierarchy = Hierarchy(synsets, attrs=metadata)
    except (OSError, EOFError, ValueError) as error:
        raise GozError(f"{path}: not a goz WordNet resource ({error})") from None
    finally:
        if gc_was_enabled:
            gc.enable()
    if resource_counts(synsets) != {k: metadata.get(k) for k in resource_counts([])}:
        raise GozError(f"{path}: the synsets do not match the counts in the header (truncated or edited file)")
    return hierarchy
