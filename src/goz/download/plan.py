"""Planning a job: the URL list read once, in a stream, into on-disk shard lists.

Every URL of a host goes to the same shard (a hash of the host name), so the per-host limit and
the pauses after 429/503, which a shard keeps for its hosts, hold for the whole run however many
processes or Ray nodes run the shards. Memory stays flat: entries go to disk in batches; what
grows is 8 bytes per distinct key (the duplicate check) and a counter per host and per class.

The shard lists (`<key><TAB><url>` lines) and the shard count fixed at the first run (a host must
stay in its shard across reruns) live in the job folder (goz.download.job).
"""

from __future__ import annotations

import hashlib
import math
import shutil
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from goz.download.defaults import SHARD_SIZE
from goz.download.job import JobFolder
from goz.download.manifest import Manifest
from goz.download.urllist import ListEntry, ListStats, read_shard_list, stream_url_list
from goz.errors import GozError

BUFFERED_LINES = 1 << 16  # lines held in memory before they are appended to the shard lists


@dataclass
class Plan:
    """What a run of the list would do: its entries, classes, hosts and shards."""

    out: str
    list_stats: ListStats
    shards: int
    classes: int
    hosts: int
    shard_entries: list[int]
    busiest_hosts: dict[str, int] = field(default_factory=dict)
    resume_skips: int | None = None  # entries already recorded (a rerun fetches the rest); None: not counted

    @property
    def entries(self) -> int:
        return self.list_stats.entries

    @property
    def folder(self) -> JobFolder:
        return JobFolder(self.out)

    def list_path(self, index: int) -> Path:
        return self.folder.list_path(index)

    def as_dict(self) -> dict:
        return asdict(self) | {"entries": self.entries, "nonempty_shards": sum(1 for n in self.shard_entries if n)}


def host_of(url: str) -> str:
    """The lower-case host name of `url` (as urlsplit's .hostname, without its cost per line)."""
    netloc = url.partition("://")[2].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2]
    if netloc.startswith("["):
        return netloc[1:netloc.find("]")].lower()
    return netloc.partition(":")[0].lower()


def host_hash(host: str) -> int:
    # blake2b, not hash() (every process and rerun must agree) nor crc32 (similar names such as
    # farm1..farm9.static.flickr.com would share their low bits, and so their shard).
    return int.from_bytes(hashlib.blake2b(host.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def shard_of_host(host: str, shards: int) -> int:
    return host_hash(host) % shards


def plan_job(urls: str | Path, out: str | Path, *, classes: list[str] | set[str] | None = None,
             per_class: int | None = None, limit: int | None = None, shards: int | None = None,
             shard_size: int = SHARD_SIZE, dry_run: bool = False) -> Plan:
    """Streams the list into the shard lists of `out`; fixes the shard count (not on a dry run)."""
    out = Path(out)
    folder = JobFolder(out)
    stored = folder.stored_shard_count()
    if stored is not None and shards is not None and shards != stored:
        raise GozError(f"{out} was started with {stored} shards; rerun with --shards {stored} (or a new output folder)")
    count = stored or shards
    lists, staging = folder.lists, folder.lists_staging
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    stats = ListStats()
    hosts: Counter[str] = Counter()
    wnids: set[str] = set()
    # Without a shard count yet, entries are spilled to one file and dealt once it is known.
    sink = _ShardLists(staging, count) if count else _Spill(staging / "unsharded.tsv")
    for entry in stream_url_list(urls, stats, classes=classes, per_class=per_class, limit=limit):
        host = host_of(entry.url)
        hosts[host] += 1
        wnids.add(entry.wnid)
        sink.add(host, entry)
    sink.close()
    if count is None:
        count = max(1, math.ceil(stats.entries / shard_size))
        sink = _ShardLists(staging, count)
        sink.deal(staging / "unsharded.tsv")
    shard_entries = [0] * count
    for host, n in hosts.items():
        shard_entries[shard_of_host(host, count)] += n
    shutil.rmtree(lists, ignore_errors=True)
    staging.rename(lists)
    if not dry_run and stored is None:
        folder.fix_shard_count(count)
    return Plan(str(out), stats, count, len(wnids), len(hosts), shard_entries, dict(hosts.most_common(5)))


def count_resume_skips(plan: Plan, *, retry_failed: bool = False, retry_crashed: bool = False) -> int:
    """Entries of the plan that a run would not fetch: already recorded in the shard manifests."""
    skips = 0
    for index, entries in enumerate(plan.shard_entries):
        path = plan.folder.manifest_path(index)
        if not entries or not path.exists():
            continue
        keys = {e.key for e in read_shard_list(plan.list_path(index))}
        with Manifest(path, reader=True) as manifest:
            skips += manifest.count_finished(keys, retry_failed=retry_failed, retry_crashed=retry_crashed)
    return skips


class _ShardLists:
    """Appends `<key><TAB><url>` lines to the shard lists, BUFFERED_LINES at a time (few open files)."""

    def __init__(self, folder: Path, shards: int):
        self.folder, self.shards = folder, shards
        self.buffers: defaultdict[int, list[str]] = defaultdict(list)
        self.buffered = 0
        self.shard_of: dict[str, int] = {}

    def add(self, host: str, entry: ListEntry) -> None:
        shard = self.shard_of.get(host)
        if shard is None:  # one hash per host, not per line (as many entries as the host counter)
            shard = self.shard_of[host] = shard_of_host(host, self.shards)
        self._add(shard, f"{entry.key}\t{entry.url}\n")

    def _add(self, shard: int, line: str) -> None:
        self.buffers[shard].append(line)
        self.buffered += 1
        if self.buffered >= BUFFERED_LINES:
            self.close()

    def deal(self, spill: Path) -> None:
        """Deals the spilled `<host hash><TAB><key><TAB><url>` lines to the shards."""
        with open(spill, encoding="utf-8", newline="\n") as handle:
            for line in handle:
                crc, _, rest = line.partition("\t")
                self._add(int(crc) % self.shards, rest)
        self.close()
        spill.unlink()

    def close(self) -> None:
        for shard, lines in self.buffers.items():
            with open(self.folder / f"shard-{shard:05d}.tsv", "a", encoding="utf-8", newline="\n") as handle:
                handle.writelines(lines)
        self.buffers.clear()
        self.buffered = 0


class _Spill:
    def __init__(self, path: Path):
        self.handle = open(path, "w", encoding="utf-8", newline="\n", buffering=1 << 20)  # noqa: SIM115 (closed by close)
        self.hash_of: dict[str, int] = {}

    def add(self, host: str, entry: ListEntry) -> None:
        value = self.hash_of.get(host)
        if value is None:
            value = self.hash_of[host] = host_hash(host)
        self.handle.write(f"{value}\t{entry.key}\t{entry.url}\n")

    def close(self) -> None:
        self.handle.close()
