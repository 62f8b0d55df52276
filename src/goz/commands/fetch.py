"""`goz fetch features|splits|glove|imagenet-urls|published`: the published assets, into GOZ_HOME."""

from __future__ import annotations

from goz.assets import fetch
from goz.catalog import GLOVE_MEMBERS
from goz.commands.options import add_quiet_option

ORDER = 10


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser("fetch", help="fetch the published assets (features, splits, GloVe, URL list)")
    assets = parser.add_subparsers(dest="asset", metavar="ASSET", required=True)
    helps = {
        "features": "GOZ ResNet-50 features (train and test HDF5, about 5 GB, Google Drive); layout checked",
        "splits": "the built-in splits goz_v1 and ilsvrc2012, checked by sha256",
        "glove": "GloVe word vectors (zip from nlp.stanford.edu), every member checked",
        "imagenet-urls": "the ImageNet fall-2011 image URL list (fall11_urls.txt; may be gone from image-net.org)",
        "published": "the original benchmark's class-vector table and its GCN-6, SGCN, DGP classifiers "
                     "(GOZ repository, checked by git blob id, converted to goz's formats; needs pandas)",
    }
    for asset, text in helps.items():
        sub = assets.add_parser(asset, help=text, description=text)
        sub.add_argument("--from", dest="source", metavar="PATH",
                         help="install this local copy (file or directory) instead of downloading; "
                              "checked the same way")
        sub.add_argument("--force", action="store_true", help="fetch again even if already installed")
        sub.add_argument("--home", metavar="DIR", help="data directory (default: GOZ_HOME or ~/.cache/goz)")
        add_quiet_option(sub)
        if asset == "features":
            sub.add_argument("--check-values", action="store_true",
                             help="also read every value (NaN/inf, duplicate ids) before installing: reads 5 GB")
        if asset == "glove":
            sub.add_argument("--name", default="glove.6B", choices=sorted(GLOVE_MEMBERS),
                             help="which GloVe release (default glove.6B)")
        sub.set_defaults(run=run_fetch)


def run_fetch(args) -> int:
    name = args.name if args.asset == "glove" else args.asset
    paths = fetch(name, source=args.source, force=args.force,
                  check_values=getattr(args, "check_values", False), home=args.home, progress=not args.quiet)
    for path in paths:
        print(f"{path}  ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0
