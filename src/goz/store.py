"""The GOZ HDF5 feature store.

Layout, exactly as the published GOZ features use it::

    images/<wnid>   float32 (N, D)   pooled visual features of class <wnid>
    idx/<wnid>      int64   (N,)     original image ids, row for row

`StoreBuilder(..., dtype=np.float16)` writes float16 features instead (half the size, e.g. for
ImageNet-21K); the reader accepts any floating dtype and returns float32.

Anything else (model, weights, preprocessing, versions) lives in optional attributes. A file
written here opens with plain h5py code written for the original files, and vice versa.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple, NoReturn

import h5py
import numpy as np

from goz.errors import StoreError
from goz.home import data_home, write_text_atomic
from goz.names import WNID_PATTERN
from goz.progress import progress_bar
from goz.provenance import SYNTHETIC_DATA

FEATURES_GROUP = "images"
IDS_GROUP = "idx"

BLOCK_BYTES = 64 << 20  # hashing and validation read a class this many bytes of rows at a time


def check_wnid(wnid: str, where: str = "") -> str:
    if not isinstance(wnid, str) or not WNID_PATTERN.match(wnid):
        raise StoreError(f"{where}not a WordNet id (n + 8 digits): {wnid!r}")
    return wnid


class FeatureStore:
    """Read access to a GOZ feature store; classes are read lazily, one at a time.

    >>> with FeatureStore("test_features.h5") as store:
    ...     x = store.features("n00141669")          # (N, D) float32
    ...     means = store.class_means(store.classes)  # (C, D) float64, streamed
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise StoreError(f"{self.path}: no such feature store")
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder, not an HDF5 feature store")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as error:
            raise StoreError(f"{self.path}: not a readable HDF5 file ({error})") from None
        try:
            with _reading(f"{self.path}"):
                self._open_groups()
        except StoreError:
            self._file.close()
            raise
        self._checked: set[str] = set()
        self._stored: set[str] = set()  # classes whose declared sizes were checked against the file
        self._dim: int | None = None

    def _open_groups(self) -> None:
        for group in (FEATURES_GROUP, IDS_GROUP):
            if not isinstance(self._file.get(group), h5py.Group):
                raise StoreError(f"{self.path}: missing group '{group}' (not a GOZ feature store)")
        self._features = self._file[FEATURES_GROUP]
        self._ids = self._file[IDS_GROUP]
        self.classes: list[str] = list(self._features.keys())
        missing_ids = [wnid for wnid in self.classes if wnid not in self._ids]
        if missing_ids:
            raise StoreError(f"{self.path}: class {missing_ids[0]} has features but no '{IDS_GROUP}' "
                             f"dataset ({len(missing_ids)} classes affected)")

    # -- context manager ---------------------------------------------------------------------
    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def __len__(self) -> int:
        return len(self.classes)

    def __contains__(self, wnid: object) -> bool:
        return wnid in self._features

    @property
    def attrs(self) -> dict:
        attributes = {}
        for key in self._file.attrs:
            try:
                attributes[key] = _plain(self._file.attrs[key])
            except (OSError, TypeError, ValueError) as error:  # a type h5py cannot read back
                attributes[key] = f"<unreadable attribute: {error}>"
        return attributes

    @property
    def dim(self) -> int:
        """Feature dimension, shared by every class (checked on access)."""
        if self._dim is None:
            if not self.classes:
                raise StoreError(f"{self.path}: the store holds no class")
            self._dim = self._dataset_shape(self.classes[0])[1]
        return self._dim

    # -- per-class access ----------------------------------------------------------------------
    def _dataset_shape(self, wnid: str) -> tuple[int, int]:
        """Validates the class's structure (not its values) and returns (N, D)."""
        return self._open_class(wnid)[2:]

    def _open_class(self, wnid: str) -> tuple[h5py.h5d.DatasetID, h5py.h5d.DatasetID, int, int]:
        """The class's features and ids as low-level HDF5 datasets, and (N, D), its structure checked.

        h5py's high-level objects cost about a millisecond a class, which ImageNet-21K's 21,000 classes turn
        into the cost of reading the values; the low-level calls cost a fifth of it. A class that fails a
        check is handed to `_raise_class_problem`, whose errors name the problem.
        """
        where = f"{self.path}: class {wnid}"
        try:
            features = h5py.h5d.open(self._features.id, wnid.encode())
            ids = h5py.h5d.open(self._ids.id, wnid.encode())
            # Each property is an HDF5 query: asked once.
            shape, dtype, ids_shape, ids_dtype = features.shape, features.dtype, ids.shape, ids.dtype
        except (KeyError, ValueError, TypeError, OSError, RuntimeError):
            features = None
        if features is None or len(shape) != 2 or dtype.kind != "f" or len(ids_shape) != 1 \
                or ids_dtype.kind not in "iu" or ids_shape[0] != shape[0] \
                or (self._dim is not None and shape[1] != self._dim):
            self._raise_class_problem(wnid)
        if wnid not in self._stored:
            with _reading(where):  # the file each dataset lives in (an external link points into another one)
                _check_stored(features, h5py.h5i.get_file_id(features).get_filesize(), f"{where}: features",
                              shape, dtype)
                _check_stored(ids, h5py.h5i.get_file_id(ids).get_filesize(), f"{where}: ids", ids_shape, ids_dtype)
            self._stored.add(wnid)
        if self._dim is None:
            self._dim = shape[1]
        return features, ids, shape[0], shape[1]

    def _raise_class_problem(self, wnid: str) -> NoReturn:
        """The StoreError that says what is wrong with a class `_open_class` refused."""
        if wnid not in self._features:
            raise StoreError(f"{self.path}: no class {wnid}")
        where = f"{self.path}: class {wnid}"
        with _reading(where):
            features, ids = self._features[wnid], self._ids.get(wnid)
        if not isinstance(features, h5py.Dataset) or features.ndim != 2:
            raise StoreError(f"{where}: features must be a 2-d dataset (N, D), found "
                             f"{getattr(features, 'shape', type(features).__name__)}")
        if features.dtype.kind != "f":
            raise StoreError(f"{where}: features must be floating point, found dtype {features.dtype}")
        if not isinstance(ids, h5py.Dataset) or ids.ndim != 1:
            raise StoreError(f"{where}: ids must be a 1-d dataset (N,), found "
                             f"{getattr(ids, 'shape', type(ids).__name__)}")
        if ids.dtype.kind not in "iu":
            raise StoreError(f"{where}: ids must be integers, found dtype {ids.dtype}")
        if ids.shape[0] != features.shape[0]:
            raise StoreError(f"{where}: {features.shape[0]} feature rows but {ids.shape[0]} ids")
        if self._dim is not None and features.shape[1] != self._dim:
            raise StoreError(f"{where}: dimension {features.shape[1]} differs from the store's {self._dim}")
        raise StoreError(f"{where}: unreadable class (features or ids are not plain datasets)")

    def count(self, wnid: str) -> int:
        return self._dataset_shape(wnid)[0]

    def counts(self, wnids: Sequence[str] | None = None) -> dict[str, int]:
        return {wnid: self.count(wnid) for wnid in (self.classes if wnids is None else wnids)}

    def ids(self, wnid: str, limit: int | None = None) -> np.ndarray:
        n = self._dataset_shape(wnid)[0]
        with _reading(f"{self.path}: class {wnid}"):
            ids = self._ids[wnid][:_row_count(n, limit)].astype(np.int64)
        return _unique_ids(ids, f"{self.path}: class {wnid}")

    def features(self, wnid: str, limit: int | None = None, dtype=np.float32) -> np.ndarray:
        """The class's first `limit` feature rows (all if None), checked for NaN and inf."""
        n = self._dataset_shape(wnid)[0]
        with _reading(f"{self.path}: class {wnid}"):
            rows = self._features[wnid][:_row_count(n, limit)]
        _check_finite(rows, f"{self.path}: class {wnid}")
        if wnid not in self._checked:
            self.ids(wnid)  # duplicate-id check, once per class
            self._checked.add(wnid)
        return rows.astype(dtype, copy=False)

    # -- many classes ----------------------------------------------------------------------------
    def load(self, wnids: Sequence[str] | None = None, per_class: int | None = None,
             dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
        """Features of `wnids` (in that order) stacked into one array, and labels 0..len(wnids)-1.

        Preallocates the result so peak memory is the result plus one class.
        """
        wnids = self._resolve(wnids)
        _check_per_class(per_class)
        counts = [_row_count(self.count(w), per_class) for w in wnids]
        features = np.empty((sum(counts), self.dim if wnids else 0), dtype=dtype)
        labels = np.repeat(np.arange(len(wnids), dtype=np.int64), counts)
        start = 0
        for wnid, n in zip(wnids, counts):
            features[start:start + n] = self.features(wnid, limit=n)
            start += n
        return features, labels

    def iter_classes(self, wnids: Sequence[str] | None = None,
                     per_class: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
        """(wnid, features) one class at a time: constant memory over any number of classes."""
        _check_per_class(per_class)
        for wnid in self._resolve(wnids):
            yield wnid, self.features(wnid, limit=per_class)

    def iter_batches(self, wnids: Sequence[str] | None = None, per_class: int | None = None,
                     batch_size: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(features, labels) in batches of about `batch_size` rows, classes in order."""
        pending_x: list[np.ndarray] = []
        pending_y: list[np.ndarray] = []
        pending = 0
        for label, (_, rows) in enumerate(self.iter_classes(wnids, per_class)):
            pending_x.append(rows)
            pending_y.append(np.full(len(rows), label, dtype=np.int64))
            pending += len(rows)
            if pending >= batch_size:
                yield np.concatenate(pending_x), np.concatenate(pending_y)
                pending_x, pending_y, pending = [], [], 0
        if pending:
            yield np.concatenate(pending_x), np.concatenate(pending_y)

    def iter_chunks(self, wnids: Sequence[str], rows: Mapping[str, np.ndarray] | None = None,
                    chunk_rows: int = 4096, dtype=None) -> Iterator[StoreChunk]:
        """`StoreChunk`s (features, labels, ids) of exactly `chunk_rows` rows (the last one fewer), classes in
        order, a large class cut across chunks: memory is one chunk whatever the classes' sizes.

        `rows`: per wnid, the increasing row indices to read (the others are skipped, not read); a wnid
        absent from it is read whole. `dtype`: of the features (default: the stored one, so a float16
        store gives float16 chunks, half the bytes to move). Labels index `wnids`.
        """
        wnids = list(wnids)
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
            raise StoreError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
        chunk = None
        filled = 0
        for label, wnid in enumerate(wnids):
            features, ids_dataset, n, dim = self._open_class(wnid)   # the class's structure, checked
            where = f"{self.path}: class {wnid}"
            selected = None if rows is None or wnid not in rows else _checked_rows(rows[wnid], n, where)
            with _reading(where):
                ids = np.empty(n, dtype=ids_dataset.dtype)
                if n:
                    ids_dataset.read(h5py.h5s.ALL, h5py.h5s.ALL, ids)
                ids = _unique_ids(ids.astype(np.int64), where)
            count = n if selected is None else len(selected)
            if chunk is not None and dtype is None and np.result_type(chunk.features.dtype, features.dtype) != \
                    chunk.features.dtype:  # a class stored more precisely than the ones before: widen the chunk
                chunk = chunk._replace(features=chunk.features.astype(np.result_type(chunk.features.dtype,
                                                                                     features.dtype)))
            position = 0
            while position < count:
                if chunk is None:
                    chunk = StoreChunk(np.empty((chunk_rows, dim), dtype=features.dtype if dtype is None else dtype),
                                       np.empty(chunk_rows, np.int64), np.empty(chunk_rows, np.int64))
                take = min(count - position, chunk_rows - filled)
                piece = slice(position, position + take) if selected is None else selected[position:position + take]
                target = chunk.features[filled:filled + take]
                with _reading(where):
                    if isinstance(piece, slice) and target.dtype == features.dtype:
                        _read_rows(features, piece, target)   # HDF5 writes straight into the chunk
                    else:
                        target[:] = h5py.Dataset(features)[piece]
                _check_finite(target, where)
                chunk.labels[filled:filled + take] = label
                chunk.ids[filled:filled + take] = ids[piece]
                filled += take
                position += take
                if filled == chunk_rows:
                    yield chunk
                    chunk, filled = None, 0
        if chunk is not None:
            yield StoreChunk(chunk.features[:filled], chunk.labels[:filled], chunk.ids[:filled])

    def class_means(self, wnids: Sequence[str] | None = None, per_class: int | None = None) -> np.ndarray:
        """(C, D) float64 per-class mean features, computed one class at a time."""
        wnids = self._resolve(wnids)
        means = np.zeros((len(wnids), self.dim if wnids else 0), dtype=np.float64)
        for row, (wnid, rows) in enumerate(self.iter_classes(wnids, per_class)):
            if len(rows) == 0:
                raise StoreError(f"{self.path}: class {wnid} has no samples, its mean is undefined")
            means[row] = rows.mean(axis=0, dtype=np.float64)
        return means

    def _resolve(self, wnids: Sequence[str] | None) -> list[str]:
        if wnids is None:
            return list(self.classes)
        missing = [w for w in wnids if w not in self._features]
        if missing:
            raise StoreError(f"{self.path}: {len(missing)} requested classes are not in the store, "
                             f"e.g. {', '.join(missing[:5])}")
        return list(wnids)

    # -- provenance ------------------------------------------------------------------------------
    @property
    def is_synthetic(self) -> bool:
        """True when goz.synthetic wrote this store (its `data` attribute): demo data, never real features."""
        return self.attrs.get("data") == SYNTHETIC_DATA

    def links(self) -> list[str]:
        """The store's groups and datasets that are HDF5 soft or external links (their values live
        elsewhere, possibly in another file), described without following them."""
        found = []
        for group_name in (FEATURES_GROUP, IDS_GROUP):
            members = [(group_name, self._file.get(group_name, getlink=True))]
            members += [(f"{group_name}/{name}", self._file[group_name].get(name, getlink=True))
                        for name in self._file[group_name]]
            for name, link in members:
                if isinstance(link, h5py.ExternalLink):
                    found.append(f"{name}: external link to {link.filename}:{link.path}")
                elif isinstance(link, h5py.SoftLink):
                    found.append(f"{name}: soft link to {link.path}")
        return found

    # -- checks and summary ----------------------------------------------------------------------
    def content_fingerprint(self, progress: bool = False) -> str:
        """A digest of every class's features and ids: recorded by goz's writer, else computed once and cached.

        Stores written elsewhere (the published ones) are hashed once (about 1 GB/s) and the digest
        cached under GOZ_HOME, keyed by the file's path, size and modification time.
        """
        recorded = self._file.attrs.get(FINGERPRINT_ATTR)
        if recorded is not None:
            return _plain(recorded)
        stat = self.path.stat()
        key = f"{self.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        cache = data_home() / "cache" / "store-fingerprints.json"
        try:
            known = json.loads(cache.read_text())
        except (OSError, ValueError):
            known = {}
        if isinstance(known, dict) and isinstance(known.get(key), str):
            return known[key]
        digests = {}
        for wnid in progress_bar(self.classes, enabled=progress, desc=f"fingerprint {self.path.name}", unit="class"):
            with _reading(f"{self.path}: class {wnid}"):
                recorded_class = self._features[wnid].attrs.get(CLASS_DIGEST_ATTR)
            if recorded_class is not None:
                digests[wnid] = _plain(recorded_class)
                continue
            self._dataset_shape(wnid)  # structure, and declared sizes the file really holds, before any read
            with _reading(f"{self.path}: class {wnid}"):
                digests[wnid] = class_digest(wnid, self._features[wnid], self._ids[wnid])
        fingerprint = combine_digests(digests)
        known = (known if isinstance(known, dict) else {}) | {key: fingerprint}
        try:
            write_text_atomic(cache, json.dumps(known, indent=0))
        except OSError:  # a read-only home only costs the next run the same hashing
            pass
        return fingerprint

    def validate(self) -> None:
        """Reads every class once; raises StoreError on the first problem (naming file and class)."""
        for wnid in self.classes:
            check_wnid(wnid, f"{self.path}: ")
            self.count(wnid)
            with _reading(f"{self.path}: class {wnid}"):
                for rows in _row_blocks(self._features[wnid]):
                    _check_finite(rows, f"{self.path}: class {wnid}")
            self.ids(wnid)

    def info(self) -> dict:
        counts = self.counts()
        return {
            "path": str(self.path),
            "classes": len(self.classes),
            "samples": int(sum(counts.values())),
            "dim": self.dim if self.classes else 0,
            "min_per_class": min(counts.values(), default=0),
            "max_per_class": max(counts.values(), default=0),
            "size_bytes": self.path.stat().st_size,
            "attrs": self.attrs,
            "links": self.links(),
        }


def _check_stored(dataset: h5py.h5d.DatasetID, file_size: int, where: str, shape: tuple, dtype: np.dtype) -> None:
    """Refuses a dataset whose declared size the file does not hold (before anything reads it whole).

    HDF5 reads a chunk never written, or a contiguous dataset never allocated, as its fill value:
    a 10 GB class of a few KB file would be read (and hashed) as 10 GB of zeros. Low-level calls
    only (`dataset` is an `h5py.Dataset`'s `.id`, `shape` and `dtype` its own, asked once by the caller):
    this runs once for each of thousands of classes.
    """
    declared = math.prod(shape) * dtype.itemsize
    if declared == 0:
        return
    fix = "rewrite the class (re-run goz extract for it) or take it out of the store"
    plist = dataset.get_create_plist()
    layout = plist.get_layout()
    if plist.get_external_count() or layout == h5py.h5d.VIRTUAL:
        raise StoreError(f"{where}: its values live in other files (external or virtual dataset), not in this "
                         f"store; {fix}")
    if layout == h5py.h5d.CHUNKED:
        total = math.prod(math.ceil(n / c) for n, c in zip(shape, plist.get_chunk()))
        written = dataset.get_num_chunks()
        if written < total:
            size = f"{tuple(shape)} {dtype} ({declared / 1e9:.3g} GB)"
            raise StoreError(f"{where}: declares {size} but only {written} of its {total} chunks are written "
                             f"in the file (an unfinished or damaged store); {fix}")
    elif layout == h5py.h5d.CONTIGUOUS:
        offset = dataset.get_offset()
        if offset is None or offset + declared > file_size:
            held = 0 if offset is None else max(0, file_size - offset)
            size = f"{tuple(shape)} {dtype} ({declared / 1e9:.3g} GB)"
            raise StoreError(f"{where}: declares {size} but the file holds {held} bytes of it (an unfinished, "
                             f"truncated or damaged store); {fix}")


def _row_blocks(dataset) -> Iterator[np.ndarray]:
    """A dataset's (or an array's) rows, about BLOCK_BYTES at a time: bounded memory for any class size."""
    row_bytes = max(1, math.prod(dataset.shape[1:]) * dataset.dtype.itemsize)
    step = max(1, BLOCK_BYTES // row_bytes)
    for start in range(0, dataset.shape[0], step):
        yield dataset[start:start + step]


def _check_finite(rows: np.ndarray, where: str) -> None:
    bad = rows.size - int(np.isfinite(rows).sum())
    if bad:
        raise StoreError(f"{where}: {bad} NaN or infinite feature values")


def _row_count(n: int, limit: int | None) -> int:
    """How many of a class's `n` rows to read: all (None) or the first `limit` (>= 0)."""
    if limit is None:
        return n
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
        raise StoreError(f"a row limit must be an integer >= 0, got {limit!r}")
    return min(int(limit), n)


def _check_per_class(per_class: int | None) -> None:
    if per_class is not None and (isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer))
                                  or per_class < 1):
        raise StoreError(f"per_class must be a positive integer (or None for every sample), got {per_class!r}")


class StoreChunk(NamedTuple):
    """Consecutive test rows: features (n, D), labels (n,) indices into the classes asked for, ids (n,)."""

    features: np.ndarray
    labels: np.ndarray
    ids: np.ndarray


def _read_rows(dataset: h5py.h5d.DatasetID, rows: slice, out: np.ndarray) -> None:
    """`dataset[rows]` into `out` (C-contiguous, the dataset's dtype) by one HDF5 read, no temporary array."""
    space = dataset.get_space()
    space.select_hyperslab((rows.start, 0), (rows.stop - rows.start, out.shape[1]))  # out: (rows, D)
    dataset.read(h5py.h5s.create_simple(out.shape), space, out)


def _unique_ids(ids: np.ndarray, where: str) -> np.ndarray:
    if np.unique(ids).size != ids.size:
        values, counts = np.unique(ids, return_counts=True)
        raise StoreError(f"{where}: duplicate image ids {values[counts > 1][:5].tolist()}")
    return ids


def _checked_rows(rows, n: int, where: str) -> np.ndarray:
    """Row indices to read from a class of `n` rows: integers, strictly increasing, inside [0, n)."""
    rows = np.asarray(rows)
    if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
        raise StoreError(f"{where}: rows to read must be a 1-d array of integer indices, got {rows.dtype} {rows.shape}")
    if rows.size and (rows[0] < 0 or rows[-1] >= n or np.any(np.diff(rows) <= 0)):
        raise StoreError(f"{where}: rows to read must increase strictly inside [0, {n}), got {rows[:5].tolist()}...")
    return rows.astype(np.int64)


@contextmanager
def _reading(where: str) -> Iterator[None]:
    """h5py's errors on damaged internals (bad chunks, dangling links) as a StoreError naming the place."""
    try:
        yield
    except (OSError, RuntimeError, KeyError, ValueError) as error:
        raise StoreError(f"{where}: damaged or unreadable HDF5 data ({error})") from None


def _plain(value):
    """An HDF5 attribute as JSON-ready Python: str, numbers, lists; anything else (complex, references) as text."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (np.ndarray, list, tuple)):
        return [_plain(item) for item in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return str(value)


CLASS_DIGEST_ATTR = "sha256"           # on images/<wnid>: digest of that class's features and ids
FINGERPRINT_ATTR = "content_fingerprint"  # on the file: digest of every class digest, in wnid order


def class_digest(wnid: str, features, ids) -> str:
    """sha256 of one class as stored (wnid, shape, little-endian float32 rows, int64 ids).

    `features` and `ids` are arrays or h5py datasets; they are read BLOCK_BYTES of rows at a time,
    so memory stays bounded and the digest is the one of the whole arrays.
    """
    digest = hashlib.sha256(f"{wnid}:{tuple(int(n) for n in features.shape)}".encode())
    for rows in _row_blocks(features):
        digest.update(np.ascontiguousarray(rows, dtype="<f4"))
    for rows in _row_blocks(ids):
        digest.update(np.ascontiguousarray(rows, dtype="<i8"))
    return digest.hexdigest()


def combine_digests(class_digests: dict[str, str]) -> str:
    """The store's content fingerprint from its per-class digests (order-independent: sorted by wnid)."""
    return hashlib.sha256("".join(f"{w}={class_digests[w]}\n" for w in sorted(class_digests)).encode()).hexdigest()


class StoreBuilder:
    """The one writer of the GOZ layout: classes go into `<path>.tmp`, renamed over `path` on success.

    Each class dataset carries its digest and the file its content fingerprint, so a result can
    name exactly which features decided it (`FeatureStore.content_fingerprint`).
    """

    FEATURE_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))

    def __init__(self, path: str | Path, attrs: dict | None = None, dtype=np.float32):
        self.path = Path(path)
        self.attrs = dict(attrs or {})
        self.dtype = np.dtype(dtype)
        if self.dtype not in self.FEATURE_DTYPES:
            raise StoreError(f"{self.path}: features are stored as float32 or float16, not {self.dtype}")
        self.temporary = self.path.with_name(self.path.name + ".tmp")
        self.digests: dict[str, str] = {}

    def __enter__(self) -> StoreBuilder:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.h5 = h5py.File(self.temporary, "w")
        self.features_group = self.h5.create_group(FEATURES_GROUP)
        self.ids_group = self.h5.create_group(IDS_GROUP)
        for key, value in self.attrs.items():
            self.h5.attrs[key] = value
        return self

    def add_class(self, wnid: str, features: np.ndarray, ids: np.ndarray) -> None:
        """Writes one class (features as the builder's dtype, float32 by default; int64 ids)."""
        check_wnid(wnid)
        features = np.asarray(features, dtype=self.dtype)
        ids = np.asarray(ids, dtype=np.int64)
        if features.ndim != 2 or ids.ndim != 1 or len(features) != len(ids):
            raise StoreError(f"class {wnid}: need features (N, D) and ids (N,), got {features.shape} and {ids.shape}")
        if wnid in self.digests:
            raise StoreError(f"class {wnid} written twice into {self.path}")
        dataset = self.features_group.create_dataset(wnid, data=features)
        self.ids_group.create_dataset(wnid, data=ids)
        dataset.attrs[CLASS_DIGEST_ATTR] = self.digests[wnid] = class_digest(wnid, features, ids)

    def copy_class(self, source: h5py.File, wnid: str) -> None:
        """Copies one class from another GOZ-layout file (no decode: h5py copies the datasets)."""
        rows = source[FEATURES_GROUP][wnid]
        digest = rows.attrs.get(CLASS_DIGEST_ATTR)
        if digest is None:  # written before digests were recorded: compute it once now
            digest = class_digest(wnid, rows, source[IDS_GROUP][wnid])
        source.copy(rows, self.features_group, wnid)
        source.copy(source[IDS_GROUP][wnid], self.ids_group, wnid)
        self.features_group[wnid].attrs[CLASS_DIGEST_ATTR] = self.digests[wnid] = str(digest)

    def __contains__(self, wnid: str) -> bool:
        return wnid in self.digests

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is None:
                self.h5.attrs[FINGERPRINT_ATTR] = combine_digests(self.digests)
        finally:
            self.h5.close()
        if exc_type is None:
            fsync_path(self.temporary)
            self.temporary.replace(self.path)
        else:
            self.temporary.unlink(missing_ok=True)


def fsync_path(path: Path) -> None:
    """Flushes a file (or a folder's entries) to disk: a rename is durable only after both."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_store(path: str | Path, classes: dict[str, tuple[np.ndarray, np.ndarray]],
                attrs: dict | None = None, dtype=np.float32) -> Path:
    """Writes a whole store at once: {wnid: (features, ids)}. Atomic: a temporary file renamed into place."""
    with StoreBuilder(path, attrs, dtype) as builder:
        for wnid, (features, ids) in classes.items():
            builder.add_class(wnid, features, ids)
    return Path(path)
