"""The download manifest: one SQLite file (WAL) per shard, one row per URL and its outcome.

Rows are committed in small batches; a file is renamed into place before its row is written, so
after a kill a file may exist without a row: the next run adopts it instead of fetching it again.

Table `validations` tracks images whose validation process died: a row is committed (in_flight
= 1) before an image is handed to a validation process and deleted, with the next batch of rows,
when its verdict comes back;
when the process dies, the images it held get `crashes + 1`. An image crashed twice is recorded
as `decoder_crash` instead of killing the run again.

Every query of a manifest is a method of `Manifest`, named for what it answers. A finished
connection is closed (and the last one checkpoints and removes `-wal` and `-shm`); readers open
the file read-write without creating anything, because a read-only connection cannot remove them.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from goz.errors import GozError

OUTCOMES = ("ok", "http_error", "timeout", "dns_error", "connection_error", "not_image", "placeholder",
            "too_large", "too_small", "decode_error", "redirect_error", "bad_url", "decoder_crash")
# Failures that may succeed later (server overloaded, network down); the others are final.
RETRYABLE = frozenset({"timeout", "dns_error", "connection_error"})
RETRYABLE_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    key TEXT PRIMARY KEY, wnid TEXT NOT NULL, image_id INTEGER NOT NULL, url TEXT NOT NULL,
    outcome TEXT NOT NULL, http_status INTEGER, bytes INTEGER, sha256 TEXT, final_url TEXT,
    attempts INTEGER NOT NULL, seconds REAL, error TEXT, path TEXT, updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_sha256 ON items(sha256);
CREATE TABLE IF NOT EXISTS validations (
    key TEXT PRIMARY KEY, crashes INTEGER NOT NULL DEFAULT 0, in_flight INTEGER NOT NULL DEFAULT 0
);
"""
COLUMNS = ("key", "wnid", "image_id", "url", "outcome", "http_status", "bytes", "sha256", "final_url",
           "attempts", "seconds", "error", "path", "updated")


@dataclass
class Record:
    """The outcome of one URL, as stored in the manifest."""

    key: str
    wnid: str
    image_id: int
    url: str
    outcome: str
    http_status: int | None = None
    bytes: int | None = None
    sha256: str | None = None
    final_url: str | None = None
    attempts: int = 0
    seconds: float | None = None
    error: str = ""
    path: str | None = None
    updated: float = 0.0

    @property
    def retryable(self) -> bool:
        return is_retryable(self.outcome, self.http_status)


def is_retryable(outcome: str, http_status: int | None) -> bool:
    """A failure that may succeed later (server overloaded, network down)."""
    return outcome in RETRYABLE or (outcome == "http_error" and http_status in RETRYABLE_HTTP)


def is_finished(outcome: str, http_status: int | None, *, retry_failed: bool, retry_crashed: bool) -> bool:
    """A recorded row not to fetch again: all but the retryable failures with `retry_failed` and the
    `decoder_crash` rows with `retry_crashed`."""
    return not (retry_failed and is_retryable(outcome, http_status)) and not (
        retry_crashed and outcome == "decoder_crash")


class Manifest:
    """One shard's manifest. `record` buffers; rows reach the disk at each `flush` (every batch).

    reader=True: opens an existing manifest only to read it (another process may be writing it);
    creates nothing, raises GozError when the file is missing or not SQLite.
    """

    def __init__(self, path: str | Path, *, reader: bool = False, timeout: float = 60.0,
                 batch_rows: int = 256, batch_seconds: float = 0.5):
        self.path = Path(path)
        try:
            if reader:
                # mode=rw, not ro: the last connection to close must be able to remove -wal and -shm.
                self._connection = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=rw", uri=True,
                                                   timeout=timeout)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._connection = sqlite3.connect(self.path, timeout=timeout)
                self._connection.execute("PRAGMA journal_mode=WAL")
                self._connection.execute("PRAGMA synchronous=NORMAL")
                self._connection.executescript(SCHEMA)
        except sqlite3.Error as error:
            if getattr(self, "_connection", None) is not None:
                self._connection.close()
            raise GozError(f"download manifest {self.path} is damaged or missing ({error}): move it aside and "
                           f"rerun (the URLs it recorded are fetched again)") from None
        self._pending: list[Record] = []
        self._ended: list[str] = []  # keys whose validation came back, their markers not yet deleted
        self._batch_rows, self._batch_seconds = batch_rows, batch_seconds
        self._last_flush = time.monotonic()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._connection.close()

    def _records(self, where: str = "", parameters: Iterable = ()) -> list[Record]:
        self.flush()
        query = f"SELECT {', '.join(COLUMNS)} FROM items {where}"
        return [Record(*row) for row in self._connection.execute(query, tuple(parameters))]

    def _rows(self, query: str, parameters: Iterable = ()) -> Iterator[tuple]:
        """The rows of `query`, streamed (a shard holding one big host can have a million rows)."""
        self.flush()
        yield from self._connection.execute(query, tuple(parameters))

    def records(self) -> list[Record]:
        """Every row."""
        return self._records()

    def get(self, key: str) -> Record | None:
        return next(iter(self._records("WHERE key = ?", (key,))), None)

    def record(self, record: Record) -> None:
        """Adds or replaces a row (attempts add up over runs). Written at the next batch."""
        record.updated = time.time()
        self._pending.append(record)
        if len(self._pending) >= self._batch_rows or time.monotonic() - self._last_flush > self._batch_seconds:
            self.flush()

    def record_all(self, records: list[Record]) -> None:
        """Adds or replaces rows and commits them in one transaction (all or none survive a kill)."""
        now = time.time()
        for record in records:
            record.updated = now
        self._pending.extend(records)
        self.flush()

    def flush(self) -> None:
        if self._pending or self._ended:
            placeholders = ", ".join("?" * len(COLUMNS))
            updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in ("key", "attempts"))
            with self._connection:  # one transaction: the rows and the end of their validations
                self._connection.executemany(
                    f"INSERT INTO items ({', '.join(COLUMNS)}) VALUES ({placeholders}) "
                    f"ON CONFLICT(key) DO UPDATE SET {updates}, attempts = items.attempts + excluded.attempts",
                    [tuple(getattr(r, c) for c in COLUMNS) for r in self._pending])
                self._connection.executemany("DELETE FROM validations WHERE key = ?", [(k,) for k in self._ended])
            self._pending.clear()
            self._ended.clear()
        self._last_flush = time.monotonic()

    def mark(self, key: str, outcome: str, error: str, path: str | None) -> None:
        """Changes the outcome of an existing row (e.g. ok -> placeholder when its file is quarantined)."""
        self.flush()
        with self._connection:
            self._connection.execute("UPDATE items SET outcome = ?, error = ?, path = ?, updated = ? WHERE key = ?",
                                     (outcome, error, path, time.time(), key))

    def finished_keys(self, *, retry_failed: bool, retry_crashed: bool = False) -> set[str]:
        """Keys not to fetch again: every recorded key, less the retryable failures with `retry_failed`
        and the `decoder_crash` rows with `retry_crashed`."""
        return {key for key, outcome, status in self._rows("SELECT key, outcome, http_status FROM items")
                if is_finished(outcome, status, retry_failed=retry_failed, retry_crashed=retry_crashed)}

    def count_finished(self, keys: Collection[str], *, retry_failed: bool, retry_crashed: bool = False) -> int:
        """How many of `keys` a run would not fetch again (see finished_keys), without holding the rows."""
        return sum(key in keys and is_finished(outcome, status, retry_failed=retry_failed, retry_crashed=retry_crashed)
                   for key, outcome, status in self._rows("SELECT key, outcome, http_status FROM items"))

    def outcomes_of(self, keys: Collection[str]) -> Iterator[tuple[str, str]]:
        """(wnid, outcome) of each recorded row whose key is in `keys`, streamed."""
        for key, wnid, outcome in self._rows("SELECT key, wnid, outcome FROM items"):
            if key in keys:
                yield wnid, outcome

    def outcome_counts(self, *, since: float = 0.0) -> Counter[str]:
        """{outcome: rows} of the rows written at or after `since` (a time.time()); nothing while the
        shard writing this manifest is still creating its tables."""
        try:
            return Counter(dict(self._rows("SELECT outcome, count(*) FROM items WHERE updated >= ? GROUP BY outcome",
                                           (since,))))
        except sqlite3.OperationalError:  # no table yet
            return Counter()

    def ok_per_class(self) -> Counter[str]:
        """{wnid: rows whose outcome is ok}."""
        return Counter(dict(self._rows("SELECT wnid, count(*) FROM items WHERE outcome = 'ok' GROUP BY wnid")))

    def classes(self) -> set[str]:
        """The wnids of the recorded rows."""
        return {wnid for (wnid,) in self._rows("SELECT DISTINCT wnid FROM items")}

    def failures_per_class(self) -> dict[str, Counter[str]]:
        """{wnid: {outcome: rows}} of the rows whose outcome is not ok."""
        failures: dict[str, Counter[str]] = {}
        for wnid, outcome, count in self._rows(
                "SELECT wnid, outcome, count(*) FROM items WHERE outcome != 'ok' GROUP BY wnid, outcome"):
            failures.setdefault(wnid, Counter())[outcome] = count
        return failures

    def content_hashes(self) -> Iterator[str]:
        """The sha256 of every row holding fetched content, streamed."""
        for (sha256,) in self._rows("SELECT sha256 FROM items WHERE sha256 IS NOT NULL"):
            yield sha256

    def urls_by_content(self) -> Iterator[tuple[str, str]]:
        """(sha256, url) of every row holding fetched content, streamed."""
        yield from self._rows("SELECT sha256, url FROM items WHERE sha256 IS NOT NULL")

    def kept_copies(self, sha256: str) -> list[Record]:
        """The ok rows holding this content (the files or tar samples a quarantine takes out)."""
        return self._records("WHERE sha256 = ? AND outcome = 'ok'", (sha256,))

    def stored_paths(self) -> set[str]:
        """Every path a row points to (the files and tars the manifest accounts for)."""
        return {path for (path,) in self._rows("SELECT DISTINCT path FROM items WHERE path IS NOT NULL")}

    def validation_started(self, key: str) -> None:
        """Commits that `key` is about to be handed to a validation process."""
        with self._connection:
            self._connection.execute("INSERT INTO validations (key, in_flight) VALUES (?, 1) "
                                     "ON CONFLICT(key) DO UPDATE SET in_flight = 1", (key,))

    def validation_ended(self, key: str) -> None:
        """Its verdict came back: the image did not kill its process (earlier crashes are forgotten).
        Committed with the next batch of rows (one transaction less per image; a marker left by a kill
        in between only adds a crash to an image already recorded)."""
        self._ended.append(key)

    def count_crashes(self, keys: Iterable[str]) -> dict[str, int]:
        """The validation process holding `keys` died: commits crashes + 1 for each; returns the new counts."""
        keys = list(keys)
        self.flush()
        with self._connection:
            self._connection.executemany("INSERT INTO validations (key, crashes) VALUES (?, 1) ON CONFLICT(key) "
                                         "DO UPDATE SET crashes = crashes + 1, in_flight = 0", [(k,) for k in keys])
        return {k: v for k, v in self.crash_counts().items() if k in set(keys)}

    def interrupted_validations(self) -> list[str]:
        """Keys still marked in flight: the run validating them died without learning their verdict."""
        self.flush()
        return [key for (key,) in self._connection.execute("SELECT key FROM validations WHERE in_flight = 1")]

    def crash_counts(self) -> dict[str, int]:
        """{key: times a validation process died with it in flight}, for the keys that ever crashed one."""
        self.flush()
        return dict(self._connection.execute("SELECT key, crashes FROM validations WHERE crashes > 0").fetchall())

