"""Training cost of the graph baselines (gcn6, sgcn, dgp) on the published ImageNet graph.

The graph is the one `goz bench` uses by default: DGP's graph of 32,324 WordNet nodes
(`goz.wordnet.imagenet_graph()`, built from the lists shipped with goz), with the 1000 ILSVRC-2012
classes as seen classes; node vectors (300-d) and seen-class targets (2049-d) are synthetic values,
since only the cost is measured. Each model runs in its own process so its peak memory is its own.

Reports, per model and precision: wall and CPU seconds per epoch (over `--epochs` epochs after
`--warmup`), the set-up time (propagation matrices, receptive-field plans, the final prediction of
every node's classifier), the rows each layer computes, the dense GFLOP of one epoch, the time
projected to the original 3000 epochs, and optionally the measured 3000-epoch time (`--full
sgcn,dgp`). On a machine shared with other jobs, wall time includes waiting for a core: the CPU
seconds (divided by the threads) are what an idle machine would take. Writes
benchmarks/results/bench_graph.json.

    PYTHONPATH=src python benchmarks/bench_graph.py [--models sgcn,dgp] [--epochs 100] [--full sgcn]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch

from goz import models
from goz.models import TrainingData
from goz.models.graph import GraphNetwork
from goz.semantics import SemanticsTable
from goz.wordnet.imagenet_graph import imagenet_graph

ORIGINAL_EPOCHS = 3000
FEATURE_DIM = 2048
VECTOR_DIM = 300
N_SEEN = 1000


def layer_rows_and_gflop(name: str, graph, seen_rows: np.ndarray) -> tuple[list[int], float]:
    """Rows each layer computes for the seen classes, and the dense multiply-adds of one epoch in GFLOP
    (forward, the weight gradient, and the input gradient of every layer but the first)."""
    model = models.create(name)
    specs = model.layer_specs(graph, FEATURE_DIM + 1)
    plan = GraphNetwork(specs, VECTOR_DIM, model.dropout, bias=model.bias).plan(seen_rows, torch.device("cpu"))
    rows = [layer.propagation.shape[0] for layer in plan.layers]
    dims = [VECTOR_DIM] + [spec.out_dim for spec in specs]
    flop = sum(2 * r * dims[i] * dims[i + 1] * (2 if i == 0 else 3) for i, r in enumerate(rows))
    return rows, flop / 1e9


def measure(name: str, precision: str, warmup: int, epochs: int, full: bool, device: str, threads: int,
            seed: int, queue) -> None:
    """Runs in a child process: fit with synthetic vectors and targets, report timings and peak memory."""
    torch.set_num_threads(threads)
    graph = imagenet_graph()
    seen = list(graph.wnids[:N_SEEN])
    rng = np.random.default_rng(seed)
    semantics = SemanticsTable(list(graph.wnids), rng.normal(size=(len(graph), VECTOR_DIM)).astype(np.float32))
    targets = rng.normal(size=(len(seen), FEATURE_DIM + 1)).astype(np.float32)
    data = TrainingData(np.zeros((0, FEATURE_DIM), np.float32), np.zeros(0, np.int64), seen, semantics,
                        graph=graph, classifier_weights=targets)
    rows, gflop = layer_rows_and_gflop(name, graph, np.arange(N_SEEN))
    total_epochs = ORIGINAL_EPOCHS if full else warmup + epochs
    start, cpu_start = time.perf_counter(), time.process_time()
    model = models.create(name, epochs=total_epochs, precision=precision, device=device, seed=seed,
                          progress=full).fit(data)
    fit_seconds, fit_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    seconds = [r["seconds"] for r in model.history_]
    cpu = [r["cpu_seconds"] for r in model.history_]
    first, last = (warmup - 1, warmup + epochs - 1) if not full else (0, len(seconds) - 1)
    per_epoch = (seconds[last] - seconds[first]) / (last - first)
    cpu_per_epoch = (cpu[last] - cpu[first]) / (last - first)
    setup = fit_seconds - seconds[-1]
    result = {
        "model": name, "precision": precision, "seconds_per_epoch": per_epoch,
        "cpu_seconds_per_epoch": cpu_per_epoch,
        "setup_seconds": setup, "fit_seconds": fit_seconds, "fit_cpu_seconds": fit_cpu,
        "layer_rows": rows, "dense_gflop_per_epoch": gflop,
        "projected_3000_epochs_seconds": setup + ORIGINAL_EPOCHS * per_epoch,
        "measured_3000_epochs_seconds": fit_seconds if full else None,
        "epochs_run": len(seconds),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "final_loss": model.history_[-1]["loss"],
    }
    if device.startswith("cuda"):
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    queue.put(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="sgcn,dgp,gcn6")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--epochs", default="100",
                        help="epochs measured after the warm-up: one number, or MODEL=N pairs, e.g. sgcn=100,gcn6=10")
    parser.add_argument("--full", default="", help="models to also train for all 3000 epochs, e.g. sgcn,dgp")
    parser.add_argument("--precision", default="float32", help="precisions to measure, comma-separated")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_graph.json")
    args = parser.parse_args()
    epochs = ({k: int(v) for k, v in (pair.split("=") for pair in args.epochs.split(","))} if "=" in args.epochs
              else {})
    default_epochs = int(args.epochs) if "=" not in args.epochs else 20

    load_before = os.getloadavg()
    start = time.perf_counter()
    graph = imagenet_graph()
    graph_seconds = time.perf_counter() - start
    print(f"graph: published ImageNet graph: {len(graph)} nodes, {graph.parent_edges.nnz} edges, {N_SEEN} seen "
          f"(built in {graph_seconds:.1f} s); load average {load_before[0]:.1f} on {os.cpu_count()} CPUs")
    context = multiprocessing.get_context("spawn")
    rows = []
    full = {m for m in args.full.split(",") if m}
    for name in [m for m in args.models.split(",") if m]:
        for precision in [p for p in args.precision.split(",") if p]:
            for run_full in ([False, True] if name in full else [False]):
                queue = context.Queue()
                n = epochs.get(name, default_epochs)
                process = context.Process(target=measure, args=(
                    name, precision, args.warmup, n, run_full, args.device, args.threads, args.seed, queue))
                load = os.getloadavg()[0]
                process.start()
                result = queue.get()
                process.join()
                result["run"] = "3000 epochs" if run_full else f"{args.warmup}+{n} epochs"
                result["load_average_1min"] = {"start": load, "end": os.getloadavg()[0]}
                rows.append(result)
                print(f"  {name:5s} {precision:8s} {result['run']:>12s}: {result['seconds_per_epoch']:.3f} s/epoch "
                      f"wall, {result['cpu_seconds_per_epoch']:.3f} CPU s/epoch (load {load:.1f})", flush=True)

    print(f"\n{'model':6s} {'precision':9s} {'run':>12s} {'s/epoch':>8s} {'CPU s/ep':>8s} {'GFLOP/ep':>8s} "
          f"{'setup s':>8s} {'3000 ep. projected':>19s} {'idle proj.':>10s} {'3000 ep. measured':>18s} {'RSS MiB':>8s}")
    for r in rows:
        measured = f"{r['measured_3000_epochs_seconds'] / 60:.1f} min" if r["measured_3000_epochs_seconds"] else "-"
        idle = (r["setup_seconds"] + ORIGINAL_EPOCHS * r["cpu_seconds_per_epoch"] / args.threads) / 60
        r["projected_3000_epochs_idle_seconds"] = idle * 60
        print(f"{r['model']:6s} {r['precision']:9s} {r['run']:>12s} {r['seconds_per_epoch']:8.3f} "
              f"{r['cpu_seconds_per_epoch']:8.3f} {r['dense_gflop_per_epoch']:8.1f} {r['setup_seconds']:8.1f} "
              f"{r['projected_3000_epochs_seconds'] / 60:15.1f} min {idle:6.1f} min {measured:>18s} "
              f"{r['peak_rss_mib']:8.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "graph": {"source": "published ImageNet graph (goz.wordnet.imagenet_graph, DGP's rule, WordNet 3.0)",
                  "nodes": len(graph), "edges": int(graph.parent_edges.nnz), "seen": N_SEEN},
        "vector_dim": VECTOR_DIM, "target_dim": FEATURE_DIM + 1, "values": "synthetic", "device": args.device,
        "torch": torch.__version__, "threads": args.threads, "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "note": ("2-core machine shared with other jobs: wall time includes waiting for a core; 'idle' "
                 "projections use CPU seconds / threads" if args.device == "cpu" else ""),
        "load_average_1min": {"start": load_before[0], "end": os.getloadavg()[0]},
        "results": rows,
    }, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
