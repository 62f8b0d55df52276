"""`goz verify IMAGES STORE.h5 [--recompute N]`: a feature store checked against its image source."""

from __future__ import annotations

from goz.commands.extract import IMAGES_HELP, add_source_options
from goz.commands.options import non_negative_int

ORDER = 31


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify", help="check a feature store against its image source",
        description="The four checks of the original extraction code: same classes, same number of samples "
                    "per class, ids equal to the file names, recomputed features equal to the stored ones.")
    parser.add_argument("images", help="the image source the store was extracted from; " + IMAGES_HELP)
    parser.add_argument("store", help="HDF5 feature store")
    add_source_options(parser)
    parser.add_argument("--recompute", type=non_negative_int, default=0, metavar="N",
                       help="recompute the features of N random classes and compare (default: 0)")
    parser.add_argument("--weights-file", metavar="PATH", help="the weights file the store was extracted with")
    parser.add_argument("--device", default="cpu", help="device for --recompute (default: cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed choosing the recomputed classes")
    parser.set_defaults(run=run_verify)


def run_verify(args) -> int:
    from goz.extract import verify

    report = verify(args.images, args.store, recompute=args.recompute, weights_file=args.weights_file,
                    source=args.source, classes=args.classes, ids=args.ids, label_map=args.label_map,
                    device=args.device, seed=args.seed)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1
