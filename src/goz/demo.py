"""`goz demo`: the whole benchmark on the built-in miniature SYNTHETIC benchmark, in about a minute.

Generates the data (cached in OUT/data), runs every registered model in the zsl and gzsl
settings with reduced training budgets (each model's `demo_hyperparameters`; graph models regress the synthetic
"pretrained" seen classifiers, as the original regressed the ResNet fc layer), then writes the
table and the report in OUT/results. Rerunning reuses the data and the finished (model, setting) pairs.
Models that compare image features with class vectors directly (`joint_embedding`: clip) run on
the synthetic benchmark's CLIP-like store and table pair (one shared embedding space), the others
on its ResNet-like stores and word-vector-like table; each result JSON records which files it used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from goz import models
from goz.bench.report import build_report, build_table
from goz.bench.run import SETTINGS, run_bench
from goz.synthetic import make_benchmark

__all__ = ["run_demo", "DemoResult", "DEMO_SIZES", "QUICK_SIZES", "demo_hyperparameters"]

# 200 seen / 100 unseen classes like a 1/5-scale GOZ, 2048-d features, 300-d class vectors.
DEMO_SIZES = {"n_seen": 200, "n_unseen": 100, "train_per_class": 50, "test_per_class": 20, "seen_test_per_class": 10}
# For the test suite: the same pipeline in seconds (fewer, shorter, less noisy features).
QUICK_SIZES = {"n_seen": 40, "n_unseen": 20, "train_per_class": 30, "test_per_class": 10, "seen_test_per_class": 5,
               "dim": 512, "sample_noise": 2.0, "semantic_noise": 0.4, "class_noise": 0.6}

# The demo's models are small: one thread is as fast on an idle machine, and several times faster
# than two on a busy one (measured: 28 s instead of 250 s for the whole demo on 2 shared cores).
DEMO_THREADS = 1


def demo_hyperparameters(name: str) -> dict:
    """The model's training budget cut for a CPU demo (the benchmark defaults train for minutes to hours at GOZ scale)."""
    return dict(models.model_class(name).demo_hyperparameters)


@dataclass
class DemoResult:
    results_dir: Path
    table: str                      # Markdown, titled "... (SYNTHETIC DATA)"
    report: Path
    results: list[dict]
    hyperparameters: dict[str, dict]


def run_demo(out: str | Path = "goz-demo", quick: bool = False, seed: int = 0, force: bool = False,
             progress: bool = True) -> DemoResult:
    """Runs every registered model on the synthetic benchmark; results and report under `out`/results."""
    out = Path(out)
    benchmark = make_benchmark(out / ("data-quick" if quick else "data"), seed=seed,
                               **(QUICK_SIZES if quick else DEMO_SIZES), progress=progress)
    names = [name for name in models.list_models() if models.model_class(name).in_demo]
    hyperparameters = {name: demo_hyperparameters(name) for name in names}
    results_dir = out / ("results-quick" if quick else "results")
    joint = [name for name in names if models.model_class(name).joint_embedding]
    results = []
    for group, (train, test, semantics) in (
            ([n for n in names if n not in joint], (benchmark.train, benchmark.test, benchmark.semantics)),
            (joint, (benchmark.clip_train, benchmark.clip_test, benchmark.clip_semantics))):
        if group:
            results += run_bench(group, SETTINGS, train, test, semantics, benchmark.seen, benchmark.unseen,
                                 results_dir, per_class=None, seed=seed, hierarchy=benchmark.hierarchy,
                                 classifier_weights=benchmark.classifier_weights, hyperparameters=hyperparameters,
                                 force=force, threads=DEMO_THREADS, progress=progress)
    # The joint-space models ran on the CLIP-like pair: other data, which the table names on each row.
    mixed = bool(joint)
    return DemoResult(results_dir, build_table(results_dir, allow_mixed=mixed),
                      build_report(results_dir, allow_mixed=mixed), results, hyperparameters)
