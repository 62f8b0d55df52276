"""benchmarks/bench_sweep.py in its --quick configuration: the stores, the names in every word bin, a sweep."""

import importlib.util
import queue

import checkout

from goz.splits.word_counts import read_word_counts


def _benchmark_module():
    spec = importlib.util.spec_from_file_location("bench_sweep", checkout.ROOT / "benchmarks" / "bench_sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_sweep_benchmark_runs(tmp_path):
    bench = _benchmark_module()
    config = bench.QUICK
    prepared = bench.prepare(tmp_path / "data", config, seed=0)
    counts = read_word_counts(prepared["counts"])
    assert len(counts) == config["per_bin"] * config["bins"]
    for i in range(config["bins"]):      # per_bin names strictly inside each of the paper's bins
        inside = [n for n in counts.values() if bench.WORD_BINS[i] < n < bench.WORD_BINS[i + 1]]
        assert len(inside) == config["per_bin"]
    found = queue.Queue()
    bench.run_sweep(prepared, config, tmp_path / "sweep", threads=1, seed=0, queue=found)
    measured = found.get_nowait()
    assert measured["draws"] == config["bins"] * config["draws"] and not measured["skipped"]
    assert set(measured["mean_top1"]) == {"eszsl zsl", "sgcn zsl"} and measured["peak_rss_gb"] > 0
    assert "SYNTHETIC DATA" in (tmp_path / "sweep" / "sweep.md").read_text()
