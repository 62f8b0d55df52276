"""Committing extracted classes so that no finished work is ever lost.

Design (h5py files killed mid-write are often unreadable, so the store is never written in place):

- a finished class is written to its own part file `STORE.h5.parts/<wnid>.h5` (features, ids and
  the class's skipped files together), under a temporary name renamed into place: the class is
  committed whole or not at all;
- at the end of a run (and on Ctrl-C or an error) the existing store and the parts are copied into
  `STORE.h5.tmp`, which is renamed over `STORE.h5`; only then are the parts deleted. One merge
  per run costs one pass over the store, never one pass per class;
- a kill -9 at any moment leaves `STORE.h5` as it was (it opens), the committed classes in the
  parts directory, and at worst a stray temporary file; the next run merges the parts first;
- `STORE.h5.lock` (filelock, an fcntl lock released by the kernel when the process dies) keeps a
  second writer out; `STORE.h5.skipped.tsv` lists every file not extracted and why.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import filelock
import h5py
import numpy as np

from goz.errors import GozError, StoreError
from goz.extract.backbone import COMPATIBILITY_KEYS
from goz.names import image_key
from goz.store import FEATURES_GROUP, FINGERPRINT_ATTR, FeatureStore, StoreBuilder, fsync_path, write_store

log = logging.getLogger(__name__)

SKIP_LOG_FIELDS = ("stage", "file", "reason")
# What the store's classes must share: the extractor's facts and the dtype of the stored features.
STORE_KEYS = (*COMPATIBILITY_KEYS, "dtype")


def parts_dir(store: Path) -> Path:
    return store.with_name(store.name + ".parts")


def skip_log_path(store: Path) -> Path:
    return store.with_name(store.name + ".skipped.tsv")


def read_skip_log(store: Path) -> dict[str, tuple[str, str]]:
    """{file relative to the image source: (stage, reason)}; stage is `scan`, `decode` or `missing`."""
    path = skip_log_path(store)
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["file"]: (row["stage"], row["reason"])
                for row in csv.DictReader(handle, delimiter="\t") if row.get("file")}


class StoreWriter:
    """Exclusive, crash-safe writer of one GOZ store. Use as a context manager (it holds the lock).

    Entering checks the path, takes the lock and reads what earlier runs committed (cheap, before
    any model is loaded); `bind(attrs)` then checks that they were extracted the same way.
    """

    def __init__(self, store: str | Path):
        self.store = Path(store)
        self.attrs: dict = {}
        self.parts = parts_dir(self.store)
        self._lock = filelock.FileLock(str(self.store.with_name(self.store.name + ".lock")))
        self.committed: set[str] = set()
        self.decode_skips: dict[str, str] = {}
        self._earlier_attrs: list[tuple[str, dict]] = []  # (file, attributes) of the store and each part

    def __enter__(self) -> StoreWriter:
        if self.store.is_dir():
            raise GozError(f"{self.store} is a folder; the feature store is a file (e.g. {self.store / 'features.h5'})")
        try:
            self.store.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise GozError(f"cannot create the folder of the feature store {self.store} "
                           f"({type(error).__name__}: {error.strerror or error})") from None
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            raise GozError(f"{self.store} is being written by another process (lock {self._lock.lock_file} "
                           f"is held); wait for it to finish, or write to another store") from None
        except OSError as error:
            raise GozError(f"cannot create the lock {self._lock.lock_file} ({error.strerror or error})") from None
        try:
            self._load_state()
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()

    def bind(self, attrs: dict) -> None:
        """The extractor's attributes (and `dtype`, the stored features'); refuses them if the store or a
        part was extracted differently (a store without a `dtype` attribute holds float32)."""
        self.attrs = {"dtype": "float32"} | attrs
        for where, earlier in self._earlier_attrs:
            earlier = {"dtype": "float32"} | earlier
            for key in STORE_KEYS:
                if earlier.get(key) != self.attrs[key]:
                    raise StoreError(f"{where} was extracted with {key}={earlier.get(key)!r}, this run uses "
                                     f"{self.attrs[key]!r}; features of different extractors cannot share a store "
                                     f"(use the same options, or a new store)")

    def _load_state(self) -> None:
        if self.store.exists():
            with FeatureStore(self.store) as existing:
                self._remember_attrs(existing.attrs, str(self.store))
                self.committed.update(existing.classes)
        self.decode_skips = {file: reason for file, (stage, reason) in read_skip_log(self.store).items()
                             if stage == "decode"}
        for part in self._part_files():
            try:
                with h5py.File(part, "r") as h5:
                    self._remember_attrs(dict(h5.attrs), str(part))
                    self.decode_skips.update(json.loads(h5.attrs["skipped"]))
            except (OSError, KeyError, ValueError) as error:
                raise StoreError(f"{part}: unreadable part file ({error}); delete it to extract its class again") from None
            self.committed.add(part.stem)

    def _remember_attrs(self, attrs: dict, where: str) -> None:
        if "weights" not in attrs:
            raise StoreError(f"{where} was not written by `goz extract` (it has no extraction attributes); "
                             f"extract into a new store")
        self._earlier_attrs.append((where, attrs))

    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("n*.h5")) if self.parts.is_dir() else []

    def commit(self, wnid: str, features: np.ndarray, ids: np.ndarray, skipped: dict[str, str]) -> None:
        """Writes one whole class (possibly with zero rows when every file was skipped) as a part file."""
        self.parts.mkdir(exist_ok=True)
        attrs = {key: self.attrs[key] for key in STORE_KEYS} | {"skipped": json.dumps(skipped)}
        dtype = np.dtype(self.attrs["dtype"])
        with np.errstate(over="ignore"):
            stored = np.asarray(features, dtype=dtype)
        if np.isinf(stored).sum() > np.isinf(features).sum():
            raise GozError(f"{self.store}: class {wnid} has features beyond the range of {dtype} "
                           f"(largest {np.abs(features).max():.4g}); extract with --dtype float32")
        write_store(self.parts / f"{wnid}.h5", {wnid: (stored, ids)}, attrs, dtype)
        self.committed.add(wnid)
        self.decode_skips.update(skipped)

    def merge(self, scan_problems: list[tuple[str, str]], missing: dict[str, list[int]] | None = None) -> None:
        """Folds the committed parts into the store (one copy, renamed into place) and rewrites the skip log
        (with a `missing` row per image requested by --ids and not found, or class of --classes not found)."""
        parts = self._part_files()
        if parts:
            self._merge_parts(parts)
        self._write_skip_log(scan_problems, missing or {})
        for part in parts:
            part.unlink()
        if self.parts.is_dir():
            shutil.rmtree(self.parts, ignore_errors=True)

    def _merge_parts(self, parts: list[Path]) -> None:
        sources = ([self.store] if self.store.exists() else []) + parts
        with h5py.File(sources[0], "r") as first:
            attrs = dict(first.attrs) if sources[0] == self.store else self.attrs
        attrs = {k: v for k, v in attrs.items() if k not in ("skipped", FINGERPRINT_ATTR)}
        with StoreBuilder(self.store, attrs) as merged:
            for source in sources:
                with h5py.File(source, "r") as h5:
                    for wnid, rows in h5[FEATURES_GROUP].items():
                        # Zero-row classes (every file skipped) stay out; a part already merged before a kill is skipped.
                        if rows.shape[0] and wnid not in merged:
                            merged.copy_class(h5, wnid)
        fsync_path(self.store.parent)
        log.info("merged %d classes into %s", len(parts), self.store)

    def _write_skip_log(self, scan_problems: list[tuple[str, str]], missing: dict[str, list[int]]) -> None:
        rows = [("scan", file, reason) for file, reason in scan_problems]
        for wnid, ids in missing.items():
            rows += ([("missing", image_key(wnid, i), "requested, not in the image source") for i in ids]
                     or [("missing", wnid, "requested class, not in the image source")])
        rows += [("decode", file, reason) for file, reason in sorted(self.decode_skips.items())]
        path = skip_log_path(self.store)
        if not rows and not path.exists():
            return
        temporary = path.with_name(path.name + ".tmp")
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            writer.writerow(SKIP_LOG_FIELDS)
            writer.writerows(rows)
        temporary.replace(path)
