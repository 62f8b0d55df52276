"""Time and peak memory of `goz split build` and `goz split hops` over all ImageNet-21K synsets.

    python benchmarks/bench_split.py --release-status ReleaseStatus.xml --seen ilsvrc2012_train.txt

Each action runs in a fresh process (peak RSS is that process's high-water mark, WordNet
included); time is split into loading WordNet + counts + seen split and the action itself with
its outputs (split file; for build also the Markdown and PNG report). Target: < 30 s each.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "bench_split.json"


def _measure(action: str, release_status: str, seen_path: str, size: int, max_hops: int, queue) -> None:
    import tempfile

    from goz import splits
    from goz.splits import build_split, hop_split, read_counts
    from goz.wordnet import load

    start = time.perf_counter()
    hierarchy = load()
    counts = read_counts(release_status)
    seen = splits.load(seen_path)
    loaded = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:  # outputs included: split file, Markdown report, PNG
        if action == "build":
            result = len(build_split(seen, counts, size, hierarchy=hierarchy, out=Path(out) / "split.txt").unseen)
        else:
            within = hop_split(seen, [w for w in counts if w in hierarchy], max_hops, hierarchy=hierarchy)
            result = len(splits.save(list(within), Path(out) / "split.txt").read_text().split())
        done = time.perf_counter()
    queue.put({"action": action, "classes": result, "candidates": len(counts), "load_s": loaded - start,
               "action_s": done - loaded, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release-status", required=True, help="ImageNet ReleaseStatus.xml (image counts)")
    parser.add_argument("--seen", required=True, help="seen split file (the ILSVRC-2012 classes)")
    parser.add_argument("--size", type=int, default=500, help="unseen classes to build (default 500)")
    parser.add_argument("--max-hops", type=int, default=3, help="hop bound for split hops (default 3)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per action; the fastest is kept")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")   # a fresh interpreter per run: honest peak memory
    rows = []
    for action in ("build", "hops"):
        runs = []
        for _ in range(args.repeat):
            queue = context.Queue()
            process = context.Process(target=_measure, args=(action, args.release_status, args.seen, args.size,
                                                             args.max_hops, queue))
            process.start()
            runs.append(queue.get())
            process.join()
        best = min(runs, key=lambda r: r["action_s"])
        best["action_s_all"] = [round(r["action_s"], 3) for r in runs]
        rows.append(best)
    print(f"{'action':8s} {'classes':>8s} {'of':>7s} {'load s':>8s} {'action s':>9s} {'total s':>8s} {'peak MiB':>9s}")
    for r in rows:
        print(f"{r['action']:8s} {r['classes']:8d} {r['candidates']:7d} {r['load_s']:8.2f} {r['action_s']:9.2f} "
              f"{r['load_s'] + r['action_s']:8.2f} {r['peak_rss_mib']:9.0f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"runs": rows, "size": args.size, "max_hops": args.max_hops,
                                   "machine": f"{platform.machine()} {platform.processor()}, "
                                              f"{multiprocessing.cpu_count()} CPUs (shared)",
                                   "python": platform.python_version()}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
