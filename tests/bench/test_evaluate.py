import numpy as np
import pytest

from goz.bench import evaluate as protocol
from goz.errors import GozError
from goz.bench.evaluate import evaluate, seen_unseen_curve, topk_hits, topk_predictions

# Four candidates, four samples; sample 2 ties its true class (b) with a, sample 3 is ranked last.
ZSL_CANDIDATES = ["a", "b", "c", "d"]
ZSL_SCORES = np.array([[0.9, 0.1, 0.5, 0.3],
                       [0.2, 0.8, 0.6, 0.4],
                       [0.5, 0.5, 0.1, 0.0],
                       [0.1, 0.2, 0.3, 0.4]])
ZSL_TRUE = np.array([0, 2, 1, 0])

# gzsl: u0, u1 unseen, s0, s1 seen (s0 is the first seen class, the one `y > 500` used to drop).
GZSL_CANDIDATES = ["u0", "u1", "s0", "s1"]
SEEN = ["s0", "s1", "s_not_a_candidate"]
GZSL_SCORES = np.array([[0.9, 0.2, 0.5, 0.1],   # u0: rank 0
                        [0.3, 0.4, 0.8, 0.1],   # u1: rank 1 (s0 above)
                        [0.1, 0.2, 0.3, 0.4],   # u1: rank 2 (s1, s0 above)
                        [0.1, 0.2, 0.7, 0.3],   # s0: rank 0
                        [0.6, 0.1, 0.5, 0.2],   # s0: rank 1 (u0 above)
                        [0.1, 0.1, 0.1, 0.9]])  # s1: rank 0
GZSL_TRUE = np.array([0, 1, 1, 2, 2, 3])


def test_topk_hits_by_hand_with_a_tie_and_k_beyond_the_candidates():
    expected = np.array([[1, 1, 1, 1, 1],
                         [0, 1, 1, 1, 1],
                         [0, 1, 1, 1, 1],    # tied with a: a miss at k=1
                         [0, 0, 0, 1, 1]], dtype=bool)
    np.testing.assert_array_equal(topk_hits(ZSL_SCORES, ZSL_TRUE, 5), expected)


def test_zsl_metrics_by_hand():
    metrics = evaluate(ZSL_SCORES, ZSL_TRUE, ZSL_CANDIDATES)
    assert [metrics[f"top{k}"] for k in range(1, 6)] == pytest.approx([0.25, 0.75, 0.75, 1.0, 1.0])
    # per class: a = {s0 hit, s3 miss}, b = {s2}, c = {s1}; d has no sample and is left out.
    assert metrics["top1_per_class"] == pytest.approx((0.5 + 0 + 0) / 3)
    assert metrics["top2_per_class"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert metrics["top4_per_class"] == pytest.approx(1.0)
    assert not any(key.startswith(("u_", "s_", "h_")) for key in metrics)


def test_constant_scores_get_nothing_until_k_covers_every_candidate():
    metrics = evaluate(np.zeros((3, 4)), np.array([0, 1, 3]), ZSL_CANDIDATES, ks=(1, 3, 4, 6))
    assert (metrics["top1"], metrics["top3"], metrics["top4"], metrics["top6"]) == (0.0, 0.0, 1.0, 1.0)


def test_gzsl_u_s_h_by_hand_counts_the_first_seen_class():
    metrics = evaluate(GZSL_SCORES, GZSL_TRUE, GZSL_CANDIDATES, seen_wnids=SEEN, ks=(1, 2))
    assert metrics["top1"] == pytest.approx(3 / 6)
    assert metrics["top1_per_class"] == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    assert metrics["u_top1"] == pytest.approx(1 / 3)
    assert metrics["s_top1"] == pytest.approx(2 / 3)     # 1.0 if s0's samples were dropped
    assert metrics["h_top1"] == pytest.approx(4 / 9)
    assert metrics["u_top1_per_class"] == pytest.approx(0.5)
    assert metrics["s_top1_per_class"] == pytest.approx(0.75)
    assert metrics["h_top1_per_class"] == pytest.approx(2 * 0.5 * 0.75 / 1.25)
    assert (metrics["u_top2"], metrics["s_top2"]) == pytest.approx((2 / 3, 1.0))
    assert metrics["h_top2"] == pytest.approx(0.8)


def test_calibration_shifts_predictions_towards_unseen_classes():
    # Subtracting 0.45 from s0, s1 lets u1 win samples 1 and 2; sample 4 (s0) stays lost, the rest unchanged.
    metrics = evaluate(GZSL_SCORES, GZSL_TRUE, GZSL_CANDIDATES, seen_wnids=SEEN, ks=(1,), calibration=0.45)
    assert (metrics["u_top1"], metrics["s_top1"]) == pytest.approx((1.0, 2 / 3))
    assert metrics["h_top1"] == pytest.approx(0.8)
    assert GZSL_SCORES[1, 2] == 0.8    # the input is not modified


def test_seen_unseen_curve_and_ausuc_by_hand():
    scores = np.array([[0.5, 0.7],    # u0: right when c > 0.2
                       [0.9, 0.4],    # u0: right when c > -0.5
                       [0.2, 0.8],    # s0: right when c < 0.6
                       [0.6, 0.5]])   # s0: right when c < -0.1
    true = np.array([0, 0, 1, 1])
    curve = seen_unseen_curve(scores, true, ["u0", "s0"], seen_wnids=["s0"])
    np.testing.assert_allclose(curve["unseen_accuracy"], [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(curve["seen_accuracy"], [1, 1, 0.5, 0.5, 0])
    assert np.all(np.diff(curve["calibrations"]) > 0)
    assert curve["ausuc"] == pytest.approx(0.5 * 1 + 0.5 * 0.5)


def test_seen_unseen_curve_agrees_with_calibrated_evaluate():
    rng = np.random.default_rng(0)
    candidates = [f"c{i}" for i in range(7)]
    scores, true = rng.normal(size=(60, 7)), rng.integers(0, 7, 60)
    seen = candidates[4:]
    curve = seen_unseen_curve(scores, true, candidates, seen)
    assert len(curve["calibrations"]) > 3 and 0 < curve["ausuc"] < 1
    for calibration, u, s in zip(curve["calibrations"], curve["unseen_accuracy"], curve["seen_accuracy"]):
        metrics = evaluate(scores, true, candidates, seen, ks=(1,), calibration=calibration)
        assert (metrics["u_top1"], metrics["s_top1"]) == pytest.approx((u, s))


def test_chunked_ranks_match_a_direct_count(monkeypatch):
    monkeypatch.setattr(protocol, "CHUNK_ROWS", 3)
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, size=(20, 6)).astype(np.float16)    # many ties
    true = rng.integers(0, 6, 20)
    others_at_least = (scores >= scores[np.arange(20), true][:, None]).sum(axis=1) - 1
    np.testing.assert_array_equal(topk_hits(scores, true, 6), others_at_least[:, None] < np.arange(1, 7))


def test_topk_predictions_best_first_ties_by_index(monkeypatch):
    monkeypatch.setattr(protocol, "CHUNK_ROWS", 4)
    scores = np.random.default_rng(2).normal(size=(10, 8))
    np.testing.assert_array_equal(topk_predictions(scores, 5), np.argsort(-scores, axis=1)[:, :5])
    np.testing.assert_array_equal(topk_predictions(np.array([[1.0, 2.0, 2.0, 0.0]]), 2), [[1, 2]])
    assert topk_predictions(scores[:, :3], 5).shape == (10, 3)


@pytest.mark.parametrize("call, message", [
    (lambda: evaluate(np.array([[np.nan, 1.0]]), np.array([0]), ["a", "b"]), "NaN"),
    (lambda: evaluate(np.zeros((2, 3)), np.array([0, 1]), ["a", "b"]), "3 columns"),
    (lambda: evaluate(np.zeros((2, 2)), np.array([0, 2]), ["a", "b"]), "outside"),
    (lambda: evaluate(np.zeros((2, 2)), np.array([0, 1]), ["a", "b"], calibration=1.0), "gzsl"),
    (lambda: evaluate(np.zeros((2, 2)), np.array([0, 0]), ["a", "b"], seen_wnids=["b"]), "both"),
    (lambda: evaluate(np.array([[np.inf, 1.0]]), np.array([0]), ["a", "b"]), "infinite"),
    (lambda: topk_predictions(np.array([[-np.inf, 1.0]])), "infinite"),
    (lambda: seen_unseen_curve(np.array([[np.inf, 0.0], [0.0, 1.0]]), np.array([0, 1]), ["a", "b"], ["b"]),
     "infinite"),
    (lambda: evaluate(np.eye(2), np.array([0, 1]), ["a", "a"]), "distinct"),
    (lambda: evaluate(np.eye(2), np.array([0, 1]), ["a", "b"], seen_wnids=["b"], calibration=float("nan")),
     "finite"),
    (lambda: evaluate(np.array([["x", "y"]]), np.array([0]), ["a", "b"]), "numbers"),
    (lambda: evaluate([[1.0, 2.0], [3.0]], [0, 0], ["a", "b"]), "arrays"),
    (lambda: evaluate(np.zeros((0, 2)), np.zeros(0, dtype=int), ["a", "b"]), "no samples"),
])
def test_bad_input_is_a_goz_error(call, message):
    with pytest.raises(GozError, match=message):
        call()
