"""Published files shipped inside goz (`goz/data/`), so that what they hold is known offline.

Each one is a verbatim copy of a published file, named with where it comes from and its sha256;
`packaged_path` checks the sha256 once per process before anything reads the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from goz.errors import GozError
from goz.home import sha256_of

DGP_REPOSITORY = "https://github.com/cyvius96/DGP/blob/b497ebba0f43b21a77059c7fc3eb4e5d599c5679"


@dataclass(frozen=True)
class PackagedFile:
    """A published file shipped under `goz/data/` (licence and source in the same folder)."""

    relative_path: str  # under goz/data/
    sha256: str
    origin: str         # where it was published


IMAGENET_XML_WNIDS = PackagedFile(
    "imagenet/imagenet-xml-wnids.json", "ba7c775ff5ad1ac616b7feff3790e8406ce6d06478f467fec118d3f0fafb5230",
    f"{DGP_REPOSITORY}/materials/imagenet-xml-wnids.json")
IMAGENET_TESTSETS = PackagedFile(
    "imagenet/imagenet-testsets.json", "3014729204d93f21ff8503a723585ae16131b2825df71e1633fa804f7cab433c",
    f"{DGP_REPOSITORY}/materials/imagenet-testsets.json")


@cache
def packaged_path(file: PackagedFile) -> Path:
    """The file's path inside the installed package, after checking its sha256."""
    path = Path(str(resources.files("goz") / "data" / file.relative_path))
    if not path.is_file():
        raise GozError(f"{path}: missing from the goz installation (reinstall goz; it is a copy of {file.origin})")
    if sha256_of(path) != file.sha256:
        raise GozError(f"{path}: sha256 differs from the published file {file.origin} (edited or damaged; "
                       f"reinstall goz)")
    return path
