"""The job folder `OUT/.goz/` of a download: every path under it, and the two files that fix a
folder's choices at its first run. No other module spells `.goz`; each asks `JobFolder`.

```
OUT/.goz/format                        the output format (files | webdataset), fixed at the first run
OUT/.goz/job.json                      the shard count, fixed at the first run (a host stays in its shard)
OUT/.goz/lists/shard-NNNNN.tsv         the shard lists of the plan (`<key><TAB><url>`); lists.partial/ while written
OUT/.goz/manifest/shard-NNNNN.sqlite   one manifest per shard (goz.download.manifest)
OUT/.goz/stats/shard-NNNNN.json        what the last run of each shard did; stats/summary.json: the last run
OUT/.goz/tmp/                          files being written (same file system as OUT: the renames are atomic)
OUT/.goz/quarantine/                   the files of suspected placeholders
```
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from goz.download.defaults import FORMAT
from goz.errors import GozError
from goz.home import write_text_atomic

JOB_DIR = ".goz"


@dataclass(frozen=True)
class JobFolder:
    """The bookkeeping folder of the download folder `out` (plain data: it travels to shard processes)."""

    out: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))

    @property
    def root(self) -> Path:
        return self.out / JOB_DIR

    @property
    def lists(self) -> Path:
        return self.root / "lists"

    @property
    def lists_staging(self) -> Path:
        return self.root / "lists.partial"

    def list_path(self, shard: int) -> Path:
        return self.lists / f"shard-{shard:05d}.tsv"

    @property
    def manifest_dir(self) -> Path:
        return self.root / "manifest"

    def manifest_path(self, shard: int) -> Path:
        return self.manifest_dir / f"shard-{shard:05d}.sqlite"

    def manifests(self) -> list[Path]:
        """Every shard manifest present."""
        return sorted(self.manifest_dir.glob("shard-*.sqlite"))

    @property
    def stats_dir(self) -> Path:
        return self.root / "stats"

    def stats_path(self, shard: int) -> Path:
        return self.stats_dir / f"shard-{shard:05d}.json"

    @property
    def summary_path(self) -> Path:
        return self.stats_dir / "summary.json"

    @property
    def format_path(self) -> Path:
        return self.root / "format"

    @property
    def job_path(self) -> Path:
        return self.root / "job.json"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    def tmp_dir(self) -> Path:
        """Where files are written before their rename into place (created)."""
        return _made(self.tmp)

    def quarantine_dir(self) -> Path:
        """Where the files of suspected placeholders are moved (created)."""
        return _made(self.quarantine)

    def clear_tmp(self) -> Path:
        """Empties tmp/: only the driver calls it, before any shard starts (a shard could be writing there)."""
        shutil.rmtree(self.tmp, ignore_errors=True)
        return self.tmp_dir()

    def stored_format(self) -> str:
        """The format fixed by the folder's first run; the default for a folder without one."""
        return self.format_path.read_text(encoding="utf-8").strip() if self.format_path.exists() else FORMAT

    def fix_format(self, format: str, *, dry_run: bool = False) -> None:
        """One folder, one format: class folders and tars do not mix (fixed at the first run, not by a dry run)."""
        if self.format_path.exists():
            stored = self.stored_format()
            if stored != format:
                raise GozError(f"{self.out} holds a --format {stored} download; rerun with --format {stored} "
                               f"(or a new output folder)")
        elif not dry_run:
            write_text_atomic(self.format_path, format + "\n")

    def stored_shard_count(self) -> int | None:
        """The shard count fixed by the folder's first run; None for a new folder."""
        if not self.job_path.exists():
            return None
        try:
            stored = json.loads(self.job_path.read_text(encoding="utf-8"))["shards"]
        except (ValueError, KeyError, TypeError) as error:
            raise GozError(f"{self.job_path} is damaged ({type(error).__name__}: {error}); it records the shard "
                           f"count of this folder: restore it, or start again in a new output folder") from None
        if isinstance(stored, bool) or not isinstance(stored, int) or stored < 1:
            raise GozError(f"{self.job_path} is damaged: 'shards' is {stored!r}, not a positive integer")
        return stored

    def fix_shard_count(self, shards: int) -> None:
        write_text_atomic(self.job_path, json.dumps({"shards": shards, "assign": "host"}))


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
