"""Is this response body really an image? Magic bytes, a full Pillow decode, size limits.

Runs in a worker process (decoding is CPU work that would stall the event loop), and writes the
accepted file there too: to a temporary name in the same file system, then an atomic rename.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from goz.download.defaults import MAX_PIXELS, MIN_SIDE
from goz.errors import GozError

# Formats we keep, by Pillow format name -> file extension.
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}
SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
TEXT_STARTS = (b"<", b"{", b"[")


@dataclass(frozen=True)
class ValidationLimits:
    """What an accepted image must satisfy, and how it is stored."""

    min_side: int = MIN_SIDE
    max_pixels: int = MAX_PIXELS
    resize_shorter_side: int | None = None
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        if self.min_side < 0:
            raise GozError(f"min_side must be at least 0, got {self.min_side}")
        if self.max_pixels < 1:
            raise GozError(f"max_pixels must be at least 1, got {self.max_pixels}")
        if self.resize_shorter_side is not None and self.resize_shorter_side < 1:
            raise GozError(f"resize_shorter_side must be at least 1, got {self.resize_shorter_side}")
        if not 1 <= self.jpeg_quality <= 95:
            raise GozError(f"jpeg_quality must be in 1..95, got {self.jpeg_quality}")


@dataclass(frozen=True)
class Validated:
    """The verdict on one body: outcome `ok` (and where it was written) or why it was rejected."""

    outcome: str
    error: str = ""
    width: int = 0
    height: int = 0
    path: str = ""
    extension: str = ""
    stored: bytes | None = None  # bytes to keep when they differ from the body (resized), webdataset only


def sniff(data: bytes) -> str | None:
    """None when the bytes start like a supported image; else why they are not one."""
    if not data:
        return "empty body"
    if data.startswith(SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return None
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] in TEXT_STARTS or head[:9].lower() == b"<!doctype":
        return "HTML or markup, not an image"
    try:
        head.decode("ascii")
        return "text, not an image"
    except UnicodeDecodeError:
        return "unknown file signature, not an image"


def validate_and_store(data: bytes, destination_stem: str, temporary_dir: str,
                       limits: ValidationLimits) -> Validated:
    """Checks `data`; if it is a valid image, writes it as `<destination_stem>.<ext>` atomically."""
    verdict, stored = validate_image(data, limits)
    if verdict.outcome != "ok":
        return verdict
    destination = Path(f"{destination_stem}.{verdict.extension}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    # In the job folder's tmp/ (cleared by the next run), not beside the images: a kill leaves nothing a reader
    # of the class folders would take for an image.
    temporary = Path(temporary_dir) / f"{destination.name}.{os.getpid()}.part"
    with open(temporary, "wb") as handle:
        handle.write(stored if stored is not None else data)
    os.replace(temporary, destination)
    return replace(verdict, path=str(destination))


def validate_image(data: bytes, limits: ValidationLimits) -> tuple[Validated, bytes | None]:
    """The verdict on `data`, and the bytes to store when they differ from `data` (a resized JPEG)."""
    problem = sniff(data)
    if problem:
        return Validated("not_image", problem), None
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image_format = image.format
                width, height = image.size
                if image_format == "JPEG" and not limits.resize_shorter_side:
                    # Every coefficient is still decoded (a cut or corrupt scan fails), at 1/8 scale (a third less CPU).
                    image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
                image.load()
                stored = _resized(image, limits) if limits.resize_shorter_side else None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        return Validated("too_large", f"decompression bomb: {error}"), None
    except Exception as error:  # Pillow raises many types for corrupt data: OSError, SyntaxError, ValueError...
        return Validated("decode_error", f"{type(error).__name__}: {error}"), None
    if image_format not in EXTENSIONS:
        return Validated("not_image", f"unsupported image format {image_format}"), None
    if min(width, height) < limits.min_side:
        return Validated("too_small", f"{width}x{height} is below the minimum side {limits.min_side}",
                         width, height), None
    if stored is not None:
        return Validated("ok", "", width, height, extension=stored[1]), stored[0]
    return Validated("ok", "", width, height, extension=EXTENSIONS[image_format]), None


def _resized(image: Image.Image, limits: ValidationLimits) -> tuple[bytes, str] | None:
    width, height = image.size
    shorter = min(width, height)
    if shorter <= limits.resize_shorter_side:
        return None
    scale = limits.resize_shorter_side / shorter
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = image.convert("RGB").resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    resized.save(buffer, "JPEG", quality=limits.jpeg_quality)
    return buffer.getvalue(), "jpg"
