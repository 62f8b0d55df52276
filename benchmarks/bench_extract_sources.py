"""`goz extract` throughput from each image source against the bare forward, side by side in one run.

    PYTHONPATH=src python benchmarks/bench_extract_sources.py            # CPU, 2 threads, ResNet-50

The same generated JPEGs (500x375, ~100 KB like ImageNet's) are laid out as a folder tree, as
per-synset tars (`<wnid>.tar`, ImageNet-21K), as a tar of tars (ILSVRC-2012 train) and as WebDataset
shards (images of all classes shuffled across shards, `__key__` = `<wnid>_<id>`, `jpg` + `json`).
Each repeat times the bare forward of ResNet-50 on ready uint8 tensors (same batch size, threads)
and the whole `extract()` call from each source (scan, weights loading, reading, decoding,
forward, commits, merge), in turns so that the machine's load hits all alike. efficiency = e2e
images/s / bare forward images/s (target >= 0.9 from every source); CPU efficiency (bare CPU
seconds per image / e2e CPU seconds per image) says the same independent of other processes on a
shared machine. Weights are random (no download here): timings do not depend on them. The stores
of every source are checked equal to the folder tree's. Prints a table and writes
benchmarks/results/bench_extract_sources.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

from bench_extract import bare_forward, cpu_name, cpu_seconds, make_images
from goz.extract import extract, load_backbone
from goz.store import FeatureStore

RESULTS = Path(__file__).resolve().parent / "results" / "bench_extract_sources.json"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def layouts(tree: Path, root: Path, per_shard: int) -> dict[str, Path]:
    """The folder tree's images as per-synset tars, a tar of tars and WebDataset shards."""
    tars, shards = root / "synset_tars", root / "shards"
    tars.mkdir()
    shards.mkdir()
    for folder in sorted(p for p in tree.iterdir() if p.is_dir()):
        with tarfile.open(tars / f"{folder.name}.tar", "w") as tar:
            for file in sorted(folder.iterdir()):
                _add(tar, file.name, file.read_bytes())
    with tarfile.open(root / "train.tar", "w") as outer:
        for file in sorted(tars.iterdir()):
            _add(outer, file.name, file.read_bytes())
    files = sorted(tree.glob("n*/*.jpg"))
    order = np.random.default_rng(0).permutation(len(files))  # classes spread over every shard
    for start in range(0, len(files), per_shard):
        with tarfile.open(shards / f"shard-{start // per_shard:04d}.tar", "w") as tar:
            for i in order[start:start + per_shard]:
                key = files[i].stem
                _add(tar, f"{key}.jpg", files[i].read_bytes())
                _add(tar, f"{key}.json", json.dumps({"wnid": files[i].parent.name,
                                                     "id": int(key.split("_")[1])}).encode())
    return {"folder tree": tree, "per-synset tars": tars, "tar of tars": root / "train.tar",
            "webdataset shards": shards}


def same_store(a: Path, b: Path) -> bool:
    with FeatureStore(a) as x, FeatureStore(b) as y:
        return x.classes == y.classes and all(
            np.array_equal(x.ids(w), y.ids(w)) and np.array_equal(x.features(w), y.features(w)) for w in x.classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--size", default="500x375")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--per-shard", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height = map(int, args.size.split("x"))

    with tempfile.TemporaryDirectory(prefix="bench_extract_sources_") as scratch:
        scratch = Path(scratch)
        make_images(scratch / "tree", args.images, (width, height), classes=args.classes)
        sources = layouts(scratch / "tree", scratch, args.per_shard)
        weights_file = scratch / "resnet50_random.pth"
        torch.manual_seed(0)
        from torchvision.models import resnet50
        torch.save(resnet50().state_dict(), weights_file)
        backbone = load_backbone(weights_file=weights_file)
        bare, bare_cpu = [], []
        e2e = {name: [] for name in sources}
        e2e_cpu = {name: [] for name in sources}
        equal = {}
        for repeat in range(args.repeats):
            rate, cpu_per_image = bare_forward(backbone, args.images, args.batch_size)
            bare.append(rate)
            bare_cpu.append(cpu_per_image)
            for number, (name, location) in enumerate(sources.items()):
                store = scratch / f"store_{repeat}_{number}.h5"
                cpu = cpu_seconds()
                result = extract(location, store, weights_file=weights_file, batch_size=args.batch_size,
                                 workers=0, threads=args.threads, progress=False)
                assert result.images == args.images and not result.skipped, (name, result.skipped)
                e2e[name].append(result.images_per_second)
                e2e_cpu[name].append((cpu_seconds() - cpu) / result.images)
                equal[name] = same_store(store, scratch / f"store_{repeat}_0.h5")
            print(f"repeat {repeat + 1}/{args.repeats}: bare {bare[-1]:.2f} img/s, "
                  + ", ".join(f"{name} {e2e[name][-1]:.2f}" for name in sources), flush=True)
        archive_mb = {name: sum(p.stat().st_size for p in ([loc] if loc.is_file() else loc.rglob("*"))
                                if p.is_file()) / 1e6 for name, loc in sources.items()}

    bare_median, bare_cpu_median = statistics.median(bare), statistics.median(bare_cpu)
    rows = [{"source": name, "e2e_images_per_s": statistics.median(e2e[name]), "e2e_runs": e2e[name],
             "efficiency": statistics.median(e2e[name]) / bare_median,
             "cpu_seconds_per_image": statistics.median(e2e_cpu[name]),
             "cpu_efficiency": bare_cpu_median / statistics.median(e2e_cpu[name]),
             "store_equal_to_folder_tree": equal[name], "megabytes": round(archive_mb[name], 2)} for name in sources]
    report = {
        "benchmark": "bench_extract_sources", "device": "cpu", "device_name": cpu_name(),
        "cpu_count": os.cpu_count(), "load_average_at_end": os.getloadavg(), "threads": args.threads,
        "backbone": "resnet50 (random weights)", "batch_size": args.batch_size, "images": args.images,
        "classes": args.classes, "image_size": args.size, "per_shard": args.per_shard, "repeats": args.repeats,
        "bare_forward_images_per_s": bare_median, "bare_forward_runs": bare,
        "bare_forward_cpu_seconds_per_image": bare_cpu_median, "sources": rows,
        "gpu": "no GPU lent to this task: the CUDA target (>= 2,000 images/s from shards) is not measured",
        "versions": {"torch": str(torch.__version__), "python": platform.python_version()},
    }
    print(f"\ncpu ({report['device_name']}), {args.threads} threads, ResNet-50 fp32, batch {args.batch_size}, "
          f"{args.images} JPEGs {args.size} in {args.classes} classes; median of {args.repeats} runs")
    print(f"{'pipeline':<34}{'images/s':>10}{'efficiency':>12}{'CPU s/image':>13}{'CPU efficiency':>16}"
          f"{'same store':>12}")
    print(f"{'bare forward (ready tensors)':<34}{bare_median:>10.2f}{1.0:>12.2f}{bare_cpu_median:>13.3f}{1.0:>16.2f}")
    for row in rows:
        print(f"{'goz extract, ' + row['source']:<34}{row['e2e_images_per_s']:>10.2f}{row['efficiency']:>12.2f}"
              f"{row['cpu_seconds_per_image']:>13.3f}{row['cpu_efficiency']:>16.2f}"
              f"{'yes' if row['store_equal_to_folder_tree'] else 'NO':>12}")
    print(report["gpu"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
