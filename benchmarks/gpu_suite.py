"""Every CUDA path of goz in one run, within 8 minutes on one GPU; one JSON (issue 16).

Sections, each timed and isolated (a failure is recorded, the others still run):

1. `extract`: WebDataset shards of generated JPEGs (500x375, ImageNet's typical size; a pool of
   distinct images written under distinct keys) through `goz.extract.extract` with a ResNet-50 of
   random ("synthetic") weights saved as a weights file, mixed precision (`--precision fp16`
   autocast), local engine, one decoding worker per core: images/s (target >= 2,000), then the
   same with GPU JPEG decoding (`gpu_decode`).
2. `graph`: gcn6, sgcn and dgp, 3000 epochs each on the 32,324-node published ImageNet graph
   (`goz.wordnet.imagenet_graph`), 1,000 seen classes, synthetic node vectors (300-d) and targets
   (2049-d): fit seconds, seconds per epoch, peak CUDA memory, scoring 10,000 features.
3. `clswgan`: f-CLSWGAN at the paper's network size (4096 hidden units, batch 64, 5 critic steps)
   on 1,000 seen classes x 200 features of 2048-d: fit and the zsl classifier, timed over a
   measured number of generator steps and projected to the paper's 20,000 iterations.
4. `scoring`: `goz bench` (run_bench, streamed) at the `all` shape (20,842 unseen + 1,000 seen
   candidates, 10 test images per class, float16 store): eszsl (the matrix path on the GPU) and
   devise (the model's own scores on the GPU), zsl and gzsl, Hit@1..20, against a bare CUDA matmul.

    PYTHONPATH=src python benchmarks/gpu_suite.py [--device cuda] [--out benchmarks/results/gpu_suite.json]
    PYTHONPATH=src python benchmarks/gpu_suite.py --device cpu --tiny      # the same code, tiny, on a CPU

`--tiny` shrinks every size (a few images, a 115-node graph, 3 epochs, the models' test budgets, a
few hundred classes) so that the tests run the whole script on a CPU in under a minute.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tarfile
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))   # bench_scale: the store generator of the `all` shape

from bench_scale import QUICK_SHAPES, SHAPES, bare_matmul_seconds, make_benchmark

from goz import models
from goz.catalog import imagenet_testset
from goz.models import TrainingData
from goz.semantics import SemanticsTable

FULL = {
    "extract": {"images": 20_480, "classes": 40, "distinct": 256, "size": (500, 375), "per_shard": 1024,
                "batch_size": 256, "precision": "fp16"},
    "graph": {"graph": "imagenet", "epochs": 3000, "test_samples": 10_000},
    "clswgan": {"seen": 1000, "unseen": 500, "per_class": 200, "test_samples": 10_000, "paper_gan_iterations": 20_000,
                "params": {"hidden": 4096, "batch_size": 64, "critic_iterations": 5, "gan_iterations": 2000,
                           "pretrain_batches": 1000, "classifier_batches": 2000, "classifier_batch_size": 512,
                           "synthesized_per_class": 200}},
    "scoring": {"shape": SHAPES["all"], "devise": {"n_batches": 100}},
}
TINY = {
    "extract": {"images": 12, "classes": 3, "distinct": 4, "size": (160, 120), "per_shard": 5, "batch_size": 4,
                "precision": "fp32"},
    "graph": {"graph": "small", "epochs": 3, "test_samples": 50},
    "clswgan": {"seen": 20, "unseen": 10, "per_class": 20, "test_samples": 50, "paper_gan_iterations": 20_000,
                "params": "test_hyperparameters"},
    "scoring": {"shape": QUICK_SHAPES["all"], "devise": {"n_batches": 5, "batch_size": 64}},
}
FEATURE_DIM, VECTOR_DIM = 2048, 300
EXTRACT_TARGET = 2000.0   # images/s


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_cuda_gb(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 1e9 if device.startswith("cuda") else None


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


# -- 1. extraction from WebDataset shards ---------------------------------------------------------------------

def write_shards(folder: Path, images: int, classes: int, distinct: int, size: tuple[int, int],
                 per_shard: int) -> list[str]:
    """`folder/shard-NNNN.tar` with `<wnid>_<id>.jpg` + `.json`; `distinct` generated JPEGs reused under new keys."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pool = []
    for _ in range(distinct):
        coarse = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
        pixels = np.asarray(coarse, dtype=np.int16) + rng.integers(-12, 13, (size[1], size[0], 3))
        buffer = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
        pool.append(buffer.getvalue())
    wnids = [f"n{93_000_000 + c:08d}" for c in range(classes)]
    for shard_start in range(0, images, per_shard):
        with tarfile.open(folder / f"shard-{shard_start // per_shard:04d}.tar", "w") as tar:
            for i in range(shard_start, min(images, shard_start + per_shard)):
                wnid = wnids[i % classes]
                key = f"{wnid}_{i}"
                for name, data in ((f"{key}.jpg", pool[i % distinct]),
                                   (f"{key}.json", json.dumps({"wnid": wnid, "id": i}).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return wnids


def section_extract(sizes: dict, device: str, work: Path) -> dict:
    from torchvision.models import resnet50

    from goz.extract import extract

    shards = work / "shards"
    start = time.perf_counter()
    write_shards(shards, sizes["images"], sizes["classes"], sizes["distinct"], sizes["size"], sizes["per_shard"])
    weights = work / "resnet50_synthetic.pth"
    torch.manual_seed(0)
    torch.save(resnet50().state_dict(), weights)   # random weights: the cost does not depend on them
    prepared = time.perf_counter() - start
    workers = min(16, os.cpu_count() or 1) if device.startswith("cuda") else 0
    runs = {}
    for label, gpu_decode in (("cpu_decode", False), ("gpu_decode", True)):
        if gpu_decode and not device.startswith("cuda"):
            continue
        store = work / f"extract_{label}.h5"
        result = extract(shards, store, weights_file=weights, device=device, precision=sizes["precision"],
                         batch_size=sizes["batch_size"], workers=workers, gpu_decode=gpu_decode, progress=False)
        runs[label] = {"images": result.images, "seconds": round(result.seconds, 2),
                       "images_per_second": round(result.images_per_second, 1), "source": result.source,
                       "classes": result.extracted_classes, "skipped": len(result.skipped)}
        store.unlink(missing_ok=True)
    best = max(run["images_per_second"] for run in runs.values())
    return {"prepare_seconds": round(prepared, 1), "precision": sizes["precision"], "workers": workers,
            "batch_size": sizes["batch_size"], "runs": runs, "best_images_per_second": best,
            "target_images_per_second": EXTRACT_TARGET, "target_met": best >= EXTRACT_TARGET}


# -- 2. graph models on the published ImageNet graph ---------------------------------------------------------

def section_graph(sizes: dict, device: str, work: Path) -> dict:
    from goz.wordnet.imagenet_graph import imagenet_graph

    seen_all = imagenet_testset("train")
    if sizes["graph"] == "imagenet":
        graph, seen = imagenet_graph(), seen_all
    else:
        from goz import wordnet
        seen = seen_all[:20]
        graph = wordnet.load().induced_graph(seen + imagenet_testset("2-hops")[:10])
    rng = np.random.default_rng(0)
    semantics = SemanticsTable(list(graph.wnids), rng.normal(size=(len(graph), VECTOR_DIM)).astype(np.float32))
    targets = rng.normal(size=(len(seen), FEATURE_DIM + 1)).astype(np.float32)
    data = TrainingData(np.zeros((0, FEATURE_DIM), np.float32), np.zeros(0, np.int64), seen, semantics,
                        graph=graph, classifier_weights=targets)
    features = rng.standard_normal((sizes["test_samples"], FEATURE_DIM), dtype=np.float32)
    candidates = [w for w in graph.wnids if w not in set(seen)][:1000]
    out = {"nodes": len(graph), "seen": len(seen), "epochs": sizes["epochs"], "models": {}}
    for name in ("gcn6", "sgcn", "dgp"):
        _reset_peak(device)
        start = time.perf_counter()
        model = models.create(name, epochs=sizes["epochs"], device=device, seed=0, progress=False).fit(data)
        _synchronize(device)
        fit = time.perf_counter() - start
        seconds = [record["seconds"] for record in model.history_]
        start = time.perf_counter()
        scores = model.scores(features, candidates)
        score = time.perf_counter() - start
        out["models"][name] = {
            "fit_seconds": round(fit, 2), "epochs_run": len(seconds),
            "seconds_per_epoch": round(seconds[-1] / len(seconds), 4) if seconds else None,
            "final_loss": float(model.history_[-1]["loss"]), "peak_cuda_gb": _peak_cuda_gb(device),
            "score_seconds": round(score, 3), "scores_finite": bool(np.isfinite(scores).all())}
    return out


# -- 3. f-CLSWGAN at the paper's size ------------------------------------------------------------------------

def section_clswgan(sizes: dict, device: str, work: Path) -> dict:
    params = sizes["params"]
    if params == "test_hyperparameters":
        params = dict(models.model_class("clswgan").test_hyperparameters)
    rng = np.random.default_rng(0)
    n_seen, n_unseen, per_class = sizes["seen"], sizes["unseen"], sizes["per_class"]
    wnids = [f"n{94_000_000 + i:08d}" for i in range(n_seen + n_unseen)]
    vectors = rng.standard_normal((len(wnids), VECTOR_DIM), dtype=np.float32)
    projection = rng.standard_normal((VECTOR_DIM, FEATURE_DIM), dtype=np.float32) / np.sqrt(VECTOR_DIM)
    means = vectors @ projection - 0.5
    labels = np.repeat(np.arange(n_seen), per_class)
    features = np.empty((len(labels), FEATURE_DIM), dtype=np.float16)
    for start in range(0, len(labels), 50_000):   # generated in slices: no float32 copy of the whole set
        rows = labels[start:start + 50_000]
        noise = rng.standard_normal((len(rows), FEATURE_DIM), dtype=np.float32)
        features[start:start + len(rows)] = np.maximum(means[rows] + noise, 0)
    data = TrainingData(features, labels, wnids[:n_seen], SemanticsTable(wnids, vectors))
    unseen = wnids[n_seen:]
    test_labels = rng.integers(0, n_unseen, sizes["test_samples"])
    test = np.maximum(means[n_seen + test_labels] + rng.standard_normal((len(test_labels), FEATURE_DIM),
                                                                        dtype=np.float32), 0)
    _reset_peak(device)
    start = time.perf_counter()
    model = models.create("clswgan", device=device, seed=0, progress=False, **params).fit(data)
    _synchronize(device)
    fit = time.perf_counter() - start
    start = time.perf_counter()
    scores = model.scores(test, unseen)           # trains the zsl classifier on synthesized features, then scores
    zsl = time.perf_counter() - start
    top1 = float(np.mean(scores.argmax(axis=1) == test_labels))
    iterations = params.get("gan_iterations", 0)
    return {"params": params, "training_features": list(features.shape), "fit_seconds": round(fit, 2),
            "zsl_classifier_and_score_seconds": round(zsl, 2), "zsl_top1_synthetic": top1,
            "seconds_per_gan_iteration": round(fit / iterations, 5) if iterations else None,
            "projected_paper_fit_seconds": round(fit / iterations * sizes["paper_gan_iterations"], 1)
            if iterations else None, "peak_cuda_gb": _peak_cuda_gb(device)}


# -- 4. streamed scoring at the `all` shape ------------------------------------------------------------------

def section_scoring(sizes: dict, device: str, work: Path) -> dict:
    from goz.bench.run import run_bench
    from goz.store import FeatureStore

    n_unseen, n_seen, per_class = sizes["shape"]
    start = time.perf_counter()
    paths = make_benchmark(work / "all", n_unseen, n_seen, per_class, ["float16"])
    with FeatureStore(paths["test_float16"]) as store:
        store.content_fingerprint()
    prepared = time.perf_counter() - start
    _reset_peak(device)
    results = run_bench(["eszsl", "devise"], ["zsl", "gzsl"], paths["train"], paths["test_float16"],
                        paths["semantics"], paths["seen"], paths["unseen"], work / "results", per_class=10,
                        device=device, ks=[1, 2, 5, 10, 20], hyperparameters={"devise": sizes["devise"]},
                        force=True, progress=False)
    runs = {}
    for result in results:
        counts, run = result["classes"], result["run"]
        bare = bare_matmul_seconds(counts["n_test_samples"], run["score_chunk_rows"], counts["n_candidates"], device)
        runs[f"{result['model']}_{result['setting']}"] = {
            "candidates": counts["n_candidates"], "samples": counts["n_test_samples"], "score_path": run["score_path"],
            "score_seconds": round(run["score_seconds"], 3),
            "samples_per_second": round(counts["n_test_samples"] / max(run["score_seconds"], 1e-9), 1),
            "bare_matmul_seconds": round(bare, 4), "matmul_ratio": round(bare / max(run["score_seconds"], 1e-9), 3),
            "top1": result["metrics"]["top1"], "top20": result["metrics"]["top20"]}
    return {"shape": {"unseen": n_unseen, "seen": n_seen, "per_class": per_class, "dtype": "float16"},
            "prepare_seconds": round(prepared, 1), "runs": runs, "peak_cuda_gb": _peak_cuda_gb(device)}


SECTIONS = {"extract": section_extract, "graph": section_graph, "clswgan": section_clswgan, "scoring": section_scoring}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (a CPU, the tests)")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "gpu_suite.json")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available to torch {torch.__version__}")
    sizes = TINY if args.tiny else FULL
    scratch = tempfile.TemporaryDirectory(prefix="goz-gpu-suite-") if args.work is None else None
    work = Path(scratch.name) if scratch else args.work
    work.mkdir(parents=True, exist_ok=True)
    os.environ["GOZ_HOME"] = str(work / "home")   # store digests cached here, not in the user's home
    report = {"device": args.device, "tiny": args.tiny, "torch": torch.__version__, "python": platform.python_version(),
              "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
              "cpus": os.cpu_count(), "sections": {}}
    started = time.perf_counter()
    try:
        for name in [s for s in args.sections.split(",") if s]:
            section_start = time.perf_counter()
            try:
                outcome = {"ok": True} | SECTIONS[name](sizes[name], args.device, work / name)
            except Exception as error:  # noqa: BLE001 (one broken path must not hide the others' figures)
                outcome = {"ok": False, "error": f"{type(error).__name__}: {error}",
                           "traceback": traceback.format_exc()[-3000:]}
            outcome["seconds"] = round(time.perf_counter() - section_start, 1)
            report["sections"][name] = outcome
            print(f"{name:8s} {'ok' if outcome['ok'] else 'FAILED':6s} {outcome['seconds']:7.1f} s"
                  + ("" if outcome["ok"] else f"  {outcome['error']}"), flush=True)
    finally:
        if scratch:
            scratch.cleanup()
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    sections = report["sections"]
    if sections.get("extract", {}).get("ok"):
        print(f"extract: {sections['extract']['best_images_per_second']:.0f} images/s "
              f"(target {EXTRACT_TARGET:.0f}; {sections['extract']['precision']})")
    for name, figures in sections.get("graph", {}).get("models", {}).items():
        print(f"graph {name}: {figures['epochs_run']} epochs in {figures['fit_seconds']:.1f} s")
    if sections.get("clswgan", {}).get("ok"):
        print(f"clswgan: fit {sections['clswgan']['fit_seconds']:.1f} s, projected to the paper's iterations "
              f"{sections['clswgan']['projected_paper_fit_seconds']} s")
    for name, figures in sections.get("scoring", {}).get("runs", {}).items():
        print(f"scoring {name}: {figures['samples']} x {figures['candidates']} in {figures['score_seconds']:.2f} s "
              f"({figures['samples_per_second']:.0f} samples/s, bare matmul ratio {figures['matmul_ratio']:.2f})")
    print(f"total {report['total_seconds']:.0f} s (target: under 480 s on one GPU)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"-> {args.out}")
    return report


if __name__ == "__main__":
    report = main()
    sys.exit(0 if all(section["ok"] for section in report["sections"].values()) else 1)
