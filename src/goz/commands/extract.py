"""`goz extract IMAGES STORE.h5 [--backbone SPEC] [--classes SPLIT] [--ids LIST]`: images -> a feature store."""

from __future__ import annotations

from goz.commands.options import add_quiet_option, non_negative_int, positive_int

# Literal, so that `goz --help` does not import torch; tests check them against goz.extract.
PRECISIONS = ("bf16", "fp16", "fp32")
SOURCES = ("folder", "synset-tars", "tar-of-tars", "webdataset", "parquet")
DTYPES = ("float32", "float16")
IMAGES_HELP = ("image source: a folder of <wnid>/ sub-folders, a folder of <wnid>.tar (ImageNet-21K), "
               "the ILSVRC-2012 training tar (tar of tars), WebDataset shards (a .tar, a folder of them, "
               "or a brace pattern such as 'shards-{0000..0099}.tar'), or Hugging Face datasets Parquet "
               "shards (a .parquet, a folder of them, or a glob such as 'data/train-*.parquet'); read in place, "
               "never unpacked")
SHOWN_MISSING = 10

ORDER = 30
SHOWN_SKIPS = 20


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "extract", help="backbone features of ImageNet images (folders, tars, shards) into a GOZ store (resumable)",
        description="Extracts features (default: torchvision ResNet-50, the GOZ features) of the images of "
                    "IMAGES, named <wnid>_<id>, into STORE.h5 (the GOZ layout). Rerun the same command to "
                    "resume after an interruption.")
    parser.add_argument("images", help=IMAGES_HELP)
    parser.add_argument("store", help="HDF5 feature store to create or complete")
    add_source_options(parser)
    parser.add_argument("--backbone", default="resnet50", metavar="SPEC",
                        help="torchvision model name (resnet50 [default], resnet101, vit_b_16, efficientnet_b0, "
                             "...), timm:NAME, or clip:ARCH[:PRETRAINED|:CHECKPOINT]")
    parser.add_argument("--weights", metavar="NAME",
                        help="torchvision weight set and its preprocessing (default: imagenet1k_v1 for resnet50, "
                             "the GOZ features'; the model's DEFAULT otherwise)")
    parser.add_argument("--weights-file", metavar="PATH",
                        help="a state dict of the backbone on disk (machines without internet, custom weights)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32",
                        help="fp32 (default, exact) or fp16/bf16 autocast (faster on GPU, approximate)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="stored features: float32 (default, the published GOZ layout) or float16 (half the "
                             "size, values rounded to 11 significant bits); recorded in the store")
    parser.add_argument("--batch-size", type=positive_int, metavar="N", help="images per forward pass (default: 256 on CUDA, 16 on CPU)")
    parser.add_argument("--workers", type=non_negative_int, metavar="N", help="decoding processes (default: all cores but two on CUDA; 0 on CPU: inline)")
    parser.add_argument("--threads", type=positive_int, metavar="N", help="torch threads for the forward pass (default: all cores)")
    parser.add_argument("--gpu-decode", action="store_true",
                        help="decode JPEGs with torchvision.io on the device (nvJPEG; not bit-exact with Pillow)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local DataLoader (default) or a Ray Data pipeline")
    parser.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray)")
    parser.add_argument("--num-gpus", type=float, default=0, help="GPUs per Ray inference actor (default: 0)")
    parser.add_argument("--actors", type=positive_int, default=1, metavar="N", help="Ray inference actors (default: 1)")
    add_quiet_option(parser)
    parser.set_defaults(run=run_extract)


def add_source_options(parser) -> None:
    parser.add_argument("--source", choices=SOURCES, help="kind of image source (default: recognised from IMAGES)")
    parser.add_argument("--classes", metavar="SPLIT", help="keep only these classes: split name (goz_v1, ...) or file")
    parser.add_argument("--ids", metavar="LIST",
                        help="keep exactly the images named in LIST: a URL list (<wnid>_<id><TAB><url>) or a file "
                             "of <wnid>_<id> keys; the images not found are reported per class")
    parser.add_argument("--label-map", metavar="FILE",
                        help="Parquet sources: the wnid of each label, one wnid per line (line i for label i) or a "
                             "JSON list (default: the dataset's own class names, which must be wnids)")


def run_extract(args) -> int:
    from goz.extract import extract

    result = extract(args.images, args.store, backbone=args.backbone, weights=args.weights,
                     weights_file=args.weights_file, source=args.source, classes=args.classes, ids=args.ids,
                     label_map=args.label_map, dtype=args.dtype, device=args.device, precision=args.precision,
                     batch_size=args.batch_size,
                     workers=args.workers, threads=args.threads, engine=args.engine, gpu_decode=args.gpu_decode,
                     num_gpus=args.num_gpus, actors=args.actors, ray_address=args.ray_address,
                     progress=not args.quiet)
    print(f"store      {result.store}")
    print(f"classes    {result.classes} in the {result.source} source: {result.extracted_classes} extracted now, "
          f"{result.already_done} already in the store")
    print(f"images     {result.images} in {result.seconds:.1f} s ({result.images_per_second:.1f} images/s)")
    if result.skipped:
        print(f"skipped    {len(result.skipped)} files (listed in {result.store}.skipped.tsv):")
        for stage, file, reason in result.skipped[:SHOWN_SKIPS]:
            print(f"  {file}: {reason} [{stage}]")
        if len(result.skipped) > SHOWN_SKIPS:
            print(f"  ... and {len(result.skipped) - SHOWN_SKIPS} more")
    if result.missing:
        print(f"missing    {missing_summary(result.missing)} not in the source (listed in {result.store}.skipped.tsv):")
        for wnid, ids in list(result.missing.items())[:SHOWN_MISSING]:
            print(f"  {wnid}: {len(ids)} images" if ids else f"  {wnid}: the whole class")
        if len(result.missing) > SHOWN_MISSING:
            print(f"  ... and {len(result.missing) - SHOWN_MISSING} more classes")
    return 0


def missing_summary(missing: dict[str, list[int]]) -> str:
    """`2 requested images of 1 classes`, `3 requested classes` (wholly absent: no image to count), or both."""
    images = sum(len(ids) for ids in missing.values())
    partly, wholly = sum(1 for ids in missing.values() if ids), sum(1 for ids in missing.values() if not ids)
    parts = ([f"{images} requested images of {partly} classes"] if partly else []) + \
            ([f"{wholly} requested {'class' if wholly == 1 else 'classes'}"] if wholly else [])
    return " and ".join(parts)
