"""`goz embed` on a GloVe-sized file: 400,000 words x 300 dimensions, as text, zip and word2vec binary.

    PYTHONPATH=src python benchmarks/bench_embed.py [--workdir /tmp] [--classes 2000]

The vocabulary holds every word of WordNet's noun lemmas (so requested classes find their words)
plus synthetic words up to 400,000; the values are random, formatted like GloVe's (`%.5f`), taken
from a pool of 1,000 rows (parsing cost only depends on the few words needed). Each measurement runs
in a fresh process: wall seconds of `embed` and the process's peak RSS (after imports and loading
WordNet, and at the end). Target: under 30 s and under 1 GB. Writes benchmarks/results/bench_embed.json.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

import goz.wordnet

WORDS, DIM, POOL = 400_000, 300, 1000
RESULTS = Path(__file__).parent / "results" / "bench_embed.json"

CHILD = """
import json, resource, sys, time
import goz.wordnet
from goz.semantics import embed
wnids = json.loads(sys.argv[2])
goz.wordnet.load()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
table = embed(sys.argv[1], wnids)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "rss_before_mb": before, "peak_rss_mb": peak,
                  "classes_with_vector": len(table), "format": table.attrs["format"]}))
"""


def vocabulary() -> list[str]:
    lemma_words = sorted({part for synset in goz.wordnet.load().synsets.values() for lemma in synset.lemmas
                          for part in [lemma.lower(), *lemma.lower().replace("-", "_").split("_")] if part})
    return (lemma_words + [f"synthetic{i}" for i in range(WORDS)])[:WORDS]


def write_files(directory: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    pool = [" ".join(f"{x:.5f}" for x in row) for row in rng.normal(0, 0.4, (POOL, DIM))]
    binary_pool = [row.astype("<f4").tobytes() for row in rng.normal(0, 0.4, (POOL, DIM))]
    words = vocabulary()
    text, binary = directory / "glove.400k.300d.txt", directory / "vectors.400k.300d.bin"
    with open(text, "w", encoding="utf-8") as handle:
        handle.writelines(f"{word} {pool[i % POOL]}\n" for i, word in enumerate(words))
    with open(binary, "wb") as handle:
        handle.write(f"{len(words)} {DIM}\n".encode())
        handle.writelines(word.encode() + b" " + binary_pool[i % POOL] + b"\n" for i, word in enumerate(words))
    archive = directory / "glove.400k.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as handle:
        handle.write(text, text.name)
    return {"glove-txt": text, "glove-zip": archive, "word2vec-bin": binary}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--classes", type=int, default=2000)
    args = parser.parse_args()
    wnids = random.Random(0).sample(sorted(goz.wordnet.load().synsets), args.classes)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as directory:
        start = time.perf_counter()
        files = write_files(Path(directory))
        print(f"generated {WORDS} x {DIM} files in {time.perf_counter() - start:.0f} s")
        for name, path in files.items():
            result = subprocess.run([sys.executable, "-c", CHILD, str(path), json.dumps(wnids)],
                                    capture_output=True, text=True, check=True)
            rows.append({"file": name, "size_mb": path.stat().st_size / 2**20, **json.loads(result.stdout)})
    print(f"{'file':<14}{'size MB':>9}{'seconds':>9}{'RSS before MB':>15}{'peak RSS MB':>13}{'classes':>9}")
    for row in rows:
        print(f"{row['file']:<14}{row['size_mb']:>9.0f}{row['seconds']:>9.2f}{row['rss_before_mb']:>15.0f}"
              f"{row['peak_rss_mb']:>13.0f}{row['classes_with_vector']:>9}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"words": WORDS, "dim": DIM, "classes": args.classes, "runs": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
