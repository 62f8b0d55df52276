"""Image sources: where researchers keep ImageNet images, read in place, never unpacked to disk.

One small interface (`ImageSource.scan` -> an `ImageTree` of classes, image references and
problems) and a registry, chosen from the IMAGES path (timm's `create_reader` idea):

- `folder`: `IMAGES/<wnid>/<wnid>_<id>.<ext>` (what `goz download` writes);
- `synset-tars`: a folder of `<wnid>.tar` holding `<wnid>_<id>.JPEG` (the ImageNet-21K releases,
  fall 2011 and winter 2021);
- `tar-of-tars`: one `.tar` of `<wnid>.tar` (the ILSVRC-2012 training archive);
- `webdataset`: WebDataset shards, one `.tar`, a folder of them, a brace pattern
  (`shards-{0000..0099}.tar`) or a glob (`shards-*.tar`): members sharing a key, an image (`jpg`,
  `jpeg`, `png`, `webp`) and `cls` and/or `json`; the key is `<wnid>_<id>` (`goz download --format
  webdataset`), or the json names the image (`filename` `<wnid>_<id>.JPEG`, or `wnid` and an `id`
  of 1 to 18 digits), as timm's imagenet-22k-wds shards do;
- `parquet`: Hugging Face `datasets` Parquet shards, one `.parquet`, a folder of them, a glob
  (`data/train-*.parquet`) or a brace pattern: an `image` column (the Image feature's struct of
  `bytes` and `path`, or plain binary) and an integer `label` column. Label i is the wnid
  `info.features.label.names[i]` of the schema's `huggingface` metadata (the ImageNet-21K copies
  name their classes by wnid), or line i of `label_map` (`--label-map`). An image's id is that of
  the first of `image.path`, `__key__`, `id`, `key` whose first value parses as `<wnid>_<id>` (then
  every row must), else its position among the rows of its class (0, 1, ...: files in sorted
  order, rows in file order; stable for the same files, and images in that order in the store).
  Only the label and id columns are read to scan, row group by row group; an image is read with
  its row group's image column (`ImageRef.row_group`, `.row`).

Tars are indexed by reading their headers only (tarfile seeks over the data); an image is then
read as `size` bytes at `offset` (os.pread), so a selection of 50 images per class reads those
images only, batches hold one class each, and the Ray engine splits the work by tar or shard.
webdataset's own iterator reads a shard front to back, which fits training, not this random access;
its key convention (`base_plus_ext` and `${NAME}` from WDS_NAME) is used. Brace patterns are
expanded lazily here (braceexpand builds the whole list): one naming more than MAX_PATTERN_NAMES
files is refused before any name is made. Compressed tars (`.tar.gz`) cannot be read by offset and
are refused with the fix.

Every image gets the id of its `<wnid>_<id>` name, so every source gives the same store as a
folder tree holding the same files. What is not understood is recorded as a problem (the skip
log's `scan` rows): a member that climbs out of the archive (`../`), a symbolic or hard link
member, a second member of the same name, a truncated tar, a sample whose `cls` or json disagrees
with its key, a duplicate id, a Parquet row whose label is not a class, an unreadable file.
"""

from __future__ import annotations

import glob
import itertools
import json
import os
import re
import tarfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO, ClassVar

from goz.errors import GozError
from goz.extract.dataset import IMAGE_EXTENSIONS, ClassImages, ImageRef, ImageTree, parse_image_name
from goz.names import (
    IMAGE_FILE_PATTERN,
    IMAGE_ID_REGEX,
    IMAGE_KEY_PATTERN,
    WNID_PATTERN,
    WNID_REGEX,
    is_wnid,
    parse_image_key,
)

# Image members of a WebDataset sample, in order of preference when a sample has several.
SAMPLE_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
TAR_HINT = ("IMAGES is a folder with one sub-folder per WordNet id, a folder of <wnid>.tar, the ILSVRC-2012 "
            "training tar (a tar of <wnid>.tar), WebDataset shards (a .tar, a folder of them, or a brace "
            "pattern such as shards-{0000..0099}.tar), or Hugging Face Parquet shards (a .parquet, a folder "
            "of them, or a glob)")
COMPRESSED_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar.zst")


class ImageSource(ABC):
    """A place holding images of WordNet classes. `scan()` lists them; nothing is decoded."""

    kind: ClassVar[str]
    description: ClassVar[str]
    options: ClassVar[tuple[str, ...]] = ()  # keyword arguments of the constructor beyond the location

    def __init__(self, location: str | Path):
        self.location = str(location)

    @classmethod
    @abstractmethod
    def detect(cls, location: str) -> bool:
        """Whether `location` looks like this kind of source (cheap: names and at most a tar header)."""

    @abstractmethod
    def scan(self) -> ImageTree:
        """Classes in sorted order, images in sorted name order, and the problems met."""


SOURCES: dict[str, type[ImageSource]] = {}


def register(source: type[ImageSource]) -> type[ImageSource]:
    SOURCES[source.kind] = source
    return source


def open_source(location: str | Path, kind: str | None = None, **options) -> ImageSource:
    """The source at `location`: of `kind`, or the first registered kind that recognises it. `options`
    (e.g. `label_map`) go to the source; None values are ignored, others a source does not take refused."""
    location = str(location)
    options = {name: value for name, value in options.items() if value is not None}
    if kind is not None and kind not in SOURCES:
        raise GozError(f"unknown image source {kind!r}; choose one of {', '.join(SOURCES)}")
    if pattern_kind(location) is None:
        path = Path(location)
        if not path.exists():
            raise GozError(f"{location}: no such image folder or archive; {TAR_HINT}")
        if path.is_file() and not (tarfile.is_tarfile(path) or _is_parquet_file(path)):
            raise GozError(f"{location} is a file, neither a tar archive nor a Parquet file; {TAR_HINT}")
        if path.is_dir():
            _refuse_compressed_tars(path)
    source = SOURCES[kind] if kind is not None else next((s for s in SOURCES.values() if s.detect(location)), None)
    if source is None:
        raise GozError(f"{location}: not an image source; {TAR_HINT}")
    unknown = sorted(set(options) - set(source.options))
    if unknown:
        raise GozError(f"{location}: {', '.join(unknown)} does not apply to a {source.kind} source (only to "
                       f"{', '.join(s.kind for s in SOURCES.values() if set(unknown) <= set(s.options))})")
    return source(location, **options)


def _refuse_compressed_tars(folder: Path) -> None:
    """A folder holding compressed tars and nothing else goz reads: GozError with the fix (gunzip)."""
    compressed, readable = [], False
    for entry in os.scandir(folder):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() or entry.name.endswith((".tar", ".parquet")):
            readable = True
            break
        if entry.name.endswith(COMPRESSED_TAR_SUFFIXES):
            compressed.append(entry.name)
    if compressed and not readable:
        example = min(compressed)
        raise GozError(f"{folder}: holds {len(compressed)} compressed tars (e.g. {example}) and no uncompressed one; "
                       f"goz reads tars in place by offset, which compression prevents: decompress them first "
                       f"(e.g. gunzip {folder}/*.tar.gz)")


def scan_images(location: str | Path, kind: str | None = None, **options) -> ImageTree:
    """The classes and images of the source at `location` (see `open_source`)."""
    return open_source(location, kind, **options).scan()


# -- folder tree ---------------------------------------------------------------------------------


@register
class FolderTree(ImageSource):
    kind = "folder"
    description = "IMAGES/<wnid>/<wnid>_<id>.<ext>"

    @classmethod
    def detect(cls, location: str) -> bool:
        # Also the fallback for a folder holding nothing recognisable: its scan says what is wrong.
        path = Path(location)
        return path.is_dir() and (any(e.is_dir() and WNID_PATTERN.match(e.name) for e in os.scandir(path))
                                  or not any(e.name.endswith((".tar", ".parquet")) for e in os.scandir(path)))

    def scan(self) -> ImageTree:
        root = Path(self.location)
        if not root.is_dir():
            raise GozError(f"{root} is not a folder; {TAR_HINT}")
        classes, problems = [], []
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            if entry.name.startswith("."):  # e.g. `goz download`'s bookkeeping in .goz/
                continue
            if not entry.is_dir():
                if entry.name.endswith((".tar", ".parquet")):
                    problems.append((entry.name, "an archive beside class folders: read only with the folders "
                                                 "moved away"))
                elif entry.name.endswith(COMPRESSED_TAR_SUFFIXES):
                    problems.append((entry.name, "a compressed tar beside class folders: not read (decompress it, "
                                                 "e.g. gunzip, and move the folders away)"))
                continue
            if not WNID_PATTERN.match(entry.name):
                problems.append((entry.name + "/", "folder name is not a WordNet id (n + 8 digits)"))
                continue
            names = []
            for name in sorted(n for n in os.listdir(entry.path) if not n.startswith(".")):
                path = os.path.join(entry.path, name)
                if os.path.isfile(path):
                    names.append((name, path, -1, -1))
                else:
                    problems.append((f"{entry.name}/{name}", "not a regular file"))
            _add_class(classes, problems, entry.name, entry.name + "/", names)
        return ImageTree(self.location, classes, problems, self.kind)


def _add_class(classes: list[ClassImages], problems: list[tuple[str, str]], wnid: str, prefix: str,
               members: Iterable[tuple[str, str, int, int]]) -> None:
    """Adds class `wnid` from (file name, file, offset, size) in sorted name order; names go to problems
    under `prefix`. A class without a conforming image is a problem, not a class."""
    images, seen = [], {}
    for name, file, offset, size in sorted(members):
        parsed = parse_image_name(wnid, name)
        if isinstance(parsed, str):
            problems.append((prefix + name, parsed))
        elif parsed in seen:
            problems.append((prefix + name, f"duplicate image id {parsed} (also {seen[parsed]})"))
        else:
            seen[parsed] = name
            images.append(ImageRef(parsed, prefix + name, file, offset, size))
    if images:
        classes.append(ClassImages(wnid, images))
    else:
        problems.append((prefix, "no image file with a conforming name"))


# -- tars ----------------------------------------------------------------------------------------


def _tar_members(file: str, label: str, problems: list[tuple[str, str]], fileobj: BinaryIO | None = None,
                 base: int = 0, length: int | None = None) -> Iterator[tuple[str, int, int]]:
    """(member name, absolute offset, size) of the regular files of an uncompressed tar, headers only.

    `fileobj`/`base`/`length`: a tar inside another tar, `length` bytes at `base` of `file`. A member
    whose name climbs out (`../`, absolute), a link or special member, a second member of the same
    name (the first is kept) and a member whose data runs past the end are problems; a truncated or
    unreadable tar ends with a problem after the members read so far.
    """
    if length is None:
        length = os.path.getsize(file)
    count = 0
    seen: set[str] = set()
    try:
        with tarfile.open(file if fileobj is None else None, mode="r:", fileobj=fileobj) as tar:
            for member in tar:
                if member.isdir():
                    continue
                if not member.isfile():
                    problems.append((f"{label}/{member.name}", _special_member(member)))
                    continue
                parts = PurePosixPath(member.name).parts
                if member.name.startswith("/") or ".." in parts:
                    problems.append((f"{label}/{member.name}", "member name climbs out of the archive (../ or /); "
                                                               "not read"))
                    continue
                if member.offset_data + member.size > length:
                    problems.append((label, f"truncated tar: member {member.name} ends past the end of the "
                                            f"archive; {count} members read (download the archive again)"))
                    return
                if member.name in seen:
                    problems.append((f"{label}/{member.name}@{member.offset}",
                                     "a second member of the same name in this tar; the first is read, this one "
                                     "is not"))
                    continue
                seen.add(member.name)
                count += 1
                yield member.name, base + member.offset_data, member.size
            if length - tar.offset < 2 * tarfile.BLOCKSIZE:  # a whole tar ends with two zero blocks
                problems.append((label, f"truncated tar: no end-of-archive marker after {count} members "
                                        f"(download the archive again)"))
    except tarfile.CompressionError as error:
        problems.append((label, f"not an uncompressed tar ({error}); decompress it (gunzip) to read it by offset"))
    except (tarfile.ReadError, EOFError, OSError) as error:
        what = "truncated or corrupt tar" if count else "not a readable uncompressed tar"
        problems.append((label, f"{what} ({error}); {count} members read "
                                f"(download it again, or decompress a .tar.gz with gunzip)"))


def _special_member(member: tarfile.TarInfo) -> str:
    """Why a member that is neither a regular file nor a folder is not read."""
    if member.issym():
        return f"a symbolic link (to {member.linkname}): not read, only regular members are images"
    if member.islnk():
        return f"a hard link (to {member.linkname}): not read, only regular members are images"
    return "not a regular file (device, fifo or other special member): not read"


def _basename(member: str) -> str:
    return member.rsplit("/", 1)[-1]


@register
class SynsetTars(ImageSource):
    kind = "synset-tars"
    description = "IMAGES/<wnid>.tar holding <wnid>_<id>.JPEG (ImageNet-21K)"

    @classmethod
    def detect(cls, location: str) -> bool:
        path = Path(location)
        return path.is_dir() and any(e.is_file() and _is_synset_tar(e.name) for e in os.scandir(path))

    def scan(self) -> ImageTree:
        root = Path(self.location)
        classes, problems = [], []
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if not (entry.is_file() and _is_synset_tar(entry.name)):
                problems.append((entry.name, "not a <wnid>.tar"))
                continue
            wnid = entry.name[:-4]
            members = [(_basename(name), entry.path, offset, size)
                       for name, offset, size in _tar_members(entry.path, entry.name, problems)]
            _add_class(classes, problems, wnid, entry.name + "/", members)
        return ImageTree(self.location, classes, problems, self.kind)


def _is_synset_tar(name: str) -> bool:
    return name.endswith(".tar") and WNID_PATTERN.match(name[:-4]) is not None


def _first_member(file: str) -> str | None:
    try:
        with tarfile.open(file, mode="r:") as tar:
            for member in tar:
                if member.isfile():
                    return member.name
    except (tarfile.TarError, EOFError, OSError):
        return None
    return None


@register
class TarOfTars(ImageSource):
    kind = "tar-of-tars"
    description = "one .tar of <wnid>.tar (ILSVRC2012_img_train.tar)"

    @classmethod
    def detect(cls, location: str) -> bool:
        first = _first_member(location) if Path(location).is_file() else None
        return first is not None and _is_synset_tar(_basename(first))

    def scan(self) -> ImageTree:
        file = str(Path(self.location).resolve())
        label = Path(self.location).name
        classes, problems = [], []
        seen: set[str] = set()
        try:
            with tarfile.open(file, mode="r:") as outer:
                inner_tars = []
                for name, offset, size in _tar_members(file, label, problems):
                    if not _is_synset_tar(_basename(name)):
                        problems.append((f"{label}/{name}", "not a <wnid>.tar"))
                    elif _basename(name) in seen:
                        problems.append((f"{label}/{name}", "a second tar of the same class"))
                    else:
                        seen.add(_basename(name))
                        inner_tars.append((name, offset, size))
                for name, offset, size in sorted(inner_tars, key=lambda t: _basename(t[0])):
                    wnid, inner_label = _basename(name)[:-4], f"{label}/{name}"
                    window = outer.extractfile(outer.getmember(name))
                    members = [(_basename(member), file, member_offset, member_size) for member, member_offset, member_size
                               in _tar_members(file, inner_label, problems, window, offset, size)]
                    _add_class(classes, problems, wnid, inner_label + "/", members)
        except (tarfile.TarError, EOFError, OSError, KeyError) as error:
            problems.append((label, f"unreadable tar ({error})"))
        classes.sort(key=lambda c: c.wnid)
        return ImageTree(self.location, classes, problems, self.kind)


# -- WebDataset shards ---------------------------------------------------------------------------


MAX_PATTERN_NAMES = 1_000_000  # names a brace pattern or glob may give: each is looked up on disk
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?$|^([a-zA-Z])\.\.([a-zA-Z])$")
_GLOB_CHARACTERS = frozenset("*?[")


def pattern_kind(location: str) -> str | None:
    """`brace` (`shard-{0000..0099}.tar`, `a.tar::b.tar`), `glob` (`data/train-*.parquet`), or None for a
    path (an existing path is a path, whatever characters its name holds)."""
    if os.path.lexists(location):
        return None
    if ("{" in location and "}" in location) or "::" in location:
        return "brace"
    return "glob" if _GLOB_CHARACTERS & set(location) else None


def _parse_braces(text: str) -> list:
    """`text` as parts: a literal str, a list of alternatives (each a list of parts), or a range tuple
    (first, stop, step, width, letters). Braces without a comma or a range stay literal, as in bash."""
    parts, literal, i = [], [], 0
    while i < len(text):
        if text[i] == "{":
            depth, j, commas = 0, i, []
            while j < len(text):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if text[j] == "," and depth == 1:
                    commas.append(j)
                if depth == 0:
                    break
                j += 1
            if j < len(text):  # a matching "}" at j
                inner = text[i + 1:j]
                range_match = _RANGE.match(inner)
                if commas or range_match:
                    parts.append("".join(literal))
                    literal = []
                    if commas:
                        bounds = [i, *commas, j]
                        parts.append([_parse_braces(text[a + 1:b]) for a, b in itertools.pairwise(bounds)])
                    else:
                        parts.append(_range(range_match))
                    i = j + 1
                    continue
        literal.append(text[i])
        i += 1
    parts.append("".join(literal))
    return [part for part in parts if part != ""]


def _range(match: re.Match) -> tuple[int, int, int, int, bool]:
    if match[4]:
        first, last = ord(match[4]), ord(match[5])
        return first, last + (1 if last >= first else -1), 1 if last >= first else -1, 0, True
    first_text, last_text = match[1], match[2]
    first, last = int(first_text), int(last_text)
    step = abs(int(match[3])) if match[3] and int(match[3]) else 1
    padded = any(t.lstrip("-").startswith("0") and len(t.lstrip("-")) > 1 for t in (first_text, last_text))
    width = max(len(first_text), len(last_text)) if padded else 0
    return first, last + (1 if last >= first else -1), step if last >= first else -step, width, False


def _count(parts: list) -> int:
    total = 1
    for part in parts:
        if isinstance(part, list):
            total *= sum(_count(alternative) for alternative in part)
        elif isinstance(part, tuple):
            total *= len(range(*part[:3]))
    return total


def _names(parts: list, prefix: str = "") -> Iterator[str]:
    """The names of parsed `parts`, one at a time (nothing is held but the current name)."""
    if not parts:
        yield prefix
        return
    part, rest = parts[0], parts[1:]
    if isinstance(part, str):
        yield from _names(rest, prefix + part)
    elif isinstance(part, list):
        for alternative in part:
            yield from _names(alternative + rest, prefix)
    else:
        first, stop, step, width, letters = part
        for value in range(first, stop, step):
            yield from _names(rest, prefix + (chr(value) if letters else f"{value:0{width}d}"))


def _brace_names(location: str) -> tuple[int, Iterator[str]]:
    """(how many names, the names lazily) of a brace pattern; patterns joined by `::` follow each other.

    `${NAME}` is the environment variable WDS_NAME, as in webdataset's `expand_urls`."""
    from webdataset.shardlists import envsubst

    try:
        patterns = [envsubst(pattern) for pattern in location.split("::")]
    except AssertionError as error:
        raise GozError(f"{location}: {error} (webdataset reads ${{NAME}} from WDS_NAME); set it or write the "
                       f"path out") from None
    parsed = [_parse_braces(pattern) for pattern in patterns]
    return sum(_count(parts) for parts in parsed), (name for parts in parsed for name in _names(parts))


def expand_files(location: str, suffix: str, problems: list[tuple[str, str]] | None = None) -> list[str]:
    """The files of a brace pattern (in its order), a glob (sorted), a folder (its `*<suffix>` files, sorted)
    or one file. A pattern naming more than MAX_PATTERN_NAMES files is refused before any is looked up;
    named files that do not exist are one problem; GozError when none exists."""
    kind = pattern_kind(location)
    if kind is None:
        path = Path(location)
        if path.is_dir():
            return sorted(str(p) for p in path.glob(f"*{suffix}") if not p.name.startswith(".") and p.is_file())
        return [location]
    if kind == "brace":
        total, names = _brace_names(location)
        if total > MAX_PATTERN_NAMES:
            raise GozError(f"{location}: the brace pattern names {total:,} files, more than the {MAX_PATTERN_NAMES:,} "
                           f"goz looks up; narrow the range to the shards that exist, or give their folder")
    else:
        names = glob.iglob(location)
    present, absent, first_absent, total = [], 0, None, 0
    for total, name in enumerate(names, 1):
        if total > MAX_PATTERN_NAMES:
            raise GozError(f"{location}: the pattern matches more than {MAX_PATTERN_NAMES:,} files; narrow it")
        if os.path.isfile(name):
            present.append(name)
        else:
            absent, first_absent = absent + 1, first_absent or name
    if not present:
        raise GozError(f"{location}: the {'brace pattern names' if kind == 'brace' else 'pattern matches'} {total} "
                       f"files, none exists{f' (e.g. {first_absent})' if first_absent else ''}; check the pattern "
                       f"and the folder")
    if absent and problems is not None:
        problems.append((location, f"{absent} of the {total} files the pattern names do not exist (e.g. "
                                   f"{first_absent}); the {len(present)} that exist are read"))
    return present if kind == "brace" else sorted(present)


@register
class WebDatasetShards(ImageSource):
    kind = "webdataset"
    description = "WebDataset shards: a .tar, a folder of .tar, or shards-{0000..0099}.tar"

    @classmethod
    def detect(cls, location: str) -> bool:
        if pattern_kind(location) is not None:
            return location.endswith(".tar")
        path = Path(location)
        if path.is_dir():
            return any(e.is_file() and e.name.endswith(".tar") for e in os.scandir(path))
        return path.is_file() and not _is_parquet_file(path)

    def scan(self) -> ImageTree:
        from webdataset.tariterators import base_plus_ext

        problems: list[tuple[str, str]] = []
        shards = expand_files(self.location, ".tar", problems)
        common = os.path.commonpath([os.path.dirname(os.path.abspath(s)) for s in shards])
        per_class: dict[str, list[tuple[str, str, int, int, str, int]]] = {}
        found: dict[tuple[str, int], str] = {}
        cls_wnids: dict[str, str] = {}  # an integer cls must name one class across all shards
        for shard in shards:
            label = os.path.relpath(os.path.abspath(shard), common)
            samples: dict[str, dict[str, tuple[int, int, str]]] = {}
            for name, offset, size in _tar_members(os.path.abspath(shard), label, problems):
                key, extension = base_plus_ext(name)
                if key is None:
                    problems.append((f"{label}/{name}", "member name has no extension: not part of a sample"))
                    continue
                members = samples.setdefault(key, {})
                if extension.lower() in members:
                    problems.append((f"{label}/{name}", f"a second .{extension.lower()} member of sample {key} "
                                                        f"(also {members[extension.lower()][2]}); not read"))
                    continue
                members[extension.lower()] = (offset, size, name)
            for key, members in samples.items():
                identity = _sample_identity(os.path.abspath(shard), f"{label}/{key}", key, members, cls_wnids)
                if isinstance(identity, str):
                    problems.append((f"{label}/{key}", identity))
                    continue
                wnid, image_id, (offset, size, name) = identity
                where = f"{label}/{name}"
                if (wnid, image_id) in found:
                    problems.append((where, f"duplicate image {wnid}_{image_id} (also {found[wnid, image_id]})"))
                    continue
                found[wnid, image_id] = where
                # Named <wnid>_<id>.<ext>, the name it would have in a folder: same sort order, same rows.
                per_class.setdefault(wnid, []).append(
                    (f"{wnid}_{image_id}.{name.rsplit('.', 1)[-1]}", os.path.abspath(shard), offset, size, where,
                     image_id))
        classes = [ClassImages(wnid, [ImageRef(image_id, where, f, o, s)
                                      for _, f, o, s, where, image_id in sorted(per_class[wnid])])
                   for wnid in sorted(per_class)]
        return ImageTree(self.location, classes, problems, self.kind)


def _sample_identity(shard: str, label: str, key: str, members: dict[str, tuple[int, int, str]],
                     cls_wnids: dict[str, str]) -> tuple[str, int, tuple[int, int, str]] | str:
    """(wnid, id, image member) of a sample, or the reason it is skipped."""
    image = next((members[e] for e in SAMPLE_IMAGE_EXTENSIONS if e in members), None)
    if image is None:
        image = next((m for e, m in sorted(members.items()) if f".{e}" in IMAGE_EXTENSIONS), None)
    if image is None:
        return f"sample without an image (members: {', '.join(sorted(members))})"
    from_key = parse_image_key(_basename(key))
    from_json = None
    if "json" in members:
        try:
            meta = json.loads(_read_member(shard, members["json"]))
        except (ValueError, OSError) as error:
            return f"unreadable json ({error})"
        from_json = _json_identity(meta) if isinstance(meta, dict) else None
        if isinstance(from_json, str):
            return from_json
        if isinstance(meta, dict) and "wnid" in meta and from_key and meta["wnid"] != from_key[0]:
            return f"json wnid {meta['wnid']} disagrees with the key's {from_key[0]}"
    if from_key and from_json and from_key != from_json:
        return f"json names {from_json[0]}_{from_json[1]}, the key {from_key[0]}_{from_key[1]}"
    identity = from_key or from_json
    if identity is None:
        return "key is not <wnid>_<id> and no json names the image (filename <wnid>_<id>.<ext>, or wnid and id)"
    wnid, image_id = identity
    if "cls" in members:
        try:
            label_text = _read_member(shard, members["cls"]).decode("utf-8").strip()
        except (UnicodeDecodeError, OSError) as error:
            return f"unreadable cls ({error})"
        if is_wnid(label_text):
            if label_text != wnid:
                return f"cls {label_text} disagrees with the image's class {wnid}"
        elif label_text.lstrip("-").isdigit():
            bound = cls_wnids.setdefault(label_text, wnid)
            if bound != wnid:
                return f"cls {label_text} is class {bound} in earlier samples, but this image is of {wnid}"
        else:
            return f"cls {label_text[:40]!r} is neither a WordNet id nor a class number"
    return wnid, image_id, image


def _json_identity(meta: dict) -> tuple[str, int] | str | None:
    """(wnid, id) that a sample's json names, the reason its id is unusable, or None if it names none."""
    filename = meta.get("filename")
    if isinstance(filename, str):
        match = IMAGE_FILE_PATTERN.match(_basename(filename))
        if match:
            return match["wnid"], int(match["id"])
    wnid, image_id = meta.get("wnid"), meta.get("id")
    if is_wnid(wnid) and "id" in meta:
        # The store's idx is int64: an id is 1 to 18 decimal digits (goz.names), not 10**30, -5 or True.
        text = str(image_id) if isinstance(image_id, int) and not isinstance(image_id, bool) else image_id
        if isinstance(text, str) and re.fullmatch(IMAGE_ID_REGEX, text, re.ASCII):
            return wnid, int(text)
        return (f"json id {str(image_id)[:40]!r} is not an image id (0 to 10**18 - 1, as <wnid>_<id> names "
                f"hold); the sample is not read")
    key = meta.get("key") or meta.get("__key__")
    return parse_image_key(key) if isinstance(key, str) else None


def _read_member(file: str, member: tuple[int, int, str]) -> bytes:
    offset, size, _ = member
    return ImageRef(0, "", file, offset, size).read()


# -- Hugging Face datasets Parquet ----------------------------------------------------------------

# Columns that may name an image, in order of preference: the first whose first value parses as
# `<wnid>_<id>` (a file name `<wnid>_<id>.<ext>` or a key, any folder part dropped) gives the ids.
PARQUET_ID_COLUMNS = ("image.path", "__key__", "id", "key")
_IMAGE_NAME_OR_KEY = re.compile(rf"^(?P<wnid>{WNID_REGEX})_(?P<id>{IMAGE_ID_REGEX})(\.[^.]+)?$")
SCAN_BATCH_ROWS = 65536  # label (and id) values read at a time: bounded memory, few calls into Arrow
LABEL_MAP_HINT = "--label-map FILE (one wnid per line, line i for label i, or a JSON list of wnids)"
MAX_LABEL_MAP_BYTES = 64 * 2**20


def _is_parquet_file(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"PAR1"
    except OSError:
        return False


@register
class ParquetShards(ImageSource):
    kind = "parquet"
    description = ("Hugging Face datasets Parquet shards (a .parquet, a folder of them, a glob such as "
                   "'data/train-*.parquet' or a brace pattern) with an image column and an integer label column")
    options = ("label_map",)

    def __init__(self, location: str | Path, label_map: str | Path | None = None):
        super().__init__(location)
        self.label_map = label_map

    @classmethod
    def detect(cls, location: str) -> bool:
        if pattern_kind(location) is not None:
            return location.endswith(".parquet")
        path = Path(location)
        if path.is_dir():
            return any(e.is_file() and e.name.endswith(".parquet") for e in os.scandir(path))
        return path.is_file() and (path.suffix == ".parquet" or _is_parquet_file(path))

    def scan(self) -> ImageTree:
        """Reads the footers and the label (and id) columns, row group by row group; never an image."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        problems: list[tuple[str, str]] = []
        files = [os.path.abspath(f) for f in expand_files(self.location, ".parquet", problems)]
        common = os.path.commonpath([os.path.dirname(f) for f in files])
        names = read_label_map(self.label_map) if self.label_map is not None else None
        names_from: str | None = None  # the file whose schema gave the class names
        id_column: str | None = None
        id_decided = False
        per_class: dict[str, list[tuple[object, str, int, int, str, int]]] = {}
        found: dict[tuple[str, int], str] = {}
        for file in files:
            label = os.path.relpath(file, common)
            try:
                reader = pq.ParquetFile(file)
                schema = reader.schema_arrow
            except (pa.ArrowException, OSError) as error:
                problems.append((label, f"not a readable Parquet file ({_one_line(error)}); a truncated or partial "
                                        f"download? download it again"))
                continue
            _check_parquet_columns(schema, file)
            if self.label_map is None:
                own = _hf_class_names(schema, file)
                if names is None:
                    names, names_from = own, file
                elif own is not None and own != names:
                    raise GozError(f"{file}: its class names differ from those of {names_from}; the shards are not "
                                   f"of one dataset (or pass {LABEL_MAP_HINT})")
            if names is None:
                raise GozError(f"{file}: no class names (the Parquet schema has no Hugging Face label names); pass "
                               f"{LABEL_MAP_HINT}")
            if not id_decided and reader.metadata.num_rows:
                try:
                    id_column, id_decided = _choose_id_column(reader, schema), True
                except (pa.ArrowException, OSError) as error:  # the next file decides
                    problems.append((label, f"unreadable id column ({_one_line(error)}); not read (download it "
                                            f"again)"))
                    continue
            if id_column is not None and not _has_column(schema, id_column):
                raise GozError(f"{file}: no {id_column} column, which the earlier shards name their images by; "
                               f"the shards are not of one dataset")
            # Row groups' first rows: a file row is (row group, row in it), what an ImageRef reads by.
            starts = list(itertools.accumulate((reader.metadata.row_group(g).num_rows
                                                for g in range(reader.num_row_groups)), initial=0))
            columns = ["label"] + ([id_column] if id_column else [])
            of_map = "" if self.label_map is None else f" of {self.label_map}"
            for row_group, table in _row_group_tables(reader, starts, columns, label, problems):
                labels = table.column(0).to_pylist()
                keys = _column_values(table, id_column) if id_column else None
                row = starts[row_group]
                for position, value in enumerate(labels):
                    while row >= starts[row_group + 1]:
                        row_group += 1
                    where, index = f"{label}[{row}]", row - starts[row_group]
                    row += 1
                    if value is None or not 0 <= value < len(names):
                        problems.append((where, f"label {value} is outside the {len(names)} class names (0 to "
                                                f"{len(names) - 1}){of_map}"))
                        continue
                    wnid = names[value]
                    if keys is None:
                        image_id = len(per_class.get(wnid, ()))  # the row's position in its class
                        order: object = image_id
                    else:
                        key = keys[position]
                        named = _image_of_key(key)
                        if named is None:
                            problems.append((where, f"{id_column} {str(key)[:60]!r} is not <wnid>_<id>"))
                            continue
                        if named[0] != wnid:
                            problems.append((where, f"{id_column} names class {named[0]}, label {value} is {wnid}"))
                            continue
                        image_id, order = named[1], key.rpartition("/")[2]
                    if (wnid, image_id) in found:
                        problems.append((where, f"duplicate image {wnid}_{image_id} (also {found[wnid, image_id]})"))
                        continue
                    found[wnid, image_id] = where
                    per_class.setdefault(wnid, []).append((order, file, row_group, index, where, image_id))
        # Images in name order, as in a folder (positional ids: in storage order).
        classes = [ClassImages(wnid, [ImageRef(image_id, where, file, row_group=row_group, row=index)
                                      for _, file, row_group, index, where, image_id in sorted(per_class[wnid])])
                   for wnid in sorted(per_class)]
        return ImageTree(self.location, classes, problems, self.kind)


def _row_group_tables(reader, starts: list[int], columns: list[str], label: str,
                      problems: list[tuple[str, str]]) -> Iterator[tuple[int, object]]:
    """(first row group, table of `columns`) over runs of row groups of about SCAN_BATCH_ROWS rows; a damaged
    row group ends the file with a problem, the row groups before it read."""
    import pyarrow as pa

    first = 0
    while first < reader.num_row_groups:
        last = first + 1
        while last < reader.num_row_groups and starts[last + 1] - starts[first] <= SCAN_BATCH_ROWS:
            last += 1
        try:
            table = reader.read_row_groups(list(range(first, last)), columns=columns, use_threads=False)
        except (pa.ArrowException, OSError):
            table = None
        if table is not None:
            yield first, table
            first = last
            continue
        for group in range(first, last):  # one by one, up to the damaged one
            try:
                table = reader.read_row_group(group, columns=columns, use_threads=False)
            except (pa.ArrowException, OSError) as error:
                problems.append((label, f"unreadable row group {group} ({_one_line(error)}); its rows and those "
                                        f"after it are not read, {starts[group]} rows are (download the file "
                                        f"again)"))
                return
            yield group, table
        first = last


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())[:200]


def _has_column(schema, column: str) -> bool:
    import pyarrow as pa

    top, _, child = column.partition(".")
    if top not in schema.names:
        return False
    kind = schema.field(top).type
    return not child or (pa.types.is_struct(kind) and kind.get_field_index(child) >= 0)


def _check_parquet_columns(schema, file: str) -> None:
    """GozError naming the file unless it has an encoded `image` column and an integer `label` column."""
    import pyarrow as pa

    expected = ("Hugging Face datasets Parquet needs an 'image' column (encoded bytes, or the Image feature's "
                "struct of bytes and path) and an integer 'label' column")
    for column in ("image", "label"):
        if column not in schema.names:
            raise GozError(f"{file}: no '{column}' column (columns: {', '.join(schema.names[:10])}); {expected}")
    image = schema.field("image").type
    binary = (pa.types.is_binary, pa.types.is_large_binary)
    if pa.types.is_struct(image):
        index = image.get_field_index("bytes")
        if index < 0 or not any(test(image.field(index).type) for test in binary):
            raise GozError(f"{file}: the 'image' column is {image}, with no binary 'bytes' field; {expected}")
    elif not any(test(image) for test in binary):
        raise GozError(f"{file}: the 'image' column is {image}, not encoded bytes; {expected}")
    if not pa.types.is_integer(schema.field("label").type):
        raise GozError(f"{file}: the 'label' column is {schema.field('label').type}, not integers; {expected}")


def _hf_class_names(schema, file: str) -> list[str] | None:
    """The class names that Hugging Face `datasets` writes in the schema metadata (`info.features.label.names`),
    which must be wnids (the ImageNet-21K copies use them); None when there are none."""
    raw = (schema.metadata or {}).get(b"huggingface")
    if raw is None:
        return None
    try:
        label = json.loads(raw)["info"]["features"]["label"]
    except (ValueError, KeyError, TypeError):
        return None
    names = label.get("names") if isinstance(label, dict) else None
    if not isinstance(names, list) or not names:
        return None
    bad = [name for name in names if not is_wnid(name)]
    if bad:
        raise GozError(f"{file}: the dataset's class names are not WordNet ids (e.g. {str(bad[0])[:40]!r}, "
                       f"{len(bad)} of {len(names)}); pass {LABEL_MAP_HINT}")
    return names


def _choose_id_column(reader, schema) -> str | None:
    """The first of PARQUET_ID_COLUMNS whose first value names an image; None: ids are positions in the class."""
    for column in PARQUET_ID_COLUMNS:
        if not _has_column(schema, column):
            continue
        for row_group in range(reader.num_row_groups):
            values = _column_values(reader.read_row_group(row_group, columns=[column], use_threads=False), column)
            first = next((value for value in values if value is not None), None)
            if first is not None:
                if isinstance(first, str) and _image_of_key(first) is not None:
                    return column
                break
    return None


def _column_values(table, column: str) -> list:
    """The values of a column of a table or record batch read with `columns=[column]`, `image.path` included."""
    top, _, child = column.partition(".")
    values = table.column(top)
    if hasattr(values, "combine_chunks"):  # a table's column is chunked, a record batch's is not
        values = values.combine_chunks()
    return (values.field(child) if child else values).to_pylist()


def _image_of_key(value: object) -> tuple[str, int] | None:
    """(wnid, id) of `<wnid>_<id>.<ext>` or `<wnid>_<id>`, any folder part dropped."""
    if not isinstance(value, str):
        return None
    match = _IMAGE_NAME_OR_KEY.match(value.rpartition("/")[2])
    return (match["wnid"], int(match["id"])) if match else None


def read_label_map(path: str | Path) -> list[str]:
    """wnid of each label: a text file, one wnid per line, line i (from 0) for label i (anything after the
    wnid, such as the class name of LOC_synset_mapping.txt, is ignored); or a JSON list of wnids."""
    path = Path(path)
    if not path.is_file():
        raise GozError(f"{path}: {'not a regular file' if path.exists() else 'no such file'}; pass {LABEL_MAP_HINT}")
    if path.stat().st_size > MAX_LABEL_MAP_BYTES:
        raise GozError(f"{path}: {path.stat().st_size} bytes is not a label map; pass {LABEL_MAP_HINT}")
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as error:
        raise GozError(f"{path}: unreadable label map ({_one_line(error)}); pass {LABEL_MAP_HINT}") from None
    if text.lstrip().startswith("["):
        try:
            wnids = json.loads(text)
        except ValueError as error:
            raise GozError(f"{path}: not valid JSON ({error}); pass {LABEL_MAP_HINT}") from None
        if not isinstance(wnids, list):
            raise GozError(f"{path}: not a JSON list; pass {LABEL_MAP_HINT}")
        for label, wnid in enumerate(wnids):
            if not is_wnid(wnid):
                raise GozError(f"{path}: entry {label} ({json.dumps(wnid)[:40]}) is not a WordNet id (n + 8 digits); "
                               f"pass {LABEL_MAP_HINT}")
    else:
        lines = text.splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        wnids = []
        for number, line in enumerate(lines, 1):
            first = line.split(None, 1)[0] if line.strip() else ""
            if not is_wnid(first):
                raise GozError(f"{path}: line {number} ({line.strip()[:40]!r}) does not start with a WordNet id "
                               f"(n + 8 digits); line i holds the wnid of label i-1")
            wnids.append(first)
    if not wnids:
        raise GozError(f"{path}: the label map is empty; pass {LABEL_MAP_HINT}")
    seen: dict[str, int] = {}
    for label, wnid in enumerate(wnids):
        if wnid in seen:
            raise GozError(f"{path}: {wnid} is the class of labels {seen[wnid]} and {label}; each wnid once")
        seen[wnid] = label
    return wnids


# -- selection -----------------------------------------------------------------------------------


def read_classes(split: str | Path) -> list[str]:
    """The wnids of `--classes`: a built-in split name or a split file (`goz.splits.load`); errors name the file."""
    from goz.splits.registry import BUILTIN, load

    key = str(split)
    if key not in BUILTIN:
        path = Path(key)
        if path.exists() and not path.is_file() and not path.is_dir():
            raise GozError(f"{key}: not a regular file (a device, fifo or socket); --classes takes a split name "
                           f"({', '.join(sorted(BUILTIN))}) or a split file (one wnid per line)")
    try:
        return load(split)
    except GozError as error:
        if key in BUILTIN or key in str(error):
            raise
        raise type(error)(f"{key}: {error}") from None


def read_image_keys(path: str | Path, problems: list[tuple[str, str]] | None = None) -> dict[str, set[int]]:
    """{wnid: ids} of a file of `<wnid>_<id>` keys: a URL list (`<wnid>_<id><TAB><url>`) or one key a line.

    Blank lines and `#` comments are ignored; a malformed line is a problem (`<file>:<line>`, for the
    skip log) appended to `problems`; GozError if the file is missing or holds no key.
    """
    path = Path(path)
    if not path.is_file():
        raise GozError(f"{path}: {'not a regular file' if path.exists() else 'no such file'}; --ids takes a list "
                       f"of images (a URL list or a file of <wnid>_<id> keys)")
    keys: dict[str, set[int]] = {}
    malformed = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            text = raw.decode("utf-8", errors="replace").strip()
            if not text or text.startswith("#"):
                continue
            match = IMAGE_KEY_PATTERN.match(text.split(None, 1)[0])
            if match is None:
                malformed += 1
                if problems is not None:
                    problems.append((f"{path}:{number}", f"--ids line is not <wnid>_<id> (or <wnid>_<id><TAB><url>): "
                                                         f"{text[:60]!r}; the line is ignored"))
                continue
            keys.setdefault(match["wnid"], set()).add(int(match["id"]))
    if not keys:
        raise GozError(f"{path}: no <wnid>_<id> key in it ({malformed} malformed lines); expected a URL list "
                       f"(<wnid>_<id><TAB><url>) or one <wnid>_<id> a line")
    return keys


def select(tree: ImageTree, classes: Iterable[str] | None = None,
           ids: dict[str, set[int]] | None = None) -> tuple[ImageTree, dict[str, list[int]]]:
    """The classes in `classes` and, with `ids`, exactly the images it names; and the requested images
    not found, per class (a requested class absent from the source misses all its images)."""
    wanted = set(classes) if classes is not None else None
    kept, missing = [], {}
    found = {c.wnid: c for c in tree.classes}
    for images in tree.classes:
        if wanted is not None and images.wnid not in wanted:
            continue
        if ids is None:
            kept.append(images)
            continue
        requested = ids.get(images.wnid, set())
        chosen = [ref for ref in images.files if ref.image_id in requested]
        if chosen:
            kept.append(ClassImages(images.wnid, chosen))
    if ids is not None:
        for wnid, requested in sorted(ids.items()):
            if wanted is not None and wnid not in wanted:
                continue
            present = {ref.image_id for ref in found[wnid].files} if wnid in found else set()
            if requested - present:
                missing[wnid] = sorted(requested - present)
    elif wanted is not None:
        for wnid in sorted(wanted - set(found)):
            missing[wnid] = []  # the whole class is absent: no image of it to name
    return ImageTree(tree.location, kept, tree.problems, tree.kind), missing


def scan_selected(images: str | Path, *, source: str | None = None, classes: str | Sequence[str] | None = None,
                  ids: str | Path | dict[str, set[int]] | None = None,
                  label_map: str | Path | None = None) -> tuple[ImageTree, dict[str, list[int]]]:
    """The images of the source at `images`, kept to `classes` (a split name or file, or wnids) and
    `ids` (a URL list or key file, or {wnid: ids}); and the requested images not found, per class.
    `label_map`: the wnid of each label of a Parquet source. GozError when the source holds no image,
    or none of those requested; malformed lines of an `ids` file are problems (skip log rows)."""
    if isinstance(classes, (str, Path)):
        classes = read_classes(classes)
    id_problems: list[tuple[str, str]] = []
    if isinstance(ids, (str, Path)):
        ids = read_image_keys(ids, id_problems)
    tree = scan_images(images, source, label_map=label_map)
    if not tree.classes:
        shown = "; ".join(f"{name}: {reason}" for name, reason in tree.problems[:3])
        raise GozError(f"{images}: no image found in this {tree.kind} source"
                       f"{f' ({len(tree.problems)} problems, e.g. {shown})' if shown else ''}; expected "
                       f"{SOURCES[tree.kind].description}")
    selected, missing = select(tree, classes, ids)
    selected.problems.extend(id_problems)
    if not selected.classes:
        raise GozError(f"{images}: none of the requested {'images' if ids is not None else 'classes'} is in this "
                       f"{tree.kind} source ({tree.n_images} images of {len(tree.classes)} classes there, "
                       f"e.g. {tree.classes[0].wnid}); check --classes/--ids")
    return selected, missing
