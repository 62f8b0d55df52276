"""goz download at scale: politeness across processes, the streamed plan, stats, nothing left after kill -9,
WebDataset output."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
import tracemalloc
from contextlib import closing
from pathlib import Path

import psutil
import pytest

import checkout
from download_server import PLACEHOLDER, FaultServer, write_list
import goz.download.plan
import goz.download.urllist
from goz.cli import main
from goz.download import download, report
from goz.download.job import JobFolder
from goz.download.plan import host_of, plan_job
from goz.download.urllist import read_url_list
from processes import survivors

FAST = dict(deadline=5.0, concurrency=16, decode_workers=1, progress=False)
HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
SRC = str(checkout.SRC)


@pytest.fixture(scope="module")
def hosts_server():
    server = FaultServer(delay=0.15, hosts=HOSTS)
    yield server
    server.close()


def rows(out: Path) -> dict[str, dict]:
    found = {}
    for path in JobFolder(out).manifests():
        with closing(sqlite3.connect(path)) as connection:
            connection.row_factory = sqlite3.Row
            found.update({row["key"]: dict(row) for row in connection.execute("SELECT * FROM items")})
    return found


def test_a_list_starting_with_a_byte_order_mark_keeps_its_first_line(tmp_path):
    path = tmp_path / "urls.txt"
    path.write_bytes(b"\xef\xbb\xbfn00000001_1\thttp://h/a.jpg\r\nn00000001_2\thttp://h/b.jpg\r\n")
    entries, stats = read_url_list(path)
    assert [e.key for e in entries] == ["n00000001_1", "n00000001_2"] and stats.malformed == 0


def test_per_host_limit_holds_across_processes_and_shards(hosts_server, tmp_path):
    lines = [f"n0000000{i % 3}_{i}\t{hosts_server.url(f'/img/ph{i}', HOSTS[i % 3])}" for i in range(36)]
    hosts_server.max_in_flight_by_host.clear()
    command = ["download", str(write_list(tmp_path / "urls.txt", lines)), str(tmp_path / "out"), "--processes", "2",
               "--shards", "4", "--per-host", "3", "--decode-workers", "1", "--quiet"]
    assert main(command) == 0
    assert {k: r["outcome"] for k, r in rows(tmp_path / "out").items()} == {f"n0000000{i % 3}_{i}": "ok"
                                                                           for i in range(36)}
    seen = hosts_server.max_in_flight_by_host
    assert set(seen) == set(HOSTS) and max(seen.values()) == 3, seen  # reached, never passed


def test_a_429_pause_holds_for_the_host_across_processes(hosts_server, tmp_path):
    lines = [f"n00000001_{i}\t{hosts_server.url(f'/busy-once/b{i}', HOSTS[1])}" for i in range(12)]
    lines += [f"n00000002_{i}\t{hosts_server.url(f'/img/free{i}', HOSTS[2])}" for i in range(12)]
    hosts_server.requests_while_paused.clear()
    summary = download(write_list(tmp_path / "urls.txt", lines), tmp_path / "out", processes=2, shards=4,
                       per_host=1, **FAST)
    assert summary.outcomes == {"ok": 24}
    assert HOSTS[1] in hosts_server.busy_until and hosts_server.requests_while_paused[HOSTS[1]] == 0


def test_dry_run_plans_fetches_nothing_and_counts_what_a_resume_skips(hosts_server, tmp_path, capsys):
    lines = [f"n0000000{i % 4}_{i}\t{hosts_server.url(f'/img/dry{i}', HOSTS[i % 3])}" for i in range(30)]
    lines += ["n00000001_1\thttp://127.0.0.9/again.jpg", "broken line"]
    urls, out = write_list(tmp_path / "urls.txt", lines), tmp_path / "out"
    before = sum(hosts_server.requests.values())
    assert main(["download", str(urls), str(out), "--dry-run", "--shards", "5"]) == 0
    printed = capsys.readouterr().out
    assert "plan       30 entries, 4 classes, 3 hosts, 5 shards" in printed
    assert "resume     0 entries already recorded would be skipped, 30 to fetch" in printed
    assert sum(hosts_server.requests.values()) == before and not (out / ".goz" / "manifest").exists()
    assert not (out / ".goz" / "job.json").exists()  # a dry run fixes nothing
    listed = sorted(line for path in (out / ".goz" / "lists").iterdir() for line in path.read_text().splitlines())
    assert listed == sorted(lines[:30])
    download(urls, out, limit=10, shards=5, **FAST)  # the first ten are now recorded
    plan = download(urls, out, dry_run=True, progress=False)
    assert (plan.entries, plan.hosts, plan.shards, plan.resume_skips) == (30, 3, 5, 10)
    assert sum(hosts_server.requests.values()) == before + 10


def test_the_plan_streams_the_list_into_shard_lists_in_bounded_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(goz.download.urllist, "CHUNK_LINES", 5_000)
    monkeypatch.setattr(goz.download.plan, "BUFFERED_LINES", 5_000)

    def peak_bytes(count: int) -> int:
        urls = tmp_path / f"urls{count}.txt"
        with open(urls, "w") as handle:
            for i in range(count):
                handle.write(f"n{i % 997:08d}_{i}\thttp://farm{i % 7}.example.org/photos/{i:09d}_abcdef0123.jpg\n")
        tracemalloc.start()
        plan = plan_job(urls, tmp_path / f"out{count}", shard_size=5000)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert plan.entries == count and plan.hosts == 7 and sum(plan.shard_entries) == count
        return peak
    small, large = peak_bytes(20_000), peak_bytes(120_000)  # both above the lines parsed at a time
    # Holding the entries would cost ~150 bytes each (~15 MB more for the large list); the plan holds 8.
    assert large - small < 100_000 * 20, (small, large)


def test_host_of_matches_urlsplit():
    from urllib.parse import urlsplit
    for url in ["http://Farm3.Static.Flickr.com/12/a.jpg", "https://user:pw@h.org:8080/x?y#z", "http://[::1]:80/a",
                "http://h.org?q=/x", "http://h.org#frag/x", "http://h.org"]:
        assert host_of(url) == urlsplit(url).hostname


def test_stats_json_per_finished_shard_and_a_run_summary(hosts_server, tmp_path):
    lines = [f"n0000000{i % 2}_{i}\t{hosts_server.url(path, HOSTS[i % 3])}"
             for i, path in enumerate(["/img/s0", "/img/s1", "/status/404", "/img/s3", "/html/s", "/img/s5"])]
    out = tmp_path / "out"
    summary = download(write_list(tmp_path / "urls.txt", lines), out, shards=3, processes=2, **FAST)
    shard_stats = [json.loads(p.read_text()) for p in sorted((out / ".goz" / "stats").glob("shard-*.json"))]
    assert len(shard_stats) == 3  # one per host here
    assert sum(s["processed"] for s in shard_stats) == 6 and sum(s["ok"] for s in shard_stats) == 4
    merged = {}
    for stats in shard_stats:
        for outcome, count in stats["outcomes"].items():
            merged[outcome] = merged.get(outcome, 0) + count
        assert stats["seconds"] >= 0 and stats["entries"] == 2 and stats["pid"] > 0
    assert merged == {"ok": 4, "http_error": 1, "not_image": 1} == summary.outcomes
    written = json.loads((out / ".goz" / "stats" / "summary.json").read_text())
    assert written["outcomes"] == summary.outcomes and written["shards"] == 3 and written["hosts"] == 3


def test_kill_9_of_a_multi_process_run_leaves_no_process(tmp_path):
    slow = FaultServer(delay=0.3, hosts=HOSTS)
    try:
        lines = [f"n0000000{i % 3}_{i}\t{slow.url(f'/img/k{i}', HOSTS[i % 3])}" for i in range(300)]
        command = [sys.executable, "-m", "goz", "download", str(write_list(tmp_path / "urls.txt", lines)),
                   str(tmp_path / "out"), "--processes", "2", "--shards", "3", "--per-host", "2",
                   "--decode-workers", "2", "--quiet"]
        process = subprocess.Popen(command, env=dict(os.environ, PYTHONPATH=SRC), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while sum(1 for _ in (tmp_path / "out").glob("n*/*")) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        children = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        slow.close()
    # The driver's two shard processes, each with its decode workers, and the resource trackers.
    assert len(children) >= 5, children
    assert not survivors(children)


def test_webdataset_format_writes_tars_atomically_and_resumes(hosts_server, tmp_path):
    paths = [f"/img/w{i}" for i in range(7)] + ["/status/404", "/placeholder/a", "/placeholder/b",
                                                "/placeholder/c", "/dead/w", "/bomb/w"]
    lines = [f"n0000000{i % 2}_{i}\t{hosts_server.url(path)}" for i, path in enumerate(paths)]
    urls, out = write_list(tmp_path / "urls.txt", lines), tmp_path / "out"
    options = FAST | dict(format="webdataset", images_per_tar=3, placeholder_urls=3, max_pixels=1_000_000)
    summary = download(urls, out, **options)
    assert summary.outcomes == {"ok": 7, "http_error": 1, "placeholder": 4, "too_large": 1}
    tars = sorted(out.glob("*.tar"))
    assert [p.name for p in tars][:1] == ["shard-00000-00000.tar"] and not list(out.glob("n*"))
    samples = {}
    for path in tars:
        with tarfile.open(path) as tar:
            for member in tar:
                key, _, extension = member.name.partition(".")
                samples.setdefault(key, {})[extension] = tar.extractfile(member).read()
    expected = {f"n0000000{i % 2}_{i}" for i in range(7)}
    assert set(samples) == expected  # the placeholder copies were taken out of their tars
    for key, sample in samples.items():
        assert set(sample) == {"jpg", "json"}
        meta = json.loads(sample["json"])
        wnid, image_id = key.split("_")
        import hashlib
        assert meta == {"url": hosts_server.url(paths[int(image_id)]), "wnid": wnid, "id": int(image_id),
                        "sha256": hashlib.sha256(sample["jpg"]).hexdigest()}
    assert PLACEHOLDER not in [s["jpg"] for s in samples.values()]
    assert {r["path"] for r in rows(out).values() if r["outcome"] == "ok"} == {str(p) for p in tars}
    assert report(out, target=4).counts == {"n00000000": 4, "n00000001": 3}
    requests = sum(hosts_server.requests.values())
    again = download(urls, out, **options)
    assert again.processed == 0 and sum(hosts_server.requests.values()) == requests
    # Killed after a tar was renamed into place, before its rows were committed: adopted, not refetched.
    for path in (out / ".goz" / "manifest").iterdir():
        path.unlink()
    adopted = download(urls, out, **options)
    assert adopted.adopted == 7 and adopted.outcomes["ok"] == 7
    assert all(hosts_server.requests[f"/img/w{i}"] == 1 for i in range(7))
    assert sorted(out.glob("*.tar")) == tars and not list(out.rglob("*.part"))
    with pytest.raises(Exception, match="--format webdataset"):
        download(urls, out, **(FAST | {"format": "files"}))


@pytest.mark.parametrize("processes", [1, 2])
def test_progress_shows_rate_and_per_outcome_counts_across_shards(hosts_server, tmp_path, capsys, processes):
    lines = [f"n00000001_{i}\t{hosts_server.url(path, HOSTS[i % 3])}"
             for i, path in enumerate(["/img/g0", "/img/g1", "/status/404", "/img/g3", "/html/g", "/img/g5"])]
    download(write_list(tmp_path / "urls.txt", lines), tmp_path / "out", shards=3, processes=processes,
             **(FAST | {"progress": True}))
    final = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    # The rate: img/s, or s/img below one image a second (spawning two shard processes on a loaded machine).
    assert "6/6" in final and re.search(r"\d(img/s|s/img)", final), final
    assert "ok 4" in final and "http_error 1" in final and "not_image 1" in final, final


def test_goz_extract_reads_the_webdataset_download(hosts_server, tmp_path):
    from extract_helpers import tiny_backbone
    from goz.extract import extract
    from goz.store import FeatureStore
    lines = [f"n0000000{i % 2 + 1}_{i}\t{hosts_server.url(f'/img/x{i}', HOSTS[i % 3])}" for i in range(6)]
    out = tmp_path / "out"
    download(write_list(tmp_path / "urls.txt", lines), out, format="webdataset", images_per_tar=4, shards=2, **FAST)
    result = extract(out, tmp_path / "f.h5", backbone=tiny_backbone(), progress=False)
    assert result.source == "webdataset" and result.images == 6 and not result.skipped
    with FeatureStore(tmp_path / "f.h5") as store:
        assert {w: store.ids(w).tolist() for w in store.classes} == {"n00000001": [0, 2, 4], "n00000002": [1, 3, 5]}
