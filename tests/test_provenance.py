"""Honest provenance: synthetic stores are labelled and never installed as real; linked stores are reported."""

import json

import h5py
import numpy as np
import pytest

from goz import assets, splits
from goz.bench.analysis import analyze_bias, analyze_errors
from goz.bench.run import run_bench
from goz.cli import main
from goz.errors import FetchError, StoreError
from goz.store import FeatureStore, write_store
from goz.wordnet.edges import load_hierarchy


def real_looking_store(path, classes=3):
    rng = np.random.default_rng(0)
    return write_store(path, {f"n{i:08d}": (rng.normal(size=(4, 8)), np.arange(4)) for i in range(classes)})


def linked_copy(source, path, kind="external"):
    """A store whose every dataset is a link: external (into `source`) or soft (into a hidden group)."""
    with FeatureStore(source) as store:
        classes = store.classes
    with h5py.File(path, "w") as h5:
        if kind == "soft":
            with h5py.File(source, "r") as original:
                for group in ("images", "idx"):
                    original.copy(group, h5, name=f"elsewhere_{group}")
        for group in ("images", "idx"):
            h5.create_group(group)
            for wnid in classes:
                h5[group][wnid] = (h5py.ExternalLink(str(source), f"/{group}/{wnid}") if kind == "external"
                                   else h5py.SoftLink(f"/elsewhere_{group}/{wnid}"))
    return path


def test_a_store_says_whether_it_is_synthetic(synthetic_benchmark, tmp_path):
    with FeatureStore(synthetic_benchmark.train) as store:
        assert store.is_synthetic and store.links() == []
    with FeatureStore(real_looking_store(tmp_path / "real.h5")) as store:
        assert not store.is_synthetic


def test_fetch_features_refuses_a_synthetic_store_and_installs_nothing(synthetic_benchmark, tmp_path, capsys):
    source = tmp_path / "copies"
    source.mkdir()
    real_looking_store(source / "train_features.h5")
    (source / "test_features.h5").write_bytes(synthetic_benchmark.test.read_bytes())
    home = tmp_path / "home"
    with pytest.raises(FetchError, match="is SYNTHETIC demo data .* nothing was installed"):
        assets.fetch("features", source=source, home=home)
    assert not (home / "features" / "train_features.h5").exists()  # the real-looking one was not installed either
    assert main(["fetch", "features", "--from", str(source / "test_features.h5"), "--home", str(home)]) == 2
    assert "SYNTHETIC" in capsys.readouterr().err
    assert not (home / "features").exists() or not list((home / "features").iterdir())


@pytest.mark.parametrize("kind", ["external", "soft"])
def test_store_info_check_reports_links(synthetic_benchmark, tmp_path, capsys, kind):
    linked = linked_copy(synthetic_benchmark.train, tmp_path / "train.h5", kind)  # named as `goz fetch` expects
    assert main(["store", "info", str(linked), "--check"]) == 1
    out = capsys.readouterr().out
    wnid = splits.load(synthetic_benchmark.seen)[0]
    expected = (f"images/{wnid}: external link to {synthetic_benchmark.train}:/images/{wnid}" if kind == "external"
                else f"images/{wnid}: soft link to /elsewhere_images/{wnid}")
    assert f"link       {expected}" in out and "check      NOT OK" in out and "check      ok" not in out
    assert main(["store", "info", str(linked), "--check", "--json"]) == 1
    assert expected in json.loads(capsys.readouterr().out)["links"]
    assert main(["store", "info", str(synthetic_benchmark.train), "--check"]) == 0
    assert "check      ok: every value finite, ids unique, no links" in capsys.readouterr().out
    with pytest.raises(FetchError, match="HDF5 soft or external links"):
        assets.fetch("features", source=linked, home=tmp_path / "home")


def test_bench_refuses_a_linked_store_unless_allowed(synthetic_benchmark, tmp_path, capsys):
    b = synthetic_benchmark
    linked = linked_copy(b.train, tmp_path / "linked.h5")
    common = {"models": ["eszsl"], "settings": ["zsl"], "test": b.test, "semantics": b.semantics, "seen": b.seen,
              "unseen": b.unseen, "threads": 1, "progress": False}
    with pytest.raises(StoreError, match="linked.h5: .* links, so its values come from elsewhere.*--allow-links"):
        run_bench(train=linked, out=tmp_path / "refused", **common)
    assert not (tmp_path / "refused" / "eszsl_zsl.json").exists()
    (allowed,) = run_bench(train=linked, out=tmp_path / "allowed", allow_links=True, **common)
    (direct,) = run_bench(train=b.train, out=tmp_path / "direct", **common)
    assert allowed["metrics"]["top1"] == direct["metrics"]["top1"]
    argv = ["bench", "--models", "eszsl", "--settings", "zsl", "--train", str(linked), "--test", str(b.test),
            "--semantics", str(b.semantics), "--seen", str(b.seen), "--unseen", str(b.unseen), "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "cli")]) == 2
    assert "--allow-links" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "cli"), "--allow-links"]) == 0


def test_analysis_outputs_of_synthetic_data_say_so(synthetic_benchmark, tmp_path):
    b = synthetic_benchmark
    hierarchy = load_hierarchy(b.hierarchy)
    run_bench(["eszsl"], ["zsl"], b.train, b.test, b.semantics, b.seen, b.unseen, tmp_path / "results",
              threads=1, progress=False)
    errors = analyze_errors(tmp_path / "results", hierarchy=hierarchy, out=tmp_path / "errors")
    assert errors.synthetic and (tmp_path / "errors" / "errors.md").read_text().startswith(
        "# Error structure of top-1 predictions (SYNTHETIC DATA)\n\n**SYNTHETIC DATA")
    seen, unseen = splits.load(b.seen), splits.load(b.unseen)
    bias = analyze_bias(seen, unseen, hierarchy=hierarchy, train=b.train, test=b.test, out=tmp_path / "bias")
    assert bias.synthetic and "(SYNTHETIC DATA)" in (tmp_path / "bias" / "bias.md").read_text().splitlines()[0]
    # the same results marked real: no label
    for path in (tmp_path / "results").glob("*.json"):
        path.write_text(json.dumps(json.loads(path.read_text()) | {"data": "real"}))
    for path in (tmp_path / "results").glob("*.npz"):  # the predictions files say their data kind too
        with np.load(path) as stored:
            arrays = dict(stored) | {"data": np.array("real")}
        np.savez(path, **arrays)
    assert "SYNTHETIC" not in analyze_errors(tmp_path / "results", hierarchy=hierarchy).markdown()
    assert "SYNTHETIC" not in analyze_bias(seen, unseen, hierarchy=hierarchy).markdown()
