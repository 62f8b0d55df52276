"""The DGP protocol (`--protocol dgp`), any k (`--topk`), the deterministic test subset and missing
test classes, through `run_bench` and the CLI."""

import numpy as np
import pytest

from goz import models, splits
from goz.bench.evaluate import StreamingEvaluation, evaluate
from goz.bench.report import build_table
from goz.bench.results import per_class_hits, read_predictions, result_paths
from goz.bench.run import run_bench
from goz.cli import main
from goz.errors import GozError, StoreError
from goz.models.base import ZSLModel
from goz.store import FeatureStore, write_store


def dgp_hits(table: np.ndarray, true: np.ndarray, ks) -> np.ndarray:
    """DGP's `test_on_subset`, literally: rks = (table >= gth_score).sum(dim=1); hit when rks <= k."""
    gth_score = table[np.arange(len(true)), true][:, None]
    rks = (table >= gth_score).sum(axis=1)
    return np.array([(rks <= k).sum() for k in ks])


def test_hit_at_k_is_dgps_rule_on_a_toy_case_with_ties():
    table = np.array([[0.9, 0.9, 0.1, 0.0],     # true 0 ties with 1: rks 2 -> a miss at 1, a hit at 2
                      [0.5, 0.7, 0.7, 0.7],     # true 1 ties with 2, 3: rks 3 -> hit from k = 3
                      [0.2, 0.1, 0.3, 0.0],     # true 2 alone at the top: rks 1
                      [0.4, 0.4, 0.4, 0.4]],    # constant: rks 4 -> a hit only when k covers all
                     dtype=np.float32)
    true = np.array([0, 1, 2, 3])
    ks = (1, 2, 3, 4)
    by_hand = np.array([1, 2, 3, 4])           # hits at k = 1, 2, 3, 4 (samples 2 | 0 | 1 | 3)
    np.testing.assert_array_equal(dgp_hits(table, true, ks), by_hand)
    streamed = StreamingEvaluation(list("abcd"), true, ks=ks)
    streamed.update(table[:3])
    streamed.update(table[3:])
    metrics = streamed.finish().metrics
    assert [metrics[f"top{k}"] * 4 for k in ks] == list(by_hand)
    assert evaluate(table, true, list("abcd"), ks=ks) == metrics


class _IntegerScores(ZSLModel):
    """Test-only: score(x, c) = floor(4 x[d(c)]): integers, many ties, batch-independent."""

    needs_class_vectors = False

    def fit(self, data):
        self.dim_ = data.features.shape[1]
        return self

    def scores(self, features, candidates):
        columns = [int(wnid[1:]) % self.dim_ for wnid in candidates]
        return np.floor(4 * np.asarray(features, dtype=np.float64)[:, columns]).astype(np.float32)


@pytest.fixture
def integer_model():
    models.register_model("test_protocol_integers")(_IntegerScores)
    yield "test_protocol_integers"
    models._REGISTRY.pop("test_protocol_integers")


def _dgp(b, out, model, settings=("zsl", "gzsl"), **kwargs):
    return run_bench([model], list(settings), b.train, b.test, b.semantics, b.seen, b.unseen, out,
                     protocol="dgp", per_class=3, threads=1, progress=False, **kwargs)


def test_dgp_protocol_candidates_samples_and_hits(synthetic_benchmark, integer_model, tmp_path):
    b = synthetic_benchmark
    seen, unseen = splits.load(b.seen), splits.load(b.unseen)
    zsl, gzsl = _dgp(b, tmp_path, integer_model, test_fraction=0.25)
    # 10 test samples per class: DGP keeps max(1, round(10 x 0.25)) = 2 (Python rounds 2.5 to even).
    assert zsl["classes"]["n_test_samples"] == gzsl["classes"]["n_test_samples"] == 2 * len(unseen)
    assert zsl["classes"]["n_candidates"] == len(unseen)
    assert gzsl["classes"]["n_candidates"] == len(unseen) + len(seen)   # --consider-trains: the train classes too
    assert gzsl["classes"]["n_test_seen_samples"] == 0 and not any(k.startswith(("u_", "s_", "h_"))
                                                                    for k in gzsl["metrics"])
    assert sorted(k for k in zsl["metrics"] if not k.endswith("per_class")) == \
        sorted(f"top{k}" for k in (1, 2, 5, 10, 20))
    assert gzsl["protocol"] == {"name": "dgp", "ks": [1, 2, 5, 10, 20], "test_samples": "fraction 0.25",
                                "consider_trains": True, "skip_missing_classes": False}
    assert zsl["fingerprints"]["protocol"] == "dgp" and zsl["fingerprints"]["test_samples"] == "fraction 0.25"
    for result in (zsl, gzsl):
        predictions = read_predictions(result_paths(tmp_path, integer_model, result["setting"])[1])
        with FeatureStore(b.test) as store:
            rows = [np.flatnonzero(np.isin(store.ids(w), predictions.sample_ids[predictions.sample_wnids == w]))
                    for w in unseen]
            features = np.concatenate([store.features(w)[r] for w, r in zip(unseen, rows)])
        model = _IntegerScores()
        model.dim_ = features.shape[1]
        table = model.scores(features, predictions.candidates)
        hits = dgp_hits(table, predictions.true, (1, 2, 5, 10, 20))
        assert [result["metrics"][f"top{k}"] for k in (1, 2, 5, 10, 20)] == list(hits / len(predictions.true))
        true_scores = table[np.arange(len(predictions.true)), predictions.true][:, None]
        tied = (table >= true_scores).sum(axis=1) - (table > true_scores).sum(axis=1) > 1
        assert hits[0] < hits[-1] and tied.mean() > 0.2   # the tie rule decides many of these samples
        per_class = per_class_hits(predictions, (1, 2, 5, 10, 20))
        assert list(per_class) == unseen
        assert np.mean([values[0] for values in per_class.values()]) == pytest.approx(result["metrics"]["top1_per_class"])
        lines = (tmp_path / f"{integer_model}_{result['setting']}.per_class.csv").read_text().splitlines()
        assert lines[0] == "wnid,samples,hit@1,hit@2,hit@5,hit@10,hit@20" and len(lines) == 1 + len(unseen)
        assert lines[1].startswith(f"{unseen[0]},2,")
    table = build_table(tmp_path)
    assert table.startswith("## ImageNet-21K results (DGP protocol)") and "DGP's evaluate_imagenet.py rule" in table
    assert "| model | zsl Hit@1 | zsl Hit@2 | zsl Hit@5 | zsl Hit@10 | zsl Hit@20 | gzsl Hit@1 |" in table


def test_dgp_scores_graph_classifiers_with_their_bias_unless_told(synthetic_benchmark, tmp_path):
    b = synthetic_benchmark
    common = dict(protocol="dgp", per_class=3, threads=1, progress=False, hierarchy=b.hierarchy,
                  classifier_weights=b.classifier_weights)
    (dgp,) = run_bench(["sgcn"], ["zsl"], b.train, b.test, b.semantics, b.seen, b.unseen, tmp_path / "a",
                       hyperparameters={"sgcn": {"epochs": 2}}, **common)
    (told,) = run_bench(["sgcn"], ["zsl"], b.train, b.test, b.semantics, b.seen, b.unseen, tmp_path / "b",
                        hyperparameters={"sgcn": {"epochs": 2, "score_bias": False}}, **common)
    (goz,) = run_bench(["sgcn"], ["zsl"], b.train, b.test, b.semantics, b.seen, b.unseen, tmp_path / "c",
                       hyperparameters={"sgcn": {"epochs": 2}}, per_class=3, threads=1, progress=False,
                       hierarchy=b.hierarchy, classifier_weights=b.classifier_weights)
    assert (dgp["parameters"]["score_bias"], told["parameters"]["score_bias"], goz["parameters"]["score_bias"]) == \
        (True, False, False)
    assert dgp["run"]["score_path"] == "matrix" and dgp["fingerprint"] != told["fingerprint"]


def test_the_test_subset_is_the_seeds_and_recorded(synthetic_benchmark, integer_model, tmp_path, caplog):
    b = synthetic_benchmark

    def sample_ids(out, **kwargs):
        (result,) = _dgp(b, out, integer_model, ["zsl"], **kwargs)
        return result, read_predictions(result_paths(out, integer_model, "zsl")[1]).sample_ids

    first, ids = sample_ids(tmp_path / "a", test_per_class=3)
    again, same = sample_ids(tmp_path / "b", test_per_class=3)
    other, different = sample_ids(tmp_path / "c", test_per_class=3, seed=1)
    np.testing.assert_array_equal(ids, same)
    assert len(ids) == len(different) == 3 * len(splits.load(b.unseen)) and not np.array_equal(ids, different)
    assert first["fingerprint"] == again["fingerprint"] != other["fingerprint"]
    # DGP's default keep ratio: 10 % (one of 10 per class); 0.35 keeps round(3.5) = 4.
    default, _ = sample_ids(tmp_path / "d")
    assert default["classes"]["n_test_samples"] == len(splits.load(b.unseen))
    caplog.set_level("WARNING")
    changed, _ = sample_ids(tmp_path / "d", test_fraction=0.35)
    assert changed["classes"]["n_test_samples"] == 4 * len(splits.load(b.unseen))
    assert "test_samples fraction 0.1 -> fraction 0.35" in caplog.text


def test_any_k_and_the_table_shows_the_columns_held(synthetic_benchmark, tmp_path, capsys, caplog):
    b = synthetic_benchmark
    common = ["--train", str(b.train), "--test", str(b.test), "--semantics", str(b.semantics), "--seen", str(b.seen),
              "--unseen", str(b.unseen), "--models", "eszsl", "--quiet", "--threads", "1", "--out", str(tmp_path)]
    assert main(["bench", *common, "--topk", "1,2,5,10,20", "--score-chunk", "33"]) == 0
    printed = capsys.readouterr().out
    assert "top10" in printed and "top20" in printed
    assert main(["table", str(tmp_path)]) == 0
    header = capsys.readouterr().out.splitlines()[2]
    assert [cell.strip() for cell in header.strip("|").split("|")] == \
        ["model"] + [f"zsl top{k}" for k in (1, 2, 5, 10, 20)] + [f"gzsl H top{k}" for k in (1, 2, 5, 10, 20)] + \
        ["gzsl u top1", "gzsl s top1"]
    caplog.set_level("WARNING")
    assert main(["bench", *common]) == 0     # the default k: the pairs are measured again, with top3, top4
    assert "topk 1,2,5,10,20 -> None" in caplog.text
    assert main(["table", str(tmp_path)]) == 0
    assert "| zsl top3 | zsl top4 | zsl top5 |" in capsys.readouterr().out


def test_a_missing_test_class_is_refused_or_skipped_and_marked(synthetic_benchmark, integer_model, tmp_path, capsys):
    b = synthetic_benchmark
    unseen = splits.load(b.unseen)
    with FeatureStore(b.test) as store:
        partial = write_store(tmp_path / "partial.h5", {w: (store.features(w), store.ids(w))
                                                          for w in store.classes if w not in unseen[3:5]})
    arguments = ([integer_model], ["zsl"], b.train, partial, b.semantics, b.seen, b.unseen)
    with pytest.raises(StoreError, match=rf"lacks 2 of the {len(unseen)} test classes \({unseen[3]}, {unseen[4]}\); "
                                         "pass --skip-missing-classes"):
        run_bench(*arguments, tmp_path / "refused", progress=False)
    (result,) = run_bench(*arguments, tmp_path / "r", skip_missing_classes=True, progress=False)
    assert result["classes"]["test_classes_missing"] == unseen[3:5] and result["classes"]["n_test_classes_missing"] == 2
    assert result["classes"]["n_candidates"] == len(unseen)           # still candidates
    assert result["classes"]["n_test_samples"] == 10 * (len(unseen) - 2)
    assert result["protocol"]["skip_missing_classes"] is True
    table = build_table(tmp_path / "r")
    assert f"| {integer_model} [2 test classes missing] |" in table and "MISSING CLASSES" in table
    with FeatureStore(b.test) as store:
        nothing = write_store(tmp_path / "none.h5", {w: (store.features(w), store.ids(w)) for w in store.classes
                                                       if w not in unseen})
    with pytest.raises(StoreError, match=f"lacks {len(unseen)} of the {len(unseen)} test classes"):
        run_bench([integer_model], ["zsl"], b.train, nothing, b.semantics, b.seen, b.unseen, tmp_path / "n",
                  skip_missing_classes=True, progress=False)


@pytest.mark.parametrize("arguments, message", [
    (["--consider-trains"], "--consider-trains belongs to --protocol dgp"),
    (["--protocol", "dgp", "--seen", "SEEN"], "give --unseen 2-hops, 3-hops or all"),
    (["--protocol", "dgp", "--unseen", "UNSEEN", "--consider-trains", "--settings", "zsl"], "--consider-trains is"),
    (["--test-fraction", "0"], "--test-fraction must be in"),
    (["--test-fraction", "0.5", "--test-per-class", "2"], "not both"),
    (["--test-per-class", "0"], "--test-per-class must be a positive"),
    (["--topk", "1,x"], "--topk '1,x'"),
    (["--topk", "0,5"], "--topk '0,5'"),
])
def test_cli_errors_name_the_option(synthetic_benchmark, tmp_path, capsys, monkeypatch, arguments, message):
    import goz.assets

    def no_fetch(*args, **kwargs):   # dgp drops the GOZ default splits: nothing to fetch
        raise AssertionError(f"fetch called: {args}")

    monkeypatch.setattr(goz.assets, "fetch", no_fetch)
    monkeypatch.setenv("GOZ_HOME", str(tmp_path / "home"))
    b = synthetic_benchmark
    arguments = [str(b.seen) if a == "SEEN" else str(b.unseen) if a == "UNSEEN" else a for a in arguments]
    common = ["--train", str(b.train), "--test", str(b.test), "--semantics", str(b.semantics), "--quiet",
              "--out", str(tmp_path)]
    if "--seen" not in arguments:
        common += ["--seen", str(b.seen)]
    if "--unseen" not in arguments and "--protocol" not in arguments:
        common += ["--unseen", str(b.unseen)]
    assert main(["bench", *common, *arguments]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_unknown_protocol_is_a_goz_error(synthetic_benchmark, tmp_path):
    b = synthetic_benchmark
    with pytest.raises(GozError, match="unknown protocol 'hgr'"):
        run_bench(["eszsl"], ["zsl"], b.train, b.test, b.semantics, b.seen, b.unseen, tmp_path, protocol="hgr")


def test_consider_trains_is_the_goz_gzsl_unseen_accuracy(synthetic_benchmark, tmp_path):
    """dgp gzsl (--consider-trains): the test set's samples against test + training classes, which is what
    the GOZ protocol's gzsl reports as u (its samples of unseen classes, the same candidates)."""
    b = synthetic_benchmark
    arguments = (["eszsl"], ["gzsl"], b.train, b.test, b.semantics, b.seen, b.unseen)
    (dgp,) = run_bench(*arguments, tmp_path / "dgp", protocol="dgp", test_fraction=1.0, threads=1, progress=False)
    (goz,) = run_bench(*arguments, tmp_path / "goz", ks=[1, 2, 5, 10, 20], threads=1, progress=False)
    for k in (1, 2, 5, 10, 20):
        assert dgp["metrics"][f"top{k}"] == goz["metrics"][f"u_top{k}"]
        assert dgp["metrics"][f"top{k}_per_class"] == goz["metrics"][f"u_top{k}_per_class"]
    assert dgp["protocol"]["test_samples"] == "all" and "test_samples" not in dgp["fingerprints"]
