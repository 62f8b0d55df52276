"""Image counts per class, from any of the places ImageNet-style data lives.

A source is a feature store (`.h5`), an image tree (`ROOT/<wnid>/<image>`), ImageNet's
`ReleaseStatus.xml` (`<synset wnid=… numImages=…/>`) or a URL list (`<wnid>_<id><TAB><url>` per
line). `read_counts` tells them apart by content, so every command takes any of them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from goz.errors import GozError
from goz.names import URL_LINE_KEY, WNID_PATTERN
from goz.store import FeatureStore

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def read_counts(source: str | Path) -> dict[str, int]:
    """Images per wnid from a feature store, an image tree, a ReleaseStatus.xml or a URL list."""
    path = Path(source)
    if path.is_dir():
        return count_image_tree(path)
    if not path.is_file():
        raise GozError(f"{path}: no such image-count source (a feature store, an image folder, "
                       f"a ReleaseStatus.xml or a URL list)")
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(HDF5_SIGNATURE):
        with FeatureStore(path) as store:
            return store.counts()
    if head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"<"):
        return read_release_status(path)
    return read_url_list(path)


def read_release_status(path: str | Path) -> dict[str, int]:
    """`numImages` of every `<synset>` of an ImageNet ReleaseStatus.xml; a repeated wnid keeps its first value.

    Parsed with defusedxml, which refuses entity declarations (a billion-laughs file fails fast).
    """
    path = Path(path)
    counts: dict[str, int] = {}
    try:
        for _, element in iterparse(str(path), events=("end",), forbid_dtd=True):
            if element.tag == "synset":
                wnid, number = element.get("wnid"), element.get("numImages")
                if wnid is None or number is None or not WNID_PATTERN.match(wnid) or not number.isdigit():
                    raise GozError(f"{path}: <synset> without a valid wnid and numImages "
                                   f"(wnid={wnid!r}, numImages={number!r})")
                counts.setdefault(wnid, int(number))
            element.clear()
    except DefusedXmlException as error:
        raise GozError(f"{path}: refused unsafe XML ({type(error).__name__})") from None
    except SyntaxError as error:  # ParseError subclasses SyntaxError and carries the line
        raise GozError(f"{path}: not well-formed XML ({error})") from None
    if not counts:
        raise GozError(f"{path}: no <synset wnid=… numImages=…/> entries")
    return counts


def read_url_list(path: str | Path) -> dict[str, int]:
    """Lines per wnid in an ImageNet URL list (`<wnid>_<imageid><TAB><url>`); read as bytes since
    published lists hold lines that are not valid UTF-8."""
    path = Path(path)
    counts: Counter[str] = Counter()
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            match = URL_LINE_KEY.match(line)
            if match is None:
                raise GozError(f"{path}:{number}: expected '<wnid>_<imageid><TAB><url>', "
                               f"found {line[:80].decode('latin-1')!r}")
            counts[match.group(1).decode()] += 1
    return dict(counts)


def count_image_tree(root: str | Path) -> dict[str, int]:
    """Image files (by suffix) in each `ROOT/<wnid>/` folder; other folders are ignored."""
    root = Path(root)
    return {folder.name: sum(1 for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            for folder in sorted(root.iterdir()) if folder.is_dir() and WNID_PATTERN.match(folder.name)}
