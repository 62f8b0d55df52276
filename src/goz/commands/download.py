"""`goz download URLS OUT`: URL lists -> validated image folders."""

from __future__ import annotations

import json

from goz.commands.options import (
    add_quiet_option,
    non_negative_int,
    positive_float,
    positive_int,
)
from goz.download import FORMATS, Plan, defaults, download
from goz.download.engines import ENGINES
from goz.download.job import JobFolder

ORDER = 20


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "download", help="download, validate and file the images of an ImageNet-style URL list (resumable)")
    parser.add_argument("urls", help="URL list file, `<wnid>_<imageid><TAB><url>` per line")
    parser.add_argument("out", help="output folder: OUT/<wnid>/<wnid>_<imageid>.<ext>")
    parser.add_argument("--classes", metavar="SPLIT", help="keep only these classes: split name or file")
    parser.add_argument("--per-class", type=positive_int, metavar="N", help="keep the first N entries of each class")
    parser.add_argument("--limit", type=positive_int, metavar="N", help="keep the first N entries of the list")
    parser.add_argument("--engine", choices=ENGINES, default=defaults.ENGINE,
                        help=f"{' or '.join(ENGINES)} (default %(default)s)")
    parser.add_argument("--processes", type=positive_int, default=defaults.PROCESSES, metavar="N",
                        help="local engine: shards run in N processes (default %(default)s)")
    parser.add_argument("--ray-address", metavar="ADDRESS",
                        help="ray engine: address of the Ray cluster (default: start a local one)")
    parser.add_argument("--shards", type=positive_int, metavar="N",
                        help=f"number of shards (fixed at the first run; default: list size / {defaults.SHARD_SIZE})")
    parser.add_argument("--concurrency", type=positive_int, default=defaults.CONCURRENCY, metavar="N",
                        help="requests in flight per shard (default %(default)s)")
    parser.add_argument("--per-host", type=positive_int, default=defaults.PER_HOST, metavar="N",
                        help="requests in flight per host (default %(default)s)")
    parser.add_argument("--deadline", type=positive_float, default=defaults.DEADLINE_S, metavar="SECONDS",
                        help="seconds for a whole attempt (default %(default)g)")
    parser.add_argument("--max-bytes", type=positive_int, default=defaults.MAX_BYTES, metavar="BYTES",
                        help=f"largest body accepted (default {defaults.MAX_BYTES / 2**20:g} MiB)")
    parser.add_argument("--max-attempts", type=positive_int, default=defaults.MAX_ATTEMPTS, metavar="N",
                        help="attempts after 429/503 (default %(default)s)")
    parser.add_argument("--min-side", type=non_negative_int, default=defaults.MIN_SIDE, metavar="PIXELS",
                        help="smallest accepted image side in pixels (default %(default)s)")
    parser.add_argument("--max-pixels", type=positive_int, default=defaults.MAX_PIXELS, metavar="PIXELS",
                        help=f"decompression-bomb limit in pixels (default {defaults.MAX_PIXELS / 1e6:g}M)")
    parser.add_argument("--resize", type=positive_int, metavar="SHORTER_SIDE",
                        help="store a JPEG resized (antialiased) to this shorter side instead of the original")
    parser.add_argument("--placeholder-urls", type=positive_int, default=defaults.PLACEHOLDER_URLS, metavar="N",
                        help="content shared by this many distinct URLs is a placeholder (default %(default)s)")
    parser.add_argument("--decode-workers", type=positive_int, metavar="N",
                        help="validation processes (default: CPU count)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="refetch retryable failures (timeouts, connection errors, HTTP 429/5xx)")
    parser.add_argument("--retry-crashed", action="store_true",
                        help="validate the decoder_crash images again (each alone, in a fresh process)")
    parser.add_argument("--format", choices=FORMATS, default=defaults.FORMAT,
                        help="files: OUT/<wnid>/<wnid>_<id>.<ext>; webdataset: OUT/shard-S-N.tar of "
                             "--images-per-tar images (jpg/png + json); fixed at the first run (default %(default)s)")
    parser.add_argument("--images-per-tar", type=positive_int, default=defaults.IMAGES_PER_TAR, metavar="N",
                        help="webdataset: images per tar (default %(default)s)")
    parser.add_argument("--dry-run", action="store_true",
                        help="read and shard the list, print the plan (entries, classes, hosts, shards, what a "
                             "rerun would skip); fetch nothing")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_quiet_option(parser)
    parser.set_defaults(run=run_download)


def run_download(args) -> int:
    summary = download(
        args.urls, args.out, classes=args.classes, per_class=args.per_class, limit=args.limit, engine=args.engine,
        processes=args.processes, ray_address=args.ray_address, shards=args.shards, concurrency=args.concurrency,
        per_host=args.per_host, deadline=args.deadline, max_bytes=args.max_bytes, max_attempts=args.max_attempts,
        min_side=args.min_side, max_pixels=args.max_pixels, resize=args.resize,
        placeholder_urls=args.placeholder_urls, decode_workers=args.decode_workers,
        retry_failed=args.retry_failed, retry_crashed=args.retry_crashed, format=args.format,
        images_per_tar=args.images_per_tar, dry_run=args.dry_run, progress=not args.quiet)
    if args.json:
        print(json.dumps(summary.as_dict(), indent=2))
        return 0
    _print_list_stats(summary.list_stats)
    if isinstance(summary, Plan):
        _print_plan(summary)
        return 0
    print(f"this run   {summary.processed} fetched, {summary.ok_this_run} ok, {summary.adopted} kept from an "
          f"interrupted run, {summary.bytes_this_run / 2**20:.1f} MiB in {summary.seconds:.1f}s "
          f"({summary.images_per_second:.1f} img/s) over {summary.shards} shards, {summary.hosts} hosts")
    for outcome, count in summary.outcomes.items():
        print(f"outcome    {outcome:<17} {count}")
    folder = JobFolder(summary.out)
    for sha256, urls in summary.suspected_placeholders.items():
        print(f"placeholder sha256 {sha256[:16]}… shared by {urls} URLs: files quarantined in "
              f"{folder.quarantine}")
    if summary.ok_per_class:
        fewest = sorted(summary.ok_per_class.items(), key=lambda item: item[1])[:5]
        print(f"classes    {len(summary.ok_per_class)}, {max(summary.ok_per_class.values())} images at most; "
              f"fewest: {', '.join(f'{w} {n}' for w, n in fewest)} "
              f"(`goz download-report {args.out}` lists every short class)")
    print(f"stats      {folder.stats_dir}/ (one JSON per finished shard, {folder.summary_path.name} for the run)")
    return 0


def _print_plan(plan: Plan) -> None:
    nonempty = [n for n in plan.shard_entries if n]
    print(f"plan       {plan.entries} entries, {plan.classes} classes, {plan.hosts} hosts, {plan.shards} shards "
          f"({len(nonempty)} with entries; largest {max(nonempty, default=0)}, smallest {min(nonempty, default=0)})")
    busiest = ", ".join(f"{host} {count}" for host, count in plan.busiest_hosts.items())
    print(f"hosts      busiest: {busiest} (a host is served by one shard at a time)")
    print(f"resume     {plan.resume_skips} entries already recorded would be skipped, "
          f"{plan.entries - (plan.resume_skips or 0)} to fetch")
    print(f"lists      {plan.folder.lists}/ (nothing fetched: dry run)")


def _print_list_stats(stats) -> None:
    print(f"list       {stats.entries} entries kept of {stats.lines} lines: {stats.blank} blank, "
          f"{stats.malformed} malformed, {stats.duplicates} duplicate, {stats.filtered} filtered out, "
          f"{stats.latin1} read as latin-1")
    for example in stats.malformed_examples:
        print(f"malformed  {example}")
