"""Fit and scoring time of the linear baselines at GOZ dimensions, on random data.

993 seen classes, 2048-d float16 features, 300-d class vectors, 1,500 gzsl candidates. ConSE and
DeViSE run a few minibatches of the default size (2000) and the time of the default 500 is
extrapolated; ESZSL runs both variants in full. Run:

    PYTHONPATH=src python benchmarks/bench_linear_models.py [--per-class 50] [--batches 10] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from goz import models
from goz.models import TrainingData
from goz.semantics import SemanticsTable

N_SEEN, N_CANDIDATES, FEATURE_DIM, SEMANTIC_DIM, DEFAULT_BATCHES = 993, 1500, 2048, 300, 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=50, help="training samples per seen class")
    parser.add_argument("--batches", type=int, default=10, help="minibatches timed for ConSE and DeViSE")
    parser.add_argument("--test-samples", type=int, default=10_000)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    wnids = [f"n{i:08d}" for i in range(N_CANDIDATES)]
    semantics = SemanticsTable(wnids, rng.standard_normal((N_CANDIDATES, SEMANTIC_DIM), dtype=np.float32))
    features = rng.random((N_SEEN * args.per_class, FEATURE_DIM), dtype=np.float32).astype(np.float16)
    labels = np.repeat(np.arange(N_SEEN), args.per_class)
    data = TrainingData(features, labels, wnids[:N_SEEN], semantics)
    test_features = rng.random((args.test_samples, FEATURE_DIM), dtype=np.float32)

    runs = [("conse", {"n_batches": args.batches}), ("devise", {"n_batches": args.batches}),
            ("eszsl", {}), ("eszsl", {"per_sample": True})]
    rows = []
    for name, params in runs:
        model = models.create(name, device=args.device, progress=False, **params)
        start = time.perf_counter()
        model.fit(data)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        model.scores(test_features, wnids)
        score_seconds = time.perf_counter() - start
        scale = DEFAULT_BATCHES / args.batches if "n_batches" in params else 1.0
        rows.append({"model": name, **{k: v for k, v in params.items() if k != "n_batches"},
                     "fit_seconds": fit_seconds, "fit_seconds_at_defaults": fit_seconds * scale,
                     "score_seconds_per_10k": score_seconds * 10_000 / args.test_samples})

    print(f"{len(features)} x {FEATURE_DIM} float16 training features, {N_SEEN} seen classes, "
          f"{N_CANDIDATES} candidates, device {args.device}")
    print(f"{'model':<20} {'fit s (defaults)':>17} {'score s / 10k':>14}")
    for row in rows:
        label = row["model"] + (" per_sample" if row.get("per_sample") else "")
        print(f"{label:<20} {row['fit_seconds_at_defaults']:17.1f} {row['score_seconds_per_10k']:14.2f}")
    output = Path(__file__).parent / "results" / "bench_linear_models.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"training_samples": len(features), "device": args.device,
                                  "timed_batches": args.batches, "rows": rows,
                                  "note": "2-core machine shared with other jobs while measured"}, indent=2) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
