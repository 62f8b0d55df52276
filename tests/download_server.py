"""A local HTTP server with fault injection for the downloader tests (aiohttp.web in a thread)."""

from __future__ import annotations

import asyncio
import io
import threading
import zlib
from pathlib import Path
from collections import Counter

import numpy as np
from aiohttp import web
from PIL import Image

from poison_validator import KILLS_ONCE, POISON


def jpeg_bytes(seed: str, size: tuple[int, int] = (96, 72)) -> bytes:
    """A distinct JPEG per seed (random pixels), so no two URLs share content by accident."""
    rng = np.random.default_rng(zlib.crc32(seed.encode()))
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def png_bytes(size: tuple[int, int], mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, "PNG")
    return buffer.getvalue()


PLACEHOLDER = jpeg_bytes("the same placeholder for every dead photo", (120, 90))


class FaultServer:
    """Serves images and failures by path; `requests` counts every request per path.

    `hosts`: loopback addresses served on one port (Linux routes all of 127.0.0.0/8 to loopback), so a
    test has several hosts; `max_in_flight_by_host` is the most requests one host had in flight at once.
    """

    def __init__(self, delay: float = 0.0, hosts: tuple[str, ...] = ("127.0.0.1",)):
        self.delay, self.hosts = delay, hosts
        self.requests: Counter[str] = Counter()
        self.in_flight = self.max_in_flight = 0
        self.in_flight_by_host: Counter[str] = Counter()
        self.max_in_flight_by_host: Counter[str] = Counter()
        self.busy_until: dict[str, float] = {}  # host -> time before which its requests are a violation
        self.requests_while_paused: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._started.wait(10)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.hosts[0], 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        for host in self.hosts[1:]:
            self._loop.run_until_complete(web.TCPSite(self._runner, host, self.port).start())
        self._started.set()
        self._loop.run_forever()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        host = request.host.rpartition(":")[0]
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.in_flight_by_host[host] += 1
        self.max_in_flight_by_host[host] = max(self.max_in_flight_by_host[host], self.in_flight_by_host[host])
        if asyncio.get_running_loop().time() < self.busy_until.get(host, 0.0):
            self.requests_while_paused[host] += 1
        try:
            return await self._respond(request)
        finally:
            self.in_flight -= 1
            self.in_flight_by_host[host] -= 1

    async def _respond(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests[path] += 1
        kind, _, name = path.strip("/").partition("/")
        if self.delay:
            await asyncio.sleep(self.delay)
        if kind in ("img", "ünïcode"):
            return web.Response(body=jpeg_bytes(name), content_type="image/jpeg")
        if kind == "poison":  # a JPEG whose validation process dies (see poison_validator.py)
            return web.Response(body=jpeg_bytes(name) + POISON, content_type="image/jpeg")
        if kind == "killsonce":
            return web.Response(body=jpeg_bytes(name) + KILLS_ONCE, content_type="image/jpeg")
        if kind == "wrongtype":
            return web.Response(body=jpeg_bytes(name), content_type="text/plain")
        if kind == "status":
            return web.Response(status=int(name), text="failure")
        if kind == "flaky":  # status then, from the second request on, an image
            status, _, image = name.partition("-")
            if self.requests[path] == 1:
                return web.Response(status=int(status), headers={"Retry-After": "1"}, text="busy")
            return web.Response(body=jpeg_bytes(image), content_type="image/jpeg")
        if kind == "busy-once":  # the host's first such request: 429 Retry-After 2; requests within 2 s are counted
            host = request.host.rpartition(":")[0]
            if host not in self.busy_until:
                self.busy_until[host] = asyncio.get_running_loop().time() + 1.9
                return web.Response(status=429, headers={"Retry-After": "2"}, text="slow down")
            return web.Response(body=jpeg_bytes(name), content_type="image/jpeg")
        if kind == "always429":
            return web.Response(status=429, headers={"Retry-After": "1"}, text="slow down")
        if kind == "drip":
            response = web.StreamResponse(headers={"Content-Type": "image/jpeg", "Content-Length": "100000"})
            await response.prepare(request)
            try:
                for _ in range(1000):
                    await response.write(b"\xff")
                    await asyncio.sleep(0.5)
            except ConnectionResetError:  # the client gave up, as it should
                pass
            return response
        if kind == "reset":
            request.transport.abort()
            await asyncio.sleep(0.1)
            return web.Response(text="never sent")
        if kind == "loop":
            raise web.HTTPFound(f"/loop/{int(name or 0) + 1}")
        if kind == "html":
            return web.Response(text="<!DOCTYPE html><html><body>Not found</body></html>", content_type="text/html")
        if kind == "placeholder":
            return web.Response(body=PLACEHOLDER, content_type="image/jpeg")
        if kind == "dead":
            raise web.HTTPFound("/photo_unavailable.png")
        if kind == "photo_unavailable.png":
            return web.Response(body=png_bytes((500, 374)), content_type="image/png")
        if kind == "truncated":
            data = jpeg_bytes("truncated", (200, 150))
            return web.Response(body=data[: len(data) * 2 // 3], content_type="image/jpeg")
        if kind == "oversized":
            return web.Response(body=b"\xff\xd8\xff" + bytes(300_000), content_type="image/jpeg")
        if kind == "oversized-chunked":
            response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for _ in range(10):
                await response.write(bytes(50_000))
            return response
        if kind == "bomb":
            return web.Response(body=png_bytes((4000, 4000), "1"), content_type="image/png")
        if kind == "tiny":
            return web.Response(body=png_bytes((8, 8), "RGB"), content_type="image/png")
        return web.Response(status=404, text="no such path")


def write_list(path: Path, lines: list[str]) -> Path:
    """A URL list file, one `<wnid>_<id><TAB><url>` line each."""
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path
