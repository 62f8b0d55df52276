"""benchmarks/gpu_suite.py, the prepared GPU run, at tiny sizes on the CPU: every section runs and reports."""

import json
import subprocess
import sys

import checkout
import pytest

SUITE = checkout.ROOT / "benchmarks" / "gpu_suite.py"
ENV = {"PYTHONPATH": str(checkout.SRC), "PATH": "/usr/bin:/bin"}


@pytest.mark.slow
def test_the_gpu_suite_runs_every_section_tiny_on_the_cpu(tmp_path):
    out = tmp_path / "suite.json"
    done = subprocess.run([sys.executable, str(SUITE), "--device", "cpu", "--tiny", "--out", str(out)],
                          check=False, capture_output=True, text=True, timeout=300, env=ENV)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    sections = report["sections"]
    assert list(sections) == ["extract", "graph", "clswgan", "scoring"]
    assert all(section["ok"] for section in sections.values()), {k: s.get("error") for k, s in sections.items()}
    extract = sections["extract"]["runs"]["cpu_decode"]
    assert (extract["images"], extract["classes"], extract["skipped"], extract["source"]) == (12, 3, 0, "webdataset")
    graph = sections["graph"]["models"]
    assert set(graph) == {"gcn6", "sgcn", "dgp"} and all(m["epochs_run"] == 3 and m["scores_finite"]
                                                         for m in graph.values())
    assert sections["clswgan"]["fit_seconds"] > 0 and 0 <= sections["clswgan"]["zsl_top1_synthetic"] <= 1
    runs = sections["scoring"]["runs"]
    assert set(runs) == {"eszsl_zsl", "eszsl_gzsl", "devise_zsl", "devise_gzsl"}
    assert runs["eszsl_zsl"]["score_path"] == "matrix" and runs["devise_zsl"]["score_path"] == "scores"
    assert runs["eszsl_gzsl"]["candidates"] == 330 and runs["eszsl_zsl"]["samples"] == 600
    assert "total" in done.stdout


def test_without_cuda_the_suite_says_so(tmp_path):
    hidden = ENV | {"CUDA_VISIBLE_DEVICES": ""}   # no GPU visible, whatever the machine
    done = subprocess.run([sys.executable, str(SUITE), "--out", str(tmp_path / "x.json")],
                          check=False, capture_output=True, text=True, timeout=120, env=hidden)
    assert done.returncode != 0 and "CUDA is not available" in done.stderr
