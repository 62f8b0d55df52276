"""`goz download LIST OUT --dry-run` on a generated 14-million-line URL list: peak memory and time.

The list is shaped like the fall-2011 ImageNet list (21,841 classes, `<wnid>_<id><TAB><url>`, ~80 bytes
a line): half of the URLs on 9 Flickr-like farms, the rest over 200,000 other hosts, a few duplicate keys,
a few malformed lines. The dry run reads and shards it and prints the plan; the table gives the wall
time, the CPU time and the peak resident memory of the `goz` process (getrusage of the child).
Targets: peak RSS <= 500 MB, <= 3 minutes on 2 cores.

    python benchmarks/bench_download_plan.py [--lines 14000000] [--work /tmp/goz-bench-plan]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLASSES = 21_841


def write_list(path: Path, lines: int, seed: int = 0) -> None:
    """The generated list, written in blocks of 100,000 lines."""
    rng = np.random.default_rng(seed)
    block = 100_000
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, lines, block):
            n = min(block, lines - start)
            index = np.arange(start, start + n)
            wnids = 1_000_000 + (index * CLASSES // lines)  # grouped by class, as the real list
            ids = index - (index * CLASSES // lines) * (lines // CLASSES) + 1
            ids[rng.random(n) < 0.001] = 1  # a few repeated keys
            flickr = rng.random(n) < 0.5
            farms = rng.integers(1, 10, n)
            others = rng.integers(0, 200_000, n)
            photo = rng.integers(10**9, 10**10, n)
            rows = []
            for w, i, f, farm, other, p in zip(wnids.tolist(), ids.tolist(), flickr.tolist(), farms.tolist(),
                                               others.tolist(), photo.tolist()):
                host = f"farm{farm}.static.flickr.com" if f else f"www.site{other}.example.com"
                rows.append(f"n{w:08d}_{i}\thttp://{host}/{p % 10000}/{p}_0a1b2c3d4e.jpg\n")
            if start == 0:
                rows[1] = "broken line without a tab\n"
            handle.writelines(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=14_000_000)
    parser.add_argument("--work", default="/tmp/goz-bench-plan")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    urls = work / f"urls-{args.lines}.txt"
    if not urls.exists():
        started = time.perf_counter()
        write_list(urls.with_suffix(".partial"), args.lines)
        urls.with_suffix(".partial").rename(urls)
        print(f"generated {urls} ({urls.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - started:.0f}s")
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "goz", "download", str(urls), str(out), "--dry-run", "--json"]
    load_before = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")), capture_output=True,
                          text=True, check=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_after = os.getloadavg()
    plan = json.loads(done.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak_mb = after.ru_maxrss / 1024  # kilobytes on Linux; the largest child so far: run this script alone
    stats = plan["list_stats"]
    print(f"{args.lines:,} lines ({urls.stat().st_size / 2**30:.2f} GiB), {os.cpu_count()} CPUs, shared machine "
          f"(load {load_before[0]:.1f} before, {load_after[0]:.1f} after)")
    print(f"{'step':<22} {'wall s':>7} {'CPU s':>7} {'peak RSS MB':>12} {'entries':>11} {'classes':>8} "
          f"{'hosts':>8} {'shards':>7} {'duplicates':>11} {'malformed':>10}")
    print(f"{'goz download --dry-run':<22} {seconds:>7.1f} {cpu:>7.1f} {peak_mb:>12.0f} {plan['entries']:>11,} "
          f"{plan['classes']:>8,} {plan['hosts']:>8,} {plan['shards']:>7,} {stats['duplicates']:>11,} "
          f"{stats['malformed']:>10,}")
    print(f"targets: peak RSS <= 500 MB ({'met' if peak_mb <= 500 else 'MISSED'}), "
          f"<= 180 s ({'met' if seconds <= 180 else 'MISSED'})")
    record = {"lines": args.lines, "bytes": urls.stat().st_size, "cpus": os.cpu_count(), "seconds": seconds,
              "cpu_seconds": cpu, "peak_rss_mb": peak_mb, "load_average_before_after": [load_before[0], load_after[0]],
              "plan": {k: plan[k] for k in ("entries", "classes", "hosts", "shards", "nonempty_shards",
                                              "busiest_hosts")} | {"list_stats": stats}}
    target = ROOT / "benchmarks" / "results" / "bench_download_plan.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
