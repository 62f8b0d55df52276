import json

from goz import models
from goz.cli import main


def test_goz_demo_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC DATA" in printed and "## GOZ results (SYNTHETIC DATA)" in printed
    assert str(out / "results-quick" / "report.md") in printed and "demo hyper-parameters" in printed
    for name in models.list_models():
        if not models.model_class(name).in_demo:  # the published tables are real files the demo lacks
            assert f"| {name} |" not in printed
            continue
        # clip runs on the CLIP-like pair: other data, so every row names its data.
        assert f"| {name} [data " in printed
        for setting in ("zsl", "gzsl"):
            result = json.loads((out / "results-quick" / f"{name}_{setting}.json").read_text())
            chance = 1 / result["classes"]["n_candidates"]  # `> 0` held for a model at chance too
            assert result["data"] == "synthetic" and result["metrics"]["top1"] > 1.5 * chance, (name, setting)
    assert "SYNTHETIC DATA" in (out / "results-quick" / "report.md").read_text()
    assert (out / "data-quick" / "benchmark.json").exists()
    csv_rows = (out / "results-quick" / "table.csv").read_text().splitlines()
    assert csv_rows[0].endswith(",data,data id") and all(",synthetic," in row for row in csv_rows[1:])
    # The demo's synthetic stores are never installed as the published features.
    capsys.readouterr()
    assert main(["fetch", "features", "--from", str(out / "data-quick"), "--home", str(tmp_path / "home")]) == 2
    err = capsys.readouterr().err
    assert "is SYNTHETIC demo data (written by goz.synthetic" in err and "nothing was installed" in err
    assert not (tmp_path / "home" / "features").exists() or not list((tmp_path / "home" / "features").iterdir())
    # A rerun reuses the data and the finished results.
    stamp = (out / "results-quick" / "eszsl_zsl.json").stat().st_mtime_ns
    assert main(["demo", "--quick", "--quiet", "--out", str(out)]) == 0
    assert (out / "results-quick" / "eszsl_zsl.json").stat().st_mtime_ns == stamp
