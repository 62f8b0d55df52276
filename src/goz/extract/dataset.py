"""Image folders as the reference read them: the tree scan, Pillow decoding, and a torch Dataset.

The tree is `IMAGES/<wnid>/<file>`, files named `<wnid>_<imageid>.<ext>` (what `goz download`
writes, and the ILSVRC-2012 training layout) or `ILSVRC2012_val_<imageid>.<ext>` (validation
images sorted into class folders, the GOZ seen-class test samples). Within a class, files are
taken in sorted name order, as the reference's ImageFolder did. Hidden entries (a leading dot,
like `goz download`'s `.goz/` bookkeeping) are ignored.

Decoding follows the reference (`Image.open(f).convert("RGB")`): EXIF orientation is NOT applied
(the reference did not apply it, so exact features mean not applying it); CMYK, grayscale,
palette and alpha images are converted by Pillow; an animated image gives its first frame. One
deliberate difference: 16-bit grayscale images (which Pillow's convert clips to white) are scaled
to 8 bits first; no ImageNet image is 16-bit.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from goz.errors import GozError
from goz.names import IMAGE_FILE_PATTERN, WNID_PATTERN

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif"})
# Pillow's own hard limit (twice MAX_IMAGE_PIXELS): above it an image is refused as a decompression bomb.
DEFAULT_MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS
JPEG_MAGIC = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"
_ID_PATTERNS = (IMAGE_FILE_PATTERN,
                re.compile(r"^ILSVRC2012_val_(?P<id>\d+)(?P<ext>\.[^.]+)$"))


@dataclass(frozen=True)
class ImageFile:
    path: Path
    image_id: int


@dataclass
class ClassImages:
    """One class folder: its wnid and its conforming image files, in sorted name order."""

    wnid: str
    files: list[ImageFile]


@dataclass
class ImageTree:
    """The scan of an image folder: classes in sorted order, and what was not understood."""

    root: Path
    classes: list[ClassImages]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path relative to root, reason)

    @property
    def n_images(self) -> int:
        return sum(len(c.files) for c in self.classes)


def parse_image_name(wnid: str, name: str) -> int | str:
    """The image id encoded in a file name of class `wnid`, or the reason the name does not conform."""
    for pattern in _ID_PATTERNS:
        match = pattern.match(name)
        if match:
            if match.groupdict().get("wnid", wnid) != wnid:
                return f"file name of class {match['wnid']} in the folder of {wnid}"
            if match["ext"].lower() not in IMAGE_EXTENSIONS:
                return f"not an image extension ({match['ext']})"
            return int(match["id"])
    return "file name is not <wnid>_<imageid>.<ext> nor ILSVRC2012_val_<imageid>.<ext>"


def scan_tree(root: str | Path) -> ImageTree:
    """Lists `root/<wnid>/` folders and their image files; non-conforming entries become problems."""
    root = Path(root)
    if not root.exists():
        raise GozError(f"{root}: no such image folder")
    if not root.is_dir():
        raise GozError(f"{root} is a file; IMAGES is a folder with one sub-folder per WordNet id")
    classes, problems = [], []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if not entry.is_dir() or entry.name.startswith("."):  # e.g. `goz download`'s bookkeeping in .goz/
            continue
        if not WNID_PATTERN.match(entry.name):
            problems.append((entry.name + "/", "folder name is not a WordNet id (n + 8 digits)"))
            continue
        files, seen = [], {}
        for name in sorted(n for n in os.listdir(entry.path) if not n.startswith(".")):
            relative = f"{entry.name}/{name}"
            if not os.path.isfile(os.path.join(entry.path, name)):
                problems.append((relative, "not a regular file"))
                continue
            parsed = parse_image_name(entry.name, name)
            if isinstance(parsed, str):
                problems.append((relative, parsed))
            elif parsed in seen:
                problems.append((relative, f"duplicate image id {parsed} (also {seen[parsed]})"))
            else:
                seen[parsed] = name
                files.append(ImageFile(Path(entry.path) / name, parsed))
        if files:
            classes.append(ClassImages(entry.name, files))
        else:
            problems.append((entry.name + "/", "no image file with a conforming name"))
    return ImageTree(root, classes, problems)


@contextlib.contextmanager
def _quiet_pillow():
    """Our size check replaces Pillow's bomb warning; palette-transparency warnings are noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


class SkippedImage(Exception):
    """An image that cannot be used; the message is the reason recorded in the skip log."""


def load_rgb(path: Path | BinaryIO, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decodes like the reference (Pillow, convert("RGB"), no EXIF rotation), or raises SkippedImage."""
    if isinstance(path, Path) and path.stat().st_size == 0:
        raise SkippedImage("empty file (0 bytes)")
    try:
        with _quiet_pillow(), Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise SkippedImage(f"decompression bomb guard: {width}x{height} pixels > {max_pixels}")
            if image.mode.startswith("I;16"):
                pixels = np.asarray(image, dtype=np.uint16)
                image = Image.fromarray((pixels >> 8).astype(np.uint8), mode="L")
            return image.convert("RGB")
    except Image.DecompressionBombError as error:
        raise SkippedImage(f"decompression bomb guard: {error}") from None
    except UnidentifiedImageError:
        raise SkippedImage("not a recognised image format") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise SkippedImage(f"corrupt or truncated image: {error}") from None


def device_decodable(data: bytes, max_pixels: int) -> bool:
    """A complete RGB or grayscale JPEG within the pixel limit (header read only): what the device decodes.

    Everything else (CMYK, truncated, other formats) goes through Pillow, which handles or rejects it.
    """
    if not (data.startswith(JPEG_MAGIC) and data.endswith(JPEG_END)):
        return False
    try:
        with _quiet_pillow(), Image.open(io.BytesIO(data)) as image:
            return image.format == "JPEG" and image.mode in ("RGB", "L") and image.width * image.height <= max_pixels
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False


class ImageDataset(torch.utils.data.Dataset):
    """Samples decoded and preprocessed in DataLoader workers; failures travel as reasons, not exceptions.

    With `raw_jpeg`, JPEG files are returned undecoded (uint8 bytes) for decoding on the device.
    """

    def __init__(self, paths: list[Path], transform: Callable, max_pixels: int = DEFAULT_MAX_PIXELS,
                 raw_jpeg: bool = False):
        self.paths = paths
        self.transform = transform
        self.max_pixels = max_pixels
        self.raw_jpeg = raw_jpeg

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, torch.Tensor | None, str | None]:
        """(index, pixels, raw jpeg bytes, skip reason); exactly one of the last three is set."""
        path = self.paths[index]
        try:
            if self.raw_jpeg:
                data = path.read_bytes()
                if device_decodable(data, self.max_pixels):
                    return index, None, torch.frombuffer(bytearray(data), dtype=torch.uint8), None
            return index, self.transform(load_rgb(path, self.max_pixels)), None, None
        except SkippedImage as skip:
            return index, None, None, str(skip)
        except OSError as error:
            return index, None, None, f"unreadable file: {error}"


@dataclass
class LoadedBatch:
    """A collated batch: decoded pixels with their indices, undecoded JPEGs with theirs, and failures."""

    indices: torch.Tensor
    pixels: torch.Tensor
    jpeg_indices: list[int]
    jpegs: list[torch.Tensor]
    failures: list[tuple[int, str]]

    def pin_memory(self) -> LoadedBatch:
        self.pixels = self.pixels.pin_memory()
        return self


def collate(items: list[tuple[int, torch.Tensor | None, torch.Tensor | None, str | None]]) -> LoadedBatch:
    decoded = [(index, pixels) for index, pixels, _, _ in items if pixels is not None]
    return LoadedBatch(
        indices=torch.tensor([index for index, _ in decoded], dtype=torch.int64),
        pixels=torch.stack([pixels for _, pixels in decoded]) if decoded else torch.empty(0, dtype=torch.uint8),
        jpeg_indices=[index for index, _, raw, _ in items if raw is not None],
        jpegs=[raw for _, _, raw, _ in items if raw is not None],
        failures=[(index, reason) for index, _, _, reason in items if reason is not None],
    )
