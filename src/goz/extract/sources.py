"""Image sources: where researchers keep ImageNet images, read in place, never unpacked to disk.

One small interface (`ImageSource.scan` -> an `ImageTree` of classes, image references and
problems) and a registry, chosen from the IMAGES path (timm's `create_reader` idea):

- `folder`: `IMAGES/<wnid>/<wnid>_<id>.<ext>` (what `goz download` writes);
- `synset-tars`: a folder of `<wnid>.tar` holding `<wnid>_<id>.JPEG` (the ImageNet-21K releases,
  fall 2011 and winter 2021);
- `tar-of-tars`: one `.tar` of `<wnid>.tar` (the ILSVRC-2012 training archive);
- `webdataset`: WebDataset shards, one `.tar`, a folder of them or a brace pattern
  (`shards-{0000..0099}.tar`): members sharing a key, an image (`jpg`, `jpeg`, `png`, `webp`)
  and `cls` and/or `json`; the key is `<wnid>_<id>` (`goz download --format webdataset`), or the
  json names the image (`filename` `<wnid>_<id>.JPEG`, or `wnid` and `id`), as timm's
  imagenet-22k-wds shards do.

Tars are indexed by reading their headers only (tarfile seeks over the data); an image is then
read as `size` bytes at `offset` (os.pread), so a selection of 50 images per class reads those
images only, batches hold one class each, and the Ray engine splits the work by tar or shard.
webdataset's own iterator reads a shard front to back, which fits training, not this random access;
its key convention (`base_plus_ext`) and brace expansion are used. Compressed tars (`.tar.gz`)
cannot be read by offset and are refused with the fix.

Every image gets the id of its `<wnid>_<id>` name, so every source gives the same store as a
folder tree holding the same files. What is not understood is recorded as a problem (the skip
log's `scan` rows): a member that climbs out of the archive (`../`), a truncated tar, a sample
whose `cls` or json disagrees with its key, a duplicate id.
"""

from __future__ import annotations

import json
import os
import tarfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO, ClassVar

from goz.errors import GozError
from goz.extract.dataset import IMAGE_EXTENSIONS, ClassImages, ImageRef, ImageTree, parse_image_name
from goz.names import IMAGE_FILE_PATTERN, IMAGE_KEY_PATTERN, WNID_PATTERN, is_wnid, parse_image_key

# Image members of a WebDataset sample, in order of preference when a sample has several.
SAMPLE_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
TAR_HINT = ("IMAGES is a folder with one sub-folder per WordNet id, a folder of <wnid>.tar, the ILSVRC-2012 "
            "training tar (a tar of <wnid>.tar), or WebDataset shards (a .tar, a folder of them, or a brace "
            "pattern such as shards-{0000..0099}.tar)")


class ImageSource(ABC):
    """A place holding images of WordNet classes. `scan()` lists them; nothing is decoded."""

    kind: ClassVar[str]
    description: ClassVar[str]

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


def open_source(location: str | Path, kind: str | None = None) -> ImageSource:
    """The source at `location`: of `kind`, or the first registered kind that recognises it."""
    location = str(location)
    if kind is not None:
        if kind not in SOURCES:
            raise GozError(f"unknown image source {kind!r}; choose one of {', '.join(SOURCES)}")
        return SOURCES[kind](location)
    if not _is_brace_pattern(location):
        path = Path(location)
        if not path.exists():
            raise GozError(f"{location}: no such image folder or archive; {TAR_HINT}")
        if path.is_file() and not tarfile.is_tarfile(path):
            raise GozError(f"{location} is a file, not a tar archive; {TAR_HINT}")
    for source in SOURCES.values():
        if source.detect(location):
            return source(location)
    raise GozError(f"{location}: not an image source; {TAR_HINT}")


def scan_images(location: str | Path, kind: str | None = None) -> ImageTree:
    """The classes and images of the source at `location` (see `open_source`)."""
    return open_source(location, kind).scan()


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
                                  or not any(e.name.endswith(".tar") for e in os.scandir(path)))

    def scan(self) -> ImageTree:
        root = Path(self.location)
        if not root.is_dir():
            raise GozError(f"{root} is not a folder; {TAR_HINT}")
        classes, problems = [], []
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            if entry.name.startswith("."):  # e.g. `goz download`'s bookkeeping in .goz/
                continue
            if not entry.is_dir():
                if entry.name.endswith(".tar"):
                    problems.append((entry.name, "a tar beside class folders: read only with the folders moved away"))
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
    whose name climbs out (`../`, absolute) or whose data runs past the end is a problem; a
    truncated or unreadable tar ends with a problem after the members read so far.
    """
    if length is None:
        length = os.path.getsize(file)
    count = 0
    try:
        with tarfile.open(file if fileobj is None else None, mode="r:", fileobj=fileobj) as tar:
            for member in tar:
                if not member.isfile():
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


def _is_brace_pattern(location: str) -> bool:
    return ("{" in location and "}" in location) or "::" in location


def expand_shards(location: str) -> list[str]:
    """The shard files of a brace pattern, a folder of .tar, or one .tar; GozError when none exists."""
    if _is_brace_pattern(location):
        from webdataset.shardlists import expand_urls

        names = expand_urls(location)  # webdataset's own: braces, and `::` between patterns
        present = [name for name in names if os.path.isfile(name)]
        if not present:
            raise GozError(f"{location}: the brace pattern names {len(names)} files, none exists "
                           f"(e.g. {names[0]}); check the pattern and the folder")
        return present
    path = Path(location)
    if path.is_dir():
        return sorted(str(p) for p in path.glob("*.tar") if not p.name.startswith("."))
    return [location]


@register
class WebDatasetShards(ImageSource):
    kind = "webdataset"
    description = "WebDataset shards: a .tar, a folder of .tar, or shards-{0000..0099}.tar"

    @classmethod
    def detect(cls, location: str) -> bool:
        if _is_brace_pattern(location):
            return True
        path = Path(location)
        if path.is_dir():
            return any(e.is_file() and e.name.endswith(".tar") for e in os.scandir(path))
        return path.is_file()

    def scan(self) -> ImageTree:
        from webdataset.tariterators import base_plus_ext

        shards = expand_shards(self.location)
        common = os.path.commonpath([os.path.dirname(os.path.abspath(s)) for s in shards])
        problems: list[tuple[str, str]] = []
        per_class: dict[str, list[tuple[str, str, int, int, str]]] = {}
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
                samples.setdefault(key, {})[extension.lower()] = (offset, size, name)
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
                    (f"{wnid}_{image_id}.{name.rsplit('.', 1)[-1]}", os.path.abspath(shard), offset, size, where))
        classes = [ClassImages(wnid, [ImageRef(int(IMAGE_FILE_PATTERN.match(n)["id"]), where, f, o, s)
                                      for n, f, o, s, where in sorted(per_class[wnid])])
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


def _json_identity(meta: dict) -> tuple[str, int] | None:
    filename = meta.get("filename")
    if isinstance(filename, str):
        match = IMAGE_FILE_PATTERN.match(_basename(filename))
        if match:
            return match["wnid"], int(match["id"])
    wnid, image_id = meta.get("wnid"), meta.get("id")
    if is_wnid(wnid) and (isinstance(image_id, int) or (isinstance(image_id, str) and image_id.isdigit())):
        return wnid, int(image_id)
    key = meta.get("key") or meta.get("__key__")
    return parse_image_key(key) if isinstance(key, str) else None


def _read_member(file: str, member: tuple[int, int, str]) -> bytes:
    offset, size, _ = member
    return ImageRef(0, "", file, offset, size).read()


# -- selection -----------------------------------------------------------------------------------


def read_image_keys(path: str | Path) -> dict[str, set[int]]:
    """{wnid: ids} of a file of `<wnid>_<id>` keys: a URL list (`<wnid>_<id><TAB><url>`) or one key a line.

    Blank lines and `#` comments are ignored; GozError if the file is missing or holds no key.
    """
    path = Path(path)
    if not path.is_file():
        raise GozError(f"{path}: no such list of images (a URL list or a file of <wnid>_<id> keys)")
    keys: dict[str, set[int]] = {}
    malformed = 0
    with open(path, "rb") as handle:
        for raw in handle:
            text = raw.decode("utf-8", errors="replace").strip()
            if not text or text.startswith("#"):
                continue
            match = IMAGE_KEY_PATTERN.match(text.split(None, 1)[0])
            if match is None:
                malformed += 1
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
