"""Class vectors from word-vector files (GloVe, word2vec, fastText): `embed` and `load_word_vectors`.

`embed` averages the vectors of a class's WordNet lemmas (a multi-word lemma missing from the
vocabulary is split and its parts averaged); `load_word_vectors` reads a file, keeping only the
words asked for.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from tqdm import tqdm

from goz.errors import GozError
from goz.progress import progress_bar
from goz.semantics.table import SemanticsTable
from goz.wordnet import noun_synsets  # the packaged WordNet is read only when called

log = logging.getLogger(__name__)

VECTOR_FORMATS = ("glove", "word2vec", "word2vec-bin", "fasttext")
_TERM_SEPARATORS = re.compile(r"[_\s]+")
_CHUNK = 1 << 22


def _format_of(name: str) -> str:
    """The format a file name suggests ("text" when only the first line can tell)."""
    name = name.lower().removesuffix(".gz")
    if name.endswith(".bin"):
        return "word2vec-bin"
    if name.endswith(".vec"):
        return "fasttext"
    return "text"


def _zip_member(archive: zipfile.ZipFile, path: Path, member: str | None) -> zipfile.ZipInfo:
    files = [info for info in archive.infolist() if not info.is_dir()]
    if member is not None:
        for info in files:
            if info.filename == member:
                return info
        raise GozError(f"{path}: no member {member!r} (it holds {', '.join(i.filename for i in files)})")
    if not files:
        raise GozError(f"{path}: the archive is empty")
    # GloVe archives hold one file per dimension; the largest (e.g. glove.6B.300d.txt) is the usual choice.
    chosen = max(files, key=lambda info: info.file_size)
    if len(files) > 1:
        log.info("%s: reading %s, the largest of %d files (choose another with member=/--member)",
                 path, chosen.filename, len(files))
    return chosen


@contextlib.contextmanager
def _open_vectors(path: Path, member: str | None) -> Iterator[tuple[BinaryIO, int, str]]:
    """(binary stream, size in bytes for progress, name for messages) of a file, .gz file or zip member."""
    if not path.is_file():
        raise GozError(f"{path}: no such word-vector file")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                info = _zip_member(archive, path, member)
                # ZipExtFile.readline is pure Python: a C buffer on top halves the time per line.
                with io.BufferedReader(archive.open(info), buffer_size=_CHUNK) as stream:
                    yield stream, info.file_size, f"{path}:{info.filename}"
        elif path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                yield stream, 0, str(path)
        else:
            with open(path, "rb") as stream:
                yield stream, path.stat().st_size, str(path)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise GozError(f"{path}: cannot read the word-vector file ({error})") from None


def _parse_vector(values: bytes, dim: int, where: str) -> np.ndarray:
    try:
        vector = np.array(values.split(), dtype=np.float32)
    except ValueError:
        raise GozError(f"{where}: a value is not a number") from None
    if vector.shape != (dim,) or not np.isfinite(vector).all():
        raise GozError(f"{where}: expected {dim} finite numbers")
    return vector


def _lower(word: bytes) -> bytes:
    """A UTF-8 word lower-cased (bytes.lower only folds ASCII, the common and fast case)."""
    return word.lower() if word.isascii() else word.decode("utf-8", "replace").lower().encode("utf-8")


def _header(line: bytes) -> tuple[int, int] | None:
    """(word count, dimension) when `line` is a word2vec/fastText header, else None."""
    fields = line.split()
    if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
        return int(fields[0]), int(fields[1])
    return None


def _read_text(stream: BinaryIO, name: str, fmt: str, needed: set[bytes] | None, lowercase: bool,
               progress: tqdm) -> tuple[dict[str, np.ndarray], str]:
    """(vectors of the needed words, the format found: glove without header, else word2vec/fasttext)."""
    first = stream.readline()
    header = _header(first)
    if fmt in ("word2vec", "fasttext") and header is None:
        raise GozError(f"{name}:1: expected a header line 'WORDS DIMENSION' ({fmt} format)")
    if fmt == "glove" and header is not None:
        raise GozError(f"{name}:1: looks like a word2vec/fastText header, not a GloVe line (use --format word2vec)")
    if header is not None:
        announced, dim = header
        lines, start = iter(stream), 2
    else:
        announced, dim = None, first.rstrip().count(b" ")
        lines, start = _prepend(first, stream), 1
    if dim < 1:
        raise GozError(f"{name}:1: no vector values on the first line")
    found: dict[str, np.ndarray] = {}
    words, skipped, consumed = 0, 0, 0
    for number, line in enumerate(lines, start):
        consumed += len(line)
        if number % 8192 == 0:
            progress.update(consumed - progress.n)
        line = line.rstrip()
        if not line:
            continue
        words += 1
        spaces = line.count(b" ")
        if spaces < dim:
            raise GozError(f"{name}:{number}: expected a word and {dim} values, found {spaces} value(s)")
        if spaces > dim:
            # A word containing spaces (GloVe 840B has a few): never a lemma part, so skipped.
            skipped += 1
            continue
        word = line[:line.index(b" ")]
        values = line[len(word) + 1:]
        if lowercase:
            word = _lower(word)
        if needed is None or word in needed:
            key = word.decode("utf-8", "replace")
            if key not in found:
                found[key] = _parse_vector(values, dim, f"{name}:{number}")
    progress.update(consumed - progress.n)
    if announced is not None and words != announced:
        raise GozError(f"{name}: the header announces {announced} words but the file holds {words} (truncated?)")
    if skipped:
        log.info("%s: skipped %d entries whose word contains spaces", name, skipped)
    return found, "glove" if header is None else ("word2vec" if fmt == "text" else fmt)


def _prepend(first: bytes, rest: Iterable[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _read_binary(stream: BinaryIO, name: str, needed: set[bytes] | None, lowercase: bool,
                 progress: tqdm) -> dict[str, np.ndarray]:
    header = _header(stream.readline())
    if header is None:
        raise GozError(f"{name}:1: expected a header line 'WORDS DIMENSION' (word2vec binary format)")
    count, dim = header
    record = 4 * dim
    found: dict[str, np.ndarray] = {}
    # Words are space-terminated, vectors raw float32: parsed from a sliding buffer (no library reads
    # this format without loading every vector).
    buffer, position, consumed = b"", 0, 0
    for index in range(count):
        end = buffer.find(b" ", position)
        while end < 0 or len(buffer) < end + 1 + record:
            chunk = stream.read(_CHUNK)
            if not chunk:
                raise GozError(f"{name}: truncated: word {index + 1} of the {count} announced is incomplete")
            consumed += len(chunk)
            buffer, position = buffer[position:] + chunk, 0
            end = buffer.find(b" ", position)
        word = buffer[position:end].strip()
        if lowercase:
            word = _lower(word)
        key = word.decode("utf-8", "replace") if needed is None or word in needed else None
        if key is not None and key not in found:
            vector = np.frombuffer(buffer, dtype="<f4", count=dim, offset=end + 1).astype(np.float32)
            if not np.isfinite(vector).all():
                raise GozError(f"{name}: the vector of word {index + 1} ({key!r}) holds NaN or infinite values")
            found[key] = vector
        position = end + 1 + record
        if index % 8192 == 0:
            progress.update(consumed - progress.n)
    progress.update(consumed - progress.n)
    return found


def _read_word_vectors(path: Path, vocabulary: Iterable[str] | None, fmt: str | None, member: str | None,
                       lowercase: bool, progress: bool = True) -> tuple[dict[str, np.ndarray], str, str]:
    """(vectors, name of the file read, format read)."""
    if fmt is not None and fmt not in VECTOR_FORMATS:
        raise GozError(f"unknown word-vector format {fmt!r} (choose from {', '.join(VECTOR_FORMATS)})")
    needed = None if vocabulary is None else {word.encode("utf-8") for word in vocabulary}
    with _open_vectors(path, member) as (stream, size, name):
        fmt = fmt or _format_of(name)
        with progress_bar(total=size or None, unit="B", unit_scale=True, desc=f"reading {Path(name).name}",
                          enabled=progress) as bar:
            if fmt == "word2vec-bin":
                return _read_binary(stream, name, needed, lowercase, bar), name, fmt
            found, fmt = _read_text(stream, name, fmt, needed, lowercase, bar)
            return found, name, fmt


def load_word_vectors(path: str | Path, vocabulary: Iterable[str] | None = None, *, fmt: str | None = None,
                      member: str | None = None, lowercase: bool = False, progress: bool = True
                      ) -> dict[str, np.ndarray]:
    """Word -> float32 vector for the words of `vocabulary` present in a word-vector file (every word
    when `vocabulary` is None); the file is read once, and only the vectors asked for are parsed.

    Formats: `glove` (text, `word v1 ... vd` per line, no header), `word2vec` / `fasttext` (the same
    with a `WORDS DIMENSION` header line), `word2vec-bin` (word2vec's binary format). `fmt=None`
    guesses from the name (.bin, .vec) or from the first line. Plain, `.gz` or inside a `.zip` (such as
    GloVe's own glove.6B.zip: `member` names the file, default the largest). The first occurrence of
    a word wins; with `lowercase` the file's words are lower-cased first (so the first of "Paris" and
    "paris" is kept under "paris"). Malformed input is an error naming the file and line: a line with too few values,
    a needed word with a non-numeric or non-finite value, a file shorter than its header announces.
    A line with more fields than the dimension is a word containing spaces and is skipped.
    """
    return _read_word_vectors(Path(path), vocabulary, fmt, member, lowercase, progress)[0]


LEMMA_CASES = ("lower", "as-spelled")


def _lemma_words(lemma: str, lemma_case: str = "lower") -> tuple[str, list[tuple[str, list[str]]]]:
    """(the lemma, lower-cased for "lower", its terms (split on '_' and spaces) each with its parts
    (split on '-'))."""
    word = lemma.lower() if lemma_case == "lower" else lemma
    return word, [(term, [part for part in term.split("-") if part]) for term in _TERM_SEPARATORS.split(word) if term]


def _lemma_vector(lemma: str, vectors: dict[str, np.ndarray], lemma_case: str = "lower") -> np.ndarray | None:
    """The lemma's vector; else the mean of its terms', a term missing being the mean of its parts'
    (the two-level rule of the GloVe helper of DGP and GOZ)."""
    word, terms = _lemma_words(lemma, lemma_case)
    if word in vectors:
        return vectors[word]
    term_vectors = []
    for term, parts in terms:
        if term in vectors:
            term_vectors.append(vectors[term])
            continue
        found = [vectors[part] for part in parts if part in vectors]
        if found:
            term_vectors.append(np.mean(found, axis=0))
    return np.mean(term_vectors, axis=0) if term_vectors else None


def embed(vectors_path: str | Path, wnids: Sequence[str], hierarchy=None, *, fmt: str | None = None,
          member: str | None = None, normalize: bool = False, lemma_case: str = "lower",
          progress: bool = True) -> SemanticsTable:
    """The semantics table of `wnids`: each class's vector is the mean of its lemmas' word vectors.

    `lemma_case="lower"` (the default) looks a lemma up lower-cased, in the file's words lower-cased
    too; `"as-spelled"` looks it up exactly as WordNet spells it ("Granny_Smith"), in the file's words
    as they are, which is what the GloVe helpers of DGP and GOZ do (with GloVe 6B, whose vocabulary is
    lower-case, a capitalized lemma is then found only through its parts). A lemma missing from the
    vocabulary is split on '_' and spaces into terms and the terms found are averaged, a term missing
    being split on '-' and replaced by the mean of its parts found; a lemma with nothing found
    contributes nothing (the two-level rule of DGP and GOZ). Classes with no usable lemma get no
    vector: they are reported in a warning and in `attrs["missing"]`. `hierarchy` defaults to the
    packaged WordNet 3.0 (`goz.wordnet.load()`); `normalize` scales each class vector to unit L2 norm.
    """
    if lemma_case not in LEMMA_CASES:
        raise GozError(f"unknown lemma case {lemma_case!r} (choose from {', '.join(LEMMA_CASES)})")
    hierarchy, wnids = noun_synsets(wnids, hierarchy)
    vocabulary = set()
    for wnid in wnids:
        for lemma in hierarchy.lemmas(wnid):
            word, terms = _lemma_words(lemma, lemma_case)
            vocabulary.add(word)
            for term, parts in terms:
                vocabulary.update([term, *parts])
    vectors, source, fmt = _read_word_vectors(Path(vectors_path), vocabulary, fmt, member,
                                              lowercase=lemma_case == "lower", progress=progress)
    if not vectors:
        raise GozError(f"{vectors_path}: not one word of the {len(wnids)} classes' lemmas is in this file")
    kept, rows, missing = [], [], []
    for wnid in wnids:
        lemma_vectors = [v for v in (_lemma_vector(lemma, vectors, lemma_case) for lemma in hierarchy.lemmas(wnid))
                         if v is not None]
        if lemma_vectors:
            kept.append(wnid)
            rows.append(np.mean(lemma_vectors, axis=0))
        else:
            missing.append(wnid)
    if missing:
        log.warning("%d of %d classes have no word vector (no lemma or lemma part in %s): %s%s", len(missing),
                    len(wnids), Path(vectors_path).name, ", ".join(missing[:10]), " ..." if len(missing) > 10 else "")
    dim = next(iter(vectors.values())).shape[0]
    attrs = {"vectors": source, "format": fmt, "classes": len(wnids),
             "missing_count": len(missing), "missing": " ".join(missing), "normalized": normalize,
             "lemma_case": lemma_case}
    table = SemanticsTable(kept, np.array(rows, np.float32).reshape(len(kept), dim), attrs)
    table.warn_duplicate_vectors()  # e.g. the bird and the machine "crane" of ILSVRC-2012: one lemma, one vector
    return table.normalized() if normalize else table
