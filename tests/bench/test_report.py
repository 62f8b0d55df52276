import json

import pytest

from goz.errors import GozError
from goz.bench import results
from goz.bench.report import build_report, build_table
from goz.bench.results import load_results


def _write(directory, model, setting, data="synthetic", store="a", **metrics):
    values = {f"top{k}": 0.1 * k for k in range(1, 6)}
    curve = None
    if setting == "gzsl":
        values |= {f"h_top{k}": 0.05 * k for k in range(1, 6)} | {"u_top1": 0.02, "s_top1": 0.6, "ausuc": 0.25}
        curve = {"unseen": [0.0, 0.2, 0.5], "seen": [0.6, 0.3, 0.0], "calibrations": [-1.0, 0.0, 1.0]}
    result = results.new_result(
        model=model, setting=setting, data=data, seed=0, fingerprints={"data": data, "train_store": store},
        parameters={}, metrics=values | metrics, classes={"n_candidates": 3, "n_test_samples": 9}, inputs={},
        run={"fit_seconds": 1.0, "score_seconds": 0.5, "peak_rss_gb": 0.3}, curve=curve)
    (directory / f"{model}_{setting}.json").write_text(json.dumps(result))


def test_table_values_order_and_files(tmp_path):
    for model in ("eszsl", "conse", "zeta"):
        _write(tmp_path, model, "zsl")
    _write(tmp_path, "conse", "gzsl", u_top1=0.0012)
    (tmp_path / "notes.json").write_text('{"unrelated": true}')
    table = build_table(tmp_path)
    lines = table.splitlines()
    assert lines[0] == "## GOZ results (SYNTHETIC DATA)"
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| model")]
    assert [row.split(" | ")[0] for row in rows] == ["| conse", "| eszsl", "| zeta"]  # paper order, then others
    assert rows[0] == ("| conse | 10.00 | 20.00 | 30.00 | 40.00 | 50.00 | 5.00 | 10.00 | 15.00 | 20.00 | 25.00 | 0.12 "
                       "| 60.00 |")
    assert rows[1].endswith("| 50.00 |  |  |  |  |  |  |  |")  # no gzsl run: empty cells
    assert "SYNTHETIC DATA" in table
    assert (tmp_path / "table.md").read_text() == table
    csv_lines = (tmp_path / "table.csv").read_text().splitlines()
    assert csv_lines[0].split(",")[:2] == ["model", "zsl top1"] and csv_lines[1].startswith("conse,10.00,")


def test_real_data_has_no_synthetic_label(tmp_path):
    _write(tmp_path, "eszsl", "zsl", data="real")
    assert "SYNTHETIC" not in build_table(tmp_path)
    assert "SYNTHETIC" not in build_report(tmp_path).read_text()
    assert not (tmp_path / "seen_unseen.png").exists()  # no gzsl result, no curve


def test_report_with_plots(tmp_path):
    _write(tmp_path, "devise", "zsl")
    _write(tmp_path, "devise", "gzsl")
    report = build_report(tmp_path).read_text()
    assert report.startswith("# GOZ results (SYNTHETIC DATA)")
    assert "devise: AUSUC 25.00" in report and "![top-k accuracy per model](topk.png)" in report
    for png in ("topk.png", "seen_unseen.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp*"))


def test_errors(tmp_path):
    with pytest.raises(GozError, match="no such results directory"):
        load_results(tmp_path / "missing")
    with pytest.raises(GozError, match="no `goz bench` results"):
        load_results(tmp_path)
    (tmp_path / "broken_zsl.json").write_text("{not json")
    with pytest.raises(GozError, match="broken_zsl.json: not a readable results JSON"):
        load_results(tmp_path)


def test_results_of_different_data_are_not_mixed_unless_asked(tmp_path, capsys):
    from goz.cli import main
    _write(tmp_path, "eszsl", "zsl", store="a")
    _write(tmp_path, "devise", "zsl", store="b")
    with pytest.raises(GozError, match="measured on different data .*--allow-mixed"):
        build_table(tmp_path)
    assert main(["report", str(tmp_path)]) == 2 and "--allow-mixed" in capsys.readouterr().err
    assert main(["table", str(tmp_path), "--allow-mixed"]) == 0
    table = capsys.readouterr().out
    assert "MIXED DATA" in table and "| devise [data " in table and "| eszsl [data " in table
    rows = (tmp_path / "table.csv").read_text().splitlines()
    assert rows[0].endswith(",data,data id") and rows[1].split(",")[-2] == "synthetic"


def test_a_result_of_an_earlier_format_is_named(tmp_path):
    (tmp_path / "eszsl_zsl.json").write_text(json.dumps({"model": "eszsl", "setting": "zsl", "top1": 0.1}))
    with pytest.raises(GozError, match="eszsl_zsl.json: a result of an earlier goz"):
        load_results(tmp_path)
