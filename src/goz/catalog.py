"""What is published, and where each published file lands: the one owner of those facts.

The GOZ repository and the commit goz pins; the split files with their checksums; the feature
stores (Google Drive ids), GloVe, the original benchmark's pickled tables (git blob ids); the
published files shipped inside goz (`goz/data/`, checked by sha256); and the paths each one has
under GOZ_HOME (`features/`, `splits/`, `glove/`, `published/`, `imagenet/`). Fetching and
converting are `goz.assets`'s work; every other stage only reads here where a file is, and says
`goz fetch ...` when it is not there yet (as torchvision datasets do with `download=False`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from goz.errors import GozError
from goz.home import data_home, sha256_of

GOZ_COMMIT = "d53cf286696301f4e0b3811c3828281368f99cbd"
GOZ_REPOSITORY = f"https://raw.githubusercontent.com/TristHas/GOZ/{GOZ_COMMIT}"
DGP_COMMIT = "b497ebba0f43b21a77059c7fc3eb4e5d599c5679"
DGP_REPOSITORY = f"https://github.com/cyvius96/DGP/blob/{DGP_COMMIT}"

# Folders under GOZ_HOME, one per kind of published file.
FEATURES_FOLDER = "features"
SPLITS_FOLDER = "splits"
GLOVE_FOLDER = "glove"
PUBLISHED_FOLDER = "published"  # converted tables; the downloaded pickles in original/
IMAGENET_FOLDER = "imagenet"


@dataclass(frozen=True)
class Asset:
    """A published file: where it lives, where goz keeps it under GOZ_HOME, and its checksum (None: not pinned)."""

    url: str
    relative_path: str
    sha256: str | None = None

    @property
    def local_path(self) -> Path:
        return data_home() / self.relative_path


# -- splits ---------------------------------------------------------------------------------------------------

SPLIT_ASSETS: dict[str, Asset] = {
    "goz_v1": Asset(f"{GOZ_REPOSITORY}/data/splits/goz_v1", f"{SPLITS_FOLDER}/goz_v1.pickle",
                    "d24d4270764035508a24e67b9c3cd03b005dd5a429e05f1dda62034c967e32bf"),
    "ilsvrc2012": Asset(f"{GOZ_REPOSITORY}/data/splits/train", f"{SPLITS_FOLDER}/ilsvrc2012_train.pickle",
                        "ac621549bfd110aded32fb0ef61175e5260f3a791cf0fd890c63906e4aad712f"),
}

# -- feature stores ---------------------------------------------------------------------------------------------

FEATURE_STORES = {  # file name under features/ -> (Google Drive id, the name the seed document gives it)
    "train_features.h5": ("1_XFAswLqvcH2FkO_aa3CDpiRTcUXM1gm", "train.h5"),
    "test_features.h5": ("1Ru3nd9ZsHF_TzPorLackI83dWfe98u4s", "test.h5"),
}


def feature_store_path(name: str) -> Path:
    """Where `goz fetch features` puts the store `name` (train_features.h5, test_features.h5)."""
    return data_home() / FEATURES_FOLDER / name


# -- GloVe --------------------------------------------------------------------------------------------------------

GLOVE_URL = "https://nlp.stanford.edu/data/{name}.zip"
GLOVE_MEMBERS = {
    "glove.6B": tuple(f"glove.6B.{d}d.txt" for d in (50, 100, 200, 300)),
    "glove.42B.300d": ("glove.42B.300d.txt",),
    "glove.840B.300d": ("glove.840B.300d.txt",),
    "glove.twitter.27B": tuple(f"glove.twitter.27B.{d}d.txt" for d in (25, 50, 100, 200)),
}
DEFAULT_GLOVE = "glove.6B"


def glove_path(name: str = DEFAULT_GLOVE) -> Path:
    """Where `goz fetch glove --name NAME` puts the GloVe zip."""
    return data_home() / GLOVE_FOLDER / f"{name}.zip"


# -- the ImageNet fall-2011 URL list -------------------------------------------------------------------------------

IMAGENET_URLS_URL = "http://image-net.org/imagenet_data/urls/imagenet_fall11_urls.tgz"
IMAGENET_URLS_MEMBER = "fall11_urls.txt"


def imagenet_urls_path() -> Path:
    return data_home() / IMAGENET_FOLDER / IMAGENET_URLS_MEMBER


# -- the original benchmark's pickled tables -------------------------------------------------------------------------

@dataclass(frozen=True)
class PublishedTable:
    """One published pickle: its path in the GOZ repository, its git blob id, what it holds."""

    name: str             # gcn_6, gcn_2, adgpm, glove: also the converted file's stem
    repository_path: str
    git_blob_id: str
    kind: str             # "semantics" or "classifiers"

    @property
    def url(self) -> str:
        return f"{GOZ_REPOSITORY}/{self.repository_path}"


PUBLISHED_TABLES: dict[str, PublishedTable] = {table.name: table for table in (
    PublishedTable("glove", "data/semantics/glove", "c72df6b84aceaa7b46d2581dfbb0852095eab19b", "semantics"),
    PublishedTable("gcn_6", "data/models/gcn_6", "0e5a789bedcaaff04d8ecf6e69618df1856ff4cd", "classifiers"),
    PublishedTable("gcn_2", "data/models/gcn_2", "5bc7e9c17a606e0d3f42bb1e26937f02d4d5d4fd", "classifiers"),
    PublishedTable("adgpm", "data/models/adgpm", "b2383b6236cd098dbb840c58a98c91737c15309e", "classifiers"),
)}


def published_table_path(name: str) -> Path:
    """Where `goz fetch published` puts the converted table `name` (glove, gcn_6, gcn_2, adgpm)."""
    return data_home() / PUBLISHED_FOLDER / f"{name}.h5"


def published_original_path(name: str) -> Path:
    """Where `goz fetch published` keeps the downloaded pickle `name`."""
    return data_home() / PUBLISHED_FOLDER / "original" / name


# -- files shipped inside goz ------------------------------------------------------------------------------------------

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
IMAGENET_SPLIT = PackagedFile(
    "imagenet/imagenet-split.json", "5ef05994c73485529b7e6a556915c642e1bd3252e419e43df4ccbd8a27c0f454",
    f"{DGP_REPOSITORY}/materials/imagenet-split.json")  # `train` + `test` in make_induced_graph.py's order
CLIP_IMAGENET_CLASSNAMES = PackagedFile(
    "clip/imagenet-classnames.tsv", "2bcfd63349c6beee07f8007783362c0c681d15943b5a9a5dd93c3e113c60d8b2",
    "IMAGENET_CLASSNAMES of src/open_clip/zero_shot_metadata.py, open_clip_torch 3.3.0 (from OpenAI CLIP's "
    "notebooks/Prompt_Engineering_for_ImageNet.ipynb), paired with the sorted ILSVRC-2012 wnids")
IMAGENET_TESTSET_NAMES = ("2-hops", "3-hops", "all")  # the sets the papers report on; `train` is ILSVRC-2012


@cache
def packaged_path(file: PackagedFile) -> Path:
    """The file's path inside the installed package, after checking its sha256 (once per process)."""
    path = Path(str(resources.files("goz") / "data" / file.relative_path))
    if not path.is_file():
        raise GozError(f"{path}: missing from the goz installation (reinstall goz; it is a copy of {file.origin})")
    if sha256_of(path) != file.sha256:
        raise GozError(f"{path}: sha256 differs from the published file {file.origin} (edited or damaged; "
                       f"reinstall goz)")
    return path


def read_testset(path: str | Path, key: str) -> list[str]:
    """One list of an ImageNet test-sets JSON (keys `train`, `2-hops`, `3-hops`, `all`)."""
    try:
        sets = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GozError(f"{path}: not the ImageNet test-sets JSON ({error})") from None
    value = sets.get(key) if isinstance(sets, dict) else None
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise GozError(f"{path}: no list of wnids under key {key!r}")
    return value


def imagenet_testset(key: str) -> list[str]:
    """A list of the packaged ImageNet test sets (DGP's `imagenet-testsets.json`): `train`, `2-hops`, ..."""
    return read_testset(packaged_path(IMAGENET_TESTSETS), key)


def imagenet_split(key: str) -> list[str]:
    """DGP's `imagenet-split.json` list `train` or `test` (the 20,842 classes of `all`, in the graph's order)."""
    return read_testset(packaged_path(IMAGENET_SPLIT), key)


@cache
def imagenet_xml_wnids() -> tuple[str, ...]:
    """The 32,295 synsets of ImageNet's structure_released.xml, in the published file's order."""
    return tuple(json.loads(packaged_path(IMAGENET_XML_WNIDS).read_text(encoding="utf-8")))
