"""Bad input through the real CLI: every case ends in `goz: error: ...` (exit 2) or an argparse usage
error, never a traceback, never a changed file on disk, never code execution."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import h5py
import numpy as np
import pytest

import checkout

from download_server import FaultServer
from goz.cli import main
from goz.download.engines import _shard_result
from goz.download.shard import ShardJob, run_shard
from goz.download.urllist import ListEntry
from goz.errors import GozError
from goz.store import write_store

SRC = str(checkout.SRC)


def run_cli(argv, capsys) -> tuple[int, str]:
    """(exit code, stderr) of `goz argv` run in-process; an exception escaping main fails the test."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.fixture
def url_list(tmp_path):
    path = tmp_path / "urls.txt"
    path.write_text("n00000001_1\thttp://127.0.0.1:9/a.jpg\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("argv, message", [
    (["download", "L", "O", "--per-class", "0"], "argument --per-class: must be a positive integer, got 0"),
    (["download", "L", "O", "--limit", "-3"], "argument --limit: must be a positive integer, got -3"),
    (["download", "L", "O", "--shards", "-2"], "argument --shards"),
    (["download", "L", "O", "--per-host", "0"], "argument --per-host"),  # used to hang forever
    (["download", "L", "O", "--max-attempts", "0"], "argument --max-attempts"),  # used to raise AssertionError
    (["download", "L", "O", "--deadline", "nan"], "argument --deadline: must be a finite number > 0"),
    (["download", "L", "O", "--processes", "x"], "argument --processes: not an integer: 'x'"),
    (["download", "L", "O", "--resize", "0"], "argument --resize"),
    (["download", "L", "O", "--min-side", "-1"], "argument --min-side: must be an integer >= 0"),
    (["download-report", "O", "--target", "-1"], "argument --target"),
    (["ilsvrc", "prepare-val", "V", "--labels", "L", "--out", "O", "--per-class", "0"], "argument --per-class"),
    (["extract", "I", "S", "--batch-size", "-3"], "argument --batch-size: must be a positive integer"),
    (["extract", "I", "S", "--workers", "-1"], "argument --workers: must be an integer >= 0"),
    (["extract", "I", "S", "--threads", "0"], "argument --threads"),
    (["extract", "I", "S", "--actors", "0"], "argument --actors"),
    (["verify", "I", "S", "--recompute", "-1"], "argument --recompute"),
])
def test_bad_numbers_are_usage_errors(argv, message, capsys):
    code, err = run_cli(argv, capsys)
    assert code == 2 and message in err


def test_library_refuses_counts_the_cli_refuses(url_list, tmp_path):
    from goz.download import download
    for bad in (dict(per_host=0), dict(max_attempts=0), dict(deadline=float("nan")), dict(shards=-2),
                dict(per_class=0), dict(resize=0)):
        with pytest.raises(GozError):
            download(url_list, tmp_path / "out", progress=False, **bad)
    assert not (tmp_path / "out").exists()


def test_extract_library_refuses_counts_the_cli_refuses(tmp_path):
    from goz.extract import extract
    (tmp_path / "images" / "n00000001").mkdir(parents=True)
    for bad in (dict(batch_size=-3), dict(workers=-1), dict(threads=0), dict(actors=0)):
        with pytest.raises(GozError, match="must be at least"):
            extract(tmp_path / "images", tmp_path / "s.h5", weights_file=tmp_path / "never_read.pth", **bad)
    assert not (tmp_path / "s.h5").exists()


def _evil_pickle(path: Path, marker: Path) -> Path:
    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)
    path.write_bytes(pickle.dumps(Evil()))
    return path


@pytest.mark.parametrize("case", ["missing", "folder", "empty", "garbage", "out_is_file", "classes_folder",
                                  "classes_empty", "classes_evil", "job_json", "manifest"])
def test_download_bad_inputs(case, url_list, tmp_path, capsys):
    out, extra = tmp_path / "out", []
    urls = url_list
    if case == "missing":
        urls = tmp_path / "nope.txt"
    elif case == "folder":
        urls = tmp_path
    elif case == "empty":
        urls = tmp_path / "empty.txt"
        urls.write_bytes(b"\n\n")
    elif case == "garbage":
        urls = tmp_path / "garbage.txt"
        urls.write_bytes(b"hello\n\x00\x01\xff\xfe\n" + bytes(range(256)))
    elif case == "out_is_file":
        out.write_text("precious")
    elif case == "classes_folder":
        extra = ["--classes", tmp_path]
    elif case == "classes_empty":
        (tmp_path / "split.txt").write_text("# no class\n")
        extra = ["--classes", tmp_path / "split.txt"]
    elif case == "classes_evil":
        extra = ["--classes", _evil_pickle(tmp_path / "split.txt", tmp_path / "pwned")]
    elif case == "job_json":
        (out / ".goz").mkdir(parents=True)
        (out / ".goz" / "job.json").write_text("{not json")
    elif case == "manifest":
        (out / ".goz" / "manifest").mkdir(parents=True)
        (out / ".goz" / "job.json").write_text('{"shards": 1}')
        (out / ".goz" / "manifest" / "shard-00000.sqlite").write_bytes(b"garbage, not SQLite" * 100)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code, err = run_cli(["download", urls, out, "--quiet", "--decode-workers", "1", *extra], capsys)
    assert code == 2 and err.startswith("goz: error: ")
    assert not (tmp_path / "pwned").exists()
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and ".goz/tmp" not in str(p)}
    assert {p: b for p, b in after.items() if p in before} == before  # nothing lost or rewritten


def test_crashed_shard_process_is_a_goz_error(tmp_path):
    job = ShardJob(3, [], str(tmp_path))
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        died = pool.submit(os._exit, 1)
        with pytest.raises(GozError, match="the process running shard 3 died.*rerun"):
            _shard_result(job, died.result)
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        failed = pool.submit(int, "not a number")
        with pytest.raises(GozError, match=r"shard 3 failed \(ValueError: .*rerun"):
            _shard_result(job, failed.result)


def test_dead_validation_process_is_a_goz_error_and_keeps_the_manifest(tmp_path):
    server = FaultServer()
    try:
        entries = [ListEntry("n00000001", 1, server.url("/img/a.jpg"))]
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as broken:
            broken.submit(os._exit, 1).exception()
            with pytest.raises(GozError, match="validation process died.*rerun"):
                run_shard(ShardJob(0, entries, str(tmp_path)), decode_pool=broken)
        assert run_shard(ShardJob(0, entries, str(tmp_path)))["ok"] == 1  # the rerun resumes
    finally:
        server.close()


def _store(path: Path, build) -> Path:
    with h5py.File(path, "w") as h5:
        images, idx = h5.create_group("images"), h5.create_group("idx")
        build(h5, images, idx)
    return path


def _damaged_chunk(tmp_path: Path) -> Path:
    def build(h5, images, idx):
        images.create_dataset("n00000001", data=np.random.default_rng(0).random((400, 16), np.float32),
                              chunks=(100, 16), compression="gzip")
        idx.create_dataset("n00000001", data=np.arange(400))
    path = _store(tmp_path / "chunk.h5", build)
    with h5py.File(path, "r") as h5:
        offset = h5["images/n00000001"].id.get_chunk_info(2).byte_offset
    data = bytearray(path.read_bytes())
    data[offset:offset + 64] = bytes(64)
    path.write_bytes(bytes(data))
    return path


def _links(kind):
    def build(h5, images, idx):
        for group in (images, idx):
            group["n00000001"] = (h5py.SoftLink("/nowhere") if kind == "soft"
                                  else h5py.ExternalLink("/nonexistent/goz.h5", "/x"))
    return build


@pytest.mark.parametrize("case, message", [
    ("folder", "is a folder, not an HDF5 feature store"),
    ("garbage", "not a readable HDF5 file"),
    ("soft", "damaged or unreadable HDF5 data"),
    ("external", "damaged or unreadable HDF5 data"),
    ("chunk", "class n00000001: damaged or unreadable HDF5 data"),
])
def test_store_info_on_damaged_stores(case, message, tmp_path, capsys):
    if case == "folder":
        path = tmp_path
    elif case == "garbage":
        path = tmp_path / "garbage.h5"
        path.write_bytes(bytes(range(256)) * 8)
    elif case == "chunk":
        path = _damaged_chunk(tmp_path)
    else:
        path = _store(tmp_path / "links.h5", _links(case))
    code, err = run_cli(["store", "info", "--check", path], capsys)
    assert code == 2 and message in err


def test_store_info_json_with_exotic_attributes(tmp_path, capsys):
    def build(h5, images, idx):
        images.create_dataset("n00000001", data=np.ones((2, 3), np.float32))
        idx.create_dataset("n00000001", data=np.arange(2))
        h5.attrs["complex"] = np.complex64(1 + 2j)
        h5.attrs["reference"] = images.ref
        h5.attrs.create("ragged", np.array([np.array([1.0, 2.0]), np.array([3.0])], dtype=object),
                        dtype=h5py.vlen_dtype(np.float64))
    path = _store(tmp_path / "attrs.h5", build)
    assert main(["store", "info", "--json", str(path)]) == 0
    attrs = json.loads(capsys.readouterr().out)["attrs"]
    assert attrs["complex"] == "(1+2j)" and attrs["ragged"] == [[1.0, 2.0], [3.0]]
    assert "reference" in attrs["reference"]


def test_ilsvrc_bad_inputs(tmp_path, capsys):
    val = tmp_path / "val"
    val.mkdir()
    (val / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"jpeg")
    labels = tmp_path / "LOC_val_solution.csv"
    labels.write_text("ImageId,PredictionString\nILSVRC2012_val_00000001,n00000001 1 2 3 4\n")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"ImageId,PredictionString\n\xff\xfe\x00\x01\n")
    (tmp_path / "truth.txt").write_text("1\n")
    (tmp_path / "meta.mat").write_bytes(b"")
    out_file = tmp_path / "out"
    out_file.write_text("precious")
    for argv, message in [
        ([val, "--labels", labels, "--out", out_file], "is an existing file, not a folder"),
        ([val, "--labels", binary, "--out", tmp_path / "o"], "not a UTF-8 text labels file"),
        ([val, "--labels", tmp_path / "truth.txt", "--out", tmp_path / "o"], "not a devkit meta.mat"),
        ([val, "--labels", tmp_path, "--out", tmp_path / "o"], "is a folder"),
    ]:
        code, err = run_cli(["ilsvrc", "prepare-val", *argv], capsys)
        assert code == 2 and message in err
    assert out_file.read_text() == "precious" and not (tmp_path / "o").exists()


def test_fetch_refuses_an_empty_url_list(tmp_path, capsys):
    (tmp_path / "fall11_urls.txt").write_bytes(b"")
    code, err = run_cli(["fetch", "imagenet-urls", "--from", tmp_path / "fall11_urls.txt",
                         "--home", tmp_path / "home"], capsys)
    assert code == 2 and "empty, not a URL list" in err
    assert not (tmp_path / "home" / "imagenet" / "fall11_urls.txt").exists()


def test_console_script_prints_no_traceback(tmp_path):
    garbage = tmp_path / "garbage"
    garbage.write_bytes(bytes(range(256)))
    result = subprocess.run([sys.executable, "-m", "goz", "store", "info", str(garbage)], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": SRC})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"goz: error: {garbage}: not a readable HDF5 file")


def test_help_of_every_subcommand(capsys):
    for argv in (["--help"], ["download", "--help"], ["download-report", "--help"], ["store", "info", "--help"],
                 ["fetch", "features", "--help"], ["ilsvrc", "prepare-val", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "split name or file" in text and "feature store (HDF5)" in text


def test_unreachable_ray_cluster_is_a_goz_error_not_a_hang(url_list, tmp_path, capsys):
    code, err = run_cli(["download", url_list, tmp_path / "out", "--quiet", "--engine", "ray",
                         "--ray-address", "127.0.0.1:1"], capsys)
    assert code == 2 and "no Ray cluster answers at 127.0.0.1:1" in err


def _spawned_children(pid: int) -> list[int]:
    """Direct children of `pid` started by multiprocessing's spawn (the shard workers, not the resource tracker)."""
    children = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid \
                    and b"spawn_main" in (entry / "cmdline").read_bytes():
                children.append(int(entry.name))
        except (OSError, IndexError, ValueError):  # the process ended while we looked
            continue
    return children


def test_killed_shard_process_ends_in_a_goz_error(tmp_path):
    server = FaultServer(hosts=("127.0.0.1", "127.0.0.2"))  # two hosts: two shards (a host stays in one)
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"n00000001_{i}\t{server.url(f'/drip/{i}', f'127.0.0.{i % 2 + 1}')}\n" for i in range(8)))
    process = subprocess.Popen(
        [sys.executable, "-m", "goz", "download", str(urls), str(tmp_path / "out"), "--processes", "2",
         "--shards", "2", "--deadline", "30", "--decode-workers", "1", "--quiet"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": SRC})
    try:
        deadline = time.monotonic() + 60
        while len(workers := _spawned_children(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # the shards are fetching (the drip server answers one byte per 0.5 s)
        os.kill(workers[0], signal.SIGKILL)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        server.close()
    assert process.returncode == 2 and "Traceback" not in err
    assert "died (killed, or out of memory)" in err and "rerun the same command to resume" in err


def test_closed_output_pipe_ends_quietly(tmp_path):
    path = write_store(tmp_path / "s.h5", {"n00000001": (np.ones((2, 3), np.float32), np.arange(2))},
                       attrs={"long": np.arange(8000)})  # JSON larger than a pipe buffer (64 KiB)
    process = subprocess.Popen([sys.executable, "-m", "goz", "store", "info", "--json", str(path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": SRC})
    process.stdout.read(10)
    process.stdout.close()  # like `goz ... | head -c 10`
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141 and err == ""
