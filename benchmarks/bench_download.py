"""goz download vs img2dataset on the same URL list and the same local nginx server.

10,000 URLs on 127.0.0.1: 80 % distinct JPEGs of 50-200 KB (200 base pictures, each copy made
unique by a JPEG comment so the placeholder detector must not flag them), 20 % faults: 404, 500,
a shared placeholder answered with 200, a redirect to Flickr's photo_unavailable, HTML served as
.jpg with 200, truncated JPEGs. Both tools run back to back (the machine may be shared); the
table gives images/s (URLs processed per second of wall time) and the invalid files each kept.

    python benchmarks/bench_download.py [--urls 10000] [--img2dataset /tmp/i2d/bin/img2dataset]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FAULTS = {"notfound": 0.05, "error": 0.01, "placeholder": 0.05, "dead": 0.03, "html": 0.03, "truncated": 0.03}
BASE_IMAGES = 200


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
        lines.append(f"{key}\thttp://127.0.0.1:{port}{path}\n")
    urls = work / "urls.txt"
    urls.write_text("".join(lines))
    return urls, categories


def start_nginx(work: Path, port: int) -> subprocess.Popen:
    config = work / "nginx.conf"
    for folder in ("logs", "temp"):
        (work / folder).mkdir(exist_ok=True)
    config.write_text(f"""
worker_processes 1;
daemon off;
user root;
pid {work}/nginx.pid;
error_log {work}/logs/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 100000;
    client_body_temp_path {work}/temp; proxy_temp_path {work}/temp; fastcgi_temp_path {work}/temp;
    uwsgi_temp_path {work}/temp; scgi_temp_path {work}/temp;
    types {{ image/jpeg jpg; image/png png; }}
    server {{
        listen 127.0.0.1:{port};
        root {work}/site;
        location /dead/ {{ return 302 /photo_unavailable.png; }}
        location /error/ {{ return 500; }}
    }}
}}
""")
    server = subprocess.Popen(["nginx", "-c", str(config), "-p", str(work)])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError(f"nginx did not start; see {work}/logs/error.log")


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


def run_goz(urls: Path, out: Path, categories: dict[str, str], concurrency: int) -> dict:
    command = [sys.executable, "-m", "goz", "download", str(urls), str(out), "--quiet", "--json",
               "--concurrency", str(concurrency), "--per-host", str(concurrency), "--deadline", "10"]
    started = time.perf_counter()
    done = subprocess.run(command, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")), capture_output=True,
                          text=True, check=True)
    seconds = time.perf_counter() - started
    summary = json.loads(done.stdout)
    kept = [(p, p.stem) for p in out.glob("n*/*") if p.is_file()]
    return {"seconds": seconds, "outcomes": summary["outcomes"],
            "suspected_placeholders": len(summary["suspected_placeholders"])} | judge(kept, categories)


def run_img2dataset(binary: str, urls: Path, out: Path, categories: dict[str, str], concurrency: int) -> dict:
    keys = list(categories)
    plain = urls.with_name("urls_only.txt")
    plain.write_text("".join(line.split("\t", 1)[1] for line in urls.read_text().splitlines(keepends=True)))
    command = [binary, "--url_list", str(plain), "--input_format", "txt", "--output_folder", str(out),
               "--output_format", "files", "--resize_mode", "no", "--processes_count", str(os.cpu_count()),
               "--thread_count", str(concurrency), "--timeout", "10", "--number_sample_per_shard", "1000",
               "--enable_wandb", "False"]
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, text=True, check=True,
                   env=dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1"))
    seconds = time.perf_counter() - started
    kept = []
    for path in out.glob("*/*.jpg"):  # img2dataset names samples by their position in the list
        kept.append((path, keys[int(path.stem)]))
    return {"seconds": seconds} | judge(kept, categories)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=256, help="requests in flight for both tools")
    parser.add_argument("--img2dataset", help="img2dataset executable (default: created in /tmp/i2d)")
    parser.add_argument("--work", default="/tmp/goz-bench-download")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    binary = ensure_img2dataset(args.img2dataset)
    port = free_port()
    urls, categories = build_site(work, args.urls, port)
    server = start_nginx(work, port)
    try:
        results = {}
        for name in ("goz", "img2dataset"):
            out = work / f"out-{name}"
            shutil.rmtree(out, ignore_errors=True)
            results[name] = (run_goz(urls, out, categories, args.concurrency) if name == "goz"
                             else run_img2dataset(binary, urls, out, categories, args.concurrency))
            results[name]["images_per_second"] = args.urls / results[name]["seconds"]
    finally:
        server.terminate()
        server.wait()
    ratio = results["goz"]["images_per_second"] / results["img2dataset"]["images_per_second"]
    good = sum(1 for c in categories.values() if c == "good")
    print(f"{args.urls} URLs ({good} good images, {args.urls - good} faults), nginx on 127.0.0.1, "
          f"{os.cpu_count()} CPUs (shared machine)")
    print(f"{'tool':<12} {'seconds':>8} {'img/s':>8} {'kept':>6} {'invalid kept':>13}  kept by URL category")
    for name, result in results.items():
        print(f"{name:<12} {result['seconds']:>8.1f} {result['images_per_second']:>8.1f} {result['kept']:>6} "
              f"{result['invalid_kept']:>13}  {result['kept_by_category']}")
    print(f"speed ratio goz / img2dataset: {ratio:.2f}")
    record = {"urls": args.urls, "good_images": good, "faults": FAULTS, "concurrency": args.concurrency,
              "cpus": os.cpu_count(), "results": results, "ratio_goz_over_img2dataset": ratio}
    target = ROOT / "benchmarks" / "results" / "bench_download.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
