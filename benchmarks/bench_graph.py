"""Training cost of the graph baselines (gcn6, sgcn, dgp) on the GOZ graph.

The graph is the WordNet graph induced by the 1000 seen + 500 unseen GOZ classes and all their
ancestors (`goz.wordnet.load().induced_graph(seen + unseen)`, split lists read from the shared
data folder); node vectors (300-d) and seen-class targets (2049-d) are synthetic, since only the
cost is measured. Each model runs in its own process so its peak resident memory is its own.

Reports seconds per epoch (over `--epochs` epochs after `--warmup`), the set-up time (propagation
matrices, receptive-field plans), the projected time to the original 3000 epochs, and optionally
the measured 3000-epoch time (`--full sgcn,dgp`). Writes benchmarks/results/bench_graph.json.

    PYTHONPATH=src python benchmarks/bench_graph.py --shared /work/shared [--full sgcn,dgp]
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
from goz.semantics import SemanticsTable
from goz.wordnet.hierarchy import ClassGraph, Hierarchy

ORIGINAL_EPOCHS = 3000
FEATURE_DIM = 2048
VECTOR_DIM = 300


def read_split(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def synthetic_hierarchy(n_classes: int, seed: int) -> tuple[Hierarchy, list[str]]:
    """A random WordNet-sized DAG for development without the packaged WordNet: a tree grown
    level by level until a level holds `n_classes` nodes (the classes), 3% of nodes with a second parent."""
    rng = np.random.default_rng(seed)
    edges, level = [], ["root"]
    while len(level) < n_classes:
        level_edges = [(f"{parent}.{k}", parent) for parent in level for k in range(rng.integers(1, 4))]
        edges += level_edges
        level = [child for child, _ in level_edges]
    nodes = [child for child, _ in edges]
    for child in rng.choice(nodes, len(nodes) * 3 // 100, replace=False):
        parent = nodes[rng.integers(len(nodes))]
        if not parent.startswith(child):  # never a descendant: keeps it acyclic
            edges.append((child, parent))
    return Hierarchy.from_edges(edges), [str(w) for w in rng.choice(level, n_classes, replace=False)]


def goz_graph(shared: Path | None, seed: int) -> tuple[ClassGraph, list[str], str]:
    if shared is None:
        hierarchy, classes = synthetic_hierarchy(1500, seed)
        seen, unseen = classes[:1000], classes[1000:]
        return hierarchy.induced_graph(seen + unseen), seen, "synthetic DAG"
    from goz import wordnet
    seen = read_split(shared / "data/goz/ilsvrc2012_train.txt")
    unseen = read_split(shared / "data/goz/goz_v1.txt")
    return wordnet.load().induced_graph(seen + unseen), seen, "WordNet 3.0, ILSVRC-2012 seen + GOZ v1 unseen"


def measure(name: str, precision: str, graph: ClassGraph, seen: list[str], warmup: int, epochs: int, full: bool,
            device: str, threads: int, seed: int, queue) -> None:
    """Runs in a child process: fit with synthetic vectors and targets, report timings and peak memory."""
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    semantics = SemanticsTable(list(graph.wnids), rng.normal(size=(len(graph), VECTOR_DIM)).astype(np.float32))
    targets = rng.normal(size=(len(seen), FEATURE_DIM + 1)).astype(np.float32)
    data = TrainingData(np.zeros((0, FEATURE_DIM), np.float32), np.zeros(0, np.int64), seen, semantics,
                        graph=graph, classifier_weights=targets)
    total_epochs = ORIGINAL_EPOCHS if full else warmup + epochs
    start = time.perf_counter()
    model = models.create(name, epochs=total_epochs, precision=precision, device=device, seed=seed,
                          progress=full).fit(data)
    fit_seconds = time.perf_counter() - start
    seconds = [r["seconds"] for r in model.history_]
    per_epoch = (seconds[warmup + epochs - 1] - seconds[warmup - 1]) / epochs
    setup = fit_seconds - seconds[-1]
    result = {
        "model": name, "precision": precision, "seconds_per_epoch": per_epoch, "setup_seconds": setup,
        "projected_3000_epochs_seconds": setup + ORIGINAL_EPOCHS * per_epoch,
        "measured_3000_epochs_seconds": fit_seconds if full else None,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "final_loss": model.history_[-1]["loss"],
    }
    if device.startswith("cuda"):
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    queue.put(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("/work/shared"),
                        help="folder holding data/goz/{ilsvrc2012_train,goz_v1}.txt")
    parser.add_argument("--synthetic-graph", action="store_true",
                        help="a random DAG of the same size instead of WordNet (development only)")
    parser.add_argument("--models", default="gcn6,sgcn,dgp")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20, help="epochs measured after the warm-up")
    parser.add_argument("--full", default="", help="models to also train for all 3000 epochs, e.g. sgcn,dgp")
    parser.add_argument("--precision", default="float32,bfloat16", help="precisions to measure, comma-separated")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_graph.json")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    graph, seen, source = goz_graph(None if args.synthetic_graph else args.shared, args.seed)
    graph_seconds = time.perf_counter() - start
    edges = graph.parent_edges.nnz
    print(f"graph: {source}: {len(graph)} nodes, {edges} parent edges, {len(seen)} seen (built in {graph_seconds:.1f} s)")
    context = multiprocessing.get_context("spawn")
    rows = []
    full = {m for m in args.full.split(",") if m}
    for name in [m for m in args.models.split(",") if m]:
        for precision in [p for p in args.precision.split(",") if p]:
            for run_full in ([False, True] if name in full else [False]):
                queue = context.Queue()
                process = context.Process(target=measure, args=(
                    name, precision, graph, seen, args.warmup, args.epochs, run_full, args.device, args.threads,
                    args.seed, queue))
                process.start()
                result = queue.get()
                process.join()
                result["run"] = "3000 epochs" if run_full else f"{args.warmup}+{args.epochs} epochs"
                rows.append(result)
                print(f"  {name:5s} {precision:8s} {result['run']:>12s}: {result['seconds_per_epoch']:.3f} s/epoch",
                      flush=True)

    print(f"\n{'model':6s} {'precision':9s} {'run':>12s} {'s/epoch':>8s} {'setup s':>8s} {'3000 ep. projected':>19s} "
          f"{'3000 ep. measured':>18s} {'peak RSS MiB':>13s}")
    for r in rows:
        measured = f"{r['measured_3000_epochs_seconds'] / 60:.1f} min" if r["measured_3000_epochs_seconds"] else "-"
        print(f"{r['model']:6s} {r['precision']:9s} {r['run']:>12s} {r['seconds_per_epoch']:8.3f} "
              f"{r['setup_seconds']:8.2f} {r['projected_3000_epochs_seconds'] / 60:15.1f} min {measured:>18s} "
              f"{r['peak_rss_mib']:13.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "graph": {"source": source, "nodes": len(graph), "parent_edges": edges, "seen": len(seen)},
        "vector_dim": VECTOR_DIM, "target_dim": FEATURE_DIM + 1, "device": args.device,
        "torch": torch.__version__, "threads": args.threads, "machine": platform.platform(),
        "note": "timings on a 2-core machine shared with other jobs" if args.device == "cpu" else "",
        "load_average_1min": {"start": load_before, "end": os.getloadavg()[0]},
        "results": rows,
    }, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
