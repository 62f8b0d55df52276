"""`goz store info STORE`: what a feature store holds, and whether it is valid."""

from __future__ import annotations

import json

from goz.store import FeatureStore

ORDER = 40


def add_commands(subparsers) -> None:
    store = subparsers.add_parser("store", help="inspect a feature store (HDF5)")
    actions = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    info = actions.add_parser("info", help="classes, samples, dimension, size; --check reads every value")
    info.add_argument("store", help="feature store (HDF5)")
    info.add_argument("--check", action="store_true",
                      help="also check every value (NaN/inf, duplicate ids); a store with HDF5 soft or external "
                           "links fails (exit 1)")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=run_info)


def run_info(args) -> int:
    with FeatureStore(args.store) as store:
        if args.check:
            store.validate()
        summary = store.info()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 1 if args.check and summary["links"] else 0
    print(f"store      {summary['path']}")
    print(f"classes    {summary['classes']}")
    print(f"samples    {summary['samples']} ({summary['min_per_class']}-{summary['max_per_class']} per class)")
    print(f"dimension  {summary['dim']}")
    print(f"size       {summary['size_bytes'] / 2**20:.1f} MiB")
    for key, value in summary["attrs"].items():
        print(f"attr       {key} = {value}")
    for link in summary["links"]:
        print(f"link       {link}")
    if args.check and summary["links"]:
        print(f"check      NOT OK: {len(summary['links'])} groups or datasets are HDF5 soft or external links, "
              f"their values live elsewhere (goz bench refuses this store unless --allow-links)")
        return 1
    if args.check:
        print("check      ok: every value finite, ids unique, no links")
    return 0
