"""A tiny HTTP server on 127.0.0.1 for fetch tests: byte ranges, cut connections, scripted answers."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class LocalServer:
    """Serves `files` ({path: bytes}) with Range support; `routes` ({path: fn(handler, request)}) win.

    `cut_after[path] = n` closes the connection after n body bytes (once per entry of
    `cuts_left[path]`, default once); `ignore_range` answers every request with the whole file.
    """

    files: dict[str, bytes] = field(default_factory=dict)
    content_types: dict[str, str] = field(default_factory=dict)
    routes: dict[str, Callable] = field(default_factory=dict)
    cut_after: dict[str, int] = field(default_factory=dict)
    cuts_left: dict[str, int] = field(default_factory=dict)
    ignore_range: bool = False
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def start(self) -> LocalServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                request = Request(parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()},
                                  {k.lower(): v for k, v in self.headers.items()})
                server.requests.append(request)
                if parts.path in server.routes:
                    server.routes[parts.path](self, request)
                elif parts.path in server.files:
                    self.send_file(server.files[parts.path], request,
                                   server.content_types.get(parts.path, "application/octet-stream"))
                else:
                    self.send_body(404, b"<html><title>404 Not Found</title></html>", "text/html")

            def send_body(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def send_file(self, data: bytes, request: Request, content_type: str) -> None:
                match = re.fullmatch(r"bytes=(\d+)-", request.headers.get("range", ""))
                start = int(match.group(1)) if match and not server.ignore_range else 0
                if start >= len(data) and match and not server.ignore_range:
                    self.send_body(416, b"", "text/plain", {"Content-Range": f"bytes */{len(data)}"})
                    return
                body = data[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                cut = server.cut_after.get(request.path)
                if cut is not None and server.cuts_left.get(request.path, 1) > 0:
                    server.cuts_left[request.path] = server.cuts_left.get(request.path, 1) - 1
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
