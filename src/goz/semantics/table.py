"""The class semantics table: wnid -> vector, the one format every class embedding is stored in.

Stored as HDF5 (`wnids`: utf-8 strings, `vectors`: float32 (C, d), attributes saying how it was
made) or `.npz` with the same two arrays. Classes without a vector are simply absent; `select`
reports them so callers can drop them from training and from the candidate set, as the original
benchmark did.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from goz.errors import GozError
from goz.home import atomic_path

log = logging.getLogger(__name__)


@dataclass
class SemanticsTable:
    wnids: list[str]
    vectors: np.ndarray  # (C, d) float32
    attrs: dict = field(default_factory=dict)

    def __post_init__(self):
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        self._row = index_wnid_rows("semantics", self.wnids, vectors=self.vectors)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def __contains__(self, wnid: object) -> bool:
        return wnid in self._row

    def __len__(self) -> int:
        return len(self.wnids)

    def vector(self, wnid: str) -> np.ndarray:
        return self.vectors[self._row[wnid]]

    def fingerprint(self) -> str:
        """sha256 of the classes and their vectors (what a result depends on; not the attributes)."""
        digest = hashlib.sha256("\n".join(self.wnids).encode())
        digest.update(np.ascontiguousarray(self.vectors, dtype="<f4").tobytes())
        return digest.hexdigest()

    def normalized(self) -> SemanticsTable:
        """A copy with every vector scaled to unit L2 norm (zero vectors stay zero)."""
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        return SemanticsTable(list(self.wnids), self.vectors / np.maximum(norms, 1e-12), dict(self.attrs))

    def select(self, wnids: Sequence[str], role: str = "classes") -> tuple[list[str], np.ndarray]:
        """(kept wnids in order, their vectors); classes without a vector are dropped with a warning."""
        kept = [w for w in wnids if w in self._row]
        missing = [w for w in wnids if w not in self._row]
        if missing:
            log.warning("%d of %d %s have no class vector and are dropped: %s%s", len(missing), len(wnids),
                        role, ", ".join(missing[:10]), " ..." if len(missing) > 10 else "")
        return kept, self.vectors[[self._row[w] for w in kept]] if kept else np.zeros((0, self.dim), np.float32)

    def duplicate_vectors(self, wnids: Sequence[str] | None = None, tolerance: float = 1e-5) -> list[list[str]]:
        """Groups of classes among `wnids` (default: all; classes without a vector are ignored) that share
        one vector: ||a - b|| <= tolerance * max(||a||, ||b||), so equal texts embedded in different
        batches count too. A model cannot tell the classes of a group apart. Groups in `wnids` order.

        >>> table.duplicate_vectors(["n02012849", "n03126707", "n01440764"])  # both "crane"
        [['n02012849', 'n03126707']]
        """
        wnids = [w for w in dict.fromkeys(self.wnids if wnids is None else wnids) if w in self._row]
        if len(wnids) < 2:
            return []
        vectors = self.vectors[[self._row[w] for w in wnids]].astype(np.float64)
        norms = np.linalg.norm(vectors, axis=1)
        # Two vectors within d of each other project within d on any unit direction: only neighbours in the
        # sorted projection can match, so the pairs compared are few (not all C^2).
        direction = np.random.default_rng(0).standard_normal(vectors.shape[1])
        direction /= max(np.linalg.norm(direction), 1e-300)
        keys = vectors @ direction
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        ends = np.searchsorted(sorted_keys, sorted_keys + tolerance * norms.max(), side="right")
        parent = np.arange(len(wnids))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i
        for position in np.flatnonzero(ends > np.arange(len(wnids)) + 1):
            i, candidates = order[position], order[position + 1:ends[position]]
            distances = np.linalg.norm(vectors[candidates] - vectors[i], axis=1)
            for j in candidates[distances <= tolerance * np.maximum(norms[candidates], norms[i])]:
                parent[root(j)] = root(i)
        groups: dict[int, list[str]] = {}
        for index, wnid in enumerate(wnids):
            groups.setdefault(root(index), []).append(wnid)
        return [group for group in groups.values() if len(group) > 1]

    def warn_duplicate_vectors(self, wnids: Sequence[str] | None = None, role: str = "classes") -> list[list[str]]:
        """`duplicate_vectors(wnids)`, each group named in one logged warning."""
        groups = self.duplicate_vectors(wnids)
        if groups:
            shown = "; ".join(" = ".join(group) for group in groups[:20])
            log.warning("%d group(s) of %s share one class vector, so no model can tell them apart (e.g. two "
                        "classes with the same name): %s%s", len(groups), role, shown,
                        f"; ... ({len(groups) - 20} more)" if len(groups) > 20 else "")
        return groups

    def save(self, path: str | Path) -> Path:
        """Writes HDF5 (or .npz by suffix) atomically."""
        return write_wnid_arrays(path, self.wnids, {"vectors": self.vectors}, self.attrs)


def load(path: str | Path) -> SemanticsTable:
    path = Path(path)
    if not path.exists():
        raise GozError(f"{path}: no such semantics table (build one with `goz embed`)")
    wnids, arrays, attrs = read_wnid_arrays(path, ("vectors",), "a semantics table")
    return SemanticsTable(wnids, arrays["vectors"], attrs)


def index_wnid_rows(what: str, wnids: Sequence[str], **arrays: np.ndarray) -> dict[str, int]:
    """wnid -> row of a table of rows named by wnid (semantics and classifier tables), checked: every array
    has one row per wnid (`vectors`/`weights` two-dimensional), no wnid twice, only finite values."""
    for name, values in arrays.items():
        if values.ndim != (1 if name == "bias" else 2) or len(values) != len(wnids):
            shapes = ", ".join(f"{key} {value.shape}" for key, value in arrays.items())
            raise GozError(f"{what}: {len(wnids)} wnids but {shapes}")
    if len(set(wnids)) != len(wnids):
        raise GozError(f"{what}: duplicate wnids in the table")
    if not all(np.isfinite(values).all() for values in arrays.values()):
        raise GozError(f"{what}: the table holds NaN or infinite values")
    return {wnid: row for row, wnid in enumerate(wnids)}


def write_wnid_arrays(path: str | Path, wnids: Sequence[str], arrays: dict[str, np.ndarray], attrs: dict) -> Path:
    """A table of rows named by wnid, atomically: HDF5 (`wnids` utf-8 strings, the arrays, attributes) or
    `.npz` by suffix (no attributes). The format of semantics and classifier tables."""
    path = Path(path)
    with atomic_path(path) as temporary:
        if path.suffix == ".npz":
            with open(temporary, "wb") as handle:
                np.savez(handle, wnids=np.array(list(wnids)), **arrays)
        else:
            with h5py.File(temporary, "w") as h5:
                h5.create_dataset("wnids", data=np.array(list(wnids), dtype=h5py.string_dtype("utf-8")))
                for name, values in arrays.items():
                    h5.create_dataset(name, data=values)
                for key, value in attrs.items():
                    h5.attrs[key] = value
    return path


def read_wnid_arrays(path: Path, names: Sequence[str], what: str) -> tuple[list[str], dict[str, np.ndarray], dict]:
    """(wnids, {name: array}, attributes) of a file `write_wnid_arrays` wrote; GozError naming `what` it should be."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                return [str(w) for w in arrays["wnids"]], {name: arrays[name] for name in names}, {}
        with h5py.File(path, "r") as h5:
            wnids = [w.decode() if isinstance(w, bytes) else str(w) for w in h5["wnids"][()]]
            return wnids, {name: h5[name][()] for name in names}, dict(h5.attrs)
    except (OSError, KeyError, ValueError) as error:
        expected = ", ".join(f"'{name}'" for name in ("wnids", *names))
        raise GozError(f"{path}: not {what} with {expected} ({error})") from None
