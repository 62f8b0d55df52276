"""Progress bars: tqdm on a terminal, a plain line per 30 seconds (and at the end) in a log.

Off a terminal (stderr redirected: `make demo > log`, CI, a cluster job) a bar that redraws on every
step fills the log with carriage returns; there each bar prints a complete line at most every
`LOG_INTERVAL_S` seconds and once when it closes, with tqdm's rate and ETA.
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm as _tqdm

LOG_INTERVAL_S = 30.0


LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%) [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


class _WholeLines:
    """The stream a log bar writes to: tqdm's own bare newline on close is dropped (each line ends itself)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        if text not in ("\n", "\r", ""):
            self.stream.write(text)

    def flush(self):
        self.stream.flush()


class _LogLines(_tqdm):
    """tqdm that writes whole lines instead of redrawing one."""

    def display(self, msg=None, pos=None):
        if not msg:
            msg = self.__str__()
        msg = msg.strip()
        if msg and self.n != getattr(self, "_last_n", None):  # closing repeats the last count: one line is enough
            self._last_n = self.n
            self.fp.write(msg + "\n")
            self.fp.flush()
        return True

    def clear(self, *args, **kwargs):  # nothing to erase: lines are never redrawn
        pass


def to_terminal(stream=None) -> bool:
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def progress_bar(iterable=None, *, enabled: bool = True, **options):
    """A tqdm bar (`options` are tqdm's): disabled when `enabled` is False, line-per-30-s off a terminal."""
    if not enabled:
        return _tqdm(iterable, disable=True, **options)
    if to_terminal(options.get("file")):
        return _tqdm(iterable, **options)
    options.setdefault("mininterval", LOG_INTERVAL_S)
    options.setdefault("maxinterval", LOG_INTERVAL_S * 4)
    options.setdefault("miniters", 1)
    options.setdefault("bar_format", LOG_FORMAT if options.get("total") or hasattr(iterable, "__len__") else None)
    return _LogLines(iterable, file=_WholeLines(options.pop("file", None) or sys.stderr), **options)
