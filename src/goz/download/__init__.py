"""URL lists -> image folders: `download` fetches, validates and files the images of a list;
`report` says which classes of a downloaded folder are short of a target count.

Layout written: `OUT/<wnid>/<wnid>_<imageid>.<ext>`; bookkeeping in the job folder `OUT/.goz/`
(goz.download.job: shard lists, manifests, stats, temporary files, quarantined placeholders).
Defaults of every option: goz.download.defaults.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from goz.download import defaults
from goz.download.client import FetchOptions
from goz.download.engines import ENGINES, Progress, run_jobs, sweep_placeholders
from goz.download.job import JobFolder
from goz.download.manifest import OUTCOMES, Manifest
from goz.download.plan import Plan, count_resume_skips, plan_job
from goz.download.shard import ShardJob
from goz.download.urllist import ListStats, read_shard_list
from goz.download.validate import ValidationLimits
from goz.errors import GozError
from goz.home import write_text_atomic
from goz.names import IMAGE_FILE_PATTERN, WNID_PATTERN
from goz.progress import progress_bar

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
             per_class: int | None = None, limit: int | None = None, engine: str = defaults.ENGINE,
             processes: int = defaults.PROCESSES, ray_address: str | None = None, shards: int | None = None,
             shard_size: int = defaults.SHARD_SIZE, concurrency: int = defaults.CONCURRENCY,
             per_host: int = defaults.PER_HOST, deadline: float = defaults.DEADLINE_S,
             max_bytes: int = defaults.MAX_BYTES, max_redirects: int = defaults.MAX_REDIRECTS,
             max_attempts: int = defaults.MAX_ATTEMPTS, min_side: int = defaults.MIN_SIDE,
             max_pixels: int = defaults.MAX_PIXELS, resize: int | None = None, retry_failed: bool = False,
             retry_crashed: bool = False, placeholder_urls: int = defaults.PLACEHOLDER_URLS,
             decode_workers: int | None = None, format: str = defaults.FORMAT,
             images_per_tar: int = defaults.IMAGES_PER_TAR, dry_run: bool = False,
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
    folder = JobFolder(out)
    folder.fix_format(format, dry_run=dry_run)
    plan = plan_job(urls, out, classes=wnids, per_class=per_class, limit=limit, shards=shards,
                    shard_size=shard_size, dry_run=dry_run)
    if dry_run:
        plan.resume_skips = count_resume_skips(plan, retry_failed=retry_failed, retry_crashed=retry_crashed)
        return plan
    folder.clear_tmp()
    workers = decode_workers or (1 if engine == "ray" or processes > 1 else max(1, os.cpu_count() or 1))
    jobs = [ShardJob(index, (), str(out), fetch_options, limits, retry_failed=retry_failed,
                     retry_crashed=retry_crashed, placeholder_urls=placeholder_urls, decode_workers=workers,
                     list_path=str(plan.list_path(index)), format=format, images_per_tar=images_per_tar)
            for index, count in enumerate(plan.shard_entries) if count]
    started = time.monotonic()
    with progress_bar(total=plan.entries, enabled=progress, unit="img", desc="download", smoothing=0.05) as bar:
        counts = run_jobs(jobs, engine=engine, processes=processes, ray_address=ray_address,
                          progress=Progress(bar)) if jobs else []
    seconds = time.monotonic() - started
    suspects = sweep_placeholders(str(out), placeholder_urls)
    outcomes, ok_per_class = _job_state(plan)
    summary = Summary(str(out), plan.list_stats, outcomes, ok_per_class,
                      processed=sum(c["processed"] for c in counts), ok_this_run=sum(c["ok"] for c in counts),
                      bytes_this_run=sum(c["bytes"] for c in counts), adopted=sum(c["adopted"] for c in counts),
                      seconds=seconds, suspected_placeholders=suspects, shards=len(jobs), hosts=plan.hosts)
    write_text_atomic(folder.summary_path, json.dumps(summary.as_dict(), indent=1))
    return summary


def _load_classes(classes: str | Path | list[str] | None) -> list[str] | None:
    # Imported here: goz.splits pulls in matplotlib, and every shard and validation process imports this package.
    from goz import splits
    return splits.load(classes) if isinstance(classes, (str, Path)) else classes


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
        path = plan.folder.manifest_path(index)
        if not count or not path.exists():
            continue
        keys = {e.key for e in read_shard_list(plan.list_path(index))}
        with Manifest(path, reader=True) as manifest:
            for wnid, outcome in manifest.outcomes_of(keys):
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


def report(out: str | Path, *, target: int = defaults.REPORT_TARGET,
           classes: str | Path | list[str] | None = None) -> Report:
    """Counts the image files per class folder of `out`; lists the classes with fewer than `target`.

    classes: a split (name, file) or list of wnids to check (default: the class folders present, or the
    classes of the manifests for a webdataset download); a class without a folder counts 0. `failures`
    gives, per short class, its manifest outcomes.
    """
    out = Path(out)
    if not out.is_dir():
        raise GozError(f"{out} is not a download folder")
    if target < 0:
        raise GozError(f"target must be at least 0 images per class, got {target}")
    wnids = _load_classes(classes)
    folder = JobFolder(out)
    recorded: set[str] = set()
    ok_in_manifests: Counter[str] = Counter()
    failures_recorded: dict[str, Counter[str]] = {}
    for path in folder.manifests():
        with Manifest(path, reader=True) as manifest:
            recorded |= manifest.classes()
            ok_in_manifests.update(manifest.ok_per_class())
            for wnid, outcomes in manifest.failures_per_class().items():
                failures_recorded.setdefault(wnid, Counter()).update(outcomes)
    if folder.stored_format() == "webdataset":  # the images are in tars: count the manifests' ok rows
        counts = {wnid: ok_in_manifests[wnid] for wnid in (sorted(recorded) if wnids is None else wnids)}
    else:
        if wnids is None:
            wnids = sorted(p.name for p in out.iterdir() if p.is_dir() and WNID_PATTERN.match(p.name))
        counts = {wnid: _image_files(out / wnid) for wnid in wnids}
    short = {w: c for w, c in counts.items() if c < target}
    failures = {w: dict(failures_recorded.get(w, {})) for w in short}
    return Report(str(out), target, counts, short, failures)


def _image_files(folder: Path) -> int:
    """The `<wnid>_<id>.<ext>` files of a class folder (0 when there is no folder)."""
    names = os.listdir(folder) if folder.is_dir() else []
    return sum(1 for name in names if (m := IMAGE_FILE_PATTERN.match(name)) and m["wnid"] == folder.name)
