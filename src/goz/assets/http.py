"""Published files over HTTP: resumable, retried, checksummed, atomic, locked.

`fetch_file` downloads into `<name>.part` beside the destination, resumes an interrupted
transfer with an HTTP Range request, retries connection errors and 5xx answers with backoff,
checks the sha256 (and any caller check), and renames into place only when everything passed:
a killed or failed fetch never leaves a file that looks done. A lock file serialises two
processes fetching the same file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from goz.catalog import Asset
from goz.errors import FetchError, GozError
from goz.home import CHUNK_BYTES, file_lock, sha256_of
from goz.progress import progress_bar

RETRIES = 3
BACKOFF_SECONDS = 1.0  # doubled after each failed attempt; tests set it to 0
MAX_PAGE_HOPS = 4
MAX_PAGE_BYTES = 1 << 21
USER_AGENT = "goz (GOZ zero-shot benchmark toolkit)"

log = logging.getLogger(__name__)

# An HTML page served instead of the file: returns the URL to request next, or None (not the file: an error).
PageHandler = Callable[[httpx.Response, str], "str | None"]
# A content check run on the complete file before it is put in place: raises GozError if wrong.
FileCheck = Callable[[Path], None]


def fetch_asset(asset: Asset, *, force: bool = False) -> Path:
    """The asset's local path, downloading it first if it is not cached (or fails its checksum)."""
    return fetch_file(asset.url, asset.local_path, sha256=asset.sha256, force=force)


class _Retry(Exception):
    """A transient failure (connection lost, 5xx, short body): worth another attempt."""


def fetch_file(url: str, destination: str | Path, sha256: str | None = None, *,
               check: FileCheck | None = None, page: PageHandler | None = None, force: bool = False,
               hint: str | None = None, timeout: float = 60.0, client: httpx.Client | None = None,
               progress: bool = True) -> Path:
    """Download `url` to `destination`: resumable, retried, checksummed, checked, atomic, locked.

    An existing destination is kept unless `force` (or it fails `sha256`). `page` decides what
    to do with an HTML page served instead of the file (see PageHandler); without it the page
    is saved like any content. `hint` ends every error message (how to supply a local copy).
    Raises FetchError naming the URL and the destination; nothing is left at `destination`.
    """
    destination = Path(destination)
    hint = hint or f"if you have a copy of the file, put it at {destination}"
    _make_directory(destination.parent)
    with file_lock(destination):
        if not force and destination.exists() and (sha256 is None or sha256_of(destination) == sha256):
            return destination
        partial = destination.with_name(destination.name + ".part")
        own_client = client is None
        client = client or httpx.Client(follow_redirects=True, timeout=timeout,
                                        headers={"User-Agent": USER_AGENT})
        try:
            _download_with_retries(client, url, partial, page, progress=progress)
        except (FetchError, httpx.HTTPError, httpx.InvalidURL, OSError) as error:
            reason = str(error) or type(error).__name__
            raise FetchError(f"could not download {url} to {destination}: {reason}. {hint}") from None
        finally:
            if own_client:
                client.close()
        _check_and_place(partial, destination, sha256, check, origin=url, hint=hint)
    return destination


def install_file(source: str | Path, destination: str | Path, sha256: str | None = None, *,
                 check: FileCheck | None = None, progress: bool = True) -> Path:
    """Copy a local file into place with the same checks as a download (checksum, `check`), atomically."""
    source, destination = Path(source), Path(destination)
    if not source.is_file():
        raise FetchError(f"{source}: no such file")
    if check is not None:
        try:
            check(source)
        except GozError as error:
            raise FetchError(f"{source} was not installed: {error}") from None
    _make_directory(destination.parent)
    temporary = destination.with_name(destination.name + ".copy")
    with file_lock(destination):
        digest = hashlib.sha256()
        try:
            with open(source, "rb") as reader, open(temporary, "wb") as writer, progress_bar(
                total=source.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
                desc=f"copy {destination.name}", enabled=progress,
            ) as bar:
                for block in iter(lambda: reader.read(CHUNK_BYTES), b""):
                    digest.update(block)
                    writer.write(block)
                    bar.update(len(block))
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise FetchError(f"could not copy {source} to {destination}: {error}") from None
        if sha256 is not None and digest.hexdigest() != sha256:
            temporary.unlink()
            raise FetchError(f"{source} was not installed: checksum mismatch, expected sha256 {sha256}, "
                             f"got {digest.hexdigest()} (not the published file)")
        os.replace(temporary, destination)
    return destination


def _make_directory(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FetchError(f"cannot create the data directory {directory}: {error}") from None


def _check_and_place(partial: Path, destination: Path, sha256: str | None, check: FileCheck | None,
                     *, origin: str, hint: str) -> None:
    if sha256 is not None:
        actual = sha256_of(partial)
        if actual != sha256:
            partial.unlink()
            raise FetchError(f"checksum mismatch for {origin}: expected sha256 {sha256}, got {actual}; "
                             f"the download was removed and nothing was put at {destination}. {hint}")
    if check is not None:
        try:
            check(partial)
        except GozError as error:
            partial.unlink()
            raise FetchError(f"the file downloaded from {origin} failed its check ({error}); it was removed "
                             f"and nothing was put at {destination}. {hint}") from None
    os.replace(partial, destination)


def _download_with_retries(client: httpx.Client, url: str, partial: Path, page: PageHandler | None,
                           *, progress: bool) -> None:
    for attempt in range(RETRIES + 1):
        try:
            return _download_resuming(client, url, partial, page, progress=progress)
        except (_Retry, httpx.TransportError) as error:
            reason = str(error) or type(error).__name__
            if _unknown_host(error):
                raise FetchError(f"{reason} (no network, or no such host)") from None
            if attempt == RETRIES:
                raise FetchError(f"{reason} (gave up after {RETRIES + 1} attempts"
                                 f"{'; the partial download is kept, rerun to resume' if partial.exists() else ''})"
                                 ) from None
            delay = BACKOFF_SECONDS * 2 ** attempt
            log.warning("%s: %s; retrying in %.0f s", url, reason, delay)
            time.sleep(delay)


def _unknown_host(error: BaseException) -> bool:
    """A DNS answer that the name does not exist (offline, typically): retrying cannot help."""
    while error is not None:
        if isinstance(error, socket.gaierror) and error.errno == socket.EAI_NONAME:
            return True
        error = error.__cause__ or error.__context__
    return False


def _download_resuming(client: httpx.Client, url: str, partial: Path, page: PageHandler | None,
                       *, progress: bool) -> None:
    offset = partial.stat().st_size if partial.exists() else 0
    headers = {"Accept-Encoding": "identity"}  # byte ranges must count the file's bytes, not gzip's
    if offset:
        headers["Range"] = f"bytes={offset}-"
    for _ in range(MAX_PAGE_HOPS + 1):
        with client.stream("GET", url, headers=headers) as response:
            if _is_html(response) and page is not None:
                text = _read_page(response)
                next_url = page(response, text)
                if next_url is not None:
                    url = next_url
                    continue
                if response.status_code < 400:
                    raise FetchError(f"the server answered with an HTML page (HTTP {response.status_code}, "
                                     f"{_page_title(text)!r}) instead of the file")
            if response.status_code == 416:
                return _range_not_satisfiable(response, partial, offset)
            _raise_for_status(response)
            start = _resume_offset(response, partial, offset)
            _write_body(response, partial, start, progress=progress)
            return None
    raise FetchError(f"still served an HTML page after {MAX_PAGE_HOPS} confirmation steps")


def _is_html(response: httpx.Response) -> bool:
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    return content_type in {"text/html", "application/xhtml+xml"}


def _read_page(response: httpx.Response) -> str:
    body = b""
    for block in response.iter_bytes():
        body += block
        if len(body) > MAX_PAGE_BYTES:
            break
    return body.decode(response.encoding or "utf-8", "replace")


def _page_title(text: str) -> str:
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    return " ".join(title.group(1).split()) if title else "no title"


def _range_not_satisfiable(response: httpx.Response, partial: Path, offset: int) -> None:
    total = re.fullmatch(r"bytes \*/(\d+)", response.headers.get("Content-Range", "").strip())
    if total and int(total.group(1)) == offset:
        return None  # the partial download already holds the whole file
    partial.unlink(missing_ok=True)  # larger than the file or unknown: the partial cannot be trusted
    raise _Retry("the server refused to resume the partial download; starting over")


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if status >= 500 or status == 429:
        raise _Retry(f"HTTP {status} {response.reason_phrase}")
    if status >= 400:
        raise FetchError(f"HTTP {status} {response.reason_phrase}"
                         + (" (the file is gone from this address)" if status in (404, 410) else ""))


def _resume_offset(response: httpx.Response, partial: Path, offset: int) -> int:
    """Where the body starts in the file: `offset` if the server honoured Range, else 0 (restart)."""
    if response.status_code != 206:
        return 0
    content_range = re.fullmatch(r"bytes (\d+)-\d+/(?:\d+|\*)", response.headers.get("Content-Range", "").strip())
    if not content_range or int(content_range.group(1)) != offset:
        partial.unlink(missing_ok=True)
        raise _Retry(f"the server answered the resume request with range "
                     f"{response.headers.get('Content-Range')!r}; starting over")
    return offset


def _write_body(response: httpx.Response, partial: Path, start: int, *, progress: bool) -> None:
    length = response.headers.get("Content-Length")
    total = start + int(length) if length and length.isdigit() else None
    with open(partial, "r+b" if start else "wb") as handle, progress_bar(
        total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
        desc=partial.name.removesuffix(".part"), enabled=progress,
    ) as bar:
        handle.seek(start)
        handle.truncate()
        for block in response.iter_raw():  # unchunked: a connection lost mid-way keeps what arrived
            handle.write(block)
            bar.update(len(block))
        written = handle.tell()
    if total is not None and written != total:
        raise _Retry(f"connection closed after {written} of {total} bytes")
