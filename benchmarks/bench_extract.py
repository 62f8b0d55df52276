"""End-to-end `goz extract` throughput against the bare model forward, side by side in one run.

    PYTHONPATH=src python benchmarks/bench_extract.py                       # CPU, this machine
    PYTHONPATH=src python benchmarks/bench_extract.py --device cuda --precision fp16 \\
        --batch-size 256 --workers 8 --images 4096 [--gpu-decode]         # a CUDA machine

It generates a tree of JPEGs of realistic size (default 500x375, smooth content plus noise,
~100 KB like ImageNet's), then for each repeat times (a) the bare forward of the backbone on
ready tensors (same batch size, device, threads, precision) and (b) the whole `extract()` call
(scan, weights loading, decoding in workers, forward, commits, merge) for each worker count.
efficiency = e2e images/s / bare forward images/s; on a shared machine, where wall time is noisy,
CPU efficiency (bare CPU seconds per image / e2e CPU seconds per image, workers included) says
the same thing independent of the other processes. It also reports how far fp16/bf16 autocast
features are from fp32 ones (cosine similarity, on the generated images). Without `--weights-file`
the weights are random (no download here): timings do not depend on them, deviations may.
Prints a table and writes benchmarks/results/bench_extract.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from goz.extract import extract, load_backbone
from goz.extract.dataset import load_rgb

RESULTS = Path(__file__).resolve().parent / "results" / "bench_extract.json"


def make_images(root: Path, n: int, size: tuple[int, int], classes: int = 4, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        wnid = f"n{i % classes + 1:08d}"
        (root / wnid).mkdir(parents=True, exist_ok=True)
        coarse = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
        pixels = np.asarray(coarse, dtype=np.int16) + rng.integers(-12, 13, (size[1], size[0], 3))
        path = root / wnid / f"{wnid}_{i}.jpg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the DataLoader workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bare_forward(backbone, n: int, batch_size: int) -> tuple[float, float]:
    """(images/s, CPU seconds/image) of the forward alone on ready (pinned on CUDA) tensors, after a warm-up."""
    batch = torch.randint(0, 256, (batch_size, 3, 224, 224), dtype=torch.uint8)
    if backbone.device.type == "cuda":
        batch = batch.pin_memory()
    backbone.features(batch)
    done, started, cpu = 0, time.perf_counter(), cpu_seconds()
    while done < n:
        backbone.features(batch)
        done += batch_size
    return done / (time.perf_counter() - started), (cpu_seconds() - cpu) / done


def precision_deviation(args, weights_file: Path, paths: list[Path]) -> dict[str, dict[str, float]]:
    """Cosine similarity of fp16/bf16 autocast features to fp32 features of the same images."""
    reference = load_backbone(weights_file=weights_file, device=args.device, precision="fp32")
    pixels = torch.stack([reference.transform(load_rgb(p)) for p in paths[: args.deviation_images]])
    fp32 = reference.features(pixels)
    deviations = {}
    for precision in (["bf16"] if args.device == "cpu" else ["fp16", "bf16"]):
        other = load_backbone(weights_file=weights_file, device=args.device, precision=precision).features(pixels)
        cosine = (fp32 * other).sum(1) / (np.linalg.norm(fp32, axis=1) * np.linalg.norm(other, axis=1))
        deviations[precision] = {"cosine_min": float(cosine.min()), "cosine_mean": float(cosine.mean()),
                                 "max_abs_diff": float(np.abs(fp32 - other).max()),
                                 "images": len(paths[: args.deviation_images])}
    return deviations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--size", default="500x375", help="WIDTHxHEIGHT of the generated JPEGs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", default="0,1,2", help="comma-separated worker counts to compare")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--gpu-decode", action="store_true")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--deviation-images", type=int, default=16)
    parser.add_argument("--weights-file", type=Path, help="real ResNet-50 weights (default: random weights)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height = map(int, args.size.split("x"))
    workers = [int(w) for w in args.workers.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench_extract_") as scratch:
        scratch = Path(scratch)
        paths = make_images(scratch / "images", args.images, (width, height))
        weights_file = args.weights_file
        if weights_file is None:
            weights_file = scratch / "resnet50_random.pth"
            torch.manual_seed(0)
            from torchvision.models import resnet50
            torch.save(resnet50().state_dict(), weights_file)
        backbone = load_backbone(weights_file=weights_file, device=args.device, precision=args.precision)
        bare, bare_cpu, e2e, e2e_cpu = [], [], {w: [] for w in workers}, {w: [] for w in workers}
        for repeat in range(args.repeats):
            rate, cpu_per_image = bare_forward(backbone, args.images, args.batch_size)
            bare.append(rate)
            bare_cpu.append(cpu_per_image)
            for w in workers:
                store = scratch / f"store_{repeat}_{w}.h5"
                cpu = cpu_seconds()
                result = extract(scratch / "images", store, weights_file=weights_file, device=args.device,
                                 precision=args.precision, batch_size=args.batch_size, workers=w,
                                 threads=args.threads, gpu_decode=args.gpu_decode, progress=False)
                e2e[w].append(result.images_per_second)
                e2e_cpu[w].append((cpu_seconds() - cpu) / result.images)
            print(f"repeat {repeat + 1}/{args.repeats}: bare {bare[-1]:.2f} img/s, "
                  + ", ".join(f"workers={w} {e2e[w][-1]:.2f} img/s" for w in workers), flush=True)
        deviation = precision_deviation(args, weights_file, paths)

    bare_median = statistics.median(bare)
    bare_cpu_median = statistics.median(bare_cpu)
    rows = [{"workers": w, "e2e_images_per_s": statistics.median(e2e[w]), "e2e_runs": e2e[w],
             "efficiency": statistics.median(e2e[w]) / bare_median,
             "cpu_seconds_per_image": statistics.median(e2e_cpu[w]),
             "cpu_efficiency": bare_cpu_median / statistics.median(e2e_cpu[w])} for w in workers]
    report = {
        "benchmark": "bench_extract", "device": args.device,
        "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu_name(),
        "cpu_count": os.cpu_count(), "load_average_at_end": os.getloadavg(), "threads": args.threads,
        "precision": args.precision, "batch_size": args.batch_size, "images": args.images, "image_size": args.size,
        "gpu_decode": args.gpu_decode, "repeats": args.repeats,
        "weights": "random" if args.weights_file is None else str(args.weights_file),
        "bare_forward_images_per_s": bare_median, "bare_forward_runs": bare,
        "bare_forward_cpu_seconds_per_image": bare_cpu_median, "e2e": rows,
        "precision_deviation_vs_fp32": deviation,
        "versions": {"torch": str(torch.__version__), "python": platform.python_version()},
    }
    print(f"\ndevice {args.device} ({report['device_name']}), {args.threads} threads, precision {args.precision}, "
          f"batch {args.batch_size}, {args.images} JPEGs {args.size}; median of {args.repeats} runs")
    print(f"{'pipeline':<30}{'images/s':>10}{'efficiency':>12}{'CPU s/image':>13}{'CPU efficiency':>16}")
    print(f"{'bare forward (ready tensors)':<30}{bare_median:>10.2f}{1.0:>12.2f}{bare_cpu_median:>13.3f}{1.0:>16.2f}")
    for row in rows:
        print(f"{'goz extract, workers=' + str(row['workers']):<30}{row['e2e_images_per_s']:>10.2f}"
              f"{row['efficiency']:>12.2f}{row['cpu_seconds_per_image']:>13.3f}{row['cpu_efficiency']:>16.2f}")
    for precision, values in deviation.items():
        print(f"{precision} autocast vs fp32 features: cosine min {values['cosine_min']:.6f}, "
              f"mean {values['cosine_mean']:.6f} ({values['images']} images, {report['weights']} weights)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
