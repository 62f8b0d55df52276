"""The download job folder (one owner), the manifest's queries (all inside Manifest), the defaults (each
written once) and connections closed: no -wal / -shm left beside a manifest."""

import ast
import inspect
import re
from pathlib import Path

import checkout
import pytest
from download_server import FaultServer, write_list

from goz.cli import build_parser
from goz.download import defaults, download, report
from goz.download.client import FetchOptions
from goz.download.job import JobFolder
from goz.download.manifest import Manifest, Record
from goz.download.plan import plan_job
from goz.download.shard import ShardJob
from goz.download.validate import ValidationLimits
from goz.errors import GozError

FAST = {"deadline": 5.0, "concurrency": 8, "decode_workers": 1, "progress": False}
DOWNLOAD_SOURCES = sorted((checkout.SRC / "goz" / "download").glob("*.py")) + [
    checkout.SRC / "goz" / "commands" / "download.py"]


def sqlite_leftovers(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.name.endswith(("-wal", "-shm")))


def code_strings(path: Path) -> list[str]:
    """The string constants of a module's code (f-string pieces included), docstrings left out: they may
    describe the layout."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def test_no_wal_or_shm_is_left_after_a_complete_a_resumed_and_a_dry_run(tmp_path):
    server = FaultServer(hosts=("127.0.0.1", "127.0.0.2"))
    try:
        lines = [f"n0000000{i % 2}_{i}\t{server.url(f'/img/wal{i}', ('127.0.0.1', '127.0.0.2')[i % 2])}"
                 for i in range(8)]
        lines += [f"n00000003_{i}\t{server.url(f'/placeholder/{i}')}" for i in range(3)]
        urls, out = write_list(tmp_path / "urls.txt", lines), tmp_path / "out"
        first = download(urls, out, limit=4, shards=2, **FAST)
        assert first.outcomes == {"ok": 4} and len(JobFolder(out).manifests()) == 2
        assert sqlite_leftovers(out) == []
        # Resumed, the shards in two processes while the driver follows their manifests; placeholders swept.
        resumed = download(urls, out, processes=2, placeholder_urls=3, **FAST)
        assert resumed.processed == 7 and resumed.outcomes == {"ok": 8, "placeholder": 3}
        assert sqlite_leftovers(out) == []
        plan = download(urls, out, dry_run=True, progress=False)
        assert plan.resume_skips == 11 and sqlite_leftovers(out) == []
        assert report(out, target=1).counts == {"n00000000": 4, "n00000001": 4, "n00000003": 0}  # quarantined
        assert sqlite_leftovers(out) == []
    finally:
        server.close()


def test_manifest_queries_answer_from_the_rows(tmp_path):
    path = tmp_path / "m.sqlite"
    with Manifest(path) as manifest:
        manifest.record_all([
            Record("n00000001_1", "n00000001", 1, "http://a/1", "ok", sha256="aa", path="/x/1.jpg"),
            Record("n00000001_2", "n00000001", 2, "http://a/2", "ok", sha256="aa", path="/x/2.jpg"),
            Record("n00000001_3", "n00000001", 3, "http://a/3", "timeout"),
            Record("n00000002_4", "n00000002", 4, "http://b/4", "http_error", http_status=503),
            Record("n00000002_5", "n00000002", 5, "http://b/5", "http_error", http_status=404),
            Record("n00000002_6", "n00000002", 6, "http://b/6", "decoder_crash", sha256="bb"),
        ])
    assert not [p for p in tmp_path.iterdir() if p != path]  # closed: the -wal and -shm are gone
    with pytest.raises(GozError, match="missing"):
        Manifest(tmp_path / "none.sqlite", reader=True)
    assert not (tmp_path / "none.sqlite").exists()  # a reader creates nothing
    with Manifest(path, reader=True) as manifest:
        keys = {"n00000001_1", "n00000001_3", "n00000002_4", "n00000002_6", "n00000009_9"}
        assert manifest.count_finished(keys, retry_failed=False) == 4
        assert manifest.count_finished(keys, retry_failed=True) == 2
        assert manifest.count_finished(keys, retry_failed=True, retry_crashed=True) == 1
        assert manifest.finished_keys(retry_failed=True, retry_crashed=True) == {"n00000001_1", "n00000001_2",
                                                                                "n00000002_5"}
        assert sorted(manifest.outcomes_of({"n00000001_1", "n00000002_6"})) == [("n00000001", "ok"),
                                                                               ("n00000002", "decoder_crash")]
        assert manifest.ok_per_class() == {"n00000001": 2}
        assert manifest.classes() == {"n00000001", "n00000002"}
        assert manifest.failures_per_class() == {"n00000001": {"timeout": 1},
                                                 "n00000002": {"http_error": 2, "decoder_crash": 1}}
        assert sorted(manifest.content_hashes()) == ["aa", "aa", "bb"]
        assert sorted(manifest.urls_by_content()) == [("aa", "http://a/1"), ("aa", "http://a/2"), ("bb", "http://b/6")]
        assert [r.key for r in manifest.kept_copies("aa")] == ["n00000001_1", "n00000001_2"]
        assert manifest.kept_copies("bb") == []
        assert manifest.stored_paths() == {"/x/1.jpg", "/x/2.jpg"}
        assert manifest.outcome_counts() == {"ok": 2, "timeout": 1, "http_error": 2, "decoder_crash": 1}
        assert manifest.outcome_counts(since=manifest.get("n00000001_1").updated + 1) == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.sqlite"]


def test_the_job_folder_owns_every_path_and_fixes_format_and_shards(tmp_path):
    folder = JobFolder(tmp_path / "out")
    paths = [folder.lists, folder.lists_staging, folder.list_path(3), folder.manifest_path(3), folder.stats_path(3),
             folder.summary_path, folder.format_path, folder.job_path, folder.tmp, folder.quarantine]
    assert all(p.is_relative_to(tmp_path / "out" / ".goz") for p in paths) and len(set(paths)) == len(paths)
    assert folder.stored_format() == defaults.FORMAT and folder.stored_shard_count() is None
    folder.fix_format("webdataset", dry_run=True)
    assert not folder.format_path.exists()  # a dry run fixes nothing
    folder.fix_format("webdataset")
    with pytest.raises(GozError, match="--format webdataset"):
        folder.fix_format("files")
    urls = write_list(tmp_path / "urls.txt", [f"n00000001_{i}\thttp://h{i}.org/a.jpg" for i in range(5)])
    plan = plan_job(urls, folder.out, shards=3)
    assert folder.stored_shard_count() == 3 and plan.list_path(1) == folder.list_path(1)
    assert sum(len(folder.list_path(i).read_text().splitlines()) for i in range(3)) == 5
    assert ShardJob(1, [], str(folder.out)).manifest_path == folder.manifest_path(1)
    folder.tmp_dir().joinpath("stale.part").write_bytes(b"x")
    assert list(folder.clear_tmp().iterdir()) == []


def test_only_the_job_module_spells_the_job_folder_and_only_the_manifest_runs_sql():
    for path in DOWNLOAD_SOURCES:
        strings = code_strings(path)
        if path.name != "job.py":
            spelled = [s for s in strings if re.search(r"\.goz\b", s) or s in ("quarantine", "manifest", "lists", "tmp")]
            assert not spelled, path
        if path.name != "manifest.py":
            assert "import sqlite3" not in path.read_text(encoding="utf-8"), path
            assert not [s for s in strings if re.search(r"\b(SELECT|INSERT|UPDATE|DELETE|WHERE)\b", s)], path


def test_each_default_is_the_one_of_goz_download_defaults():
    expected = {"engine": defaults.ENGINE, "processes": defaults.PROCESSES, "shard_size": defaults.SHARD_SIZE,
                "concurrency": defaults.CONCURRENCY, "per_host": defaults.PER_HOST, "deadline": defaults.DEADLINE_S,
                "max_bytes": defaults.MAX_BYTES, "max_redirects": defaults.MAX_REDIRECTS,
                "max_attempts": defaults.MAX_ATTEMPTS, "min_side": defaults.MIN_SIDE,
                "max_pixels": defaults.MAX_PIXELS, "placeholder_urls": defaults.PLACEHOLDER_URLS,
                "format": defaults.FORMAT, "images_per_tar": defaults.IMAGES_PER_TAR}
    signature = inspect.signature(download).parameters
    assert {name: signature[name].default for name in expected} == expected
    assert inspect.signature(report).parameters["target"].default == defaults.REPORT_TARGET
    cli = vars(build_parser().parse_args(["download", "URLS", "OUT"]))
    assert {name: cli[name] for name in expected if name in cli} == {n: v for n, v in expected.items()
                                                                     if n not in ("shard_size", "max_redirects")}
    assert vars(build_parser().parse_args(["download-report", "OUT"]))["target"] == defaults.REPORT_TARGET
    fetch, limits, job = FetchOptions(), ValidationLimits(), ShardJob(0, [], "out")
    assert (fetch.concurrency, fetch.per_host, fetch.deadline, fetch.max_bytes, fetch.max_redirects,
            fetch.max_attempts) == (defaults.CONCURRENCY, defaults.PER_HOST, defaults.DEADLINE_S, defaults.MAX_BYTES,
                                    defaults.MAX_REDIRECTS, defaults.MAX_ATTEMPTS)
    assert (limits.min_side, limits.max_pixels) == (defaults.MIN_SIDE, defaults.MAX_PIXELS)
    assert (job.placeholder_urls, job.format, job.images_per_tar) == (
        defaults.PLACEHOLDER_URLS, defaults.FORMAT, defaults.IMAGES_PER_TAR)
    # Written once: no other module of the package gives one of these options (or the CLI one of these
    # flags) a literal default.
    options = "|".join([*expected, "target"])
    literal = re.compile(rf"\b({options})\b\s*(:[^=,)]+)?=\s*[\d\"']")
    flag = re.compile(rf"--({options.replace('_', '-')})\"[^)]*default=[\d\"']")
    for path in DOWNLOAD_SOURCES:
        if path.name != "defaults.py":
            code = path.read_text(encoding="utf-8")
            assert not literal.search(code) and not flag.search(code), path
