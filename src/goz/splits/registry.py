"""The registry of built-in splits, and the readers of split files: ordered lists of WordNet ids.

Built-in splits are read where `goz fetch splits` puts them under GOZ_HOME (`goz_v1`,
`ilsvrc2012`: published at a pinned commit, checked by sha256; `goz.catalog` says where), or from
the copy of their published file shipped with goz (the ImageNet test sets `2-hops`, `3-hops`,
`all`; see `goz/data/imagenet/SOURCE.md`). `imagenet-graph` is every node of the published ImageNet graph
of the graph baselines (`goz.wordnet.imagenet_graph`), e.g. to embed them all. Any split can also be a text file (one wnid per
line, `#` comments) or a pickled list of str, which is read WITHOUT executing pickle code.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from goz.catalog import (
    IMAGENET_TESTSET_NAMES,
    IMAGENET_TESTSETS,
    SPLIT_ASSETS,
    Asset,
    PackagedFile,
    packaged_path,
    read_testset,
)
from goz.errors import GozError, SplitError
from goz.home import write_text_atomic
from goz.names import WNID_PATTERN


@dataclass(frozen=True)
class BuiltinSplit:
    """A named split: the file holding it (fetched `Asset`, shipped `PackagedFile`, or None when
    `read` computes the list) and how to read the wnid list out of that file."""

    asset: Asset | PackagedFile | None
    read: Callable[[Path | None], list[str]]
    description: str

    def path(self) -> Path | None:
        if isinstance(self.asset, PackagedFile):
            return packaged_path(self.asset)
        if self.asset is None:
            return None
        path = self.asset.local_path
        if not path.is_file():
            raise SplitError(f"{path}: the built-in split is not fetched yet; run `goz fetch splits` (offline: "
                             f"`goz fetch splits --from FOLDER` with a copy of {self.asset.url})")
        return path

    @property
    def fetched(self) -> bool:
        """Whether the split is published separately (`goz fetch splits`) rather than shipped with goz."""
        return isinstance(self.asset, Asset)


def read_pickled_wnids(path: str | Path) -> list[str]:
    """A pickled list of str, read by an unpickler that refuses every global: nothing can run."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            value = _ListOfStrUnpickler(io.BytesIO(handle.read())).load()
    except SplitError:
        raise
    except Exception as error:  # any malformed pickle: truncated, wrong protocol, bad opcode
        raise SplitError(f"{path}: not a readable pickled list of WordNet ids ({error})") from None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SplitError(f"{path}: expected a pickled list of str, found {type(value).__name__}")
    return value


class _ListOfStrUnpickler(pickle.Unpickler):
    # A list of str needs no global; every code-execution path of pickle goes through find_class.
    def find_class(self, module: str, name: str):
        raise SplitError(f"refusing to load pickle that references {module}.{name}: "
                         f"a split file must be a plain list of str")

    def persistent_load(self, pid):
        raise SplitError("refusing to load pickle with persistent ids: a split file must be a plain list of str")


def read_text_wnids(path: str | Path) -> list[str]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise SplitError(f"{path}: not a UTF-8 text file of WordNet ids") from None
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


BUILTIN: dict[str, BuiltinSplit] = {
    "goz_v1": BuiltinSplit(SPLIT_ASSETS["goz_v1"], read_pickled_wnids, "GOZ v1 unseen test classes (500)"),
    "ilsvrc2012": BuiltinSplit(SPLIT_ASSETS["ilsvrc2012"], read_pickled_wnids,
                               "ILSVRC-2012 seen training classes (1000)"),
}


def _read_testset(path: Path, key: str) -> list[str]:
    try:
        return read_testset(path, key)
    except GozError as error:
        raise SplitError(str(error)) from None


for _key, _size in zip(IMAGENET_TESTSET_NAMES, (1549, 7860, 20842)):
    BUILTIN[_key] = BuiltinSplit(IMAGENET_TESTSETS, partial(_read_testset, key=_key),
                                f"ImageNet ZSL test set '{_key}' as published by the graph-ZSL papers ({_size})")


def _imagenet_graph_nodes(_: Path | None) -> list[str]:
    from goz.wordnet.imagenet_graph import (
        imagenet_graph,  # builds on WordNet: only when asked
    )

    return list(imagenet_graph().wnids)


BUILTIN["imagenet-graph"] = BuiltinSplit(
    None, _imagenet_graph_nodes, "every node of the published ImageNet graph of the graph baselines (32,324)")


def load(name_or_path: str | Path) -> list[str]:
    """A built-in split by name, or a split file (text or pickle). Validated: wnids, no duplicates, not empty."""
    key = str(name_or_path)
    if key in BUILTIN:
        split = BUILTIN[key]
        wnids, source = split.read(split.path()), key
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise SplitError(f"unknown split {key!r}: neither a built-in split "
                             f"({', '.join(sorted(BUILTIN))}) nor an existing file")
        if not path.is_file():
            raise SplitError(f"split {key!r} is a folder, not a split file (one wnid per line, or a pickled list)")
        wnids, source = (read_pickled_wnids(path) if _is_pickle(path) else read_text_wnids(path)), str(path)
    if not wnids:
        raise SplitError(f"{source}: the split holds no class")
    return validate(wnids, source)


def validate(wnids: Sequence[str], source: str = "split") -> list[str]:
    bad = [w for w in wnids if not WNID_PATTERN.match(w)]
    if bad:
        raise SplitError(f"{source}: {len(bad)} entries are not WordNet ids (n + 8 digits), e.g. {bad[0]!r}")
    seen: set[str] = set()
    duplicates = [w for w in wnids if w in seen or seen.add(w)]
    if duplicates:
        raise SplitError(f"{source}: duplicate classes, e.g. {duplicates[0]}")
    return list(wnids)


def save(wnids: Sequence[str], path: str | Path, header: str | None = None) -> Path:
    """Writes a text split file, one wnid per line (atomic); `header` becomes a `#` comment line first."""
    return write_text_atomic(path, (f"# {header}\n" if header else "") + "".join(f"{w}\n" for w in validate(wnids)))


def _is_pickle(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(1) == b"\x80" or path.suffix in {".pickle", ".pkl"}
