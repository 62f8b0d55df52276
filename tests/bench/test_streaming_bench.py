"""benchmarks/bench_scale.py --quick: the scale benchmark runs end to end (tiny sizes; the targets are the full run's)."""

import json
import subprocess
import sys

import checkout
import h5py
import pytest


@pytest.mark.slow
def test_bench_scale_quick_writes_every_measurement(tmp_path):
    out = tmp_path / "scale.json"
    command = [sys.executable, str(checkout.ROOT / "benchmarks" / "bench_scale.py"), "--quick", "--threads", "1",
               "--shapes", "all", "--dtypes", "float16", "--settings", "gzsl", "--work", str(tmp_path / "work"),
               "--out", str(out)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(checkout.SRC), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    (run,) = report["shapes"]["all"]["runs"]
    assert (run["dtype"], run["setting"], run["candidates"], run["samples"]) == ("float16", "gzsl", 330, 660)
    assert run["score_path"] == "matrix" and 0 < run["peak_rss_gb"] < 8 and run["bare_matmul_s"] > 0
    assert 0 <= run["top1"] <= run["top20"] <= 1
    scaling = report["scaling"]
    assert [r["samples"] for r in scaling["runs"]] == [240, 480, 960]
    assert {"rss_spread", "per_sample_time_spread", "rss_flat_ok", "time_linear_ok"} <= scaling.keys()
    assert "peak RSS GB" in done.stdout and "matmul s" in done.stdout
    # The generator wrote the GOZ layout in the dtype asked, one dataset per class.
    with h5py.File(tmp_path / "work" / "all" / "test_float16.h5", "r") as handle:
        assert len(handle["images"]) == len(handle["idx"]) == 330
        assert {handle["images"][w].dtype.name for w in handle["images"]} == {"float16"}
