"""Running the shards of a job: `local` (shards in this process, or in N worker processes) or
`ray` (one Ray task per shard, on a cluster whose nodes share OUT). Progress is read back from the
shard manifests, so every engine shows the same bar.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

import numpy as np

from goz.download.job import JobFolder
from goz.download.manifest import Manifest
from goz.download.shard import ShardJob, new_decode_pool, quarantine_hash, run_shard
from goz.errors import GozError
from goz.lifeline import die_with_parent

ENGINES = ("local", "ray")
RAY_SHARD_RETRIES = 3  # runs of a shard whose node or worker died (each resumes from the manifest)

log = logging.getLogger(__name__)


class Progress:
    """The run's bar (rate, ETA) with per-outcome counts across all shards as its postfix."""

    def __init__(self, bar):  # a goz.progress.progress_bar
        self.bar, self.outcomes = bar, Counter()
        self._shown = 0.0

    def update(self, count: int, outcome: str) -> None:
        if not count:
            return
        self.outcomes[outcome] += count
        self.bar.update(count)
        self._show()

    def set(self, outcomes: Counter) -> None:
        """The totals read back from the shards (pooled engines): moves the bar to their sum."""
        self.outcomes = outcomes
        self.bar.update(max(0, min(self.bar.total, sum(outcomes.values())) - self.bar.n))
        self._show(force=True)

    def finish(self) -> None:
        self._show(force=True)

    def _show(self, force: bool = False) -> None:
        if not self.bar.disable and (force or time.monotonic() - self._shown > 0.5):
            self._shown = time.monotonic()
            counts = " ".join(f"{o} {n}" for o, n in self.outcomes.most_common() if n)
            self.bar.set_postfix_str(counts, refresh=False)


def run_jobs(jobs: list[ShardJob], *, engine: str, processes: int, ray_address: str | None,
             progress: Progress) -> list[dict[str, int]]:
    """Runs every shard with `engine`; returns each shard's counts."""
    if engine == "local" and processes <= 1:
        decode_pool = new_decode_pool(jobs[0].decode_workers)
        try:
            return [run_shard(job, progress.update, decode_pool) for job in jobs]
        finally:
            progress.finish()
            decode_pool.shutdown(cancel_futures=True)
    if engine == "local":
        with ProcessPoolExecutor(processes, mp_context=get_context("spawn"), initializer=die_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            futures = [pool.submit(run_shard, job) for job in jobs]
            _follow(jobs, progress, lambda: all(f.done() for f in futures))
            return [_shard_result(job, future.result) for job, future in zip(jobs, futures)]
    if engine == "ray":
        if ray_address:
            _check_reachable(ray_address)
        ray = _import_ray()
        if not ray.is_initialized():
            try:
                ray.init(address=ray_address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as error:
                cluster = ray_address or "(a local one)"
                raise GozError(f"could not start or join the Ray cluster {cluster}: {error}") from None
        # SPREAD: shards over all nodes; a shard lost with its node is run again elsewhere (it resumes).
        remote_shard = ray.remote(num_cpus=1, max_retries=RAY_SHARD_RETRIES, scheduling_strategy="SPREAD")(run_shard)
        refs = [remote_shard.remote(job) for job in jobs]
        _follow(jobs, progress, lambda: not ray.wait(refs, num_returns=len(refs), timeout=0)[1])
        return [_shard_result(job, lambda ref=ref: ray.get(ref)) for job, ref in zip(jobs, refs)]
    raise GozError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")


def _shard_result(job: ShardJob, result: Callable[[], dict[str, int]]) -> dict[str, int]:
    """A shard's counts; its failure in another process (an error, or the process dying) as a GozError."""
    rerun = "rerun the same command to resume (what the shards recorded is not fetched again)"
    try:
        return result()
    except BrokenProcessPool:
        raise GozError(f"the process running shard {job.index} died (killed, or out of memory); {rerun}") from None
    except Exception as error:
        # Ray wraps the shard's exception in a RayTaskError (whose text holds the remote traceback).
        cause = getattr(error, "cause", None) or error
        if isinstance(cause, GozError):
            raise cause from None
        log.debug("shard %d failed", job.index, exc_info=error)
        reason = str(cause).splitlines()[0] if str(cause) else ""
        raise GozError(f"shard {job.index} failed ({type(cause).__name__}: {reason}); {rerun}") from None


def _check_reachable(address: str) -> None:
    """A TCP connection to a `host:port` (or `ray://host:port`) address: ray.init itself retries for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as error:
        raise GozError(f"no Ray cluster answers at {address} ({error}); start one with `ray start --head`, "
                       f"or leave out --ray-address to start a local one") from None


def _import_ray():
    try:
        import ray
    except ImportError:
        raise GozError("the ray engine needs Ray: pip install 'goz[ray]' (or use --engine local)") from None
    return ray


def _follow(jobs: list[ShardJob], progress: Progress, finished: Callable[[], bool]) -> None:
    """Follows the shards running elsewhere: outcomes of the rows they commit, the skips of finished shards."""
    started = time.time()
    done: dict[int, Counter] = {}  # shards whose stats JSON of this run is written: their final counts
    while True:
        over = finished()
        totals: Counter[str] = Counter()
        for job in jobs:
            if job.index in done:
                totals.update(done[job.index])
                continue
            counts = _outcomes_since(job.manifest_path, started)
            stats = _stats_since(job.stats_path, started)
            if stats is not None:
                counts["skipped"] = stats.get("skipped", 0)
                done[job.index] = counts
            totals.update(counts)
        progress.set(totals)
        if over:
            return
        time.sleep(max(0.5, len(jobs) / 200))  # a full ImageNet job has ~1400 manifests to read


def _outcomes_since(path, since: float) -> Counter:
    if not path.exists():
        return Counter()
    try:
        with Manifest(path, reader=True, timeout=5) as manifest:
            return manifest.outcome_counts(since=since)
    except GozError:  # the shard is creating the file right now
        return Counter()


def _stats_since(path, since: float) -> dict | None:
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stats if stats.get("status") == "finished" and stats.get("started", 0) >= since - 1 else None


def sweep_placeholders(out: str, placeholder_urls: int) -> dict[str, int]:
    """Flags content shared by >= placeholder_urls distinct URLs across ALL shards; quarantines its copies.

    Returns {sha256: distinct URL count} of the suspected placeholders. Memory: 8 bytes per row with
    a hash (the first 64 bits of each sha256), then the URLs of the few candidate hashes only.
    """
    paths = JobFolder(out).manifests()
    prefixes = array("q")
    for path in paths:
        with Manifest(path, reader=True) as manifest:
            prefixes.extend(_prefix(sha256) for sha256 in manifest.content_hashes())
    values, counts = np.unique(np.frombuffer(prefixes, dtype=np.int64), return_counts=True)
    candidates = set(values[counts >= placeholder_urls].tolist())
    del prefixes, values, counts
    urls_by_hash: defaultdict[str, set[str]] = defaultdict(set)
    for path in paths if candidates else []:
        with Manifest(path, reader=True) as manifest:
            for sha256, url in manifest.urls_by_content():
                if _prefix(sha256) in candidates:
                    urls_by_hash[sha256].add(url)
    suspects = {h: len(u) for h, u in urls_by_hash.items() if len(u) >= placeholder_urls}
    for path in paths if suspects else []:
        with Manifest(path) as manifest:
            for sha256, count in suspects.items():
                quarantine_hash(manifest, out, sha256, f"content shared by {count} distinct URLs")
    return suspects


def _prefix(sha256: str) -> int:
    return int.from_bytes(bytes.fromhex(sha256[:16]), "big", signed=True)
