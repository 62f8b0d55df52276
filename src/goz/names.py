"""The naming rules of ImageNet data, owned here: WordNet ids and `<wnid>_<id>` image keys.

A WordNet noun id is `n` + 8 digits (`n02084071`). An image of the URL lists, of the ImageNet
archives and of a goz download is named `<wnid>_<id>` (`n02084071_1234`), plus an extension on disk.
Every other module builds its patterns from the fragments below.
"""

from __future__ import annotations

import re

WNID_REGEX = r"n\d{8}"
IMAGE_ID_REGEX = r"\d{1,18}"  # an int64, as the store's `idx` datasets hold

WNID_PATTERN = re.compile(rf"^{WNID_REGEX}$")
IMAGE_KEY_PATTERN = re.compile(rf"^(?P<wnid>{WNID_REGEX})_(?P<id>{IMAGE_ID_REGEX})$")
IMAGE_FILE_PATTERN = re.compile(rf"^(?P<wnid>{WNID_REGEX})_(?P<id>{IMAGE_ID_REGEX})(?P<ext>\.[^.]+)$")
# Byte patterns for scanning URL lists fast: a line starts with `<wnid>_<id>` then a tab or space.
URL_LINE_KEY = re.compile(rb"^(" + WNID_REGEX.encode() + rb")_(" + IMAGE_ID_REGEX.encode() + rb")[\t ]")


def is_wnid(text: object) -> bool:
    return isinstance(text, str) and WNID_PATTERN.match(text) is not None


def image_key(wnid: str, image_id: int | str) -> str:
    """`<wnid>_<id>`: the name of an image in the URL lists, the archives and a goz download."""
    return f"{wnid}_{image_id}"


def parse_image_key(key: str) -> tuple[str, int] | None:
    """(wnid, id) of a `<wnid>_<id>` key, or None if `key` is not one."""
    match = IMAGE_KEY_PATTERN.match(key)
    return (match["wnid"], int(match["id"])) if match else None
