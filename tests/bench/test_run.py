import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from goz import models, semantics, splits
from goz.bench.run import SETTINGS, result_paths, run_bench
from goz.cli import main
from goz.demo import demo_hyperparameters
from goz.errors import GozError, StoreError
from goz.models.base import ZSLModel
from goz.semantics import SemanticsTable
from goz.store import FeatureStore, write_store


def _bench(benchmark, out, models=("eszsl",), settings=SETTINGS, seen=None, semantics=None, **kwargs):
    kwargs = {"hierarchy": benchmark.hierarchy, "classifier_weights": benchmark.classifier_weights,
              "threads": 1, "progress": False} | kwargs
    return run_bench(list(models), list(settings), benchmark.train, benchmark.test, semantics or benchmark.semantics,
                     seen or benchmark.seen, benchmark.unseen, out, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in models.list_models() if models.model_class(n).in_demo])
def test_every_model_far_above_chance_and_deterministic(synthetic_benchmark, tmp_path, name):
    hyperparameters = {name: demo_hyperparameters(name)}
    if models.model_class(name).joint_embedding:  # clip: on the CLIP-like pair, as the demo runs it
        benchmark = synthetic_benchmark
        synthetic_benchmark = replace(benchmark, train=benchmark.clip_train, test=benchmark.clip_test,
                                      semantics=benchmark.clip_semantics)
    first = _bench(synthetic_benchmark, tmp_path / "a", [name], hyperparameters=hyperparameters)
    second = _bench(synthetic_benchmark, tmp_path / "b", [name], hyperparameters=hyperparameters)
    assert [r["setting"] for r in first] == [r["setting"] for r in second] == ["zsl", "gzsl"]
    for a, b in zip(first, second):
        # Every metric of the two runs (top-k, per-class, u/s/H, AUSUC), not just the ones a filter finds.
        assert {"top1", "top5"} <= a["metrics"].keys() and a["metrics"] == b["metrics"]
        assert a["setting"] == "zsl" or {"u_top1", "s_top1", "h_top1", "ausuc"} <= a["metrics"].keys()
        for key in ("topk", "true", "sample_ids"):
            with np.load(result_paths(tmp_path / "a", name, a["setting"])[1]) as left, \
                    np.load(result_paths(tmp_path / "b", name, a["setting"])[1]) as right:
                np.testing.assert_array_equal(left[key], right[key])
        chance = 1 / a["classes"]["n_candidates"]
        assert a["metrics"]["top1"] > 2.2 * chance, (a["setting"], a["metrics"]["top1"], chance)
        assert a["metrics"]["top5"] > 1.6 * min(1.0, 5 * chance), (a["setting"], a["metrics"]["top5"], chance)


def test_results_json_and_predictions(synthetic_benchmark, tmp_path):
    zsl, gzsl = _bench(synthetic_benchmark, tmp_path)
    seen, unseen = splits.load(synthetic_benchmark.seen), splits.load(synthetic_benchmark.unseen)
    assert zsl["data"] == gzsl["data"] == "synthetic"
    assert (zsl["model"], zsl["setting"], zsl["seed"]) == ("eszsl", "zsl", 0)
    assert zsl["classes"]["n_candidates"] == len(unseen) and gzsl["classes"]["n_candidates"] == len(unseen) + len(seen)
    assert zsl["classes"]["n_test_samples"] == 10 * len(unseen) and gzsl["classes"]["n_test_seen_samples"] == 5 * len(seen)
    assert zsl["classes"]["n_train_samples"] == 30 * len(seen) and zsl["parameters"]["gamma"] == 100.0
    assert {"fit_seconds", "score_seconds", "peak_rss_gb", "version_torch", "version_goz", "torch_threads"} <= \
        zsl["run"].keys()
    assert {"train", "test", "semantics", "seen_split", "unseen_split"} <= zsl["inputs"].keys()
    assert {"train_store", "test_store", "semantics", "seen_classes", "unseen_classes", "model", "seed",
            "goz_version"} <= zsl["fingerprints"].keys() and len(zsl["fingerprint"]) == 64
    assert "h_top1" in gzsl["metrics"] and "h_top1" not in zsl["metrics"]
    assert len(gzsl["curve"]["unseen"]) == len(gzsl["curve"]["seen"]) == len(gzsl["curve"]["calibrations"]) > 1
    assert 0 <= gzsl["metrics"]["ausuc"] <= 1
    # Metrics apart from parameters and run facts, one level deep, as CLIP_benchmark's JSON.
    assert all(not isinstance(v, dict) for section in gzsl.values() if isinstance(section, dict)
               for v in section.values())
    for result in (zsl, gzsl):
        json_path, npz_path = result_paths(tmp_path, "eszsl", result["setting"])
        assert json.loads(json_path.read_text()) == result
        with np.load(npz_path, allow_pickle=False) as npz:
            candidates, true, topk = list(npz["candidates"]), npz["true"], npz["topk"]
            assert topk.shape == (result["classes"]["n_test_samples"], 5) and len(candidates) == result["classes"]["n_candidates"]
            np.testing.assert_array_equal(np.array(candidates)[true], npz["sample_wnids"])
            assert npz["sample_ids"].dtype == np.int64 and str(npz["data"]) == "synthetic"
            assert np.mean(topk[:, 0] == true) == pytest.approx(result["metrics"]["top1"], abs=0.01)
        assert candidates[:len(unseen)] == unseen


def test_rerun_skips_finished_pairs_and_force_redoes_them(synthetic_benchmark, tmp_path, caplog):
    _bench(synthetic_benchmark, tmp_path)
    zsl_json, zsl_npz = result_paths(tmp_path, "eszsl", "zsl")
    gzsl_json, _ = result_paths(tmp_path, "eszsl", "gzsl")
    stamps = zsl_json.stat().st_mtime_ns, gzsl_json.stat().st_mtime_ns
    caplog.set_level("INFO")
    again = _bench(synthetic_benchmark, tmp_path)
    assert (zsl_json.stat().st_mtime_ns, gzsl_json.stat().st_mtime_ns) == stamps
    assert [r["setting"] for r in again] == ["zsl", "gzsl"] and "already in" in caplog.text
    gzsl_json.unlink()  # as if killed before the gzsl pair finished
    _bench(synthetic_benchmark, tmp_path)
    assert gzsl_json.exists() and zsl_json.stat().st_mtime_ns == stamps[0]
    _bench(synthetic_benchmark, tmp_path, settings=["zsl"], force=True)
    assert zsl_json.stat().st_mtime_ns != stamps[0]


def test_classes_without_vectors_are_dropped_and_counted(synthetic_benchmark, tmp_path):
    table = semantics.load(synthetic_benchmark.semantics)
    seen, unseen = splits.load(synthetic_benchmark.seen), splits.load(synthetic_benchmark.unseen)
    dropped = {seen[0], unseen[0], unseen[1]}
    kept = [i for i, w in enumerate(table.wnids) if w not in dropped]
    partial = SemanticsTable([table.wnids[i] for i in kept], table.vectors[kept])
    zsl, gzsl = run_bench(["eszsl"], list(SETTINGS), synthetic_benchmark.train, synthetic_benchmark.test, partial,
                          synthetic_benchmark.seen, synthetic_benchmark.unseen, tmp_path, progress=False)
    assert zsl["classes"]["unseen_dropped"] == unseen[:2] and zsl["classes"]["n_unseen_dropped"] == 2
    assert gzsl["classes"]["seen_dropped"] == [seen[0]] and gzsl["classes"]["n_seen_classes"] == len(seen) - 1
    assert zsl["classes"]["n_test_samples"] == 10 * (len(unseen) - 2)
    with np.load(result_paths(tmp_path, "eszsl", "gzsl")[1]) as npz:
        assert not dropped & set(npz["candidates"]) and not dropped & set(npz["sample_wnids"])


def test_classes_sharing_one_vector_are_named_in_a_warning(synthetic_benchmark, tmp_path, caplog):
    table = semantics.load(synthetic_benchmark.semantics)
    unseen = splits.load(synthetic_benchmark.unseen)
    vectors = table.vectors.copy()
    vectors[table.wnids.index(unseen[1])] = vectors[table.wnids.index(unseen[0])]  # two classes, one name
    with caplog.at_level("WARNING"):
        _bench(synthetic_benchmark, tmp_path / "shared", settings=["zsl"],
               semantics=SemanticsTable(table.wnids, vectors))
    assert "1 group(s) of candidate classes share one class vector" in caplog.text
    assert f"{unseen[0]} = {unseen[1]}" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        _bench(synthetic_benchmark, tmp_path / "distinct", settings=["zsl"])
    assert "share one class vector" not in caplog.text


def test_bad_inputs_give_clear_errors(synthetic_benchmark, tmp_path):
    b = synthetic_benchmark
    with pytest.raises(StoreError, match="no such feature store"):
        run_bench(["eszsl"], ["zsl"], tmp_path / "missing.h5", b.test, b.semantics, b.seen, b.unseen, tmp_path)
    seen = splits.load(b.seen)
    with FeatureStore(b.train) as store:
        partial = write_store(tmp_path / "partial.h5",
                              {w: (store.features(w), store.ids(w)) for w in seen[1:]})
    with pytest.raises(StoreError, match=rf"training store lacks 1 of the {len(seen)} seen classes.*{seen[0]}"):
        run_bench(["eszsl"], ["zsl"], partial, b.test, b.semantics, b.seen, b.unseen, tmp_path, progress=False)
    unseen = splits.load(b.unseen)
    no_unseen = SemanticsTable(seen, semantics.load(b.semantics).select(seen)[1])
    with pytest.raises(GozError, match=f"none of the {len(unseen)} unseen classes has a class vector"):
        run_bench(["eszsl"], ["zsl"], b.train, b.test, no_unseen, b.seen, b.unseen, tmp_path, progress=False)
    with pytest.raises(GozError, match="unknown model"):
        run_bench(["nope"], ["zsl"], b.train, b.test, b.semantics, b.seen, b.unseen, tmp_path)
    with pytest.raises(GozError, match="unknown setting"):
        run_bench(["eszsl"], ["gzls"], b.train, b.test, b.semantics, b.seen, b.unseen, tmp_path)
    lines = b.hierarchy.read_text().splitlines()
    (tmp_path / "pruned.tsv").write_text("\n".join(line for line in lines if not line.startswith(unseen[0])))
    with pytest.raises(GozError, match=f"pruned.tsv: 1 classes are not in it, e.g. {unseen[0]}"):
        _bench(b, tmp_path, ["sgcn"], hierarchy=tmp_path / "pruned.tsv")
    with pytest.raises(GozError, match="eszsl.*no hyper-parameter no_such_parameter"):
        _bench(b, tmp_path, hyperparameters={"eszsl": {"no_such_parameter": 1}})
    assert not list(tmp_path.glob("*.json"))


class _MeanTemplates(ZSLModel):
    """Test-only model fitted on class means: a sample takes its nearest seen class mean's class vector."""

    fits_on_class_means = True

    def __init__(self, seed=0, device="cpu", progress=True):
        self.seed, self.device, self.progress = seed, device, progress

    def fit(self, data):
        self.fit_rows_, self.dtype_ = len(data.features), data.features.dtype
        self.means_ = np.asarray(data.features, np.float64)
        self.seen_vectors_ = data.semantics.select(data.seen_wnids)[1]
        self.semantics_ = data.semantics
        return self

    def scores(self, features, candidates):
        nearest = np.argmax(np.asarray(features, np.float64) @ self.means_.T, axis=1)
        vectors = self.semantics_.select(candidates)[1]
        return (self.seen_vectors_[nearest] @ vectors.T).astype(np.float32)


@pytest.fixture
def mean_templates_model():
    models.register_model("test_mean_templates")(_MeanTemplates)
    yield "test_mean_templates"
    models._REGISTRY.pop("test_mean_templates")


def test_class_mean_models_get_streamed_means_and_float16_samples_work(synthetic_benchmark, tmp_path,
                                                                       mean_templates_model):
    seen = splits.load(synthetic_benchmark.seen)
    (result,) = _bench(synthetic_benchmark, tmp_path, [mean_templates_model], ["zsl"], per_class=7,
                       train_dtype="float16")
    assert result["run"]["fit_on_class_means"] and result["run"]["train_dtype"] == ""  # no sample held in memory
    assert result["classes"]["n_train_samples"] == 7 * len(seen)
    (devise,) = _bench(synthetic_benchmark, tmp_path, ["devise"], ["zsl"], train_dtype="float16",
                       hyperparameters={"devise": {"n_batches": 5}})
    assert devise["run"]["train_dtype"] == "float16" and not devise["run"]["fit_on_class_means"]


def test_cli_bench_table_report(synthetic_benchmark, tmp_path, capsys):
    b = synthetic_benchmark
    out = tmp_path / "results"
    argv = ["bench", "--models", "eszsl,devise", "--settings", "zsl,gzsl", "--train", str(b.train), "--test",
            str(b.test), "--semantics", str(b.semantics), "--seen", str(b.seen), "--unseen", str(b.unseen),
            "--hierarchy", str(b.hierarchy), "--per-class", "20", "--set", "devise.n_batches=20", "--threads", "1", "--quiet",
            "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "eszsl zsl" in printed and "H top1" in printed
    result = json.loads((out / "devise_gzsl.json").read_text())
    assert result["parameters"]["n_batches"] == 20 and result["run"]["torch_threads"] == 1 and result["classes"]["n_train_samples"] == 20 * len(splits.load(b.seen))
    assert main(["table", str(out)]) == 0
    table = capsys.readouterr().out
    assert "SYNTHETIC DATA" in table and "| devise |" in table and "| eszsl |" in table
    assert (out / "table.csv").read_text().startswith("model,zsl top1")
    assert (out / "table.md").read_text() == table
    assert main(["report", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "SYNTHETIC DATA" in report and "topk.png" in report and "seen_unseen.png" in report
    assert (out / "topk.png").stat().st_size > 1000 and (out / "seen_unseen.png").stat().st_size > 1000


def test_cli_errors(synthetic_benchmark, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GOZ_HOME", str(tmp_path / "home"))
    b = synthetic_benchmark
    splits = ["--seen", str(b.seen), "--unseen", str(b.unseen)]  # the published ones would be fetched first
    assert main(["bench", "--semantics", str(b.semantics), *splits, "--out", str(tmp_path / "r")]) == 2
    assert "goz fetch features" in capsys.readouterr().err
    assert main(["bench", "--train", str(b.train), "--test", str(b.test), "--semantics", str(b.semantics),
                 "--seen", str(b.seen), "--unseen", str(b.unseen), "--set", "eszsl", "--out", str(tmp_path)]) == 2
    assert "MODEL.PARAM=VALUE" in capsys.readouterr().err
    assert main(["table", str(tmp_path / "nothing")]) == 2
    assert "no such results directory" in capsys.readouterr().err


def test_wordnet_hierarchy_is_loaded_on_request(synthetic_benchmark, tmp_path):
    # The synthetic classes are not WordNet synsets: the packaged WordNet is loaded and the miss reported.
    with pytest.raises(GozError, match="hierarchy wordnet: 60 classes are not in it"):
        _bench(synthetic_benchmark, tmp_path, ["sgcn"], hierarchy="wordnet", graph="split")
    with pytest.raises(GozError, match="60 of the given classes are not synsets.*--graph split"):
        _bench(synthetic_benchmark, tmp_path, ["sgcn"], hierarchy="wordnet")  # the imagenet graph by default
    with pytest.raises(GozError, match="unknown graph 'tree'"):
        _bench(synthetic_benchmark, tmp_path, ["sgcn"], graph="tree")


def test_classifier_weights_from_a_torchvision_state_dict_equal_the_array(synthetic_benchmark, tmp_path):
    """The original graph targets were a ResNet's fc layer: a state dict whose rows are the sorted wnids."""
    import torch

    seen = splits.load(synthetic_benchmark.seen)
    weights = np.load(synthetic_benchmark.classifier_weights)["weights"]  # rows in seen-split order
    shuffle = np.random.default_rng(0).permutation(len(seen))  # a seen split that is not sorted
    shuffled_seen = splits.save([seen[i] for i in shuffle], tmp_path / "seen_shuffled.txt")
    np.save(tmp_path / "weights_shuffled.npy", weights[shuffle])
    order = np.argsort(seen)  # torchvision's class order: sorted wnids
    torch.save({"fc.weight": torch.from_numpy(weights[order, :-1]), "fc.bias": torch.from_numpy(weights[order, -1])},
               tmp_path / "resnet50_fc.pth")
    hyperparameters = {"sgcn": {"epochs": 5, "hidden": [16]}}
    from_array = _bench(synthetic_benchmark, tmp_path / "npy", ["sgcn"], ["zsl"], hyperparameters=hyperparameters,
                        seen=shuffled_seen, classifier_weights=tmp_path / "weights_shuffled.npy")
    from_state_dict = _bench(synthetic_benchmark, tmp_path / "pth", ["sgcn"], ["zsl"], hyperparameters=hyperparameters,
                             seen=shuffled_seen, classifier_weights=tmp_path / "resnet50_fc.pth")
    assert from_array[0]["metrics"]["top1"] == from_state_dict[0]["metrics"]["top1"]
    with np.load(result_paths(tmp_path / "npy", "sgcn", "zsl")[1]) as a, \
            np.load(result_paths(tmp_path / "pth", "sgcn", "zsl")[1]) as b:
        np.testing.assert_array_equal(a["topk"], b["topk"])
    (tmp_path / "bad.txt").write_text("not weights")
    with pytest.raises(GozError, match="bad.txt"):
        _bench(synthetic_benchmark, tmp_path / "bad", ["sgcn"], ["zsl"], classifier_weights=tmp_path / "bad.txt")


def test_out_that_is_a_file_is_refused_before_any_work(synthetic_benchmark, tmp_path):
    (tmp_path / "results").write_text("keep me")
    with pytest.raises(GozError, match="is a file"):
        _bench(synthetic_benchmark, tmp_path / "results")
    assert (tmp_path / "results").read_text() == "keep me"


class _CaptureTrainingData(ZSLModel):
    """Test-only model that records what `goz bench` hands to fit and scores candidates at random."""

    captured = []
    uses_graph = True

    def fit(self, data):
        type(self).captured.append(data)
        return self

    def scores(self, features, candidates):
        return np.random.default_rng(0).random((len(features), len(candidates)), dtype=np.float32)


def test_classes_without_a_vector_stay_targets_and_candidates_for_graph_models(synthetic_benchmark, tmp_path):
    """Linear models drop them (SemanticsTable.select); graph models regress the seen ones and keep
    every candidate, as the original's GCN notebook kept all 1,500 classes. Counted either way."""
    b = synthetic_benchmark
    seen, unseen = splits.load(b.seen), splits.load(b.unseen)
    table = semantics.load(b.semantics)
    keep = [i for i, w in enumerate(table.wnids) if w not in (seen[0], unseen[0])]
    SemanticsTable([table.wnids[i] for i in keep], table.vectors[keep]).save(tmp_path / "sem.h5")
    models.register_model("test_capture")(_CaptureTrainingData)
    try:
        (result,) = _bench(b, tmp_path / "out", ["test_capture"], ["gzsl"], semantics=tmp_path / "sem.h5")
    finally:
        models._REGISTRY.pop("test_capture")
    data = _CaptureTrainingData.captured[-1]
    assert data.seen_wnids == seen and seen[0] in data.graph.index and unseen[0] in data.graph.index
    assert set(np.unique(data.labels)) == set(range(len(seen)))
    assert len(data.classifier_weights) == len(seen)
    candidates = np.load(result_paths(tmp_path / "out", "test_capture", "gzsl")[1])["candidates"]
    assert {seen[0], unseen[0]} <= set(candidates) and len(candidates) == len(seen) + len(unseen)
    counts = result["classes"]
    assert counts["seen_dropped"] == [] and counts["n_unseen_classes"] == len(unseen)
    assert counts["graph"] == "split" and counts["graph_nodes"] == len(data.graph)
    assert counts["graph_edges"] == data.graph.parent_edges.nnz
    kept = {table.wnids[i] for i in keep}
    assert counts["graph_nodes_without_vector"] == sum(w not in kept for w in data.graph.wnids) >= 2
    linear, graph = _bench(b, tmp_path / "real", ["eszsl", "sgcn"], ["zsl"], semantics=tmp_path / "sem.h5",
                           hyperparameters={"sgcn": {"epochs": 5, "hidden": [16]}})
    assert linear["classes"]["n_seen_dropped"] == 1 and linear["classes"]["unseen_dropped"] == [unseen[0]]
    assert "graph_nodes" not in linear["classes"] and linear["classes"]["n_candidates"] == len(unseen) - 1
    assert graph["classes"]["n_seen_dropped"] == 0 and graph["classes"]["n_candidates"] == len(unseen)
    assert graph["classes"]["n_test_samples"] > linear["classes"]["n_test_samples"]
    assert all(0 <= r["metrics"]["top1"] <= 1 for r in (linear, graph))


def test_graph_models_use_the_published_imagenet_graph_by_default(tmp_path, caplog):
    """On WordNet classes, `goz bench` trains graph models on the 32,324-node graph, records its counts,
    and warns when more than 1 % of its nodes have no class vector."""
    from goz.wordnet.imagenet_graph import imagenet_graph

    graph = imagenet_graph()
    seen, unseen = graph.wnids[:12], splits.load("2-hops")[:6]
    rng = np.random.default_rng(0)
    classes = {w: (rng.normal(size=(4, 8)).astype(np.float32), np.arange(4)) for w in seen + unseen}
    write_store(tmp_path / "train.h5", {w: classes[w] for w in seen})
    write_store(tmp_path / "test.h5", classes)
    SemanticsTable(seen + unseen, rng.normal(size=(len(seen + unseen), 5))).save(tmp_path / "sem.h5")
    (tmp_path / "seen.txt").write_text("\n".join(seen))
    (tmp_path / "unseen.txt").write_text("\n".join(unseen))
    code = main(["bench", "--models", "sgcn", "--settings", "zsl", "--train", str(tmp_path / "train.h5"),
                 "--test", str(tmp_path / "test.h5"), "--semantics", str(tmp_path / "sem.h5"),
                 "--seen", str(tmp_path / "seen.txt"), "--unseen", str(tmp_path / "unseen.txt"),
                 "--set", "sgcn.epochs=2", "--set", "sgcn.hidden=[8]", "--set", "sgcn.classifier_batches=2",
                 "--threads", "1", "--quiet", "--out", str(tmp_path / "out")])
    assert code == 0
    result = json.loads((tmp_path / "out" / "sgcn_zsl.json").read_text())
    counts = result["classes"]
    assert (counts["graph"], counts["graph_nodes"], counts["graph_edges"]) == ("imagenet", 32_324, 32_544)
    assert counts["graph_nodes_without_vector"] == 32_324 - 18 and result["inputs"]["graph"] == "imagenet"
    assert result["fingerprints"]["graph"] == graph.fingerprint()
    assert any("have no class vector" in r.message and "goz embed --classes imagenet-graph" in r.message
               for r in caplog.records)
    split_graph = _bench_split_graph(tmp_path, seen, unseen)
    assert split_graph["classes"]["graph"] == "split" and split_graph["classes"]["graph_nodes"] < 200


def _bench_split_graph(tmp_path, seen, unseen):
    (result,) = run_bench(["sgcn"], ["zsl"], tmp_path / "train.h5", tmp_path / "test.h5", tmp_path / "sem.h5",
                          seen, unseen, tmp_path / "split", graph="split", threads=1, progress=False,
                          hyperparameters={"sgcn": {"epochs": 2, "hidden": [8], "classifier_batches": 2}})
    return result


def test_class_means_are_reused_across_runs_on_the_same_training_store_only(synthetic_benchmark, tmp_path,
                                                                         monkeypatch):
    from goz.bench import run as run_module
    run_module._CLASS_MEANS.clear()
    unseen = splits.load(synthetic_benchmark.unseen)
    halves = [tmp_path / "first.txt", tmp_path / "second.txt"]
    halves[0].write_text("\n".join(unseen[: len(unseen) // 2]) + "\n")
    halves[1].write_text("\n".join(unseen[len(unseen) // 2:]) + "\n")

    def bench(out, unseen_path):
        return run_bench(["eszsl"], ["zsl"], synthetic_benchmark.train, synthetic_benchmark.test,
                         synthetic_benchmark.semantics, synthetic_benchmark.seen, unseen_path, out,
                         threads=1, progress=False)
    first = bench(tmp_path / "a", halves[0])[0]
    reads = []
    original = FeatureStore.iter_classes
    monkeypatch.setattr(FeatureStore, "iter_classes", lambda self, *a, **k: reads.append(self.path) or
                        original(self, *a, **k))
    second = bench(tmp_path / "b", halves[1])[0]       # another draw of unseen classes: the means are reused
    assert reads == [] and second["classes"]["n_train_samples"] == first["classes"]["n_train_samples"]
    run_module._CLASS_MEANS.clear()
    fresh = bench(tmp_path / "c", halves[1])[0]        # computed again: the same numbers
    assert reads and fresh["metrics"] == second["metrics"]
    # another training store (other content) is read, never served from the cache
    reads.clear()
    with FeatureStore(synthetic_benchmark.train) as store:
        classes = {w: (store.features(w)[:5] * 2, store.ids(w)[:5]) for w in store.classes}
    other = write_store(tmp_path / "other_train.h5", classes)
    run_bench(["eszsl"], ["zsl"], other, synthetic_benchmark.test, synthetic_benchmark.semantics,
              synthetic_benchmark.seen, halves[1], tmp_path / "d", threads=1, progress=False)
    assert [Path(p).name for p in reads] == ["other_train.h5"]


def test_graph_models_given_the_seen_classifiers_read_only_class_means(synthetic_benchmark, tmp_path, monkeypatch):
    from goz.bench import run as run_module
    hyperparameters = {"sgcn": {"epochs": 20, "hidden": [64]}}
    means = _bench(synthetic_benchmark, tmp_path / "means", ["sgcn"], settings=["zsl"],
                   hyperparameters=hyperparameters)[0]
    assert means["run"]["fit_on_class_means"] is True
    # The samples path (as before) gives the same numbers: the classifiers, not the samples, are regressed.
    monkeypatch.setattr(run_module, "_fits_on_means", lambda model, inputs: model.fits_on_class_means)
    samples = _bench(synthetic_benchmark, tmp_path / "samples", ["sgcn"], settings=["zsl"],
                     hyperparameters=hyperparameters)[0]
    assert samples["run"]["fit_on_class_means"] is False and samples["metrics"] == means["metrics"]
