"""Running the shards of a job: `local` (shards in this process, or in N worker processes) or
`ray` (one Ray task per shard, on a cluster whose nodes share OUT). Progress is read back from the
shard manifests, so every engine shows the same bar.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

from tqdm import tqdm

from goz.download.manifest import Manifest, shard_manifests
from goz.download.shard import ShardJob, quarantine_hash, run_shard
from goz.errors import GozError

ENGINES = ("local", "ray")

log = logging.getLogger(__name__)


def run_jobs(jobs: list[ShardJob], *, engine: str, processes: int, ray_address: str | None,
             bar: tqdm) -> list[dict[str, int]]:
    """Runs every shard with `engine`; returns each shard's counts."""
    if engine == "local" and processes <= 1:
        decode_pool = ProcessPoolExecutor(max(1, jobs[0].decode_workers), mp_context=get_context("spawn"))
        try:
            return [run_shard(job, bar.update, decode_pool) for job in jobs]
        finally:
            decode_pool.shutdown(cancel_futures=True)
    if engine == "local":
        with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(run_shard, job) for job in jobs]
            _follow(jobs, bar, lambda: all(f.done() for f in futures))
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
        remote_shard = ray.remote(num_cpus=1)(run_shard)
        refs = [remote_shard.remote(job) for job in jobs]
        _follow(jobs, bar, lambda: not ray.wait(refs, num_returns=len(refs), timeout=0)[1])
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


def _follow(jobs: list[ShardJob], bar: tqdm, finished: Callable[[], bool]) -> None:
    """Moves the bar by the rows the shards commit (they run elsewhere and report only at the end)."""
    started, initial = time.time(), bar.n
    while True:
        done = finished()
        recorded = sum(_rows_since(job.manifest_path, started) for job in jobs)
        bar.update(max(0, min(bar.total, initial + recorded) - bar.n))
        if done:
            return
        time.sleep(max(0.5, len(jobs) / 200))  # a full ImageNet job has ~1400 manifests to read


def _rows_since(path, since: float) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as connection:
            return connection.execute("SELECT count(*) FROM items WHERE updated >= ?", (since,)).fetchone()[0]
    except sqlite3.Error:  # the shard is creating its schema right now
        return 0


def sweep_placeholders(out: str, placeholder_urls: int) -> dict[str, int]:
    """Flags content shared by >= placeholder_urls distinct URLs across ALL shards; quarantines its files.

    Returns {sha256: distinct URL count} of the suspected placeholders.
    """
    urls_by_hash: defaultdict[str, set[str]] = defaultdict(set)
    paths = shard_manifests(out)
    for path in paths:
        with Manifest(path) as manifest:
            for record in manifest.records("WHERE sha256 IS NOT NULL"):
                urls_by_hash[record.sha256].add(record.url)
    suspects = {h: len(u) for h, u in urls_by_hash.items() if len(u) >= placeholder_urls}
    for path in paths:
        with Manifest(path) as manifest:
            for sha256, count in suspects.items():
                quarantine_hash(manifest, out, sha256, f"content shared by {count} distinct URLs")
    return suspects
