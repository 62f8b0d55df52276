"""goz download vs img2dataset on the same URL list from the same local server; per-host politeness.

10,000 URLs over 8 host names (127.0.0.1-127.0.0.8, all loopback): 80 % distinct JPEGs of
50-200 KB (200 base pictures, each copy made unique by a JPEG comment so the placeholder detector
must not flag them), 20 % faults: 404, 500, a shared placeholder answered with 200, a redirect to
Flickr's photo_unavailable, HTML served as .jpg with 200, truncated JPEGs. The server (aiohttp, a
process of its own) is the same for both tools; both run with 2 processes, back to back. The table
gives wall time, the CPU seconds of each tool's process tree (user + system), valid images per
CPU-second, and the invalid files each kept. Then goz runs `--processes 2 --shards 4 --per-host 4`
against the server answering with a delay, which reports the most requests it saw in flight per host.

    python benchmarks/bench_download.py [--urls 10000] [--img2dataset /tmp/i2d/bin/img2dataset]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FAULTS = {"notfound": 0.05, "error": 0.01, "placeholder": 0.05, "dead": 0.03, "html": 0.03, "truncated": 0.03}
BASE_IMAGES = 200
HOSTS = 8


def base_jpegs(count: int, rng: np.random.Generator) -> list[bytes]:
    """Photo-like JPEGs (smooth colour fields plus grain) of 50-200 KB."""
    images = []
    while len(images) < count:
        width, height = int(rng.choice([500, 480, 375, 640])), int(rng.choice([375, 333, 500, 427]))
        field = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height),
                                                                                      Image.Resampling.BICUBIC)
        grain = rng.normal(0, rng.uniform(4, 14), (height, width, 3))
        pixels = np.clip(np.asarray(field, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
        if 50_000 <= buffer.tell() <= 200_000:
            images.append(buffer.getvalue())
    return images


def with_comment(jpeg: bytes, text: str) -> bytes:
    """The same picture with a COM segment after SOI: distinct bytes, identical pixels."""
    payload = text.encode()
    return jpeg[:2] + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def build_site(work: Path, count: int, port: int) -> tuple[Path, dict[str, str]]:
    """Writes the served files and the URL list; returns the list path and {key: category}."""
    rng = np.random.default_rng(0)
    site = work / "site"
    if site.exists():
        shutil.rmtree(site)
    (site / "img").mkdir(parents=True)
    bases = base_jpegs(BASE_IMAGES, rng)
    placeholder = with_comment(bases[0], "this photo is no longer available")
    (site / "photo_unavailable.png").write_bytes(placeholder)
    (site / "placeholder.jpg").write_bytes(placeholder)
    categories, lines = {}, []
    thresholds = np.cumsum(list(FAULTS.values()))
    for index in range(count):
        draw = rng.random()
        category = next((name for name, edge in zip(FAULTS, thresholds) if draw < edge), "good")
        key = f"n{index % 500:08d}_{index}"
        host = f"127.0.0.{index % HOSTS + 1}"
        path = f"/img/{index}.jpg"
        if category in ("good", "truncated"):
            data = with_comment(bases[index % BASE_IMAGES], f"goz bench image {index}")
            (site / "img" / f"{index}.jpg").write_bytes(data if category == "good" else data[: len(data) // 2])
        elif category == "html":
            (site / "img" / f"{index}.jpg").write_text(f"<!DOCTYPE html><html><body>image {index} removed</body></html>")
        elif category == "placeholder":
            os.symlink(site / "placeholder.jpg", site / "img" / f"{index}.jpg")
        elif category == "dead":
            path = f"/dead/{index}.jpg"
        elif category == "error":
            path = f"/error/{index}.jpg"
        categories[key] = category
        lines.append(f"{key}\thttp://{host}:{port}{path}\n")
    urls = work / "urls.txt"
    urls.write_text("".join(lines))
    return urls, categories


def start_server(site: Path, port: int, delay: float = 0.0) -> subprocess.Popen:
    """The site served by this file's `--serve` mode in a process of its own, on every host name."""
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(site), "--port", str(port),
                               "--delay", str(delay)])
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError("the bench server did not start")


def serve(site: Path, port: int, delay: float) -> None:
    """Static files, /dead/ -> 302 photo_unavailable, /error/ -> 500; GET /stats: most in flight per host."""
    import asyncio
    from collections import Counter

    from aiohttp import web

    in_flight, most = Counter(), Counter()

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == "/stats":
            return web.json_response(dict(most))
        host = request.host.rpartition(":")[0]
        in_flight[host] += 1
        most[host] = max(most[host], in_flight[host])
        try:
            if delay:
                await asyncio.sleep(delay)
            kind = request.path.split("/")[1]
            if kind == "dead":
                raise web.HTTPFound("/photo_unavailable.png")
            if kind == "error":
                return web.Response(status=500, text="error")
            path = (site / request.path.lstrip("/")).resolve()
            if not path.is_file() or site not in path.parents:
                return web.Response(status=404, text="not found")
            kind = "image/png" if path.suffix == ".png" else "image/jpeg"
            return web.Response(body=path.read_bytes(), content_type=kind)
        finally:
            in_flight[host] -= 1

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    web.run_app(app, host=[f"127.0.0.{i}" for i in range(1, HOSTS + 1)], port=port, access_log=None,
                print=None, backlog=4096)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ensure_img2dataset(path: str | None) -> str:
    if path:
        return path
    venv = Path("/tmp/i2d")
    if not (venv / "bin" / "img2dataset").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "img2dataset"], check=True)
    return str(venv / "bin" / "img2dataset")


def is_valid_image(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.load()
        return True
    except Exception:  # any decode failure means the kept file is not a usable image
        return False


def judge(kept: list[tuple[Path, str]], categories: dict[str, str]) -> dict:
    """Kept files per URL category; a file is invalid unless its URL served a good image and it decodes."""
    by_category: dict[str, int] = {}
    invalid = 0
    for path, key in kept:
        category = categories[key]
        by_category[category] = by_category.get(category, 0) + 1
        invalid += category != "good" or not is_valid_image(path)
    return {"kept": len(kept), "invalid_kept": invalid, "kept_by_category": by_category}


def measured(command: list[str], env: dict | None = None) -> tuple[subprocess.CompletedProcess, float, float]:
    """Runs `command`; its wall seconds and the CPU seconds (user + system) of its whole process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return done, seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_goz(urls: Path, out: Path, categories: dict[str, str], concurrency: int, processes: int) -> dict:
    command = [sys.executable, "-m", "goz", "download", str(urls), str(out), "--quiet", "--json",
               "--processes", str(processes), "--shards", str(HOSTS), "--decode-workers", "1",
               "--concurrency", str(concurrency), "--per-host", str(concurrency), "--deadline", "10"]
    done, seconds, cpu = measured(command, dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    summary = json.loads(done.stdout)
    kept = [(p, p.stem) for p in out.glob("n*/*") if p.is_file()]
    return {"seconds": seconds, "cpu_seconds": cpu, "outcomes": summary["outcomes"],
            "suspected_placeholders": len(summary["suspected_placeholders"])} | judge(kept, categories)


def run_img2dataset(binary: str, urls: Path, out: Path, categories: dict[str, str], concurrency: int,
                    processes: int) -> dict:
    keys = list(categories)
    plain = urls.with_name("urls_only.txt")
    plain.write_text("".join(line.split("\t", 1)[1] for line in urls.read_text().splitlines(keepends=True)))
    command = [binary, "--url_list", str(plain), "--input_format", "txt", "--output_folder", str(out),
               "--output_format", "files", "--resize_mode", "no", "--processes_count", str(processes),
               "--thread_count", str(concurrency), "--timeout", "10", "--number_sample_per_shard", "1000",
               "--enable_wandb", "False"]
    _, seconds, cpu = measured(command, dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1"))
    kept = []
    for path in out.glob("*/*.jpg"):  # img2dataset names samples by their position in the list
        kept.append((path, keys[int(path.stem)]))
    return {"seconds": seconds, "cpu_seconds": cpu} | judge(kept, categories)


def per_host_check(work: Path, urls: Path, port: int) -> dict:
    """goz --processes 2 --shards 4 --per-host 4 against a server answering in 50 ms: most in flight per host."""
    server = start_server(work / "site", port, delay=0.05)
    out = work / "out-per-host"
    shutil.rmtree(out, ignore_errors=True)
    try:
        command = [sys.executable, "-m", "goz", "download", str(urls), str(out), "--quiet", "--limit", "4000",
                   "--processes", "2", "--shards", "4", "--per-host", "4", "--decode-workers", "1"]
        _, seconds, cpu = measured(command, dict(os.environ, PYTHONPATH=str(ROOT / "src")))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as answer:
            most = json.loads(answer.read())
    finally:
        server.terminate()
        server.wait()
    return {"urls": 4000, "seconds": seconds, "cpu_seconds": cpu, "most_in_flight_per_host": most,
            "most_in_flight_any_host": max(most.values())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight per process, both tools")
    parser.add_argument("--processes", type=int, default=2, help="processes of each tool")
    parser.add_argument("--img2dataset", help="img2dataset executable (default: created in /tmp/i2d)")
    parser.add_argument("--work", default="/tmp/goz-bench-download")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--delay", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve).resolve(), args.port, args.delay)
        return 0
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    binary = ensure_img2dataset(args.img2dataset)
    port = free_port()
    urls, categories = build_site(work, args.urls, port)
    load_before = os.getloadavg()
    server = start_server(work / "site", port)
    try:
        results = {}
        for name in ("goz", "img2dataset"):
            out = work / f"out-{name}"
            shutil.rmtree(out, ignore_errors=True)
            results[name] = (run_goz(urls, out, categories, args.concurrency, args.processes) if name == "goz"
                             else run_img2dataset(binary, urls, out, categories, args.concurrency, args.processes))
            result = results[name]
            result["images_per_second"] = args.urls / result["seconds"]
            result["valid_images"] = result["kept"] - result["invalid_kept"]
            result["valid_images_per_cpu_second"] = result["valid_images"] / result["cpu_seconds"]
    finally:
        server.terminate()
        server.wait()
    politeness = per_host_check(work, urls, port)  # the list names this port
    load_after = os.getloadavg()
    ratio = results["goz"]["valid_images_per_cpu_second"] / results["img2dataset"]["valid_images_per_cpu_second"]
    good = sum(1 for c in categories.values() if c == "good")
    print(f"{args.urls} URLs ({good} good images, {args.urls - good} faults) over {HOSTS} loopback hosts, aiohttp "
          f"server process; {args.processes} processes x {args.concurrency} requests each; {os.cpu_count()} CPUs, "
          f"shared machine (load {load_before[0]:.1f} before, {load_after[0]:.1f} after)")
    print(f"{'tool':<12} {'wall s':>7} {'CPU s':>7} {'URLs/s':>7} {'valid':>6} {'valid/CPU-s':>12} {'invalid kept':>13}"
          f"  kept by URL category")
    for name, result in results.items():
        print(f"{name:<12} {result['seconds']:>7.1f} {result['cpu_seconds']:>7.1f} {result['images_per_second']:>7.1f} "
              f"{result['valid_images']:>6} {result['valid_images_per_cpu_second']:>12.1f} "
              f"{result['invalid_kept']:>13}  {result['kept_by_category']}")
    print(f"valid images per CPU-second, goz / img2dataset: {ratio:.2f} (target >= 1.5)")
    print(f"per-host: goz --processes 2 --shards 4 --per-host 4, {politeness['urls']} URLs, server answering in 50 ms: "
          f"most in flight per host {politeness['most_in_flight_per_host']} (target <= 4), "
          f"{politeness['seconds']:.1f}s")
    record = {"urls": args.urls, "good_images": good, "faults": FAULTS, "hosts": HOSTS,
              "concurrency": args.concurrency, "processes": args.processes, "cpus": os.cpu_count(),
              "load_average_before_after": [load_before[0], load_after[0]], "results": results,
              "ratio_valid_per_cpu_second_goz_over_img2dataset": ratio, "per_host": politeness}
    target = ROOT / "benchmarks" / "results" / "bench_download.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
