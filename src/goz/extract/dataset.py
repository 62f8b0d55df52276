"""Images as the reference read them: image references, Pillow decoding, and a torch Dataset.

Images are named `<wnid>_<imageid>.<ext>` (what `goz download` writes, and the ImageNet archives'
layout) or `ILSVRC2012_val_<imageid>.<ext>` (validation images sorted into class folders, the GOZ
seen-class test samples). Within a class, images are taken in sorted name order, as the
reference's ImageFolder did, whatever source holds them (folder, tars, shards: goz.extract.sources).

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
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from goz.names import IMAGE_FILE_PATTERN

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif"})
# Pillow's own hard limit (twice MAX_IMAGE_PIXELS): above it an image is refused as a decompression bomb.
DEFAULT_MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS
JPEG_MAGIC = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"
_ID_PATTERNS = (IMAGE_FILE_PATTERN,
                re.compile(r"^ILSVRC2012_val_(?P<id>\d+)(?P<ext>\.[^.]+)$"))


@dataclass(frozen=True)
class ImageRef:
    """One image of a source: its id, its name in the skip log, and where its bytes are.

    `name` is relative to IMAGES (`n01440764/n01440764_3.JPEG`, `n01440764.tar/n01440764_3.JPEG`,
    `shard-0000.tar/n01440764_3.jpg`, `train-00000.parquet[41]`); the bytes are `size` bytes at
    `offset` of `file` (a member of an uncompressed tar), the image of row `row` of row group
    `row_group` of the Parquet `file` when `row` is set, or else the whole `file` (`size` -1).
    Plain values only: references travel to DataLoader workers and Ray tasks, which open files themselves.
    """

    image_id: int
    name: str
    file: str
    offset: int = 0
    size: int = -1
    row_group: int = -1
    row: int = -1

    def read(self) -> bytes:
        if self.row >= 0:
            return _parquet_image(self.file, self.row_group, self.row)
        if self.size < 0:
            return Path(self.file).read_bytes()
        data = os.pread(_open_file(self.file), self.size, self.offset)
        if len(data) != self.size:
            raise OSError(f"{self.file}: {len(data)} of {self.size} bytes at offset {self.offset} (truncated archive)")
        return data


_OPEN_FILES: dict[str, int] = {}
_MAX_OPEN_FILES = 64


def _open_file(file: str) -> int:
    """A read-only descriptor per archive, kept open (pread needs no shared file position, so forks may share it)."""
    descriptor = _OPEN_FILES.get(file)
    if descriptor is None:
        if len(_OPEN_FILES) >= _MAX_OPEN_FILES:
            os.close(_OPEN_FILES.pop(next(iter(_OPEN_FILES))))
        descriptor = _OPEN_FILES[file] = os.open(file, os.O_RDONLY)
    return descriptor


# Parquet: one reader per file and the image columns of the row groups read last, per process (a forked
# worker starts afresh). A class's images come in name order, which may jump between its row groups.
_PARQUET_READERS: dict[str, object] = {}
_ROW_GROUPS: OrderedDict[tuple[str, int], object] = OrderedDict()
_ROW_GROUP_CACHE_BYTES = 128 * 2**20
_PARQUET_PROCESS = [0]


def _parquet_image(file: str, row_group: int, row: int) -> bytes:
    """The encoded image of one row: the `image` column's `bytes` (Hugging Face's Image feature) or the column
    itself when it is plain binary. Only the image column of the row group is read, and kept for its neighbours."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if _PARQUET_PROCESS[0] != os.getpid():
        _PARQUET_READERS.clear()
        _ROW_GROUPS.clear()
        _PARQUET_PROCESS[0] = os.getpid()
    key = (file, row_group)
    images = _ROW_GROUPS.get(key)
    try:
        if images is None:
            reader = _PARQUET_READERS.get(file)
            if reader is None:
                if len(_PARQUET_READERS) >= _MAX_OPEN_FILES:
                    _PARQUET_READERS.pop(next(iter(_PARQUET_READERS)))
                reader = _PARQUET_READERS[file] = pq.ParquetFile(file)
            struct = pa.types.is_struct(reader.schema_arrow.field("image").type)
            table = reader.read_row_group(row_group, columns=["image.bytes" if struct else "image"], use_threads=False)
            images = table.column(0).combine_chunks()
            if struct:
                images = images.field("bytes")
            _ROW_GROUPS[key] = images
            while len(_ROW_GROUPS) > 1 and sum(a.nbytes for a in _ROW_GROUPS.values()) > _ROW_GROUP_CACHE_BYTES:
                _ROW_GROUPS.popitem(last=False)
        _ROW_GROUPS.move_to_end(key)
        data = images[row].as_py()
    except (pa.ArrowException, OSError, KeyError, IndexError) as error:
        raise OSError(f"{file}: row {row} of row group {row_group}: {error}") from None
    if data is None:
        raise SkippedImage("no image bytes in this row (the image column holds only a path)")
    return data


@dataclass
class ClassImages:
    """One class: its wnid and its conforming images, in sorted name order."""

    wnid: str
    files: list[ImageRef]


@dataclass
class ImageTree:
    """The scan of an image source: classes in sorted order, and what was not understood."""

    location: str
    classes: list[ClassImages]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (name relative to the source, reason)
    kind: str = "folder"

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


@contextlib.contextmanager
def _quiet_pillow():
    """Our size check replaces Pillow's bomb warning; palette-transparency warnings are noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


class SkippedImage(Exception):
    """An image that cannot be used; the message is the reason recorded in the skip log."""


def load_rgb(path: Path | BinaryIO | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decodes like the reference (Pillow, convert("RGB"), no EXIF rotation), or raises SkippedImage."""
    if (isinstance(path, Path) and path.stat().st_size == 0) or (isinstance(path, bytes) and not path):
        raise SkippedImage("empty file (0 bytes)")
    if isinstance(path, bytes):
        path = io.BytesIO(path)
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

    def __init__(self, images: list[ImageRef], transform: Callable, max_pixels: int = DEFAULT_MAX_PIXELS,
                 raw_jpeg: bool = False):
        self.images = images
        self.transform = transform
        self.max_pixels = max_pixels
        self.raw_jpeg = raw_jpeg

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, torch.Tensor | None, str | None]:
        """(index, pixels, raw jpeg bytes, skip reason); exactly one of the last three is set."""
        try:
            data = self.images[index].read()
            if self.raw_jpeg and device_decodable(data, self.max_pixels):
                return index, None, torch.frombuffer(bytearray(data), dtype=torch.uint8), None
            return index, self.transform(load_rgb(data, self.max_pixels)), None, None
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
