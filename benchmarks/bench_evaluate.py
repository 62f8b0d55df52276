"""Evaluation at the GOZ generalized scale: 60,000 samples x 1,500 candidates (float32 scores).

Measures goz.bench.evaluate (rank counting in row chunks, torch.topk per chunk for the top-5 lists)
side by side with the direct approach (argsort of whole rows), checks that both give the same
numbers, and records time and peak extra memory (tracemalloc sees numpy allocations, not torch's;
the only torch allocations are the (chunk x 5) top-k lists). Run:

    PYTHONPATH=src python benchmarks/bench_evaluate.py [--samples 60000] [--candidates 1500]
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from pathlib import Path

import numpy as np

from goz.bench.evaluate import evaluate, seen_unseen_curve, topk_predictions


def measure(function):
    tracemalloc.start()
    start = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, seconds, peak / 2**20


def argsort_top5(scores: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The direct way: sort every whole row, read the top 5 and the cumulative hits."""
    order = np.argsort(-scores, axis=1)
    top5 = order[:, :5]
    return top5, np.cumsum(top5 == true[:, None], axis=1).mean(axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--candidates", type=int, default=1_500)
    parser.add_argument("--seen", type=int, default=1_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((args.samples, args.candidates), dtype=np.float32)
    true = rng.integers(0, args.candidates, args.samples)
    scores[np.arange(args.samples), true] += 2.5   # a model that is right often enough to matter
    candidates = [f"n{i:08d}" for i in range(args.candidates)]
    seen = candidates[args.candidates - args.seen:]

    rows = {}
    metrics, rows["evaluate (gzsl, k=1..5)"], peak_evaluate = measure(lambda: evaluate(scores, true, candidates, seen))
    top5, rows["topk_predictions (k=5)"], peak_topk = measure(lambda: topk_predictions(scores, 5))
    curve, rows["seen_unseen_curve"], peak_curve = measure(lambda: seen_unseen_curve(scores, true, candidates, seen))
    (sorted_top5, sorted_hits), rows["argsort whole rows (top-5 + hits)"], peak_sort = measure(
        lambda: argsort_top5(scores, true))
    peaks = dict(zip(rows, [peak_evaluate, peak_topk, peak_curve, peak_sort]))

    assert np.array_equal(top5, sorted_top5)
    assert np.allclose([metrics[f"top{k}"] for k in range(1, 6)], sorted_hits)

    print(f"scores: {args.samples} x {args.candidates} float32 ({scores.nbytes / 2**20:.0f} MiB), "
          f"{args.seen} seen candidates")
    print(f"{'operation':<36} {'seconds':>8} {'peak extra MiB':>15}")
    for name, seconds in rows.items():
        print(f"{name:<36} {seconds:8.2f} {peaks[name]:15.0f}")
    ours = rows["evaluate (gzsl, k=1..5)"] + rows["topk_predictions (k=5)"]
    print(f"evaluate + topk_predictions vs argsort: {rows['argsort whole rows (top-5 + hits)'] / ours:.1f}x faster, "
          f"{peaks['argsort whole rows (top-5 + hits)'] / max(peak_evaluate, peak_topk):.1f}x less peak memory")
    print(f"top1 {metrics['top1']:.4f}  h_top1 {metrics['h_top1']:.4f}  ausuc {curve['ausuc']:.4f} "
          f"({len(curve['calibrations'])} curve points)")

    output = Path(__file__).parent / "results" / "bench_evaluate.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({
        "samples": args.samples, "candidates": args.candidates, "seen": args.seen,
        "seconds": rows, "peak_extra_mib": peaks,
        "top1": metrics["top1"], "h_top1": metrics["h_top1"], "ausuc": curve["ausuc"],
        "note": "2-core machine shared with other jobs while measured",
    }, indent=2) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
