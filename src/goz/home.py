"""Where goz keeps its data (GOZ_HOME) and how it fetches published assets with checksums.

`fetch_file` resumes an interrupted transfer with an HTTP Range request, checks the sha256,
and renames into place only when complete, so a killed fetch never leaves a file that looks done.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import httpx
from tqdm import tqdm

from goz.errors import FetchError

CHUNK_BYTES = 1 << 20


def data_home() -> Path:
    """GOZ_HOME if set, else $XDG_CACHE_HOME/goz, else ~/.cache/goz."""
    if os.environ.get("GOZ_HOME"):
        return Path(os.environ["GOZ_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "goz"


@dataclass(frozen=True)
class Asset:
    """A published file: where it lives, where goz caches it, and its checksum (None: not pinned)."""

    url: str
    relative_path: str
    sha256: str | None = None

    @property
    def local_path(self) -> Path:
        return data_home() / self.relative_path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_asset(asset: Asset) -> Path:
    """The asset's local path, downloading it first if it is not cached (or fails its checksum)."""
    return fetch_file(asset.url, asset.local_path, sha256=asset.sha256)


def fetch_file(url: str, destination: Path, sha256: str | None = None, *, timeout: float = 60.0,
               client: httpx.Client | None = None, quiet: bool = False) -> Path:
    """Download `url` to `destination` (resumable, checksummed, atomic). Returns the path."""
    destination = Path(destination)
    if destination.exists() and (sha256 is None or sha256_of(destination) == sha256):
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    own_client = client is None
    client = client or httpx.Client(follow_redirects=True, timeout=timeout)
    try:
        _download_resuming(client, url, partial, quiet=quiet)
    except httpx.HTTPError as error:
        raise FetchError(
            f"could not download {url}: {error}. Offline? Put a copy of the file at {destination} "
            f"(or pass a local file path instead of the built-in name)"
        ) from None
    finally:
        if own_client:
            client.close()
    if sha256 is not None:
        actual = sha256_of(partial)
        if actual != sha256:
            partial.unlink()
            raise FetchError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}; "
                             f"the partial download was removed, rerun to try again")
    os.replace(partial, destination)
    return destination


def _download_resuming(client: httpx.Client, url: str, partial: Path, *, quiet: bool) -> None:
    offset = partial.stat().st_size if partial.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 416:  # already complete
            return
        response.raise_for_status()
        if offset and response.status_code != 206:  # server ignored Range: start over
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        with open(partial, "ab" if offset else "wb") as handle, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=partial.name.removesuffix(".part"), disable=quiet,
        ) as progress:
            for block in response.iter_bytes(CHUNK_BYTES):
                handle.write(block)
                progress.update(len(block))
