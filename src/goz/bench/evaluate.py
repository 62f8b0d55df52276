"""The evaluation protocol of the GOZ benchmark: top-k accuracies in the standard (`zsl`) and
generalized (`gzsl`) settings, calibrated stacking and the seen-unseen accuracy curve.

Settings. `zsl`: the candidates are the unseen classes and the samples are unseen-class test
samples. `gzsl`: the candidates are the unseen and the seen classes, the samples are the unseen
test samples plus held-out seen-class samples. `evaluate` is told which setting it is in by
`seen_wnids`: given, it is `gzsl` and it also reports u (samples of unseen classes), s (samples of
seen classes) and their harmonic mean H.

Conventions shared by every function here:

- `scores` is (n_samples, n_candidates), higher is better; `true` holds, per sample, the index of
  its class in `candidates`.
- A sample is a top-k hit when fewer than k OTHER candidates score at least as high as its true
  class: a tie with the true class's score counts as a miss (a constant scorer gets nothing).
- When k is at least the number of candidates, every sample is a top-k hit.
- Accuracies are fractions in [0, 1] (the paper prints percents).
- Per-class means (Xian et al. 2018) average the accuracies of the classes that have samples;
  a candidate class without any sample is left out of the mean instead of counting as 0.
- Every class counts. The original benchmark split gzsl samples with the masks `y < 500` and
  `y > 500`, which silently dropped the first seen class (label 500) from s; goz does not.

Memory: scores may be (60,000 x 1,500); ranks are counted chunk by chunk without sorting rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from scipy.integrate import trapezoid

from goz.errors import GozError

__all__ = ["topk_hits", "topk_predictions", "evaluate", "seen_unseen_curve"]

CHUNK_ROWS = 2048


def _check(scores: np.ndarray, true: np.ndarray, n_candidates: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    try:
        scores, true = np.asarray(scores), np.asarray(true)
    except ValueError as error:  # ragged nested lists
        raise GozError(f"scores and true must be arrays ({error})") from None
    if scores.ndim != 2:
        raise GozError(f"scores must be (n_samples, n_candidates), got shape {scores.shape}")
    if scores.dtype.kind not in "fiu":
        raise GozError(f"scores must be numbers, got dtype {scores.dtype}")
    if n_candidates is not None and scores.shape[1] != n_candidates:
        raise GozError(f"scores have {scores.shape[1]} columns but there are {n_candidates} candidates")
    if true.shape != (scores.shape[0],):
        raise GozError(f"true must be ({scores.shape[0]},) class indices, got shape {true.shape}")
    if not np.issubdtype(true.dtype, np.integer):
        raise GozError(f"true must hold integer indices into the candidates, got dtype {true.dtype}")
    if len(true) and (true.min() < 0 or true.max() >= scores.shape[1]):
        raise GozError(f"true holds indices outside [0, {scores.shape[1]}): {true.min()}..{true.max()}")
    return scores, true.astype(np.int64)


def _chunks(scores: np.ndarray, offsets: np.ndarray | None,
            dtype: type = np.float64) -> Iterator[tuple[slice, np.ndarray]]:
    """Row blocks of `scores` in `dtype`, minus `offsets` (per candidate) when given."""
    for start in range(0, scores.shape[0], CHUNK_ROWS):
        rows = slice(start, min(start + CHUNK_ROWS, scores.shape[0]))
        block = np.asarray(scores[rows], dtype=dtype)
        if not np.isfinite(block).all():
            raise GozError(f"scores hold NaN or infinite values (rows {rows.start}..{rows.stop - 1}); "
                           "the model diverged or its input holds NaN/inf")
        yield rows, block if offsets is None else block - offsets


def _true_ranks(scores: np.ndarray, true: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
    """Per sample, how many other candidates score at least as high as the true class."""
    ranks = np.empty(len(true), dtype=np.int64)
    for rows, block in _chunks(scores, offsets):
        true_scores = block[np.arange(block.shape[0]), true[rows]]
        ranks[rows] = (block >= true_scores[:, None]).sum(axis=1) - 1
    return ranks


def topk_hits(scores: np.ndarray, true: np.ndarray, k_max: int = 5) -> np.ndarray:
    """(n, k_max) bool: `[i, k-1]` is True when sample i's true class is in its top k.

    A tie with the true class's score counts as a miss; k beyond the number of candidates is
    always a hit. Cumulative by construction: a top-k hit is a top-(k+1) hit.
    """
    scores, true = _check(scores, true)
    if k_max < 1:
        raise GozError(f"k_max must be at least 1, got {k_max}")
    return _true_ranks(scores, true)[:, None] < np.arange(1, k_max + 1)[None, :]


def topk_predictions(scores: np.ndarray, k: int = 5) -> np.ndarray:
    """(n, min(k, n_candidates)) int64: the indices of the best-scored candidates, best first.

    Equal scores within the list are ordered by candidate index (which of several candidates tied
    at the last place makes the list is up to torch.topk); unlike `topk_hits`, the list does not
    apply the tie-is-a-miss rule (a true class tied with a better-listed one appears in it).
    """
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.dtype.kind not in "fiu":
        raise GozError(f"scores must be a numeric (n_samples, n_candidates) array, got {scores.dtype} {scores.shape}")
    if k < 1:
        raise GozError(f"k must be at least 1, got {k}")
    k = min(k, scores.shape[1])
    predictions = np.empty((scores.shape[0], k), dtype=np.int64)
    # Ranking needs no float64: compare in the scores' own precision (float16 widened to float32).
    for rows, block in _chunks(scores, None, np.promote_types(scores.dtype, np.float32)):
        # torch.topk selects without sorting whole rows (several times faster than np.argpartition).
        best_scores, best = (t.numpy() for t in torch.from_numpy(block).topk(k, dim=1))
        order = np.lexsort((best, -best_scores), axis=1)
        predictions[rows] = np.take_along_axis(best, order, axis=1)
    return predictions


def _check_candidates(candidates: Sequence[str]) -> None:
    if len(set(candidates)) != len(candidates):
        repeated = next(w for i, w in enumerate(candidates) if w in candidates[:i])
        raise GozError(f"candidates must be distinct classes; {repeated} appears more than once")


def _seen_mask(candidates: Sequence[str], seen_wnids: Sequence[str]) -> np.ndarray:
    seen = set(seen_wnids)
    return np.array([wnid in seen for wnid in candidates], dtype=bool)


def _accuracies(hits: np.ndarray, true: np.ndarray, n_candidates: int) -> tuple[float, float]:
    """(pooled accuracy, mean of per-class accuracies over the classes that have samples)."""
    counts = np.bincount(true, minlength=n_candidates)
    class_hits = np.bincount(true, weights=hits, minlength=n_candidates)
    present = counts > 0
    return float(hits.mean()), float((class_hits[present] / counts[present]).mean())


def _harmonic_mean(u: float, s: float) -> float:
    return 0.0 if u + s == 0 else 2 * u * s / (u + s)


def evaluate(scores: np.ndarray, true: np.ndarray, candidates: Sequence[str],
             seen_wnids: Sequence[str] | None = None, ks: Sequence[int] = (1, 2, 3, 4, 5),
             calibration: float = 0.0) -> dict[str, float]:
    """The benchmark's metrics, as one flat dict of fractions in [0, 1].

    Always: `top{k}` (cumulative top-k accuracy pooled over samples, the GOZ paper's number) and
    `top{k}_per_class` (mean of per-class top-k accuracies, classes without samples left out).
    With `seen_wnids` (gzsl): `u_top{k}`, `s_top{k}`, `h_top{k}` over the samples whose true class
    is unseen / seen and their harmonic mean, and the same three with `_per_class`.
    `calibration` is subtracted from the seen candidates' scores first (calibrated stacking,
    Chao et al. 2016); it needs `seen_wnids`. A tie with the true class's score is a miss; a k at
    least the number of candidates makes every sample a hit.
    """
    scores, true = _check(scores, true, len(candidates))
    _check_candidates(candidates)
    if len(true) == 0:
        raise GozError("no samples to evaluate")
    if not ks or min(ks) < 1:
        raise GozError(f"ks must be positive integers, got {list(ks)}")
    if not np.isfinite(calibration):
        raise GozError(f"calibration must be a finite number, got {calibration}")
    if seen_wnids is None and calibration != 0.0:
        raise GozError("calibration only applies to the gzsl setting (pass seen_wnids)")
    is_seen = None if seen_wnids is None else _seen_mask(candidates, seen_wnids)
    offsets = None if is_seen is None or calibration == 0.0 else calibration * is_seen
    ranks = _true_ranks(scores, true, offsets)
    groups: dict[str, np.ndarray] = {"": np.ones(len(true), dtype=bool)}
    if is_seen is not None:
        sample_is_seen = is_seen[true]
        if sample_is_seen.all() or not sample_is_seen.any():
            raise GozError("gzsl evaluation needs samples of both unseen and seen classes "
                           f"(got {int((~sample_is_seen).sum())} unseen, {int(sample_is_seen.sum())} seen)")
        groups.update({"u_": ~sample_is_seen, "s_": sample_is_seen})
    metrics: dict[str, float] = {}
    for k in ks:
        hits = ranks < k
        for prefix, members in groups.items():
            pooled, per_class = _accuracies(hits[members], true[members], len(candidates))
            metrics[f"{prefix}top{k}"] = pooled
            metrics[f"{prefix}top{k}_per_class"] = per_class
        if is_seen is not None:
            for suffix in ("", "_per_class"):
                metrics[f"h_top{k}{suffix}"] = _harmonic_mean(metrics[f"u_top{k}{suffix}"],
                                                              metrics[f"s_top{k}{suffix}"])
    return metrics


def seen_unseen_curve(scores: np.ndarray, true: np.ndarray, candidates: Sequence[str],
                      seen_wnids: Sequence[str]) -> dict:
    """Top-1 seen accuracy against unseen accuracy as the calibration sweeps (Chao et al. 2016).

    Returns `calibrations` (one value inside each interval where the predictions stay the same,
    from "everything predicted seen" to "everything predicted unseen", ascending),
    `unseen_accuracy` and `seen_accuracy` at those calibrations (pooled, tie is a miss, as in
    `evaluate`), and `ausuc`, the trapezoid area under seen accuracy as a function of unseen
    accuracy (a fraction of the unit square).
    """
    scores, true = _check(scores, true, len(candidates))
    _check_candidates(candidates)
    is_seen = _seen_mask(candidates, seen_wnids)
    sample_is_seen = is_seen[true]
    if sample_is_seen.all() or not sample_is_seen.any():
        raise GozError("the seen-unseen curve needs samples of both unseen and seen classes")
    # A sample is right at calibration c when its true class wins its own group (strictly) and
    # c is beyond a threshold: unseen right when c > max_seen - true, seen right when c < true - max_unseen.
    thresholds = np.empty(len(true), dtype=np.float64)
    for rows, block in _chunks(scores, None):
        true_scores = block[np.arange(block.shape[0]), true[rows]]
        own_group = is_seen[None, :] == sample_is_seen[rows][:, None]
        beaten_in_group = ((block >= true_scores[:, None]) & own_group).sum(axis=1) > 1
        best_seen = np.where(is_seen, block, -np.inf).max(axis=1)
        best_unseen = np.where(is_seen, -np.inf, block).max(axis=1)
        threshold = np.where(sample_is_seen[rows], true_scores - best_unseen, best_seen - true_scores)
        never = np.where(sample_is_seen[rows], -np.inf, np.inf)
        thresholds[rows] = np.where(beaten_in_group, never, threshold)
    unseen_thresholds = np.sort(thresholds[~sample_is_seen])
    seen_thresholds = np.sort(thresholds[sample_is_seen])
    breakpoints = np.unique(thresholds[np.isfinite(thresholds)])
    if len(breakpoints):
        low, high = breakpoints[0], breakpoints[-1]
        calibrations = np.concatenate([[low - max(1.0, abs(low))], (breakpoints[:-1] + breakpoints[1:]) / 2,
                                       [high + max(1.0, abs(high))]])
    else:
        calibrations = np.zeros(1)
    unseen_accuracy = np.searchsorted(unseen_thresholds, calibrations, side="left") / len(unseen_thresholds)
    seen_accuracy = (len(seen_thresholds) - np.searchsorted(seen_thresholds, calibrations, side="right")) \
        / len(seen_thresholds)
    return {"calibrations": calibrations, "unseen_accuracy": unseen_accuracy, "seen_accuracy": seen_accuracy,
            "ausuc": float(trapezoid(seen_accuracy, unseen_accuracy))}
