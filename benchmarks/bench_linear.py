"""Time `goz bench` for the linear models at GOZ scale on synthetic data; peak memory per model.

GOZ scale: 1000 seen classes x 600 training samples (capped at 500 per class, as the original),
500 unseen classes x 100 test samples, 1000 seen classes x 50 held-out samples, 2048-d features,
300-d class vectors. The data are generated once with goz.synthetic (not timed); each model
then runs as its own `goz bench` subprocess, both settings, default hyper-parameters, so that
its wall time and peak resident memory (os.wait4 rusage of that child) are its own.

    python benchmarks/bench_linear.py [--data DIR] [--models conse,devise,eszsl] [--device cpu] [--threads N]

Writes benchmarks/results/bench_linear.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from goz.synthetic import make_benchmark

GOZ_SCALE = {"n_seen": 1000, "n_unseen": 500, "train_per_class": 600, "test_per_class": 100,
             "seen_test_per_class": 50, "dim": 2048, "semantic_dim": 300}
TARGET_SECONDS, TARGET_RSS_GB = 300.0, 6.0


def time_model(model: str, data, out: Path, device: str, threads: int | None) -> dict:
    command = [sys.executable, "-m", "goz", "bench", "--models", model, "--settings", "zsl,gzsl",
               "--train", str(data.train), "--test", str(data.test), "--semantics", str(data.semantics),
               "--seen", str(data.seen), "--unseen", str(data.unseen), "--per-class", "500",
               "--device", device, "--quiet", "--force", "--out", str(out)]
    command += ["--threads", str(threads)] if threads else []
    log = out / f"{model}.log"
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage (RUSAGE_CHILDREN would be a max over all)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"goz bench --models {model} failed, see {log}:\n{log.read_text()[-2000:]}")
    results = {s: json.loads((out / f"{model}_{s}.json").read_text()) for s in ("zsl", "gzsl")}
    zsl, gzsl = results["zsl"], results["gzsl"]
    return {"model": model, "wall_seconds": wall, "peak_rss_gb": usage.ru_maxrss * 1024 / 2**30,
            "cpu_seconds": usage.ru_utime + usage.ru_stime, "load_seconds": zsl["run"]["load_seconds"],
            "fit_seconds": zsl["run"]["fit_seconds"],
            "score_seconds": zsl["run"]["score_seconds"] + gzsl["run"]["score_seconds"],
            "train_dtype": zsl["run"]["train_dtype"], "zsl_top1": zsl["metrics"]["top1"],
            "gzsl_h_top1": gzsl["metrics"]["h_top1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="where to generate (or reuse) the GOZ-scale data (default: a temp dir)")
    parser.add_argument("--models", default="conse,devise,eszsl")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads per run (default: torch's choice)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="goz-bench-linear-") as scratch:
        data_dir = Path(args.data or Path(scratch) / "data")
        start = time.perf_counter()
        data = make_benchmark(data_dir, seed=0, progress=True, **GOZ_SCALE)
        generation = time.perf_counter() - start
        rows = [time_model(model, data, Path(scratch) / "results", args.device, args.threads)
                for model in args.models.split(",")]
    total = sum(row["wall_seconds"] for row in rows)
    peak = max(row["peak_rss_gb"] for row in rows)
    print(f"\nGOZ-scale synthetic data: {GOZ_SCALE} (generated in {generation:.0f} s, not counted); "
          f"torch threads: {args.threads or 'default'}")
    print(f"{'model':<8} {'wall s':>8} {'cpu s':>8} {'load s':>7} {'fit s':>7} {'score s':>8} {'peak RSS GB':>12}"
          f" {'zsl top1':>9} {'H top1':>7}")
    for row in rows:
        print(f"{row['model']:<8} {row['wall_seconds']:8.1f} {row['cpu_seconds']:8.1f} {row['load_seconds']:7.1f} "
              f"{row['fit_seconds']:7.1f} {row['score_seconds']:8.1f} {row['peak_rss_gb']:12.2f} "
              f"{100 * row['zsl_top1']:9.2f} {100 * row['gzsl_h_top1']:7.2f}")
    print(f"{'total':<8} {total:8.1f}   targets: total <= {TARGET_SECONDS:.0f} s "
          f"({'met' if total <= TARGET_SECONDS else 'MISSED'}), peak <= {TARGET_RSS_GB} GB "
          f"({'met' if peak <= TARGET_RSS_GB else 'MISSED'})")
    record = {"benchmark": "bench_linear", "data": "synthetic", "scale": GOZ_SCALE, "per_class": 500,
              "torch_threads": args.threads or "default",
              "generation_seconds": generation, "models": rows, "total_wall_seconds": total, "peak_rss_gb": peak,
              "targets": {"total_wall_seconds": TARGET_SECONDS, "peak_rss_gb": TARGET_RSS_GB},
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                          "load_average_at_end": os.getloadavg()},
              "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path = Path(__file__).parent / "results" / "bench_linear.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"written {path}")


if __name__ == "__main__":
    main()
