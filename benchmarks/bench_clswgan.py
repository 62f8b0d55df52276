"""f-CLSWGAN (`clswgan`) at GOZ scale on the CPU: fit, the zsl and gzsl classifiers, scoring, peak memory.

Synthetic features of GOZ's shape: 1000 seen classes x 500 training features of 2048 dimensions
(float16, as `goz bench` holds them at this size: 2 GB), 300-d class vectors, 500 unseen classes;
features are ReLU(class mean + noise) with class means linear in the class vectors. The model
runs with its defaults (the budgets sized for 2 CPU cores). Run:

    PYTHONPATH=src python benchmarks/bench_clswgan.py [--threads 2] [--per-class 500] [--device cpu]
        [--preset paper] [--set gan_epochs=1]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch

from goz import models
from goz.models import TrainingData
from goz.semantics import SemanticsTable

N_SEEN, N_UNSEEN, FEATURE_DIM, SEMANTIC_DIM = 1000, 500, 2048, 300


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=500, help="training features per seen class")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--test-samples", type=int, default=10_000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default=None, help="a clswgan preset, e.g. paper (the reference's values)")
    parser.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE",
                        help="a clswgan hyper-parameter (JSON value), e.g. --set gan_iterations=100")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    hyperparameters = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    rng = np.random.default_rng(0)
    wnids = [f"n{i:08d}" for i in range(N_SEEN + N_UNSEEN)]
    vectors = rng.standard_normal((len(wnids), SEMANTIC_DIM), dtype=np.float32)
    projection = rng.standard_normal((SEMANTIC_DIM, FEATURE_DIM), dtype=np.float32) / np.sqrt(SEMANTIC_DIM)
    means = vectors @ projection - 0.5
    start = time.perf_counter()
    features = np.empty((N_SEEN * args.per_class, FEATURE_DIM), dtype=np.float16)
    for c in range(N_SEEN):
        noise = rng.standard_normal((args.per_class, FEATURE_DIM), dtype=np.float32)
        features[c * args.per_class:(c + 1) * args.per_class] = np.maximum(means[c] + noise, 0)
    labels = np.repeat(np.arange(N_SEEN), args.per_class)
    data = TrainingData(features, labels, wnids[:N_SEEN], SemanticsTable(wnids, vectors))
    test_wnids = rng.integers(N_SEEN, N_SEEN + N_UNSEEN, args.test_samples)
    test_features = np.maximum(means[test_wnids] + rng.standard_normal((args.test_samples, FEATURE_DIM),
                                                                       dtype=np.float32), 0)
    print(f"generated {features.shape} {features.dtype} training features in {time.perf_counter() - start:.0f} s")

    model = models.create("clswgan", device=args.device, progress=True, preset=args.preset, **hyperparameters)
    timings = {}
    start = time.perf_counter()
    model.fit(data)
    timings["fit_seconds"] = time.perf_counter() - start
    unseen, everything = wnids[N_SEEN:], wnids[N_SEEN:] + wnids[:N_SEEN]
    for setting, candidates in (("zsl", unseen), ("gzsl", everything)):
        start = time.perf_counter()
        model.scores(test_features[:1], candidates)  # trains and caches this candidate set's classifier
        timings[f"{setting}_classifier_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        scores = model.scores(test_features, candidates)
        timings[f"{setting}_score_seconds"] = time.perf_counter() - start
        truth = test_wnids - N_SEEN
        timings[f"{setting}_top1_synthetic"] = float(np.mean(scores.argmax(1) == truth))
    total = timings["fit_seconds"] + timings["zsl_classifier_seconds"] + timings["gzsl_classifier_seconds"]
    row = {"training_features": list(features.shape), "dtype": str(features.dtype), "n_unseen": N_UNSEEN,
           "threads": args.threads, "device": args.device, "params": model.get_params(), **timings,
           "total_training_seconds": total, "peak_rss_gb": peak_rss_gb(),
           "note": "2-core machine shared with ~6 other jobs while measured; synthetic features of GOZ's shape"}
    print(f"{'stage':<32} {'seconds':>9}")
    for key in ("fit_seconds", "zsl_classifier_seconds", "gzsl_classifier_seconds", "zsl_score_seconds",
                "gzsl_score_seconds"):
        print(f"{key:<32} {timings[key]:9.1f}")
    print(f"{'total training (fit + 2 classifiers)':<32} {total:9.1f}")
    print(f"peak RSS {row['peak_rss_gb']:.2f} GB; top-1 on the synthetic test: zsl {timings['zsl_top1_synthetic']:.3f}, "
          f"gzsl {timings['gzsl_top1_synthetic']:.3f}")
    output = Path(__file__).parent / "results" / "bench_clswgan.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(row, indent=2) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
