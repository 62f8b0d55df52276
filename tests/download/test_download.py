import email.utils
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import psutil
import pytest

import checkout
from PIL import Image

import goz.download.shard
from download_server import FaultServer, write_list
from goz.cli import main
from goz.download import download, report
from goz.download.client import retry_after_seconds
from goz.download.job import JobFolder
from goz.download.urllist import read_url_list
from processes import survivors
from poison_validator import KILL_ONCE_FLAG, killing_validate_and_store

FAST = dict(deadline=2.0, concurrency=16, per_host=16, decode_workers=1, progress=False)
SRC = str(checkout.SRC)


@pytest.fixture(scope="module")
def server():
    server = FaultServer()
    yield server
    server.close()


def manifest_rows(out: Path) -> dict[str, dict]:
    rows = {}
    for path in JobFolder(out).manifests():
        with closing(sqlite3.connect(path)) as connection:
            connection.row_factory = sqlite3.Row
            rows.update({row["key"]: dict(row) for row in connection.execute("SELECT * FROM items")})
    return rows


def sqlite_leftovers(out: Path) -> list[str]:
    """The -wal / -shm files in the job folder: a connection to a manifest left open (or a read-only one)."""
    return sorted(p.name for p in JobFolder(out).root.rglob("*") if p.name.endswith(("-wal", "-shm")))


def class_files(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("n*/*") if p.is_file())


def assert_valid_images(paths):
    for path in paths:
        with Image.open(path) as image:
            image.load()


EXPECTED = {
    "n00000001_1": ("/img/a.jpg", "ok"),
    "n00000001_2": ("/wrongtype/b.jpg", "ok"),
    "n00000001_3": ("/ünïcode/c.jpg", "ok"),
    "n00000001_4": ("/flaky/429-d.jpg", "ok"),
    "n00000001_5": ("/status/404", "http_error"),
    "n00000001_6": ("/status/500", "http_error"),
    "n00000001_7": ("/always429/x", "http_error"),
    "n00000001_8": ("/drip/x", "timeout"),
    "n00000001_9": ("/reset/x", "connection_error"),
    "n00000001_10": ("/loop/0", "redirect_error"),
    "n00000001_11": ("/html/x", "not_image"),
    "n00000001_12": ("/dead/12", "placeholder"),
    "n00000002_13": ("/placeholder/13", "placeholder"),
    "n00000002_14": ("/placeholder/14", "placeholder"),
    "n00000003_15": ("/placeholder/15", "placeholder"),
    "n00000002_16": ("/truncated/x", "decode_error"),
    "n00000002_17": ("/oversized/x", "too_large"),
    "n00000002_18": ("/oversized-chunked/x", "too_large"),
    "n00000002_19": ("/bomb/x", "too_large"),
    "n00000002_20": ("/tiny/x", "too_small"),
}


def test_every_outcome_is_classified(server, tmp_path):
    lines = [f"{key}\t{server.url(path)}" for key, (path, _) in EXPECTED.items()]
    lines += ["n00000003_21\thttp://goz-test-host.invalid/a.jpg",
              "n00000003_22\thttp://127.0.0.1:1/a.jpg",
              "n00000003_23\tftp://127.0.0.1/a.jpg"]
    expected = {key: outcome for key, (_, outcome) in EXPECTED.items()}
    expected |= {"n00000003_21": "dns_error", "n00000003_22": "connection_error", "n00000003_23": "bad_url"}
    out = tmp_path / "out"
    summary = download(write_list(tmp_path / "urls.txt", lines), out, max_bytes=200_000, max_pixels=1_000_000,
                       max_attempts=2, placeholder_urls=3, **FAST)
    rows = manifest_rows(out)
    assert {key: row["outcome"] for key, row in rows.items()} == expected
    assert summary.outcomes["ok"] == 4 and summary.outcomes["placeholder"] == 4
    assert rows["n00000001_4"]["attempts"] == 2
    assert rows["n00000001_5"]["http_status"] == 404 and rows["n00000001_7"]["http_status"] == 429
    assert rows["n00000001_12"]["final_url"].endswith("/photo_unavailable.png")
    assert rows["n00000001_3"]["final_url"] == server.url("/ünïcode/c.jpg")
    assert rows["n00000001_1"]["sha256"] and rows["n00000001_1"]["bytes"] > 0
    # Only the ok images are in the class folders; the placeholder copies are quarantined.
    kept = class_files(out)
    assert sorted(p.stem for p in kept) == sorted(k for k, o in expected.items() if o == "ok")
    assert_valid_images(kept)
    assert len(list((out / ".goz" / "quarantine").iterdir())) == 3
    assert list(summary.suspected_placeholders.values()) == [3]


def test_url_list_lines_are_counted_and_names_validated(tmp_path):
    path = tmp_path / "urls.txt"
    path.write_bytes(b"n00000001_1\thttp://h/a.jpg\n"
                     b"\n   \n"
                     b"n00000001_2\thttp://h/caf\xe9.jpg\n"      # latin-1, not UTF-8
                     b"../../etc/x_1\thttp://h/b.jpg\n"
                     b"n00000001_../../x\thttp://h/c.jpg\n"
                     b"n0000001_3\thttp://h/d.jpg\n"
                     b"n00000001_4\n"
                     b"n00000001_5 http://h/e.jpg\n"               # space separated: accepted
                     b"n00000001_1\thttp://h/again.jpg\n"
                     b"n00000002_1\thttp://h/f.jpg\n"
                     b"n00000002_2\thttp://h/g.jpg\n")
    entries, stats = read_url_list(path)
    assert [e.key for e in entries] == ["n00000001_1", "n00000001_2", "n00000001_5", "n00000002_1", "n00000002_2"]
    assert entries[1].url == "http://h/café.jpg"
    assert (stats.lines, stats.blank, stats.malformed, stats.latin1, stats.duplicates) == (12, 2, 4, 1, 1)
    assert [e.key for e in read_url_list(path, per_class=1)[0]] == ["n00000001_1", "n00000002_1"]
    assert [e.key for e in read_url_list(path, classes=["n00000002"], limit=1)[0]] == ["n00000002_1"]


def test_path_traversal_writes_nothing_outside_out(server, tmp_path):
    lines = [f"../../escaped_1\t{server.url('/img/e1')}", f"n00000001_..\t{server.url('/img/e2')}",
             f"n00000001_1/../../../escaped\t{server.url('/img/e3')}", f"n00000001_7\t{server.url('/img/ok')}"]
    root = tmp_path / "root"
    out = root / "a" / "out"
    summary = download(write_list(tmp_path / "urls.txt", lines), out, **FAST)
    assert summary.list_stats.malformed == 3 and summary.outcomes == {"ok": 1}
    written = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".goz" not in p.parts)
    assert written == ["a/out/n00000001/n00000001_7.jpg"]
    assert server.requests["/img/e1"] == server.requests["/img/e2"] == server.requests["/img/e3"] == 0


def test_retry_failed_refetches_only_retryable_failures(server, tmp_path):
    lines = [f"n00000001_1\t{server.url('/flaky/500-r1')}", f"n00000001_2\t{server.url('/status/404')}",
             f"n00000001_3\t{server.url('/img/r3')}"]
    urls, out = write_list(tmp_path / "urls.txt", lines), tmp_path / "out"
    not_found_before = server.requests["/status/404"]
    first = download(urls, out, **FAST)
    assert first.outcomes == {"ok": 1, "http_error": 2}
    again = download(urls, out, **FAST)
    assert again.processed == 0 and server.requests["/flaky/500-r1"] == 1
    retried = download(urls, out, retry_failed=True, **FAST)
    assert retried.processed == 1 and retried.outcomes == {"ok": 2, "http_error": 1}
    assert server.requests["/status/404"] - not_found_before == 1 and server.requests["/img/r3"] == 1
    assert manifest_rows(out)["n00000001_1"]["attempts"] == 2


def test_resize_stores_a_smaller_jpeg(server, tmp_path):
    out = tmp_path / "out"
    download(write_list(tmp_path / "urls.txt", [f"n00000001_1\t{server.url('/img/big')}"]), out, resize=36, **FAST)
    with Image.open(out / "n00000001" / "n00000001_1.jpg") as image:
        assert image.size == (48, 36)


def test_kill_9_then_resume_downloads_each_image_once(tmp_path):
    slow = FaultServer(delay=0.1)
    try:
        count = 80
        urls = write_list(tmp_path / "urls.txt", [f"n{c:08d}_{i}\t{slow.url(f'/img/k{i}')}"
                                                  for i in range(count) for c in [i % 4]])
        out = tmp_path / "out"
        command = [sys.executable, "-m", "goz", "download", str(urls), str(out), "--concurrency", "4",
                   "--decode-workers", "1", "--quiet", "--shards", "2"]
        env = dict(os.environ, PYTHONPATH=SRC)
        # Its own process group: kill -9 reaches the download's worker processes too, leaving none behind.
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   start_new_session=True)
        deadline = time.monotonic() + 30
        while len(class_files(out)) < 15 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        children = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert children and not survivors(children), "the decode workers and the resource tracker die with goz"
        done_before = {p.stem for p in class_files(out)}
        assert 15 <= len(done_before) < count, "the kill must land mid-run"
        assert_valid_images(class_files(out))
        slow.requests.clear()
        finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert finished.returncode == 0, finished.stderr
    finally:
        slow.close()
    files = class_files(out)
    assert sorted(p.stem for p in files) == sorted(f"n{i % 4:08d}_{i}" for i in range(count))
    assert_valid_images(files)
    assert not [p for p in out.rglob("*.part")]
    refetched = [key for key in done_before if slow.requests[f"/img/k{key.split('_')[1]}"]]
    assert refetched == []
    assert all(n == 1 for n in slow.requests.values())
    assert sqlite_leftovers(out) == []  # the killed run left a -wal; the finished rerun checkpointed it
    assert {row["outcome"] for row in manifest_rows(out).values()} == {"ok"}


def crash_counts(out: Path) -> dict[str, int]:
    counts = {}
    for path in JobFolder(out).manifests():
        with closing(sqlite3.connect(path)) as connection:
            counts.update(connection.execute("SELECT key, crashes FROM validations WHERE crashes > 0").fetchall())
    return counts


def test_an_image_that_kills_its_validation_process_is_recorded_as_decoder_crash(server, tmp_path, monkeypatch,
                                                                                     capsys):
    # The validation processes import this hook by name; it SIGKILLs its process like a Pillow crash or the OOM killer.
    monkeypatch.setattr(goz.download.shard, "validate_and_store", killing_validate_and_store)
    flag = tmp_path / "kill-once"
    flag.touch()
    monkeypatch.setenv(KILL_ONCE_FLAG, str(flag))
    paths = {f"n00000001_{i}": f"/img/poison-run{i}" for i in range(6)}
    paths["n00000001_3"], paths["n00000001_5"] = "/poison/p", "/killsonce/k"  # a poison, and an unlucky image
    urls, out = write_list(tmp_path / "urls.txt", [f"{k}\t{server.url(p)}" for k, p in paths.items()]), tmp_path / "out"
    command = ["download", str(urls), str(out), "--decode-workers", "1", "--concurrency", "2", "--quiet"]

    assert main(command) == 2
    error = capsys.readouterr().err
    assert "goz: error: an image validation process died" in error and "Traceback" not in error
    first_rows = manifest_rows(out)
    ok_after_first = {k for k, row in first_rows.items() if row["outcome"] == "ok"}
    # Blame falls on exactly the image the pool held (one process: one image), committed before the error.
    [(blamed, crashes)] = crash_counts(out).items()
    assert crashes == 1 and blamed in ("n00000001_3", "n00000001_5") and blamed not in first_rows
    fetched_first = dict(server.requests)

    for _ in range(3):  # the other troublemaker may kill the pool in the next run; at most one more failing run
        code = main(command)
        capsys.readouterr()
        if code == 0:
            break
    assert code == 0
    rows = manifest_rows(out)
    outcomes = {k: row["outcome"] for k, row in rows.items()}
    assert outcomes == {k: "decoder_crash" if k == "n00000001_3" else "ok" for k in paths}
    assert "died 2 times" in rows["n00000001_3"]["error"] and "alone" in rows["n00000001_3"]["error"]
    assert crash_counts(out) == {"n00000001_3": 2}  # the unlucky image, ok when validated alone, is cleared
    assert not flag.exists()
    refetched_ok = [k for k in ok_after_first if server.requests[paths[k]] != fetched_first.get(paths[k])]
    assert refetched_ok == [] and all(server.requests[paths[k]] == 1 for k in ok_after_first)
    assert sorted(p.stem for p in class_files(out)) == sorted(k for k in paths if k != "n00000001_3")

    poison_requests, requests_before = server.requests["/poison/p"], sum(server.requests.values())
    assert main(command + ["--retry-failed"]) == 0  # a decoder_crash is not a retryable failure
    assert server.requests["/poison/p"] == poison_requests
    assert main(command + ["--retry-crashed"]) == 0  # validated alone again: dies again, recorded again
    assert server.requests["/poison/p"] == poison_requests + 1
    assert manifest_rows(out)["n00000001_3"]["outcome"] == "decoder_crash"
    assert crash_counts(out) == {"n00000001_3": 3}
    assert sum(server.requests.values()) == requests_before + 1  # nothing but the poison was fetched again


def test_files_renamed_before_their_row_was_committed_are_adopted(server, tmp_path):
    lines = [f"n00000001_{i}\t{server.url(f'/img/adopt{i}')}" for i in range(4)]
    urls, out = write_list(tmp_path / "urls.txt", lines), tmp_path / "out"
    download(urls, out, **FAST)
    for path in (out / ".goz" / "manifest").iterdir():  # as if killed between rename and commit
        path.unlink()
    summary = download(urls, out, **FAST)
    assert summary.adopted == 4 and summary.processed == 0 and summary.outcomes == {"ok": 4}
    assert all(server.requests[f"/img/adopt{i}"] == 1 for i in range(4))


def test_per_host_limit_bounds_requests_in_flight(tmp_path):
    slow = FaultServer(delay=0.2)
    try:
        lines = [f"n00000001_{i}\t{slow.url(f'/img/h{i}')}" for i in range(12)]
        summary = download(write_list(tmp_path / "urls.txt", lines), tmp_path / "out", **(FAST | {"per_host": 3}))
    finally:
        slow.close()
    assert summary.outcomes == {"ok": 12} and slow.max_in_flight == 3


def test_ray_engine_gives_the_same_result_as_local(server, tmp_path):
    import ray
    lines = [f"n0000000{i % 3}_{i}\t{server.url(path)}" for i, path in enumerate(
        ["/img/y0", "/img/y1", "/status/404", "/html/y", "/img/y4", "/truncated/y", "/img/y6", "/tiny/y",
         "/img/y8", "/dead/y9"])]
    urls = write_list(tmp_path / "urls.txt", lines)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = download(urls, tmp_path / "ray", engine="ray", shards=3, **FAST)
    finally:
        ray.shutdown()
    local = download(urls, tmp_path / "local", shards=3, processes=2, **FAST)
    assert remote.outcomes == local.outcomes and remote.ok_per_class == local.ok_per_class
    ray_rows, local_rows = manifest_rows(tmp_path / "ray"), manifest_rows(tmp_path / "local")
    assert {k: r["outcome"] for k, r in ray_rows.items()} == {k: r["outcome"] for k, r in local_rows.items()}
    assert len(JobFolder(tmp_path / "ray").manifests()) == 1  # one host: one shard (its politeness holds in one place)
    ray_files = [p.relative_to(tmp_path / "ray") for p in class_files(tmp_path / "ray")]
    assert ray_files == [p.relative_to(tmp_path / "local") for p in class_files(tmp_path / "local")]
    assert len(ray_files) == 5


def test_download_report_lists_short_classes(server, tmp_path):
    lines = [f"n00000001_{i}\t{server.url(f'/img/p{i}')}" for i in range(3)]
    lines += [f"n00000002_{i}\t{server.url('/status/404')}" for i in range(2)] + [
        f"n00000002_9\t{server.url('/img/p9')}"]
    out = tmp_path / "out"
    download(write_list(tmp_path / "urls.txt", lines), out, **FAST)
    split = tmp_path / "split.txt"
    split.write_text("n00000001\nn00000002\nn00000003\n")
    result = report(out, target=3, classes=str(split))
    assert result.counts == {"n00000001": 3, "n00000002": 1, "n00000003": 0}
    assert result.short == {"n00000002": 1, "n00000003": 0}
    assert result.failures["n00000002"] == {"http_error": 2}
    cli = subprocess.run([sys.executable, "-m", "goz", "download-report", str(out), "--target", "3",
                          "--classes", str(split)], env=dict(os.environ, PYTHONPATH=SRC),
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and "2 classes have fewer than 3" in cli.stdout
    assert "n00000002      1  missing     2  http_error 2" in cli.stdout


def test_retry_after_header_in_seconds_or_as_a_date():
    assert retry_after_seconds("7") == 7.0
    assert 55 < retry_after_seconds(email.utils.formatdate(time.time() + 60, usegmt=True)) <= 60
    assert retry_after_seconds("soon") == 0.0 and retry_after_seconds(None) == 0.0
