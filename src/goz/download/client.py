"""The network side: one aiohttp session, a per-host limit, a total deadline per attempt,
redirects followed by hand (at most N, http/https only, placeholder targets caught), bounded
bodies, and backoff on 429/503 that honours Retry-After.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
import yarl

from goz.download.defaults import (
    CONCURRENCY,
    DEADLINE_S,
    MAX_ATTEMPTS,
    MAX_BYTES,
    MAX_REDIRECTS,
    PER_HOST,
)
from goz.errors import GozError

# Paths image hosts redirect dead photos to (Flickr: /photo_unavailable.png and .gif variants).
PLACEHOLDER_PATH_MARKERS = ("photo_unavailable", "image_unavailable", "imageunavailable", "no_image_available")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
BACKOFF_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class FetchOptions:
    """Network limits. `deadline` bounds a whole attempt (connect, redirects, body), not one read."""

    concurrency: int = CONCURRENCY
    per_host: int = PER_HOST
    deadline: float = DEADLINE_S
    connect_timeout: float = 10.0
    max_bytes: int = MAX_BYTES
    max_redirects: int = MAX_REDIRECTS
    max_attempts: int = MAX_ATTEMPTS
    backoff: float = 1.0
    max_retry_wait: float = 60.0
    user_agent: str = "goz-downloader/0.1 (+https://github.com/TristHas/GOZ)"

    def __post_init__(self) -> None:
        for name in ("concurrency", "per_host", "max_bytes", "max_attempts"):
            if getattr(self, name) < 1:
                raise GozError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_redirects < 0:
            raise GozError(f"max_redirects must be at least 0, got {self.max_redirects}")
        for name in ("deadline", "connect_timeout"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) <= 0:
                raise GozError(f"{name} must be a finite number of seconds > 0, got {getattr(self, name)}")


@dataclass
class Fetched:
    """What came back: `body` (data holds the bytes) or a failure outcome of the manifest."""

    outcome: str
    data: bytes = b""
    http_status: int | None = None
    final_url: str | None = None
    attempts: int = 0
    error: str = ""
    retry_after: float | None = None


class HostGate:
    """At most `per_host` requests in flight per host, and a host-wide pause after a 429/503."""

    def __init__(self, per_host: int):
        self._semaphores: defaultdict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(per_host))
        self._not_before: dict[str, float] = {}

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        async with self._semaphores[host]:
            while (wait := self._not_before.get(host, 0.0) - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            yield

    def pause(self, host: str, seconds: float) -> None:
        self._not_before[host] = max(self._not_before.get(host, 0.0), time.monotonic() + seconds)


def open_session(options: FetchOptions) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=options.concurrency, limit_per_host=0, ttl_dns_cache=600)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=options.connect_timeout)
    return aiohttp.ClientSession(connector=connector, timeout=timeout,
                                 headers={"User-Agent": options.user_agent})


async def fetch(session: aiohttp.ClientSession, gate: HostGate, url: str, options: FetchOptions) -> Fetched:
    """Fetches `url`, retrying after 429/503 (Retry-After or exponential backoff) up to max_attempts."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError as error:
        return Fetched("bad_url", final_url=url, attempts=1, error=f"invalid URL: {error}")
    for attempt in range(1, options.max_attempts + 1):
        async with gate.slot(host):
            result = await _attempt(session, url, options)
        result.attempts = attempt
        if result.retry_after is None or attempt == options.max_attempts:
            return result
        wait = result.retry_after if result.retry_after > 0 else options.backoff * 2 ** (attempt - 1)
        if wait > options.max_retry_wait:
            result.error += f" (Retry-After {wait:.0f}s exceeds {options.max_retry_wait:.0f}s: left for --retry-failed)"
            return result
        gate.pause(host, wait)
    raise AssertionError("unreachable: the loop returns on its last attempt")


async def _attempt(session: aiohttp.ClientSession, url: str, options: FetchOptions) -> Fetched:
    current = url
    try:
        async with asyncio.timeout(options.deadline):
            for _ in range(options.max_redirects + 1):
                if urlsplit(current).scheme.lower() not in ("http", "https"):
                    outcome = "bad_url" if current == url else "redirect_error"
                    return Fetched(outcome, final_url=current, error="only http and https URLs are fetched")
                async with session.get(yarl.URL(current), allow_redirects=False) as response:
                    if response.status in REDIRECT_STATUSES:
                        location = response.headers.get("Location")
                        if not location:
                            return Fetched("http_error", http_status=response.status, final_url=current,
                                           error="redirect without Location")
                        current = urljoin(current, location)
                        if any(marker in urlsplit(current).path.lower() for marker in PLACEHOLDER_PATH_MARKERS):
                            return Fetched("placeholder", http_status=response.status, final_url=current,
                                           error="redirected to a known placeholder")
                        continue
                    if response.status != 200:
                        retry_after = (retry_after_seconds(response.headers.get("Retry-After"))
                                       if response.status in BACKOFF_STATUSES else None)
                        return Fetched("http_error", http_status=response.status, final_url=current,
                                       error=f"HTTP {response.status} {response.reason or ''}".strip(),
                                       retry_after=retry_after)
                    return await _read_body(response, current, options)
            return Fetched("redirect_error", final_url=current, error=f"more than {options.max_redirects} redirects")
    except TimeoutError:
        return Fetched("timeout", final_url=current, error=f"no complete answer within {options.deadline:g}s")
    except aiohttp.ClientConnectorDNSError as error:
        return Fetched("dns_error", final_url=current, error=str(error))
    except (aiohttp.InvalidURL, ValueError) as error:
        return Fetched("bad_url", final_url=current, error=f"invalid URL: {error}")
    except (aiohttp.ClientError, OSError) as error:
        return Fetched("connection_error", final_url=current, error=f"{type(error).__name__}: {error}")


async def _read_body(response: aiohttp.ClientResponse, url: str, options: FetchOptions) -> Fetched:
    declared = response.content_length
    if declared is not None and declared > options.max_bytes:
        return Fetched("too_large", http_status=200, final_url=url,
                       error=f"Content-Length {declared} exceeds {options.max_bytes} bytes")
    body = bytearray()
    async for chunk in response.content.iter_chunked(1 << 16):
        body += chunk
        if len(body) > options.max_bytes:
            return Fetched("too_large", http_status=200, final_url=url,
                           error=f"body exceeds {options.max_bytes} bytes")
    return Fetched("body", bytes(body), http_status=200, final_url=url)


def retry_after_seconds(value: str | None) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); 0 when absent or unreadable."""
    if not value:
        return 0.0
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return 0.0
