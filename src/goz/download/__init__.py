"""URL lists -> image folders: `download` fetches, validates and files the images of a list;
`report` says which classes of a downloaded folder are short of a target count.

Layout written: `OUT/<wnid>/<wnid>_<imageid>.<ext>`; bookkeeping under `OUT/.goz/` (shard
manifests, temporary files, quarantined placeholders).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections import Counter
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from goz.download.client import FetchOptions
from goz.download.engines import ENGINES, Progress, run_jobs, sweep_placeholders
from goz.download.manifest import OUTCOMES, Manifest, shard_manifests
from goz.download.plan import Plan, count_resume_skips, plan_job
from goz.download.shard import ShardJob, shard_manifest_path, work_dir
from goz.download.urllist import ListStats, read_shard_list
from goz.download.validate import ValidationLimits
from goz.errors import GozError
from goz.home import write_text_atomic
from goz.names import IMAGE_FILE_PATTERN, WNID_PATTERN

__all__ = ["download", "report", "Summary", "Report", "Plan", "FORMATS"]

FORMATS = ("files", "webdataset")



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
    shards: int = 0
    hosts: int = 0

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
             format: str = "files", images_per_tar: int = 1000, dry_run: bool = False,
             progress: bool = True) -> Summary | Plan:
    """Downloads the images of the URL list `urls` into `out` (resumable; see the module docstring).

    classes: a split name or file (goz.splits.load) or a list of wnids; per_class: first N of each
    class; limit: first N entries. engine: "local" (processes x asyncio) or "ray" (ray_address).
    The list is streamed once into per-host shard lists (goz.download.plan): all URLs of a host
    are in one shard, so `per_host` and the 429/503 pauses hold across processes and nodes.
    A rerun skips every recorded URL; retry_failed refetches the retryable failures (timeouts,
    connection errors, HTTP 429/5xx); retry_crashed validates the `decoder_crash` images again
    (alone, each in a fresh process). Content shared by >= placeholder_urls distinct URLs is
    quarantined as a placeholder. format: "files" (class folders) or "webdataset" (tars of
    images_per_tar images, goz.download.tars). dry_run: shard the list and return the Plan
    (with what a rerun would skip); nothing is fetched.
    """
    if engine not in ENGINES:
        raise GozError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if format not in FORMATS:
        raise GozError(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")
    if placeholder_urls < 2:
        raise GozError("placeholder_urls must be at least 2 (content shared by that many URLs is a placeholder)")
    _check_counts(per_class=per_class, limit=limit, processes=processes, shards=shards, shard_size=shard_size,
                  decode_workers=decode_workers, images_per_tar=images_per_tar)
    fetch_options = FetchOptions(concurrency=concurrency, per_host=per_host, deadline=deadline,
                                 max_bytes=max_bytes, max_redirects=max_redirects, max_attempts=max_attempts)
    limits = ValidationLimits(min_side=min_side, max_pixels=max_pixels, resize_shorter_side=resize)
    wnids = _load_classes(classes)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GozError(f"output folder {out} is an existing file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    _check_format(out, format, dry_run)
    plan = plan_job(urls, out, classes=wnids, per_class=per_class, limit=limit, shards=shards,
                    shard_size=shard_size, dry_run=dry_run)
    if dry_run:
        plan.resume_skips = count_resume_skips(plan, retry_failed=retry_failed)
        return plan
    # Only the driver clears temporaries, before any shard starts: a shard could be writing its own.
    shutil.rmtree(out / ".goz" / "tmp", ignore_errors=True)
    work_dir(out, "tmp")
    workers = decode_workers or (1 if engine == "ray" or processes > 1 else max(1, os.cpu_count() or 1))
    jobs = [ShardJob(index, (), str(out), fetch_options, limits, retry_failed=retry_failed,
                     retry_crashed=retry_crashed, placeholder_urls=placeholder_urls, decode_workers=workers,
                     list_path=str(plan.list_path(index)), format=format, images_per_tar=images_per_tar)
            for index, count in enumerate(plan.shard_entries) if count]
    started = time.monotonic()
    with tqdm(total=plan.entries, unit="img", desc="download", disable=not progress, smoothing=0.05) as bar:
        counts = run_jobs(jobs, engine=engine, processes=processes, ray_address=ray_address,
                          progress=Progress(bar)) if jobs else []
    seconds = time.monotonic() - started
    suspects = sweep_placeholders(str(out), placeholder_urls)
    outcomes, ok_per_class = _job_state(plan)
    summary = Summary(str(out), plan.list_stats, outcomes, ok_per_class,
                      processed=sum(c["processed"] for c in counts), ok_this_run=sum(c["ok"] for c in counts),
                      bytes_this_run=sum(c["bytes"] for c in counts), adopted=sum(c["adopted"] for c in counts),
                      seconds=seconds, suspected_placeholders=suspects, shards=len(jobs), hosts=plan.hosts)
    write_text_atomic(out / ".goz" / "stats" / "summary.json", json.dumps(summary.as_dict(), indent=1))
    return summary


def _load_classes(classes: str | Path | list[str] | None) -> list[str] | None:
    # Imported here: goz.splits pulls in matplotlib, and every shard and validation process imports this package.
    from goz import splits
    return splits.load(classes) if isinstance(classes, (str, Path)) else classes


def _stored_format(out: Path) -> str:
    config = out / ".goz" / "format"
    return config.read_text(encoding="utf-8").strip() if config.exists() else "files"


def _check_format(out: Path, format: str, dry_run: bool) -> None:
    """One folder, one format: class folders and tars do not mix (the format is fixed at the first run)."""
    config = out / ".goz" / "format"
    if config.exists():
        stored = config.read_text(encoding="utf-8").strip()
        if stored != format:
            raise GozError(f"{out} holds a --format {stored} download; rerun with --format {stored} "
                           f"(or a new output folder)")
    elif not dry_run:
        write_text_atomic(config, format + "\n")


def _check_counts(**counts: int | None) -> None:
    """Each count, when given, must be a positive integer (None means the default)."""
    for name, value in counts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise GozError(f"{name} must be a positive integer, got {value!r}")


def _job_state(plan: Plan) -> tuple[dict[str, int], dict[str, int]]:
    """Outcomes and ok images per class of the plan's entries, one shard at a time (bounded memory)."""
    outcomes: Counter[str] = Counter()
    ok_per_class: Counter[str] = Counter()
    for index, count in enumerate(plan.shard_entries):
        manifest = shard_manifest_path(plan.out, index)
        if not count or not manifest.exists():
            continue
        keys = {e.key for e in read_shard_list(plan.list_path(index))}
        # A cursor, not Manifest.records(): a shard holding one big host can have a million rows.
        with closing(sqlite3.connect(f"file:{manifest}?mode=ro", uri=True, timeout=60)) as connection:
            for key, wnid, outcome in connection.execute("SELECT key, wnid, outcome FROM items"):
                if key in keys:
                    outcomes[outcome] += 1
                    ok_per_class[wnid] += outcome == "ok"
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
    wnids = _load_classes(classes)
    if wnids is None and _stored_format(out) == "webdataset":
        wnids = set()
        for path in shard_manifests(out):
            with Manifest(path) as manifest:
                wnids.update(r.wnid for r in manifest.records())
        wnids = sorted(wnids)
    if wnids is None:
        wnids = sorted(p.name for p in out.iterdir() if p.is_dir() and WNID_PATTERN.match(p.name))
    counts = {}
    if _stored_format(out) == "webdataset":  # the images are in tars: count the manifests' ok rows
        in_tars: Counter[str] = Counter()
        for path in shard_manifests(out):
            with Manifest(path) as manifest:
                in_tars.update(r.wnid for r in manifest.records("WHERE outcome = 'ok'"))
        counts = {wnid: in_tars[wnid] for wnid in wnids}
    for wnid in wnids if not counts else []:
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
