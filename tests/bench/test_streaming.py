"""The streamed evaluation (`StreamingEvaluation`, what `goz bench` runs) against the in-memory
reference (`evaluate`, `seen_unseen_curve`, `topk_predictions`): equal, ties included."""

import json

import numpy as np
import pytest
import torch

from goz import models, splits
from goz.bench.evaluate import (
    StreamingEvaluation,
    evaluate,
    seen_unseen_curve,
    topk_predictions,
)
from goz.bench.run import CURVE_POINTS, _Scorer, result_paths, run_bench
from goz.errors import GozError
from goz.models.base import TrainingData, ZSLModel
from goz.semantics import load as load_semantics
from goz.store import FeatureStore


def _stream(scores, true, candidates, chunk, **options):
    evaluation = StreamingEvaluation(candidates, true, **({"engine": ENGINE} | options))
    for start in range(0, len(scores), chunk):
        evaluation.update(scores[start:start + chunk])
    return evaluation.finish()


ENGINE = "auto"   # the engine of the tests not parametrized over it (numpy on the CPU)


def _tied_scores(seed: int, n: int, c: int, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Scores from 4 levels (ties everywhere, at the true class and at the top-k boundary) plus a few distinct rows."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=(n, c)).astype(dtype)
    scores[::5] = rng.normal(size=(len(scores[::5]), c)).astype(dtype)
    return scores, rng.integers(0, c, n)


@pytest.mark.parametrize("engine", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64, np.int64])
@pytest.mark.parametrize("chunk", [1, 7, 53, 1000])
def test_zsl_streamed_equals_the_reference(dtype, chunk, engine):
    scores, true = _tied_scores(0, 53, 9, dtype)      # 53 samples: 7 does not divide it
    candidates = [f"c{i}" for i in range(9)]
    ks = (1, 2, 3, 5, 9, 12)
    streamed = _stream(scores, true, candidates, chunk, ks=ks, predictions=6, engine=engine)
    assert streamed.metrics == evaluate(scores, true, candidates, ks=ks)
    np.testing.assert_array_equal(streamed.topk, topk_predictions(scores, 6))
    assert streamed.curve is None
    others_at_least = (scores >= scores[np.arange(53), true][:, None]).sum(axis=1) - 1
    assert streamed.true_ranks.max() == 9 - 1 == others_at_least.max()   # every candidate listed: exact
    streamed = _stream(scores, true, candidates, chunk, ks=(1, 2), predictions=3, engine=engine)
    np.testing.assert_array_equal(streamed.true_ranks, np.minimum(others_at_least, 3))   # capped at 3
    assert streamed.metrics == evaluate(scores, true, candidates, ks=(1, 2))
    np.testing.assert_array_equal(streamed.topk, topk_predictions(scores, 3))


@pytest.mark.parametrize("engine", ["numpy", "torch"])
@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize("calibration", [0.0, 0.5, -1.25, 3.0])
@pytest.mark.parametrize("ks", [(1, 2, 4, 20), (1, 3)])   # a rank cap past and below the 10 candidates
def test_gzsl_metrics_and_curve_streamed_equal_the_reference(interleaved, calibration, engine, ks):
    scores, true = _tied_scores(1, 61, 10)
    candidates = [f"c{i}" for i in range(10)]
    seen = candidates[1::2] if interleaved else candidates[6:]   # groups as slices or as index lists
    streamed = _stream(scores, true, candidates, 8, seen_wnids=seen, ks=ks, calibration=calibration, engine=engine,
                       predictions=min(ks[-1], 5))
    assert streamed.metrics == evaluate(scores, true, candidates, seen, ks=ks, calibration=calibration)
    reference = seen_unseen_curve(scores, true, candidates, seen)
    assert streamed.curve.keys() == reference.keys() and streamed.curve["ausuc"] == reference["ausuc"]
    for key in ("calibrations", "unseen_accuracy", "seen_accuracy"):
        np.testing.assert_array_equal(streamed.curve[key], reference[key])
    np.testing.assert_array_equal(streamed.topk, topk_predictions(scores, min(ks[-1], 5)))


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_continuous_scores_of_a_realistic_shape(engine):
    rng = np.random.default_rng(2)
    scores = rng.standard_normal((1300, 150), dtype=np.float32)
    true = rng.integers(0, 150, 1300)
    scores[np.arange(1300), true] += 2.0
    candidates = [f"c{i}" for i in range(150)]
    seen = candidates[100:]
    streamed = _stream(scores, true, candidates, 600, seen_wnids=seen, ks=(1, 2, 5, 10, 20), predictions=20,
                       engine=engine)   # 600 rows: numpy ranks them in parallel row slices
    assert streamed.metrics == evaluate(scores, true, candidates, seen, ks=(1, 2, 5, 10, 20))
    assert 0.2 < streamed.metrics["top1"] < 0.9
    np.testing.assert_array_equal(streamed.topk, topk_predictions(scores, 20))
    np.testing.assert_array_equal(streamed.curve["calibrations"],
                                  seen_unseen_curve(scores, true, candidates, seen)["calibrations"])


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_torch_blocks_give_the_same_numbers_as_numpy_blocks(engine):
    scores, true = _tied_scores(3, 40, 7)
    candidates = [f"c{i}" for i in range(7)]
    from_numpy = _stream(scores, true, candidates, 9, seen_wnids=candidates[4:])
    from_torch = _stream(torch.from_numpy(scores), true, candidates, 9, seen_wnids=candidates[4:], engine=engine)
    assert from_torch.metrics == from_numpy.metrics
    np.testing.assert_array_equal(from_torch.topk, from_numpy.topk)


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_ties_at_the_last_place_take_the_lowest_indices_by_hand(engine):
    scores = np.array([[1.0, 2.0, 2.0, 2.0, 0.0, 2.0],      # four tied at the top: 1, 2 make a top-2
                       [3.0, 3.0, 3.0, 3.0, 3.0, 3.0],      # constant
                       [0.0, 5.0, 1.0, 1.0, 4.0, 1.0]],     # 1, 4, then the lowest tied at 1.0: 2
                      dtype=np.float32)
    expected = [[1, 2, 3], [0, 1, 2], [1, 4, 2]]
    np.testing.assert_array_equal(topk_predictions(scores, 3), expected)
    streamed = _stream(scores, np.array([0, 1, 2]), list("abcdef"), 2, predictions=3, engine=engine)
    np.testing.assert_array_equal(streamed.topk, expected)
    # Ranks count ties against: 4 others >= 1.0 (row 0), 5 (row 1), 4 others >= 1.0 (row 2: 1, 3, 4, 5).
    np.testing.assert_array_equal(streamed.true_ranks, [4, 5, 4])


@pytest.mark.parametrize("call, message", [
    (lambda e: e.update(np.zeros((3, 3))), "more score rows"),
    (lambda e: e.update(np.zeros((1, 2))), "3 candidates"),
    (lambda e: e.update(np.array([[np.nan, 1.0, 0.0]])), "NaN"),
    (lambda e: e.update(np.array([[0.0, 1.0, 0.0], [-np.inf, 1.0, 0.0]])), "rows 0..1"),
    (lambda e: e.update(np.full((1, 3), 3e38, dtype=np.float32)) or e.update(np.array([[np.inf, 0, 0]])), "rows 1..1"),
    (lambda e: e.update(np.array([[True, False, True]])), "real numbers"),
    (lambda e: e.finish(), "0 of the 2 samples"),
])
@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_bad_blocks_are_goz_errors(call, message, engine):
    evaluation = StreamingEvaluation(["a", "b", "c"], np.array([0, 2]), engine=engine)
    with pytest.raises(GozError, match=message):
        call(evaluation)


@pytest.mark.parametrize("arguments, message", [
    ((["a", "a"], np.array([0])), "distinct"),
    ((["a", "b"], np.array([0, 2])), "outside"),
    ((["a", "b"], np.array([0.0])), "integer"),
    ((["a", "b"], np.zeros(0, dtype=int)), "no samples"),
    ((["a", "b"], np.array([0, 0]), ["b"]), "both"),
])
def test_bad_setups_are_goz_errors(arguments, message):
    with pytest.raises(GozError, match=message):
        StreamingEvaluation(*arguments)


# -- goz bench end to end: the streamed run against the in-memory pipeline it replaced ---------------


class _IntegerScores(ZSLModel):
    """Test-only model: score(x, c) = floor(4 x[d(c)]), integers with many ties, the same for a row
    whatever the batch it comes in (no reduction)."""

    needs_class_vectors = False

    def fit(self, data):
        self.dim_ = data.features.shape[1]
        return self

    def scores(self, features, candidates):
        columns = [int(wnid[1:]) % self.dim_ for wnid in candidates]
        return np.floor(4 * np.asarray(features, dtype=np.float64)[:, columns]).astype(np.float32)


@pytest.fixture
def integer_scores_model():
    models.register_model("test_integer_scores")(_IntegerScores)
    yield "test_integer_scores"
    models._REGISTRY.pop("test_integer_scores")


def _in_memory_reference(benchmark, candidates, sample_classes):
    """What `goz bench` computed before streaming: one score matrix (then the in-memory functions)."""
    with FeatureStore(benchmark.test) as store:
        features, labels = store.load(sample_classes)
    position = {w: i for i, w in enumerate(candidates)}
    model = _IntegerScores()
    model.dim_ = features.shape[1]
    return model.scores(features, candidates), np.array([position[sample_classes[label]] for label in labels])


def test_goz_bench_streamed_equals_the_in_memory_pipeline(synthetic_benchmark, integer_scores_model, tmp_path):
    b = synthetic_benchmark
    seen, unseen = splits.load(b.seen), splits.load(b.unseen)
    zsl, gzsl = run_bench([integer_scores_model], ["zsl", "gzsl"], b.train, b.test, b.semantics, b.seen, b.unseen,
                          tmp_path, per_class=3, score_chunk=17, threads=1, progress=False)
    for result, candidates, sample_classes, seen_wnids in ((zsl, unseen, unseen, None),
                                                           (gzsl, unseen + seen, unseen + seen, seen)):
        scores, true = _in_memory_reference(b, candidates, sample_classes)
        assert len(true) % 17 and result["run"]["score_chunk_rows"] == 17    # the last chunk is a partial one
        expected = evaluate(scores, true, candidates, seen_wnids)
        if seen_wnids:
            curve = seen_unseen_curve(scores, true, candidates, seen_wnids)
            keep = np.unique(np.linspace(0, len(curve["calibrations"]) - 1, CURVE_POINTS).round().astype(int))
            expected["ausuc"] = curve["ausuc"]
            assert result["curve"] == {"calibrations": curve["calibrations"][keep].tolist(),
                                       "unseen": curve["unseen_accuracy"][keep].tolist(),
                                       "seen": curve["seen_accuracy"][keep].tolist()}
        assert result["metrics"] == expected
        assert json.loads(result_paths(tmp_path, integer_scores_model, result["setting"])[0].read_text()) == result
        with np.load(result_paths(tmp_path, integer_scores_model, result["setting"])[1]) as npz:
            np.testing.assert_array_equal(npz["topk"], topk_predictions(scores, 5))
            np.testing.assert_array_equal(npz["true"], true)
            ranks = (scores >= scores[np.arange(len(true)), true][:, None]).sum(axis=1) - 1
            np.testing.assert_array_equal(npz["true_rank"], np.minimum(ranks, 5))
        # Many ties: the tie rule decides numbers here, so the equality above is a real test of it.
        assert (ranks > (scores > scores[np.arange(len(true)), true][:, None]).sum(axis=1)).mean() > 0.3


def test_a_matrix_model_scores_the_stream_as_its_own_scores(synthetic_benchmark, tmp_path):
    """ESZSL exposes its (D, C) matrix: `goz bench` multiplies chunks itself; the numbers equal scores()'s."""
    b = synthetic_benchmark
    seen, unseen = splits.load(b.seen), splits.load(b.unseen)
    with FeatureStore(b.train) as store:
        means = store.class_means(seen).astype(np.float32)
    table = load_semantics(b.semantics)
    model = models.create("eszsl", gamma=1.0, lam=1.0, progress=False).fit(
        TrainingData(means, np.arange(len(seen)), seen, table))
    with FeatureStore(b.test) as store:
        features, _ = store.load(unseen)
    scorer = _Scorer(model, unseen, "cpu")
    assert scorer.path == "matrix"
    np.testing.assert_array_equal(scorer(features).numpy(), model.scores(features, unseen))
    np.testing.assert_array_equal(scorer(features.astype(np.float16)).numpy(),
                                  model.scores(features.astype(np.float16).astype(np.float32), unseen))
