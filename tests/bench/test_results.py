"""Results identity: a result is reused only when everything that decided it is identical."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from goz import semantics, splits
from goz.bench.results import read_result, result_paths
from goz.bench.run import run_bench
from goz.cli import main
from goz.semantics import SemanticsTable
from goz.store import FeatureStore, write_store

SGCN_FAST = {"epochs": 3, "hidden": [16]}


def _bench(b, out, models=("eszsl",), **kwargs):
    arguments = dict(train=b.train, test=b.test, semantics=b.semantics, seen=b.seen, unseen=b.unseen,
                     hierarchy=b.hierarchy, classifier_weights=b.classifier_weights, per_class=None,
                     hyperparameters={"sgcn": SGCN_FAST}, progress=False) | kwargs
    return run_bench(list(models), ["zsl"], out=out, **arguments)


def _stamp(out, model="eszsl"):
    return result_paths(out, model, "zsl")[0].stat().st_mtime_ns


def test_identical_rerun_reuses_and_every_change_recomputes(synthetic_benchmark, tmp_path, caplog):
    b, out = synthetic_benchmark, tmp_path / "results"
    caplog.set_level(logging.INFO)
    (first,) = _bench(b, out)
    stamp = _stamp(out)
    assert _bench(b, out)[0]["fingerprint"] == first["fingerprint"] and _stamp(out) == stamp
    assert "already in" in caplog.text

    def recomputed(expected_change, **kwargs):
        caplog.clear()
        (result,) = _bench(b, out, **kwargs)
        assert result["fingerprint"] != first["fingerprint"]
        assert "recomputed, the earlier result" in caplog.text and expected_change in caplog.text, caplog.text
        return result

    changed = recomputed("hyper-parameters (gamma 100.0 -> 10.0, lam 100.0 -> 10000.0)",
                         hyperparameters={"eszsl": {"gamma": 10.0, "lam": 10000.0}})
    assert changed["parameters"]["gamma"] == 10.0 and read_result(result_paths(out, "eszsl", "zsl")[0]) == changed
    recomputed("seed 0 -> 1", seed=1)
    recomputed("per_class None -> 7", per_class=7)
    seen = splits.load(b.seen)
    recomputed("seen classes", seen=seen[1:], classifier_weights=None)
    table = semantics.load(b.semantics)
    recomputed("semantics", semantics=SemanticsTable(table.wnids, table.vectors * 2.0))
    with FeatureStore(b.train) as store:
        classes = {w: (store.features(w), store.ids(w)) for w in store.classes}
    classes[seen[0]] = (classes[seen[0]][0] + 1.0, classes[seen[0]][1])  # one class's features changed
    recomputed("train store", train=write_store(tmp_path / "train2.h5", classes))
    # Back to the first configuration: measured again (its result had been replaced), same numbers.
    assert _bench(b, out)[0]["metrics"] == first["metrics"]


def test_graph_and_classifier_weights_decide_graph_models(synthetic_benchmark, tmp_path, caplog):
    b, out = synthetic_benchmark, tmp_path / "results"
    caplog.set_level(logging.INFO)
    (first,) = _bench(b, out, ["sgcn"])
    assert {"graph", "classifier_weights"} <= first["fingerprints"].keys()
    lines = b.hierarchy.read_text().splitlines()
    (tmp_path / "edges.tsv").write_text("\n".join(lines + lines[:0]) + "\n")
    assert _bench(b, out, ["sgcn"], hierarchy=tmp_path / "edges.tsv")[0]["fingerprint"] == first["fingerprint"]
    child, parent = lines[-1].split("\t")
    grandparent = next(line.split("\t")[1] for line in lines if line.startswith(parent + "\t"))
    (tmp_path / "edges.tsv").write_text("\n".join(lines[:-1] + [f"{child}\t{grandparent}"]) + "\n")
    caplog.clear()
    _bench(b, out, ["sgcn"], hierarchy=tmp_path / "edges.tsv")
    assert "differs in: graph" in caplog.text
    weights = np.load(b.classifier_weights)["weights"]
    caplog.clear()
    _bench(b, out, ["sgcn"], classifier_weights=weights * 2.0)
    assert "classifier weights" in caplog.text
    # A linear model does not read the graph: another graph does not recompute it.
    (eszsl,) = _bench(b, out)
    caplog.clear()
    assert _bench(b, out, hierarchy=tmp_path / "edges.tsv")[0]["fingerprint"] == eszsl["fingerprint"]


def test_demo_with_another_seed_reports_new_results(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--quiet", "--out", str(out)]) == 0
    first = read_result(out / "results-quick" / "eszsl_zsl.json")
    assert main(["demo", "--quick", "--quiet", "--seed", "1", "--out", str(out)]) == 0
    second = read_result(out / "results-quick" / "eszsl_zsl.json")
    assert second["seed"] == 1 and second["fingerprints"]["train_store"] != first["fingerprints"]["train_store"]
    assert second["metrics"] != first["metrics"]


def test_store_fingerprints_are_recorded_or_computed_once(synthetic_benchmark, tmp_path, monkeypatch):
    import h5py

    from goz.store import FINGERPRINT_ATTR
    monkeypatch.setenv("GOZ_HOME", str(tmp_path / "home"))
    with FeatureStore(synthetic_benchmark.test) as store:
        recorded = store.content_fingerprint()
        classes = {w: (store.features(w), store.ids(w)) for w in store.classes}
    # A store written elsewhere (no recorded fingerprint, no class digests): computed, then cached.
    with h5py.File(tmp_path / "foreign.h5", "w") as h5:
        for wnid, (features, ids) in classes.items():
            h5.create_dataset(f"images/{wnid}", data=features)
            h5.create_dataset(f"idx/{wnid}", data=ids)
    with FeatureStore(tmp_path / "foreign.h5") as store:
        assert FINGERPRINT_ATTR not in store.attrs and store.content_fingerprint() == recorded
    assert (tmp_path / "home" / "cache" / "store-fingerprints.json").exists()
    monkeypatch.setattr("goz.store.class_digest", lambda *a: pytest.fail("hashed twice"))
    with FeatureStore(tmp_path / "foreign.h5") as store:
        assert store.content_fingerprint() == recorded
