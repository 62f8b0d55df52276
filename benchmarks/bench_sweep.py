"""Cost of a word-frequency sweep (`goz analyze sweep words`) at GOZ scale, on synthetic stores.

The issue's target: 11 bins x 5 draws x 2 models (ESZSL and SGCN) on GOZ-shaped synthetic stores
(1,000 seen classes x 500 training samples, 100 test samples per unseen class, 2048-d) in at most
15 minutes on 2 cores, with at most 6 GB. The stores come from `goz.synthetic.make_benchmark`
(SYNTHETIC DATA; generated once into `--data` and reused, not timed with the sweep); each unseen
class gets a made-up name (`synthword<i>`) and a word count inside one of the paper's 11 bins, 150
classes per bin, so every bin's pool is larger than a draw of 100. Models run with the demo's
budgets (ESZSL gamma 10, lambda 10^4; SGCN 80 epochs, hidden 512, the synthetic seen classifiers as
targets), one process, `--threads` torch threads per draw.

The sweep runs in a child process, so its peak memory (max RSS) is its own. A second run over the
same folder measures the resume path: every draw reused by its fingerprint.

    PYTHONPATH=src python benchmarks/bench_sweep.py            # the target configuration
    PYTHONPATH=src python benchmarks/bench_sweep.py --quick    # seconds: 3 bins x 2 draws, small stores

Writes benchmarks/results/bench_sweep.json (bench_sweep_quick.json with --quick) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET_SECONDS, TARGET_GB = 15 * 60, 6.0
WORD_BINS = [0, 25, 50, 100, 500, 1000, 2000, 3000, 5000, 10000, 50000, 100000]
FULL = {"sizes": {"n_seen": 1000, "train_per_class": 500, "test_per_class": 100, "seen_test_per_class": 0,
                  "dim": 2048}, "per_bin": 150, "bins": 11, "draws": 5, "classes": 100,
        "hyperparameters": {"eszsl": {"gamma": 10.0, "lam": 10000.0}, "sgcn": {"epochs": 80, "hidden": [512]}}}
QUICK = {"sizes": {"n_seen": 40, "train_per_class": 20, "test_per_class": 10, "seen_test_per_class": 0,
                   "dim": 256, "sample_noise": 2.0, "semantic_noise": 0.4, "class_noise": 0.6},
         "per_bin": 8, "bins": 3, "draws": 2, "classes": 5,
         "hyperparameters": {"eszsl": {"gamma": 10.0, "lam": 10000.0}, "sgcn": {"epochs": 10, "hidden": [16]}}}


def prepare(data: Path, config: dict, seed: int) -> dict:
    """The synthetic benchmark, the names of its unseen classes and their word counts (reused when present)."""
    from goz import splits
    from goz.synthetic import make_benchmark

    n_unseen = config["per_bin"] * config["bins"]
    start = time.perf_counter()
    benchmark = make_benchmark(data, seed=seed, n_unseen=n_unseen, **config["sizes"])
    generate_seconds = time.perf_counter() - start
    unseen = splits.load(benchmark.unseen)
    rng = np.random.default_rng(seed)
    lemmas, counts = data / "lemmas.tsv", data / "word_counts.txt"
    names, words = [], []
    for i, wnid in enumerate(unseen):
        low, high = WORD_BINS[i // config["per_bin"]], WORD_BINS[i // config["per_bin"] + 1]
        names.append(f"{wnid}\tsynthword{i}\n")
        words.append(f"synthword{i} {int(rng.integers(low + 1, high))}\n")  # strictly inside (low, high)
    lemmas.write_text("# SYNTHETIC DATA: made-up names\n" + "".join(names))
    counts.write_text("# SYNTHETIC DATA: made-up counts\n" + "".join(words))
    return {"benchmark": benchmark, "lemmas": lemmas, "counts": counts, "generate_seconds": generate_seconds}


def run_sweep(prepared: dict, config: dict, out: Path, threads: int, seed: int, queue,
              parent: int | None = None) -> None:
    """In a child process: the sweep, its wall and CPU time, its peak memory."""
    if parent is not None:  # in the measuring child: a killed benchmark leaves no sweep running
        from goz.lifeline import die_with_parent
        die_with_parent(parent)
    from goz import splits
    from goz.bench.analysis.sweep import sweep
    from goz.splits import read_counts
    from goz.splits.lemmas import LemmaFilter, read_lemma_names, with_lemmas
    from goz.splits.word_counts import read_word_counts
    from goz.wordnet.edges import load_hierarchy

    b = prepared["benchmark"]
    hierarchy = load_hierarchy(b.hierarchy)
    hierarchy = with_lemmas(hierarchy, read_lemma_names(prepared["lemmas"], hierarchy))
    start, cpu = time.perf_counter(), time.process_time()
    result = sweep("words", seen=splits.load(b.seen), counts=read_counts(b.test), hierarchy=hierarchy, train=b.train,
                   test=b.test, semantics=b.semantics, models=["eszsl", "sgcn"], settings=["zsl"],
                   bins=WORD_BINS[:config["bins"] + 1], draws=config["draws"], classes=config["classes"], seed=seed,
                   lemma_filter=LemmaFilter(word_counts=read_word_counts(prepared["counts"])),
                   word_source=prepared["counts"], bench_hierarchy=str(b.hierarchy),
                   classifier_weights=str(b.classifier_weights), per_class=500,
                   hyperparameters=config["hyperparameters"], threads=threads, out=out, progress=False)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    queue.put({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_gb": peak_gb, "draws": len(result.draws),
               "skipped": result.skipped,
               "mean_top1": {f"{m} {s}": float(np.mean([d.metrics[(m, s)]["top1"] for d in result.draws]))
                             for m, s in result.runs()}})


def measure(prepared: dict, config: dict, out: Path, threads: int, seed: int) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=run_sweep, args=(prepared, config, out, threads, seed, queue, os.getpid()))
    child.start()
    found = queue.get()
    child.join()
    if child.exitcode:
        raise SystemExit(f"the sweep failed (exit code {child.exitcode})")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small stores, 3 bins x 2 draws (seconds)")
    parser.add_argument("--data", help="folder of the synthetic stores (default: the system temp folder)")
    parser.add_argument("--out", help="results JSON (default benchmarks/results/bench_sweep[_quick].json)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per draw (default 2: the target's cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the sweep's output folder")
    args = parser.parse_args()
    config = QUICK if args.quick else FULL
    name = "bench_sweep_quick" if args.quick else "bench_sweep"
    data = Path(args.data) if args.data else Path(tempfile.gettempdir()) / f"goz-{name}"
    out_json = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / f"{name}.json"
    prepared = prepare(data, config, args.seed)
    sweep_out = data / "sweep"
    shutil.rmtree(sweep_out, ignore_errors=True)
    first = measure(prepared, config, sweep_out, args.threads, args.seed)
    resumed = measure(prepared, config, sweep_out, args.threads, args.seed)
    if not args.keep:
        shutil.rmtree(sweep_out, ignore_errors=True)
    report = {
        "benchmark": name, "data": "synthetic (goz.synthetic: SYNTHETIC DATA)",
        "config": {**{k: v for k, v in config.items()}, "n_unseen": config["per_bin"] * config["bins"],
                   "models": ["eszsl", "sgcn"], "threads": args.threads, "seed": args.seed},
        "generate_seconds": prepared["generate_seconds"], "sweep": first, "resumed": resumed,
        "targets": {"seconds": TARGET_SECONDS, "peak_rss_gb": TARGET_GB},
        "within_targets": first["seconds"] <= TARGET_SECONDS and first["peak_rss_gb"] <= TARGET_GB,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
    }
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(report, indent=1))
    draws = first["draws"]
    print(f"{'run':<10} {'draws':>6} {'wall s':>9} {'CPU s':>9} {'s/draw':>8} {'peak GB':>8}")
    for label, found in (("sweep", first), ("resumed", resumed)):
        print(f"{label:<10} {draws:>6} {found['seconds']:>9.1f} {found['cpu_seconds']:>9.1f} "
              f"{found['seconds'] / max(draws, 1):>8.2f} {found['peak_rss_gb']:>8.2f}")
    print(f"targets: {TARGET_SECONDS} s, {TARGET_GB} GB -> {'met' if report['within_targets'] else 'NOT met'}"
          f" ({'quick configuration' if args.quick else 'full configuration'}); stores generated in "
          f"{prepared['generate_seconds']:.1f} s; wrote {out_json}")


if __name__ == "__main__":
    main()
