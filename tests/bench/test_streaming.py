"""The streamed evaluation (`StreamingEvaluation`, what `goz bench` runs) against the in-memory
reference (`evaluate`, `seen_unseen_curve`, `topk_predictions`): equal, ties included."""

import numpy as np
import pytest
import torch

from goz.bench.evaluate import StreamingEvaluation, evaluate, seen_unseen_curve, topk_predictions
from goz.errors import GozError


def _stream(scores, true, candidates, chunk, **options):
    evaluation = StreamingEvaluation(candidates, true, **options)
    for start in range(0, len(scores), chunk):
        evaluation.update(scores[start:start + chunk])
    return evaluation.finish()


def _tied_scores(seed: int, n: int, c: int, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Scores from 4 levels (ties everywhere, at the true class and at the top-k boundary) plus a few distinct rows."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=(n, c)).astype(dtype)
    scores[::5] = rng.normal(size=(len(scores[::5]), c)).astype(dtype)
    return scores, rng.integers(0, c, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64, np.int64])
@pytest.mark.parametrize("chunk", [1, 7, 53, 1000])
def test_zsl_streamed_equals_the_reference(dtype, chunk):
    scores, true = _tied_scores(0, 53, 9, dtype)      # 53 samples: 7 does not divide it
    candidates = [f"c{i}" for i in range(9)]
    ks = (1, 2, 3, 5, 9, 12)
    streamed = _stream(scores, true, candidates, chunk, ks=ks, predictions=6)
    assert streamed.metrics == evaluate(scores, true, candidates, ks=ks)
    np.testing.assert_array_equal(streamed.topk, topk_predictions(scores, 6))
    assert streamed.curve is None
    others_at_least = (scores >= scores[np.arange(53), true][:, None]).sum(axis=1) - 1
    np.testing.assert_array_equal(streamed.true_ranks, others_at_least)


@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize("calibration", [0.0, 0.5, -1.25, 3.0])
def test_gzsl_metrics_and_curve_streamed_equal_the_reference(interleaved, calibration):
    scores, true = _tied_scores(1, 61, 10)
    candidates = [f"c{i}" for i in range(10)]
    seen = candidates[1::2] if interleaved else candidates[6:]   # groups as slices or as index lists
    ks = (1, 2, 4, 20)
    streamed = _stream(scores, true, candidates, 8, seen_wnids=seen, ks=ks, calibration=calibration)
    assert streamed.metrics == evaluate(scores, true, candidates, seen, ks=ks, calibration=calibration)
    reference = seen_unseen_curve(scores, true, candidates, seen)
    assert streamed.curve.keys() == reference.keys() and streamed.curve["ausuc"] == reference["ausuc"]
    for key in ("calibrations", "unseen_accuracy", "seen_accuracy"):
        np.testing.assert_array_equal(streamed.curve[key], reference[key])
    np.testing.assert_array_equal(streamed.topk, topk_predictions(scores, 5))


def test_continuous_scores_of_a_realistic_shape():
    rng = np.random.default_rng(2)
    scores = rng.standard_normal((300, 150), dtype=np.float32)
    true = rng.integers(0, 150, 300)
    scores[np.arange(300), true] += 2.0
    candidates = [f"c{i}" for i in range(150)]
    seen = candidates[100:]
    streamed = _stream(scores, true, candidates, 64, seen_wnids=seen, ks=(1, 2, 5, 10, 20), predictions=20)
    assert streamed.metrics == evaluate(scores, true, candidates, seen, ks=(1, 2, 5, 10, 20))
    assert 0.2 < streamed.metrics["top1"] < 0.9
    np.testing.assert_array_equal(streamed.topk, topk_predictions(scores, 20))
    np.testing.assert_array_equal(streamed.curve["calibrations"],
                                  seen_unseen_curve(scores, true, candidates, seen)["calibrations"])


def test_torch_blocks_give_the_same_numbers_as_numpy_blocks():
    scores, true = _tied_scores(3, 40, 7)
    candidates = [f"c{i}" for i in range(7)]
    from_numpy = _stream(scores, true, candidates, 9, seen_wnids=candidates[4:])
    from_torch = _stream(torch.from_numpy(scores), true, candidates, 9, seen_wnids=candidates[4:])
    assert from_torch.metrics == from_numpy.metrics
    np.testing.assert_array_equal(from_torch.topk, from_numpy.topk)


def test_ties_at_the_last_place_take_the_lowest_indices_by_hand():
    scores = np.array([[1.0, 2.0, 2.0, 2.0, 0.0, 2.0],      # four tied at the top: 1, 2 make a top-2
                       [3.0, 3.0, 3.0, 3.0, 3.0, 3.0],      # constant
                       [0.0, 5.0, 1.0, 1.0, 4.0, 1.0]],     # 1, 4, then the lowest tied at 1.0: 2
                      dtype=np.float32)
    expected = [[1, 2, 3], [0, 1, 2], [1, 4, 2]]
    np.testing.assert_array_equal(topk_predictions(scores, 3), expected)
    streamed = _stream(scores, np.array([0, 1, 2]), list("abcdef"), 2, predictions=3)
    np.testing.assert_array_equal(streamed.topk, expected)
    # Ranks count ties against: 4 others >= 1.0 (row 0), 5 (row 1), 4 others >= 1.0 (row 2: 1, 3, 4, 5).
    np.testing.assert_array_equal(streamed.true_ranks, [4, 5, 4])


@pytest.mark.parametrize("call, message", [
    (lambda e: e.update(np.zeros((3, 3))), "more score rows"),
    (lambda e: e.update(np.zeros((1, 2))), "3 candidates"),
    (lambda e: e.update(np.array([[np.nan, 1.0, 0.0]])), "NaN"),
    (lambda e: e.update(np.array([[True, False, True]])), "real numbers"),
    (lambda e: e.finish(), "0 of the 2 samples"),
])
def test_bad_blocks_are_goz_errors(call, message):
    evaluation = StreamingEvaluation(["a", "b", "c"], np.array([0, 2]))
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
