"""Argument types and options shared by the `goz` subcommands (one place, so every command spells them alike)."""

from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a count of things), refused at parse time with a usage message."""
    return _bounded_int(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _bounded_int(text, 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (seconds, sizes)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _bounded_int(text: str, minimum: int, wanted: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {wanted}, got {value}")
    return value


def add_hierarchy_option(parser: argparse.ArgumentParser) -> None:
    """--hierarchy, shared by every command that walks the class graph."""
    parser.add_argument("--hierarchy", default="wordnet",
                        help="'wordnet' (default) or a child<TAB>parent edges file")


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    """--quiet: no progress bars (the API's `progress=False`)."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
