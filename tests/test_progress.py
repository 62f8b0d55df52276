"""Progress: tqdm on a terminal; off a terminal (a log) whole lines, at most one per 30 s and one at the end."""

from __future__ import annotations

import io
import zipfile

from goz import progress
from goz.cli import main
from goz.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_whole_lines_not_carriage_returns():
    log = io.StringIO()
    for _ in progress_bar(range(100_000), desc="scoring", unit="sample", file=log):
        pass
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and text.endswith("\n")
    # the opening line and the closing one: 100,000 steps within 30 s print nothing in between
    assert len(lines) == 2 and lines[-1].startswith("scoring: 100000/100000 (100%)"), lines
    assert "sample/s" in lines[-1]


def test_a_log_line_every_interval(monkeypatch):
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)  # every update is past the interval
    log = io.StringIO()
    with progress_bar(total=5, desc="fit", file=log) as bar:
        for _ in range(5):
            bar.update(1)
    assert [line.split(" ")[1] for line in log.getvalue().splitlines()] == [f"{n}/5" for n in range(6)]


def test_a_terminal_gets_tqdm_and_disabled_bars_print_nothing():
    terminal = Terminal()
    for _ in progress_bar(range(10), desc="fit", file=terminal):
        pass
    assert "\r" in terminal.getvalue()  # tqdm redraws its one line
    quiet = io.StringIO()
    for _ in progress_bar(range(10), desc="fit", file=quiet, enabled=False):
        pass
    assert quiet.getvalue() == ""


def test_embed_quiet_prints_no_word_vector_bar(tmp_path, capsys):
    archive = tmp_path / "glove.6B.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("glove.6B.2d.txt", "dog 1.0 0.0\ncat 0.0 1.0\n")
    classes = tmp_path / "classes.txt"
    classes.write_text("n02084071\nn02121620\n")
    common = ["embed", "--vectors", str(archive), "--classes", str(classes), "--out", str(tmp_path / "s.h5")]
    assert main(common) == 0
    assert "reading glove.6B.zip:glove.6B.2d.txt: 24.0/24.0 (100%)" in capsys.readouterr().err  # a bar without --quiet
    assert main([*common, "--quiet"]) == 0
    assert "reading glove" not in capsys.readouterr().err
