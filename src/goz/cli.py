"""The `goz` console script: a thin layer over the stage functions.

Each module in `goz.commands` contributes its subcommands through `add_commands(subparsers)`;
they are discovered here so that a stage owns its own CLI glue.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

import goz
import goz.commands
from goz.errors import GozError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="goz",
        description="GOZ benchmark toolkit: download, extract, embed, split, bench, report.",
    )
    parser.add_argument("--version", action="version", version=f"goz {goz.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = [
        importlib.import_module(f"goz.commands.{info.name}")
        for info in pkgutil.iter_modules(goz.commands.__path__)
        if info.name != "options"  # the shared argument types, not a command
    ]
    # ORDER keeps `goz --help` in pipeline order rather than alphabetical order.
    for module in sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.__name__)):
        module.add_commands(subparsers)
    return parser


def _fetch_named_splits(args: argparse.Namespace) -> None:
    """Published splits named on the command line (`--unseen goz_v1`) are fetched before the command runs:
    the API below reads them from GOZ_HOME and never reaches up to fetch (`goz.catalog`)."""
    from goz.catalog import SPLIT_ASSETS

    named = {part.strip() for value in vars(args).values() if isinstance(value, str) for part in value.split(",")}
    if any(not SPLIT_ASSETS[name].local_path.is_file() for name in named & SPLIT_ASSETS.keys()):
        from goz.assets import fetch

        try:
            fetch("splits", progress=not getattr(args, "quiet", False))
        except GozError as error:  # the command itself then says what it lacks first (a store, the split...)
            logging.getLogger("goz").warning("could not fetch the published splits: %s", error)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        _fetch_named_splits(args)
        return int(args.run(args) or 0)
    except GozError as error:
        print(f"goz: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`goz ... | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush does not fail again
        return 141
    except OSError as error:  # the environment failed (disk full, permission denied): say so, no traceback
        logging.getLogger("goz").debug("system error", exc_info=True)
        print(f"goz: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("goz: interrupted (rerun the same command to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
