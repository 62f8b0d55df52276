"""URL lists -> image folders: `download` fetches, validates and files the images of a list;
`report` says which classes of a downloaded folder are short of a target count.

Layout written: `OUT/<wnid>/<wnid>_<imageid>.<ext>`; bookkeeping under `OUT/.goz/` (shard
manifests, temporary files, quarantined placeholders).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from goz import splits
from goz.download.client import FetchOptions
from goz.download.engines import ENGINES, run_jobs, sweep_placeholders
from goz.download.manifest import OUTCOMES, Manifest, shard_manifests
from goz.download.shard import ShardJob, work_dir
from goz.download.urllist import ListEntry, ListStats, read_url_list
from goz.download.validate import ValidationLimits
from goz.errors import GozError
from goz.home import write_text_atomic
from goz.names import IMAGE_FILE_PATTERN, WNID_PATTERN

__all__ = ["download", "report", "Summary", "Report"]



@dataclass
class Summary:
    """What a download run did (this run) and where the job stands (every entry of the list)."""

    out: str
    list_stats: ListStats
    outcomes: dict[str, int]
    ok_per_class: dict[str, int]
    processed: int
    ok_this_run: int
    bytes_this_run: int
    adopted: int
    seconds: float
    suspected_placeholders: dict[str, int] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return asdict(self) | {"images_per_second": self.images_per_second}


def download(urls: str | Path, out: str | Path, *, classes: str | Path | list[str] | None = None,
             per_class: int | None = None, limit: int | None = None, engine: str = "local",
             processes: int = 1, ray_address: str | None = None, shards: int | None = None,
             shard_size: int = 10_000, concurrency: int = 256, per_host: int = 16, deadline: float = 30.0,
             max_bytes: int = 20 * 2**20, max_redirects: int = 5, max_attempts: int = 3,
             min_side: int = 32, max_pixels: int = 50_000_000, resize: int | None = None,
             retry_failed: bool = False, retry_crashed: bool = False, placeholder_urls: int = 5, decode_workers: int | None = None,
             progress: bool = True) -> Summary:
    """Downloads the images of the URL list `urls` into `out` (resumable; see the module docstring).

    classes: a split name or file (goz.splits.load) or a list of wnids; per_class: first N of each
    class; limit: first N entries. engine: "local" (processes x asyncio) or "ray" (ray_address).
    A rerun skips every recorded URL; retry_failed refetches the retryable failures (timeouts,
    connection errors, HTTP 429/5xx); retry_crashed validates the `decoder_crash` images again
    (alone, each in a fresh process). Content shared by >= placeholder_urls distinct URLs is
    quarantined as a placeholder.
    """
    if engine not in ENGINES:
        raise GozError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if placeholder_urls < 2:
        raise GozError("placeholder_urls must be at least 2 (content shared by that many URLs is a placeholder)")
    _check_counts(per_class=per_class, limit=limit, processes=processes, shards=shards, shard_size=shard_size,
                  decode_workers=decode_workers)
    fetch_options = FetchOptions(concurrency=concurrency, per_host=per_host, deadline=deadline,
                                 max_bytes=max_bytes, max_redirects=max_redirects, max_attempts=max_attempts)
    limits = ValidationLimits(min_side=min_side, max_pixels=max_pixels, resize_shorter_side=resize)
    wnids = splits.load(classes) if isinstance(classes, (str, Path)) else classes
    entries, list_stats = read_url_list(urls, classes=wnids, per_class=per_class, limit=limit)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GozError(f"output folder {out} is an existing file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    shard_count = _shard_count(out, shards, len(entries), shard_size)
    # Only the driver clears temporaries, before any shard starts: a shard could be writing its own.
    shutil.rmtree(out / ".goz" / "tmp", ignore_errors=True)
    work_dir(out, "tmp")
    by_shard: list[list[ListEntry]] = [[] for _ in range(shard_count)]
    for entry in entries:  # crc32, not hash(): the same key must land in the same shard in every process
        by_shard[zlib.crc32(entry.key.encode()) % shard_count].append(entry)
    workers = decode_workers or (1 if engine == "ray" or processes > 1 else max(1, os.cpu_count() or 1))
    jobs = [ShardJob(index, shard_entries, str(out), fetch_options, limits, retry_failed=retry_failed,
                     retry_crashed=retry_crashed, placeholder_urls=placeholder_urls, decode_workers=workers)
            for index, shard_entries in enumerate(by_shard) if shard_entries]
    started = time.monotonic()
    with tqdm(total=len(entries), unit="img", desc="download", disable=not progress, smoothing=0.05) as bar:
        counts = run_jobs(jobs, engine=engine, processes=processes, ray_address=ray_address, bar=bar) if jobs else []
    seconds = time.monotonic() - started
    suspects = sweep_placeholders(str(out), placeholder_urls)
    outcomes, ok_per_class = _job_state(out, {e.key for e in entries})
    return Summary(str(out), list_stats, outcomes, ok_per_class,
                   processed=sum(c["processed"] for c in counts), ok_this_run=sum(c["ok"] for c in counts),
                   bytes_this_run=sum(c["bytes"] for c in counts), adopted=sum(c["adopted"] for c in counts),
                   seconds=seconds, suspected_placeholders=suspects)


def _check_counts(**counts: int | None) -> None:
    """Each count, when given, must be a positive integer (None means the default)."""
    for name, value in counts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise GozError(f"{name} must be a positive integer, got {value!r}")


def _shard_count(out: Path, requested: int | None, entries: int, shard_size: int) -> int:
    """The job's shard count, fixed at its first run (a key must stay in its shard across reruns)."""
    config = out / ".goz" / "job.json"
    if config.exists():
        try:
            stored = json.loads(config.read_text(encoding="utf-8"))["shards"]
        except (ValueError, KeyError, TypeError) as error:
            raise GozError(f"{config} is damaged ({type(error).__name__}: {error}); it records the shard count "
                           f"of this folder: restore it, or start again in a new output folder") from None
        if isinstance(stored, bool) or not isinstance(stored, int) or stored < 1:
            raise GozError(f"{config} is damaged: 'shards' is {stored!r}, not a positive integer")
        if requested is not None and requested != stored:
            raise GozError(f"{out} was started with {stored} shards; rerun with --shards {stored} "
                           f"(or a new output folder)")
        return stored
    count = requested or max(1, -(-entries // shard_size))
    write_text_atomic(config, json.dumps({"shards": count}))
    return count


def _job_state(out: Path, keys: set[str]) -> tuple[dict[str, int], dict[str, int]]:
    outcomes: Counter[str] = Counter()
    ok_per_class: Counter[str] = Counter()
    for path in shard_manifests(out):
        with Manifest(path) as manifest:
            for record in manifest.records():
                if record.key in keys:
                    outcomes[record.outcome] += 1
                    ok_per_class[record.wnid] += record.outcome == "ok"
    return {o: outcomes[o] for o in OUTCOMES if outcomes[o]}, dict(sorted(ok_per_class.items()))


@dataclass
class Report:
    """Image counts per class of a download folder, and the classes short of `target`."""

    out: str
    target: int
    counts: dict[str, int]
    short: dict[str, int]
    failures: dict[str, dict[str, int]]

    def as_dict(self) -> dict:
        return asdict(self)


def report(out: str | Path, *, target: int = 100, classes: str | Path | list[str] | None = None) -> Report:
    """Counts the image files per class folder of `out`; lists the classes with fewer than `target`.

    classes: a split (name, file) or list of wnids to check (default: the class folders present);
    a class without a folder counts 0. `failures` gives, per short class, its manifest outcomes.
    """
    out = Path(out)
    if not out.is_dir():
        raise GozError(f"{out} is not a download folder")
    if target < 0:
        raise GozError(f"target must be at least 0 images per class, got {target}")
    wnids = splits.load(classes) if isinstance(classes, (str, Path)) else classes
    if wnids is None:
        wnids = sorted(p.name for p in out.iterdir() if p.is_dir() and WNID_PATTERN.match(p.name))
    counts = {}
    for wnid in wnids:
        folder = out / wnid
        names = os.listdir(folder) if folder.is_dir() else []
        counts[wnid] = sum(1 for name in names if (m := IMAGE_FILE_PATTERN.match(name)) and m['wnid'] == wnid)
    short = {w: c for w, c in counts.items() if c < target}
    failures: dict[str, Counter[str]] = {w: Counter() for w in short}
    for path in shard_manifests(out):
        with Manifest(path) as manifest:
            for record in manifest.records():
                if record.wnid in failures and record.outcome != "ok":
                    failures[record.wnid][record.outcome] += 1
    return Report(str(out), target, counts, short, {w: dict(c) for w, c in failures.items()})
