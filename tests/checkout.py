"""Paths of this checkout, for tests that start subprocesses or Ray workers (tests live in sub-folders)."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SRC = ROOT / "src"
