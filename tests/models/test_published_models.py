"""gcn6_published, sgcn_published, dgp_published: the published classifier tables, scored as the GOZ notebook."""

import json

import numpy as np
import pytest

from goz import models, semantics, splits
from goz.catalog import published_table_path
from goz.bench.run import SETTINGS, result_paths, run_bench
from goz.cli import main
from goz.errors import GozError
from goz.models import TrainingData
from goz.models.classifier_table import ClassifierTable
from goz.models.classifier_table import load as load_table
from goz.semantics import SemanticsTable
from goz.store import FeatureStore

PUBLISHED = ("gcn6_published", "sgcn_published", "dgp_published")


def test_classifier_table_round_trip_and_missing_rows(tmp_path):
    table = ClassifierTable(["n00000001", "n00000002"], np.arange(6).reshape(2, 3), [0.5, -1.0], {"source": "x"})
    for name in ("t.h5", "t.npz"):
        again = load_table(table.save(tmp_path / name))
        assert again.wnids == table.wnids
        np.testing.assert_array_equal(again.weights, table.weights)
        np.testing.assert_array_equal(again.bias, table.bias)
    assert load_table(tmp_path / "t.h5").attrs == {"source": "x"}
    _, bias = table.rows(["n00000002", "n00000001"])
    np.testing.assert_array_equal(bias, [-1.0, 0.5])
    with pytest.raises(GozError, match="no classifier for 1 of the 2 classes asked for: n00000009"):
        table.rows(["n00000001", "n00000009"])
    with pytest.raises(GozError, match="goz fetch published"):
        load_table(tmp_path / "absent.h5")


@pytest.mark.parametrize("name", PUBLISHED)
def test_scores_are_x_dot_w_without_the_bias_unless_asked(tmp_path, name):
    rng = np.random.default_rng(1)
    wnids = [f"n{i:08d}" for i in range(5)]
    table = ClassifierTable(wnids, rng.normal(size=(5, 4)), rng.normal(size=5))
    path = table.save(tmp_path / "table.h5")
    data = TrainingData(np.zeros((2, 4), np.float32), np.arange(2), wnids[:2], SemanticsTable([], np.zeros((0, 3))))
    x = rng.normal(size=(3, 4)).astype(np.float32)
    model = models.create(name, table=str(path), progress=False).fit(data)
    np.testing.assert_allclose(model.scores(x, wnids[::-1]), x @ table.weights[::-1].T, rtol=1e-5)
    with_bias = models.create(name, table=str(path), bias=True).fit(data)
    np.testing.assert_allclose(with_bias.scores(x, wnids), x @ table.weights.T + table.bias, rtol=1e-5)
    with pytest.raises(GozError, match=f"{name} .*no classifier for 1 of the 2 classes asked for: n00000077"):
        model.scores(x, [wnids[0], "n00000077"])
    wide = TrainingData(np.zeros((2, 6), np.float32), np.arange(2), wnids[:2], data.semantics)
    with pytest.raises(GozError, match="features have 6 dimensions but the classifiers of .* have 4"):
        models.create(name, table=str(path)).fit(wide)
    with pytest.raises(GozError, match=f"goz fetch published`, or give one with --set {name}.table=PATH"):
        models.create(name, table=str(tmp_path / "none.h5")).fit(data)


def nearest_mean_tables(benchmark, home) -> list[str]:
    """Published tables (under `home`) holding every class's test-store mean: far above chance."""
    wnids = splits.load(benchmark.seen) + splits.load(benchmark.unseen)
    with FeatureStore(benchmark.test) as store:
        means = store.class_means(wnids).astype(np.float32)
    for stem in ("gcn_6", "gcn_2", "adgpm"):
        ClassifierTable(wnids, means, -0.5 * (means ** 2).sum(1)).save(home / "published" / f"{stem}.h5")
    return wnids


def test_bench_scores_every_candidate_without_a_class_vector(synthetic_benchmark, tmp_path, monkeypatch):
    monkeypatch.setenv("GOZ_HOME", str(tmp_path / "home"))
    nearest_mean_tables(synthetic_benchmark, tmp_path / "home")
    assert published_table_path("gcn_6") == tmp_path / "home" / "published" / "gcn_6.h5"
    table = semantics.load(synthetic_benchmark.semantics)
    seen, unseen = splits.load(synthetic_benchmark.seen), splits.load(synthetic_benchmark.unseen)
    partial = SemanticsTable([w for w in table.wnids if w not in {seen[0], unseen[0]}],
                             table.vectors[[w not in {seen[0], unseen[0]} for w in table.wnids]])
    results = run_bench(list(PUBLISHED) + ["eszsl"], list(SETTINGS), synthetic_benchmark.train,
                        synthetic_benchmark.test, partial, synthetic_benchmark.seen, synthetic_benchmark.unseen,
                        tmp_path / "out", threads=1, progress=False)
    by_pair = {(r["model"], r["setting"]): r for r in results}
    for name in PUBLISHED:
        zsl, gzsl = by_pair[(name, "zsl")], by_pair[(name, "gzsl")]
        assert zsl["classes"]["n_candidates"] == len(unseen)
        assert gzsl["classes"]["n_candidates"] == len(unseen) + len(seen)
        assert zsl["classes"]["n_unseen_dropped"] == gzsl["classes"]["n_seen_dropped"] == 0
        assert zsl["parameters"]["bias"] is False and len(zsl["fingerprints"]["classifier_table"]) == 64
        assert zsl["metrics"]["top1"] > 5 / len(unseen)
    assert by_pair[("eszsl", "zsl")]["classes"]["n_candidates"] == len(unseen) - 1  # linear models drop them
    with np.load(result_paths(tmp_path / "out", "dgp_published", "gzsl")[1]) as npz:
        assert {seen[0], unseen[0]} <= set(npz["candidates"])
    # the table's content decides reuse: the same table is reused, another one recomputed
    rerun = {"settings": ["zsl"], "train": synthetic_benchmark.train, "test": synthetic_benchmark.test,
             "semantics": partial, "seen": synthetic_benchmark.seen, "unseen": synthetic_benchmark.unseen,
             "out": tmp_path / "out", "threads": 1, "progress": False}
    json_path = result_paths(tmp_path / "out", "gcn6_published", "zsl")[0]
    stamp = json_path.stat().st_mtime_ns
    (same,) = run_bench(["gcn6_published"], **rerun)
    assert json_path.stat().st_mtime_ns == stamp and same["fingerprint"] == by_pair[("gcn6_published", "zsl")][
        "fingerprint"]
    table = load_table(published_table_path("gcn_6"))
    ClassifierTable(table.wnids, -table.weights, table.bias).save(published_table_path("gcn_6"))
    (changed,) = run_bench(["gcn6_published"], **rerun)
    assert changed["fingerprint"] != same["fingerprint"] and changed["metrics"]["top1"] < same["metrics"]["top1"]
    assert changed["classes"]["n_train_samples"] == 0 < same["classes"]["n_train_samples"]  # alone: no reading


def test_bench_cli_with_published_semantics_and_a_missing_candidate(synthetic_benchmark, tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.setenv("GOZ_HOME", str(tmp_path / "home"))
    b = synthetic_benchmark
    common = ["bench", "--train", str(b.train), "--test", str(b.test), "--seen", str(b.seen), "--unseen",
              str(b.unseen), "--settings", "zsl", "--quiet", "--threads", "1"]
    assert main([*common, "--models", "sgcn_published", "--semantics", "published", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "--semantics published: " in err and "is not installed; run `goz fetch published`" in err
    wnids = nearest_mean_tables(b, tmp_path / "home")
    semantics.load(b.semantics).save(tmp_path / "home" / "published" / "glove.h5")
    assert main([*common, "--models", "gcn2_published,eszsl", "--semantics", "published",
                 "--out", str(tmp_path / "b")]) == 0
    result = json.loads((tmp_path / "b" / "sgcn_published_zsl.json").read_text())
    assert result["inputs"]["semantics"] == str(tmp_path / "home" / "published" / "glove.h5")
    capsys.readouterr()
    unseen = splits.load(b.unseen)
    table = load_table(tmp_path / "home" / "published" / "adgpm.h5")
    keep = [i for i, w in enumerate(wnids) if w != unseen[3]]
    ClassifierTable([wnids[i] for i in keep], table.weights[keep], table.bias[keep]).save(
        tmp_path / "home" / "published" / "adgpm.h5")
    assert main([*common, "--models", "dgp_published", "--semantics", "published", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert f"no classifier for 1 of the {len(unseen)} classes asked for: {unseen[3]}" in err and "Traceback" not in err
