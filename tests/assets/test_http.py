import hashlib
import os
import socket
import threading
import time

import filelock
import pytest
from local_http import LocalServer

from goz.assets import http
from goz.errors import FetchError
from goz.assets.http import fetch_file, install_file

DATA = os.urandom(300_000)
DIGEST = hashlib.sha256(DATA).hexdigest()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(http, "BACKOFF_SECONDS", 0.0)


@pytest.fixture
def server():
    server = LocalServer(files={"/data.bin": DATA}).start()
    yield server
    server.stop()


def test_plain_fetch_checked_and_cached(tmp_path, server):
    destination = tmp_path / "sub" / "data.bin"
    assert fetch_file(f"{server.url}/data.bin", destination, DIGEST, progress=False) == destination
    assert destination.read_bytes() == DATA
    assert "range" not in server.requests[0].headers
    assert server.requests[0].headers["accept-encoding"] == "identity"
    fetch_file(f"{server.url}/data.bin", destination, DIGEST, progress=False)
    assert len(server.requests) == 1  # cached: no second request
    fetch_file(f"{server.url}/data.bin", destination, DIGEST, force=True, progress=False)
    assert len(server.requests) == 2
    assert not list(tmp_path.glob("sub/*.part"))


def test_checksum_mismatch_leaves_nothing_in_place(tmp_path, server):
    destination = tmp_path / "data.bin"
    with pytest.raises(FetchError, match="checksum mismatch") as error:
        fetch_file(f"{server.url}/data.bin", destination, "0" * 64, progress=False)
    assert f"{server.url}/data.bin" in str(error.value) and str(destination) in str(error.value)
    assert not destination.exists()
    assert not (tmp_path / "data.bin.part").exists()


def test_interrupted_transfer_resumes_on_rerun_with_range(tmp_path, server, monkeypatch):
    monkeypatch.setattr(http, "RETRIES", 0)
    server.cut_after["/data.bin"] = 100_000
    destination = tmp_path / "data.bin"
    with pytest.raises(FetchError, match="rerun to resume"):
        fetch_file(f"{server.url}/data.bin", destination, DIGEST, progress=False)
    assert not destination.exists()
    partial = tmp_path / "data.bin.part"
    assert partial.stat().st_size == 100_000
    fetch_file(f"{server.url}/data.bin", destination, DIGEST, progress=False)
    assert server.requests[-1].headers["range"] == "bytes=100000-"
    assert destination.read_bytes() == DATA
    assert not partial.exists()


def test_connection_lost_is_retried_within_one_call(tmp_path, server):
    server.cut_after["/data.bin"] = 50_000
    fetch_file(f"{server.url}/data.bin", tmp_path / "data.bin", DIGEST, progress=False)
    assert [r.headers.get("range") for r in server.requests] == [None, "bytes=50000-"]
    assert (tmp_path / "data.bin").read_bytes() == DATA


def test_server_ignoring_range_restarts_cleanly(tmp_path, server):
    server.ignore_range = True
    (tmp_path / "data.bin.part").write_bytes(DATA[:1000])
    fetch_file(f"{server.url}/data.bin", tmp_path / "data.bin", DIGEST, progress=False)
    assert server.requests[0].headers["range"] == "bytes=1000-"
    assert (tmp_path / "data.bin").read_bytes() == DATA


def test_range_not_satisfiable(tmp_path, server):
    (tmp_path / "data.bin.part").write_bytes(DATA)  # complete but not yet renamed (killed at the end)
    fetch_file(f"{server.url}/data.bin", tmp_path / "data.bin", DIGEST, progress=False)
    assert len(server.requests) == 1 and (tmp_path / "data.bin").read_bytes() == DATA
    server.requests.clear()
    (tmp_path / "other.part").write_bytes(DATA + b"junk")  # longer than the file: start over
    fetch_file(f"{server.url}/data.bin", tmp_path / "other", DIGEST, progress=False)
    assert [r.headers.get("range") for r in server.requests] == [f"bytes={len(DATA) + 4}-", None]
    assert (tmp_path / "other").read_bytes() == DATA


def test_server_errors_are_retried_then_reported(tmp_path, server, monkeypatch):
    answers = iter([503, 502])

    def flaky(handler, request):
        status = next(answers, None)
        if status is None:
            handler.send_file(DATA, request, "application/octet-stream")
        else:
            handler.send_body(status, b"busy", "text/plain")

    server.routes["/flaky"] = flaky
    fetch_file(f"{server.url}/flaky", tmp_path / "flaky", DIGEST, progress=False)
    assert len(server.requests) == 3 and (tmp_path / "flaky").read_bytes() == DATA
    server.routes["/down"] = lambda handler, request: handler.send_body(500, b"", "text/plain")
    monkeypatch.setattr(http, "RETRIES", 2)
    with pytest.raises(FetchError, match="HTTP 500.*gave up after 3 attempts"):
        fetch_file(f"{server.url}/down", tmp_path / "down", progress=False)
    assert not (tmp_path / "down").exists()


def test_missing_file_and_dead_server(tmp_path, server):
    with pytest.raises(FetchError, match="HTTP 404.*gone") as error:
        fetch_file(f"{server.url}/nothing", tmp_path / "nothing", hint="Use --from.", progress=False)
    assert str(tmp_path / "nothing") in str(error.value) and str(error.value).endswith("Use --from.")
    assert len(server.requests) == 1  # a 404 is not retried
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/file"
    with pytest.raises(FetchError, match=f"could not download {dead}") as error:
        fetch_file(dead, tmp_path / "file", progress=False)
    assert "put it at" in str(error.value)
    assert not (tmp_path / "file").exists() and not (tmp_path / "file.part").exists()


def test_html_page_refused_when_a_page_handler_says_so(tmp_path, server):
    server.files["/page"] = b"<html><head><title>Sign in</title></head></html>"
    server.content_types["/page"] = "text/html; charset=utf-8"
    with pytest.raises(FetchError, match="HTML page.*'Sign in'"):
        fetch_file(f"{server.url}/page", tmp_path / "page", page=lambda response, text: None, progress=False)
    assert not (tmp_path / "page").exists() and not (tmp_path / "page.part").exists()


def test_a_second_process_waits_for_the_lock_then_finds_the_file(tmp_path, server):
    destination = tmp_path / "data.bin"
    lock = filelock.FileLock(tmp_path / ".data.bin.lock")
    lock.acquire()
    result = []
    worker = threading.Thread(target=lambda: result.append(
        fetch_file(f"{server.url}/data.bin", destination, DIGEST, progress=False)))
    worker.start()
    time.sleep(0.3)
    assert worker.is_alive() and not server.requests  # waiting, not downloading
    destination.write_bytes(DATA)  # what the lock holder produced
    lock.release()
    worker.join(5)
    assert result == [destination] and not server.requests


def test_install_file_checks_before_placing(tmp_path):
    source = tmp_path / "copy.bin"
    source.write_bytes(DATA)
    destination = tmp_path / "home" / "data.bin"
    assert install_file(source, destination, DIGEST, progress=False).read_bytes() == DATA
    with pytest.raises(FetchError, match="checksum mismatch"):
        install_file(source, tmp_path / "home" / "other.bin", "1" * 64, progress=False)
    assert not (tmp_path / "home" / "other.bin").exists()
    assert not list((tmp_path / "home").glob("*.copy"))


def test_offline_fails_at_once(tmp_path, monkeypatch):
    calls = []

    def no_dns(*args, **kwargs):
        calls.append(args[0])
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(FetchError, match=r"could not download http://assets.example/f .*no network") as error:
        fetch_file("http://assets.example/f", tmp_path / "f", hint="Use --from PATH.", progress=False)
    assert str(error.value).endswith("Use --from PATH.")
    assert calls == ["assets.example"]  # not retried: the name does not resolve


def test_write_text_atomic_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    from goz.home import write_text_atomic

    target = tmp_path / "deep" / "table.md"
    assert write_text_atomic(target, "first\n") == target and target.read_text() == "first\n"
    write_text_atomic(target, "ünïcode second\n")
    assert target.read_text(encoding="utf-8") == "ünïcode second\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.md"]
