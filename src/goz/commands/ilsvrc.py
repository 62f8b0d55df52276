"""`goz ilsvrc prepare-val`: the ILSVRC-2012 validation images, filed one folder per class."""

from __future__ import annotations

import json

from goz.commands.options import positive_int
from goz.download.ilsvrc import prepare_val

ORDER = 21


def add_commands(subparsers) -> None:
    ilsvrc = subparsers.add_parser("ilsvrc", help="prepare ILSVRC-2012 images (the seen classes)")
    actions = ilsvrc.add_subparsers(dest="ilsvrc_command", metavar="ACTION", required=True)
    parser = actions.add_parser("prepare-val", help="file the flat validation folder into one folder per wnid")
    parser.add_argument("val_dir", help="folder of ILSVRC2012_val_NNNNNNNN.JPEG")
    parser.add_argument("--labels", required=True,
                        help="LOC_val_solution.csv (Kaggle) or ILSVRC2012_validation_ground_truth.txt (devkit)")
    parser.add_argument("--meta", help="devkit meta.mat (default: next to the ground-truth file)")
    parser.add_argument("--out", required=True, help="output folder: OUT/<wnid>/<wnid>_<n>.JPEG")
    parser.add_argument("--copy", action="store_true", help="copy the images instead of symlinking them")
    parser.add_argument("--per-class", type=positive_int, default=50, metavar="N",
                        help="images expected per class (default 50)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run_prepare_val)


def run_prepare_val(args) -> int:
    result = prepare_val(args.val_dir, args.labels, args.out, meta=args.meta, copy=args.copy,
                         expected_per_class=args.per_class)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    print(f"{result.images} images in {result.classes} classes under {result.out}")
    if result.missing_images:
        print(f"missing    {len(result.missing_images)} labelled images not in the folder, "
              f"e.g. {result.missing_images[0]}")
    for wnid, count in result.wrong_count.items():
        print(f"check      {wnid}: {count} images, expected {result.expected_per_class}")
    if not result.wrong_count and not result.missing_images:
        print(f"check      ok: {result.expected_per_class} images in every class")
    return 0
