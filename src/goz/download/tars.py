"""`goz download --format webdataset`: the accepted images of a shard as WebDataset tars.

`OUT/shard-SSSSS-NNNNN.tar` holds up to `images_per_tar` samples; each sample is
`<wnid>_<id>.<ext>` (the original bytes: `jpg`, `png`, ... or the resized `jpg`) and
`<wnid>_<id>.json` (`url`, `wnid`, `id`, `sha256` of the stored bytes), so `__key__` is the key.
A tar is written in the job folder's tmp/ (goz.download.job; not beside the tars, where a reader
would take it for a shard) and renamed into place when complete; only then are its
rows committed (in one transaction). A kill loses the open tar, whose images the rerun fetches
again; a tar renamed before its rows were committed is adopted by the rerun, not fetched again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from dataclasses import replace
from pathlib import Path

from goz.download.manifest import Manifest, Record
from goz.download.urllist import ListEntry
from goz.download.validate import Validated, ValidationLimits, validate_image

TAR_NAME = re.compile(r"^shard-(?P<shard>\d{5})-(?P<seq>\d{5})\.tar$")


def validate_for_tar(data: bytes, limits: ValidationLimits) -> Validated:
    """Runs in a validation process: the verdict, with the bytes to store when they are not `data`."""
    verdict, stored = validate_image(data, limits)
    return replace(verdict, stored=stored)


def shard_tars(out: str | Path, shard: int) -> list[Path]:
    return sorted(Path(out).glob(f"shard-{shard:05d}-*.tar"))


class TarSink:
    """The open tar of one shard, and the `ok` rows waiting for it to be renamed into place."""

    def __init__(self, job, manifest: Manifest):
        self.job, self.manifest = job, manifest
        self.out = Path(job.out)
        existing = [int(TAR_NAME.match(p.name)["seq"]) for p in shard_tars(self.out, job.index)]
        self.sequence = max(existing, default=-1) + 1
        self.writer = None
        self.pending: list[Record] = []

    @property
    def final_path(self) -> Path:
        return self.out / f"shard-{self.job.index:05d}-{self.sequence:05d}.tar"

    def add(self, record: Record, extension: str, data: bytes) -> None:
        from webdataset import TarWriter  # imported here: only this format needs it
        if self.writer is None:
            self.temporary = self.job.folder.tmp_dir() / f"{self.final_path.name}.{os.getpid()}.part"
            self.writer = TarWriter(open(self.temporary, "wb"), encoder=False)
        sha256 = hashlib.sha256(data).hexdigest()
        meta = {"url": record.url, "wnid": record.wnid, "id": record.image_id, "sha256": sha256}
        self.writer.write({"__key__": record.key, extension: data, "json": json.dumps(meta).encode()})
        record.path = str(self.final_path)
        self.pending.append(record)
        if len(self.pending) >= self.job.images_per_tar:
            self.close()

    def close(self) -> None:
        """Finishes the open tar: renamed into place, then its rows committed together."""
        if self.writer is None:
            return
        self.writer.close()  # closes the file too
        os.replace(self.temporary, self.final_path)
        self.manifest.record_all(self.pending)
        self.writer, self.pending = None, []
        self.sequence += 1

    def adopt(self, unrecorded: list[ListEntry], urls_by_hash) -> int:
        """Records the samples of tars no row points to (renamed by a killed run before its commit)."""
        wanted = {e.key: e for e in unrecorded}
        referenced = self.manifest.stored_paths()
        adopted = []
        for path in shard_tars(self.out, self.job.index):
            if str(path) in referenced or not wanted:
                continue
            for key, meta, size in _samples(path):
                entry = wanted.pop(key, None)
                if entry is None:
                    continue
                adopted.append(Record(key, entry.wnid, entry.image_id, entry.url, "ok", bytes=size,
                                      sha256=meta.get("sha256"), path=str(path),
                                      error="sample kept from an interrupted run"))
                urls_by_hash[meta.get("sha256")].add(entry.url)
        self.manifest.record_all(adopted)
        return len(adopted)


def _samples(path: Path):
    """(key, json metadata, image size) of each sample of a tar; nothing for a damaged tar."""
    sizes, metas = {}, {}
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                key, _, extension = member.name.partition(".")
                if extension == "json":
                    metas[key] = json.loads(tar.extractfile(member).read())
                else:
                    sizes[key] = member.size
    except (tarfile.TarError, OSError, ValueError):
        return []
    return [(key, metas[key], sizes[key]) for key in metas if key in sizes]


def remove_from_tar(path: Path, key: str, quarantine: Path, temporary_dir: Path) -> Path | None:
    """Rewrites the tar without the sample `key` (atomically); its image goes to `quarantine`."""
    if not path.exists():
        return None
    target = None
    temporary = temporary_dir / f"{path.name}.{os.getpid()}.rewrite"
    kept = 0
    with tarfile.open(path) as source, tarfile.open(temporary, "w", format=tarfile.USTAR_FORMAT) as rewritten:
        for member in source:
            data = source.extractfile(member).read()
            if member.name.partition(".")[0] == key:
                if not member.name.endswith(".json"):
                    target = quarantine / member.name
                    target.write_bytes(data)
                continue
            rewritten.addfile(member, io.BytesIO(data))
            kept += 1
    if kept:
        os.replace(temporary, path)
    else:
        temporary.unlink()
        path.unlink()
    return target
