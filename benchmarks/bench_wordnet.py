"""Load time of the packaged WordNet hierarchy and the cost of the queries split building makes.

    PYTHONPATH=src python benchmarks/bench_wordnet.py

`load()` is timed with its cache cleared (best of 3); the queries run cold, on 20,000 random synsets.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import goz.wordnet

RUNS = 3


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    load_seconds = []
    for _ in range(RUNS):
        goz.wordnet.load.cache_clear()
        load_seconds.append(timed(goz.wordnet.load))
    hierarchy = goz.wordnet.load()
    wnids = random.Random(0).sample(sorted(hierarchy.synsets), 20000)
    results = {
        "synsets": len(hierarchy),
        "resource_bytes": (Path(goz.wordnet.__file__).parent.parent / "data" / "wordnet" / goz.wordnet.RESOURCE).stat().st_size,
        "load_seconds_best": min(load_seconds),
        "ancestors_20000_seconds": timed(lambda: [hierarchy.ancestors(w) for w in wnids]),
        "depth_20000_seconds": timed(lambda: [hierarchy.depth(w) for w in wnids]),
        "induced_graph_20000_seconds": timed(lambda: hierarchy.induced_graph(wnids)),
        "most_frequent_sense_all_lemmas_seconds": timed(
            lambda: [hierarchy.is_most_frequent_sense(w) for w in hierarchy.synsets]),
    }
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    out = Path(__file__).parent / "results" / "bench_wordnet.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
