"""`goz bench` at the size of the ImageNet-21K protocol: peak memory and time, end to end (issue 16).

Synthetic stores of the protocol's shape (2048-d; test stores in float32 and float16) and a full
`goz bench --models eszsl --topk 1,2,5,10,20` run in a child process per (shape, dtype, setting),
whose peak RSS (`wait4`) and wall time are measured:

- `3-hops` shape: 7,860 unseen + 1,000 seen classes, 50 test images per class;
- `all` shape: 20,842 unseen + 1,000 seen classes, 10 test images per class;
  targets: peak RSS at most 3 GB in each setting;
- scaling: at the 3-hops class count, 10, 20 and 40 images per class (x1, x2, x4, zsl): peak RSS
  flat within 20 %, scoring time linear in the samples (per-sample time within 25 %);
- speed: the run's scoring time (reading the test store, scoring, ranking) against a bare
  `torch.matmul` of the same shapes (rows per chunk x 2048) @ (2048 x candidates), timed here, in
  this process, with the same threads, right after the child (a sample of chunks, scaled to all
  of them): target at least 0.8. Both in wall seconds and in CPU seconds of all threads (on a
  machine shared with other jobs the wall ratio mostly measures the neighbours).

The stores are written class by class (the generator holds one class at a time) under `--work`
(default: the system's temporary folder; about 11 GB at full size) and kept for the next run
(`--fresh` rewrites them). Writes `benchmarks/results/bench_scale.json`
(`--quick`: tiny sizes, `bench_scale_quick.json`; the tests run it) and prints a table.

    PYTHONPATH=src python benchmarks/bench_scale.py [--quick] [--threads N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
SHAPES = {"3-hops": (7860, 1000, 50), "all": (20842, 1000, 10)}   # unseen, seen, test images per class
QUICK_SHAPES = {"3-hops": (120, 30, 4), "all": (300, 30, 2)}
SCALING = (7860, 1000, (10, 20, 40))                              # unseen, seen, images per class x1, x2, x4
QUICK_SCALING = (120, 30, (2, 4, 8))
DIM, SEMANTIC_DIM, LATENT_DIM, TRAIN_PER_CLASS = 2048, 300, 64, 10
TOPK = "1,2,5,10,20"
RSS_TARGET_GB, RSS_FLAT, TIME_LINEAR, MATMUL_RATIO = 3.0, 0.20, 0.25, 0.8


# -- synthetic stores of the protocol's shape, written class by class -----------------------------------------

class _Classes:
    """Class latents -> visual prototypes and class vectors (ESZSL learns something, so ranks are realistic)."""

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        self.visual = rng.normal(scale=1 / np.sqrt(LATENT_DIM), size=(LATENT_DIM, DIM)).astype(np.float32)
        self.semantic = rng.normal(scale=1 / np.sqrt(LATENT_DIM), size=(LATENT_DIM, SEMANTIC_DIM)).astype(np.float32)
        self.seed = seed

    def latent(self, wnid: str) -> np.ndarray:
        return np.random.default_rng([self.seed, int(wnid[1:])]).normal(size=LATENT_DIM).astype(np.float32)

    def samples(self, wnid: str, n: int, stream: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, int(wnid[1:]), stream])
        prototype = self.latent(wnid) @ self.visual
        noise = rng.standard_normal((n, DIM), dtype=np.float32)
        return np.maximum(prototype + 0.8 * noise, 0.0)

    def vector(self, wnid: str) -> np.ndarray:
        rng = np.random.default_rng([self.seed, int(wnid[1:]), 99])
        return self.latent(wnid) @ self.semantic + 0.3 * rng.standard_normal(SEMANTIC_DIM, dtype=np.float32)


def _wnids(n_unseen: int, n_seen: int) -> tuple[list[str], list[str]]:
    return [f"n{91_000_000 + i:08d}" for i in range(n_unseen)], [f"n{92_000_000 + i:08d}" for i in range(n_seen)]


def _write_store(path: Path, classes: _Classes, wnids: list[str], per_class: int, dtype: str, stream: int) -> None:
    """The GOZ layout (images/<wnid>, idx/<wnid>), one class in memory at a time; atomic (a .tmp renamed)."""
    temporary = path.with_name(path.name + ".tmp")
    with h5py.File(temporary, "w") as handle:
        handle.attrs["data"] = "synthetic"
        images, ids = handle.create_group("images"), handle.create_group("idx")
        for wnid in wnids:
            images.create_dataset(wnid, data=classes.samples(wnid, per_class, stream).astype(dtype))
            ids.create_dataset(wnid, data=np.arange(per_class, dtype=np.int64))
    temporary.replace(path)


def make_benchmark(folder: Path, n_unseen: int, n_seen: int, per_class: int, dtypes, fresh: bool = False) -> dict:
    """Train store, test store per dtype, semantics table and splits under `folder` (reused when complete)."""
    from goz.semantics import SemanticsTable

    folder.mkdir(parents=True, exist_ok=True)
    unseen, seen = _wnids(n_unseen, n_seen)
    classes = _Classes(seed=0)
    paths = {"train": folder / "train.h5", "semantics": folder / "semantics.h5",
             "seen": folder / "seen.txt", "unseen": folder / "unseen.txt"}
    paths |= {f"test_{dtype}": folder / f"test_{dtype}.h5" for dtype in dtypes}
    if fresh or not paths["train"].exists():
        _write_store(paths["train"], classes, seen, TRAIN_PER_CLASS, "float32", stream=1)
    for dtype in dtypes:
        if fresh or not paths[f"test_{dtype}"].exists():
            _write_store(paths[f"test_{dtype}"], classes, unseen + seen, per_class, dtype, stream=2)
    if fresh or not paths["semantics"].exists():
        wnids = unseen + seen
        SemanticsTable(wnids, np.stack([classes.vector(w) for w in wnids])).save(paths["semantics"])
    paths["seen"].write_text("\n".join(seen) + "\n")
    paths["unseen"].write_text("\n".join(unseen) + "\n")
    return paths


# -- measurements ---------------------------------------------------------------------------------------------

def run_child(command: list[str], env: dict) -> tuple[float, float, int, str]:
    """(wall seconds, peak RSS GB, exit code, stderr tail) of one child process."""
    start = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        child = subprocess.Popen(command, cwd=REPO, env=env, stdout=devnull, stderr=subprocess.PIPE)
        stderr = child.stderr.read().decode(errors="replace")
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss * 1024 / 1e9, child.returncode, stderr[-2000:]


def bare_matmul_seconds(n_rows: int, chunk_rows: int, n_candidates: int, device: str, max_chunks: int = 8,
                        cpu: bool = False) -> float:
    """A bare `torch.matmul` of (chunk_rows x 2048) @ (2048 x candidates) into one output block, timed on a
    sample of up to `max_chunks` chunks and scaled to `n_rows` rows (`cpu`: CPU seconds of all threads)."""
    target = torch.device(device)
    weights = torch.randn(DIM, n_candidates, device=target)
    rows = torch.randn(chunk_rows, DIM, device=target)
    out = torch.empty(chunk_rows, n_candidates, device=target)
    torch.matmul(rows, weights, out=out)   # warm-up
    chunks = max(1, min(max_chunks, -(-n_rows // chunk_rows)))
    if target.type == "cuda":
        torch.cuda.synchronize()
    clock = time.process_time if cpu else time.perf_counter
    start = clock()
    for _ in range(chunks):
        torch.matmul(rows, weights, out=out)
    if target.type == "cuda":
        torch.cuda.synchronize()
    return (clock() - start) / (chunks * chunk_rows) * n_rows


def bench_once(paths: dict, dtype: str, setting: str, out: Path, args, env: dict) -> dict:
    command = [sys.executable, "-m", "goz", "bench", "--models", "eszsl", "--settings", setting, "--topk", TOPK,
               "--train", str(paths["train"]), "--test", str(paths[f"test_{dtype}"]),
               "--semantics", str(paths["semantics"]), "--seen", str(paths["seen"]), "--unseen", str(paths["unseen"]),
               "--per-class", str(TRAIN_PER_CLASS), "--device", args.device, "--quiet", "--force", "--out", str(out)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    wall, rss_gb, code, stderr = run_child(command, env)
    if code != 0:
        raise SystemExit(f"goz bench failed ({code}): {' '.join(command)}\n{stderr}")
    result = json.loads((out / f"eszsl_{setting}.json").read_text())
    counts, run = result["classes"], result["run"]
    bare = bare_matmul_seconds(counts["n_test_samples"], run["score_chunk_rows"], counts["n_candidates"], args.device)
    bare_cpu = bare_matmul_seconds(counts["n_test_samples"], run["score_chunk_rows"], counts["n_candidates"],
                                   args.device, cpu=True)
    return {"dtype": dtype, "setting": setting, "candidates": counts["n_candidates"],
            "samples": counts["n_test_samples"], "chunk_rows": run["score_chunk_rows"], "score_path": run["score_path"],
            "wall_s": round(wall, 2), "peak_rss_gb": round(rss_gb, 3), "score_s": round(run["score_seconds"], 3),
            "bare_matmul_s": round(bare, 3), "matmul_ratio": round(bare / max(run["score_seconds"], 1e-9), 3),
            "score_cpu_s": round(run["score_cpu_seconds"], 3), "bare_matmul_cpu_s": round(bare_cpu, 3),
            "matmul_cpu_ratio": round(bare_cpu / max(run["score_cpu_seconds"], 1e-9), 3),
            "top1": result["metrics"]["top1"], "top20": result["metrics"]["top20"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds): checks the script, not the targets")
    parser.add_argument("--work", type=Path, help="where the stores go, kept for the next run (full size: about "
                                                  "11 GB; default: TMPDIR/goz-bench-scale[-quick])")
    parser.add_argument("--out", type=Path, help="the JSON written (default: benchmarks/results/bench_scale[_quick].json)")
    parser.add_argument("--threads", type=int, help="torch threads, in the children and for the bare matmul")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shapes", default="3-hops,all")
    parser.add_argument("--dtypes", default="float32,float16")
    parser.add_argument("--settings", default="zsl,gzsl")
    parser.add_argument("--no-scaling", action="store_true", help="skip the x1, x2, x4 series")
    parser.add_argument("--fresh", action="store_true", help="write the stores again")
    args = parser.parse_args()
    suffix = "_quick" if args.quick else ""
    work = args.work or Path(tempfile.gettempdir()) / f"goz-bench-scale{suffix.replace('_', '-')}"
    output = args.out or REPO / "benchmarks" / "results" / f"bench_scale{suffix}.json"
    shapes, (scale_unseen, scale_seen, scale_counts) = (QUICK_SHAPES, QUICK_SCALING) if args.quick else (SHAPES, SCALING)
    if args.threads:
        torch.set_num_threads(args.threads)
    env = dict(os.environ, GOZ_HOME=str(work / "home"), PYTHONPATH=str(REPO / "src"))
    os.environ["GOZ_HOME"] = env["GOZ_HOME"]   # the parent hashes the stores once; the children find the digests
    from goz.store import FeatureStore

    def prepare(name: str, n_unseen: int, n_seen: int, per_class: int, dtypes: list[str]) -> dict:
        start = time.perf_counter()
        paths = make_benchmark(work / name, n_unseen, n_seen, per_class, dtypes, fresh=args.fresh)
        for key in ["train"] + [f"test_{d}" for d in dtypes]:
            with FeatureStore(paths[key]) as store:
                store.content_fingerprint()
        print(f"{name}: stores ready in {time.perf_counter() - start:.0f} s", flush=True)
        return paths

    dtypes, settings = args.dtypes.split(","), args.settings.split(",")
    report: dict = {"quick": args.quick, "device": args.device, "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "shapes": {}, "scaling": None,
                    "targets": {"peak_rss_gb": RSS_TARGET_GB, "rss_flat": RSS_FLAT, "time_linear": TIME_LINEAR,
                                "matmul_ratio": MATMUL_RATIO}}
    rows = []
    for shape in args.shapes.split(","):
        n_unseen, n_seen, per_class = shapes[shape]
        paths = prepare(shape, n_unseen, n_seen, per_class, dtypes)
        report["shapes"][shape] = {"unseen": n_unseen, "seen": n_seen, "per_class": per_class, "runs": []}
        for dtype in dtypes:
            for setting in settings:
                run = bench_once(paths, dtype, setting, work / shape / f"out_{dtype}", args, env)
                run["rss_ok"] = run["peak_rss_gb"] <= RSS_TARGET_GB
                run["matmul_ok"] = run["matmul_ratio"] >= MATMUL_RATIO
                run["matmul_cpu_ok"] = run["matmul_cpu_ratio"] >= MATMUL_RATIO
                report["shapes"][shape]["runs"].append(run)
                rows.append((shape, run))
                print(f"  {shape} {dtype} {setting}: {run['peak_rss_gb']:.2f} GB, {run['score_s']:.1f} s scoring, "
                      f"matmul ratio {run['matmul_ratio']:.2f}", flush=True)
    if not args.no_scaling:
        series = []
        for count in scale_counts:
            paths = prepare(f"scaling-{count}", scale_unseen, scale_seen, count, ["float16"])
            run = bench_once(paths, "float16", "zsl", work / f"scaling-{count}" / "out", args, env)
            series.append(run | {"per_class": count})
            rows.append((f"x{count // scale_counts[0]} ({count}/class)", run))
        rss = [r["peak_rss_gb"] for r in series]
        per_sample = [r["score_s"] / r["samples"] for r in series]
        report["scaling"] = {
            "unseen": scale_unseen, "per_class": list(scale_counts), "runs": series,
            "rss_spread": round(max(rss) / min(rss) - 1, 3), "per_sample_time_spread": round(
                max(per_sample) / min(per_sample) - 1, 3)}
        report["scaling"]["rss_flat_ok"] = report["scaling"]["rss_spread"] <= RSS_FLAT
        report["scaling"]["time_linear_ok"] = report["scaling"]["per_sample_time_spread"] <= TIME_LINEAR

    print(f"\n{'case':<22} {'dtype':<8} {'setting':<7} {'candidates':>10} {'samples':>9} {'peak RSS GB':>11} "
          f"{'wall s':>8} {'score s':>8} {'matmul s':>9} {'ratio':>6} {'CPU ratio':>9}")
    for case, run in rows:
        print(f"{case:<22} {run['dtype']:<8} {run['setting']:<7} {run['candidates']:>10} {run['samples']:>9} "
              f"{run['peak_rss_gb']:>11.2f} {run['wall_s']:>8.1f} {run['score_s']:>8.1f} {run['bare_matmul_s']:>9.1f} "
              f"{run['matmul_ratio']:>6.2f} {run['matmul_cpu_ratio']:>9.2f}")
    print("ratio: bare matmul wall seconds / scoring wall seconds; CPU ratio: the same in CPU seconds of all threads "
          "(what an idle machine gives when other jobs share this one)")
    if report["scaling"]:
        scaling = report["scaling"]
        print(f"scaling x1/x2/x4: peak RSS spread {100 * scaling['rss_spread']:.0f} % (target <= {100 * RSS_FLAT:.0f} %), "
              f"per-sample time spread {100 * scaling['per_sample_time_spread']:.0f} % "
              f"(target <= {100 * TIME_LINEAR:.0f} %)")
    if args.quick:
        print("(--quick: tiny sizes; the targets apply to the full run)")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=1))
    print(f"-> {output}")


if __name__ == "__main__":
    main()
