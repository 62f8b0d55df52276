"""One shard of a download job: fetch its pending URLs concurrently, validate each body in a
process pool, write accepted images atomically, record every outcome in the shard's manifest.

A shard is idempotent: rerun it and it fetches only what its manifest (and the image folders)
do not already hold. Content shared by many URLs is a placeholder: such files are moved to the
job folder's quarantine (goz.download.job) and their rows marked `placeholder`.

Poison images (content that kills its validation process: a crash in Pillow, the OOM killer):
the pool's death ends the run with a GozError after counting a crash for each image it held
(the manifest's `validations` table). A rerun validates those images first, alone, each in a
fresh process: one that kills its process again (CRASH_THRESHOLD crashes) is recorded as
`decoder_crash` and the run goes on; a single unrelated kill never condemns an image.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from goz.download.client import FetchOptions, HostGate, fetch, open_session
from goz.download.defaults import FORMAT, IMAGES_PER_TAR, PLACEHOLDER_URLS
from goz.download.job import JobFolder
from goz.download.manifest import Manifest, Record
from goz.download.tars import TarSink, remove_from_tar, validate_for_tar
from goz.download.urllist import ListEntry, read_shard_list
from goz.download.validate import Validated, ValidationLimits, validate_and_store
from goz.errors import GozError
from goz.home import sha256_of, write_text_atomic
from goz.lifeline import die_with_parent

# Crashes (validation process deaths with the image in flight) after which an image is condemned.
CRASH_THRESHOLD = 2


@dataclass(frozen=True)
class ShardJob:
    """Everything a shard needs; plain data so it can travel to a worker process or a Ray task."""

    index: int
    entries: list[ListEntry]  # or () with list_path: the shard reads its own list (small jobs, bounded driver)
    out: str
    fetch: FetchOptions = field(default_factory=FetchOptions)
    limits: ValidationLimits = field(default_factory=ValidationLimits)
    retry_failed: bool = False
    retry_crashed: bool = False
    placeholder_urls: int = PLACEHOLDER_URLS
    decode_workers: int = 1
    list_path: str | None = None
    format: str = FORMAT  # or "webdataset": tars of images_per_tar images (see goz.download.tars)
    images_per_tar: int = IMAGES_PER_TAR

    @property
    def folder(self) -> JobFolder:
        return JobFolder(self.out)

    @property
    def manifest_path(self) -> Path:
        return self.folder.manifest_path(self.index)

    @property
    def stats_path(self) -> Path:
        return self.folder.stats_path(self.index)

    def load_entries(self) -> list[ListEntry]:
        return read_shard_list(self.list_path) if self.list_path else list(self.entries)


def new_decode_pool(workers: int) -> ProcessPoolExecutor:
    """Validation processes that die with this process (goz.lifeline).

    spawn, not fork: the caller may be threaded (Ray, an event loop) and fork would copy its locks.
    """
    return ProcessPoolExecutor(max(1, workers), mp_context=get_context("spawn"), initializer=die_with_parent,
                               initargs=(os.getpid(),))


def run_shard(job: ShardJob, progress: Callable[[int, str], None] | None = None,
              decode_pool: Executor | None = None) -> dict[str, int]:
    """Runs one shard to completion; writes its stats JSON. Returns counts for this run:
    processed, ok, bytes, adopted, skipped."""
    started = time.time()
    write_shard_stats(job, {}, Counter(), started, running=True)  # who runs it (which node), from when
    own_pool = decode_pool is None
    if own_pool:
        decode_pool = new_decode_pool(job.decode_workers)
    try:
        with Manifest(job.manifest_path) as manifest:
            run = _ShardRun(job, manifest, decode_pool, progress or (lambda n, outcome: None))
            counts = asyncio.run(run.run())
    finally:
        if own_pool:
            decode_pool.shutdown(cancel_futures=True)
    write_shard_stats(job, counts, run.outcomes, started)
    return counts


def write_shard_stats(job: ShardJob, counts: dict[str, int], outcomes: Counter, started: float,
                      running: bool = False) -> None:
    """The shard's stats JSON (goz.download.job): this run of the shard, `running` when it starts, then what it did
    (as img2dataset's `*_stats.json`)."""
    finished = None if running else time.time()
    stats = {"shard": job.index, "status": "running" if running else "finished", **counts,
             "outcomes": dict(sorted(outcomes.items())), "started": started, "finished": finished,
             "seconds": None if running else round(finished - started, 3),
             "host": socket.gethostname(), "pid": os.getpid(), "node": _ray_node()}
    write_text_atomic(job.stats_path, json.dumps(stats, indent=1))


def _ray_node() -> str | None:
    """The Ray node id when this shard runs as a Ray task (which node did the work)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return ray.get_runtime_context().get_node_id()


class _ShardRun:
    def __init__(self, job: ShardJob, manifest: Manifest, decode_pool: Executor, progress: Callable[[int], None]):
        self.job, self.manifest, self.decode_pool, self.progress = job, manifest, decode_pool, progress
        self.temporary_dir = str(job.folder.tmp_dir())
        self.counts = {"entries": 0, "skipped": 0, "processed": 0, "ok": 0, "bytes": 0, "adopted": 0}
        self.outcomes: Counter[str] = Counter()
        self.sink = (TarSink(job, manifest) if job.format == "webdataset" else None)
        self.urls_by_hash: defaultdict[str, set[str]] = defaultdict(set)
        self.placeholder_hashes: set[str] = set()
        self.in_pool: dict[str, str] = {}  # {key: url} handed to the shared validation pool, verdict pending
        self.pool_slots = asyncio.Semaphore(max(1, job.decode_workers))
        self.pool_died: GozError | None = None

    async def run(self) -> dict[str, int]:
        # Markers left by a run that died (pool and all) while validating these images: a crash each.
        self.manifest.count_crashes(self.manifest.interrupted_validations())
        crashes = self.manifest.crash_counts()
        finished = self.manifest.finished_keys(retry_failed=self.job.retry_failed,
                                               retry_crashed=self.job.retry_crashed)
        for sha256, url in self.manifest.urls_by_content():
            self.urls_by_hash[sha256].add(url)
        for sha256, urls in self.urls_by_hash.items():
            if len(urls) >= self.job.placeholder_urls:
                self._quarantine(sha256)
        entries = self.job.load_entries()
        self.counts["entries"] = len(entries)
        unrecorded = [e for e in entries if e.key not in finished]
        if self.sink is not None:
            self.counts["adopted"] += self.sink.adopt(unrecorded, self.urls_by_hash)
            finished = self.manifest.finished_keys(retry_failed=self.job.retry_failed,
                                                   retry_crashed=self.job.retry_crashed)
            unrecorded = [e for e in unrecorded if e.key not in finished]
        on_disk = self._files_on_disk(unrecorded) if unrecorded and self.sink is None else {}
        pending = [e for e in unrecorded if not self._adopt(e, on_disk)
                   and not self._condemn(e, crashes.get(e.key, 0))]
        self.counts["skipped"] = len(entries) - len(pending)
        self.progress(len(entries) - len(pending), "skipped")
        suspects = [e for e in pending if crashes.get(e.key, 0)]
        queue = iter([e for e in pending if not crashes.get(e.key, 0)])
        gate = HostGate(self.job.fetch.per_host)
        async with open_session(self.job.fetch) as session:
            # Suspects first, one at a time and nothing else running: a death is blamed on its image only.
            await self._worker(iter(suspects), session, gate, self._validate_alone)
            workers = [self._worker(queue, session, gate, self._validate_in_pool)
                       for _ in range(min(self.job.fetch.concurrency, len(pending) - len(suspects)))]
            try:
                await asyncio.gather(*workers)
            finally:
                if self.sink is not None:
                    self.sink.close()  # what was validated before an error is kept
        self.manifest.flush()
        return self.counts

    def _condemn(self, entry: ListEntry, crashes: int) -> bool:
        """An image that killed its validation process CRASH_THRESHOLD times is recorded, not fetched again."""
        if crashes < CRASH_THRESHOLD or self.job.retry_crashed:
            return False
        self.manifest.record(Record(entry.key, entry.wnid, entry.image_id, entry.url, "decoder_crash",
                                    error=f"a validation process died {crashes} times with this image in flight"))
        return True

    def _adopt(self, entry: ListEntry, on_disk: dict[str, Path]) -> bool:
        """A file renamed into place by a killed run before its row was committed: record it, do not refetch."""
        found = on_disk.get(entry.key)
        if found is None:
            return False
        sha256 = sha256_of(found)
        self.manifest.record(Record(entry.key, entry.wnid, entry.image_id, entry.url, "ok",
                                    bytes=found.stat().st_size, sha256=sha256, path=str(found),
                                    error="file kept from an interrupted run"))
        self.urls_by_hash[sha256].add(entry.url)
        self.counts["adopted"] += 1
        return True

    def _files_on_disk(self, entries: list[ListEntry]) -> dict[str, Path]:
        """{key: path} of the image files already in this shard's class folders (one listing per folder)."""
        files = {}
        for wnid in {e.wnid for e in entries}:
            folder = Path(self.job.out) / wnid
            if folder.is_dir():
                files.update((Path(name).stem, folder / name) for name in os.listdir(folder))
        return files

    async def _validate_in_pool(self, entry: ListEntry, data: bytes) -> Validated:
        # Only as many images as the pool has processes are handed to it: a death is blamed on those only.
        async with self.pool_slots:
            if self.pool_died:
                raise self.pool_died  # the run is ending: hand the dead pool nothing more to blame
            self.manifest.validation_started(entry.key)
            self.in_pool[entry.key] = entry.url
            try:
                verdict = await asyncio.get_running_loop().run_in_executor(self.decode_pool, *self._validation(entry, data))
            except BrokenProcessPool:
                held, urls = list(self.in_pool), ", ".join(self.in_pool.values())
                self.in_pool.clear()  # other workers see the same death: count it once
                self.manifest.count_crashes(held)
                self.pool_died = GozError(
                    f"an image validation process died (killed, or out of memory) while shard {self.job.index} "
                    f"was validating {urls or entry.url}; rerun the same command to resume (an image that kills "
                    f"its process again is recorded as decoder_crash)")
                raise self.pool_died from None
            self.in_pool.pop(entry.key, None)
            self.manifest.validation_ended(entry.key)
            return verdict

    async def _validate_alone(self, entry: ListEntry, data: bytes) -> Validated:
        """Validates a suspect in a fresh process of its own; its death condemns the image, not the run."""
        self.manifest.validation_started(entry.key)
        solo = new_decode_pool(1)
        try:
            verdict = await asyncio.get_running_loop().run_in_executor(solo, *self._validation(entry, data))
        except BrokenProcessPool:
            crashes = self.manifest.count_crashes([entry.key])[entry.key]
            return Validated("decoder_crash", f"a validation process died {crashes} times with this image in "
                                              f"flight, the last time validating it alone")
        finally:
            solo.shutdown()
        self.manifest.validation_ended(entry.key)
        return verdict

    def _validation(self, entry: ListEntry, data: bytes) -> tuple:
        """The function and arguments that validate `data` in a validation process (and store it, as files)."""
        if self.sink is not None:
            return validate_for_tar, data, self.job.limits
        return validate_and_store, data, self._stem(entry), self.temporary_dir, self.job.limits

    def _stem(self, entry: ListEntry) -> str:
        return str(Path(self.job.out) / entry.wnid / entry.key)

    async def _worker(self, queue, session, gate: HostGate,
                      validate: Callable[[ListEntry, bytes], Awaitable[Validated]]) -> None:
        for entry in queue:  # one shared iterator: each entry goes to exactly one worker
            started = time.monotonic()
            fetched = await fetch(session, gate, entry.url, self.job.fetch)
            record = Record(entry.key, entry.wnid, entry.image_id, entry.url, fetched.outcome,
                            http_status=fetched.http_status, final_url=fetched.final_url,
                            attempts=fetched.attempts, error=fetched.error)
            if fetched.outcome == "body":
                record.bytes = len(fetched.data)
                record.sha256 = hashlib.sha256(fetched.data).hexdigest()
                if record.sha256 in self.placeholder_hashes:
                    record.outcome, record.error = "placeholder", "content of a suspected placeholder"
                else:
                    verdict = await validate(entry, fetched.data)
                    record.outcome, record.error, record.path = verdict.outcome, verdict.error, verdict.path or None
            record.seconds = round(time.monotonic() - started, 4)
            if record.outcome == "ok" and self.sink is not None:
                # Recorded only once its tar is renamed into place: a kill loses the open tar, not a row.
                verdict_bytes = verdict.stored if verdict.stored is not None else fetched.data
                self.sink.add(record, verdict.extension, verdict_bytes)
            else:
                self.manifest.record(record)
            self.counts["processed"] += 1
            self.outcomes[record.outcome] += 1
            if record.outcome == "ok":
                self.counts["ok"] += 1
                self.counts["bytes"] += record.bytes
            if record.sha256:
                self._count_hash(record)
            self.progress(1, record.outcome)

    def _count_hash(self, record: Record) -> None:
        urls = self.urls_by_hash[record.sha256]
        urls.add(record.url)
        crossed = len(urls) >= self.job.placeholder_urls and record.sha256 not in self.placeholder_hashes
        # A copy validated while the hash was being flagged is quarantined too.
        if crossed or (record.sha256 in self.placeholder_hashes and record.outcome == "ok"):
            self._quarantine(record.sha256)

    def _quarantine(self, sha256: str) -> None:
        self.placeholder_hashes.add(sha256)
        if self.sink is not None:
            self.sink.close()  # its copies may sit in the open tar: finish it, then take them out
        count = len(self.urls_by_hash[sha256])
        quarantine_hash(self.manifest, self.job.out, sha256, f"content shared by {count}+ distinct URLs")


def quarantine_hash(manifest: Manifest, out: str | Path, sha256: str, reason: str) -> int:
    """Moves every kept copy of this content out of the class folders (or tars); marks its row. Idempotent."""
    moved = 0
    folder = JobFolder(out)
    quarantine = folder.quarantine_dir()
    for record in manifest.kept_copies(sha256):
        source = Path(record.path) if record.path else None
        if source is not None and source.suffix == ".tar":
            target = remove_from_tar(source, record.key, quarantine, folder.tmp_dir())
            moved += target is not None
        else:
            target = quarantine / source.name if source else None
            if source is not None and source.exists():
                os.replace(source, target)
                moved += 1
        manifest.mark(record.key, "placeholder", f"suspected placeholder: {reason}", str(target) if target else None)
    return moved
