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

- A sample is a top-k hit exactly when DGP's `evaluate_imagenet.py` counts a Hit@k: the number of
  candidates scoring at least as high as the true class, itself included, is at most k.

Two ways to the same numbers. In memory (`evaluate`, `seen_unseen_curve`, `topk_predictions`): a
whole (n_samples, n_candidates) score matrix, ranked chunk by chunk; the reference. Streamed
(`StreamingEvaluation`, what `goz bench` uses): score blocks fed in sample order, each ranked and
dropped, keeping per sample only its true rank, its top-k list and (gzsl) its calibration
threshold; memory O(block rows x candidates + samples x k), results equal to the reference's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import trapezoid

from goz.errors import GozError

__all__ = ["topk_hits", "topk_predictions", "evaluate", "seen_unseen_curve", "StreamingEvaluation", "Evaluation"]

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

    The order is exact: by score, descending, and among equal scores by candidate index, ascending
    (of several candidates tied at the last place, the lowest indices make the list). Unlike
    `topk_hits`, the list does not apply the tie-is-a-miss rule (a true class tied with a
    better-listed one appears in it).
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
        # A stable descending sort keeps equal scores in index order: the rule above, by definition.
        order = torch.from_numpy(block).sort(dim=1, descending=True, stable=True).indices
        predictions[rows] = order[:, :k].numpy()
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
    ks = _check_ks(ks)
    _check_calibration(calibration, seen_wnids)
    is_seen = None if seen_wnids is None else _seen_mask(candidates, seen_wnids)
    offsets = None if is_seen is None or calibration == 0.0 else calibration * is_seen
    _check_groups(is_seen, true)
    return _metrics_of_ranks(_true_ranks(scores, true, offsets), true, len(candidates), is_seen, ks)


def _check_ks(ks: Sequence[int]) -> list[int]:
    if not ks or min(ks) < 1:
        raise GozError(f"ks must be positive integers, got {list(ks)}")
    return list(ks)


def _check_calibration(calibration: float, seen_wnids) -> None:
    if not np.isfinite(calibration):
        raise GozError(f"calibration must be a finite number, got {calibration}")
    if seen_wnids is None and calibration != 0.0:
        raise GozError("calibration only applies to the gzsl setting (pass seen_wnids)")


def _check_groups(is_seen: np.ndarray | None, true: np.ndarray) -> None:
    if is_seen is not None:
        sample_is_seen = is_seen[true]
        if sample_is_seen.all() or not sample_is_seen.any():
            raise GozError("gzsl evaluation needs samples of both unseen and seen classes "
                           f"(got {int((~sample_is_seen).sum())} unseen, {int(sample_is_seen.sum())} seen)")


def _metrics_of_ranks(ranks: np.ndarray, true: np.ndarray, n_candidates: int, is_seen: np.ndarray | None,
                      ks: Sequence[int]) -> dict[str, float]:
    """`evaluate`'s dict from each sample's count of other candidates at least as high as its true class."""
    groups: dict[str, np.ndarray] = {"": np.ones(len(true), dtype=bool)}
    if is_seen is not None:
        sample_is_seen = is_seen[true]
        groups.update({"u_": ~sample_is_seen, "s_": sample_is_seen})
    metrics: dict[str, float] = {}
    for k in ks:
        hits = ranks < k
        for prefix, members in groups.items():
            pooled, per_class = _accuracies(hits[members], true[members], n_candidates)
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
    return _curve_of_thresholds(thresholds, sample_is_seen)


def _curve_of_thresholds(thresholds: np.ndarray, sample_is_seen: np.ndarray) -> dict:
    """`seen_unseen_curve`'s dict from each sample's calibration threshold (see there)."""
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


# -- streaming: the same numbers from blocks of rows, never a samples x candidates matrix ------------


@dataclass
class Evaluation:
    """What `StreamingEvaluation.finish` returns: `evaluate`'s metrics, `seen_unseen_curve`'s dict
    (gzsl; else None), `topk_predictions`' lists and, per sample, the number of other candidates
    scoring at least as high as its true class, capped at `rank_cap` (`true_ranks`: a top-k hit when
    below k; a value at the cap means "the cap or more")."""

    metrics: dict[str, float]
    curve: dict | None
    topk: np.ndarray
    true_ranks: np.ndarray


class StreamingEvaluation:
    """`evaluate`, `seen_unseen_curve` and `topk_predictions` from score blocks fed in sample order.

    `true` (every sample's true candidate index) is known from the start; `update(block)` takes the
    next rows' scores, (rows, n_candidates), as a numpy array or a torch tensor on any device, and
    ranks them in the in-memory functions' precision (float16 widened to float32, integers to
    float64). `engine`: "auto" ranks a GPU tensor with torch where it is and anything on the CPU
    with numpy (several times faster there), in threads over row slices; "numpy" / "torch" force
    one (the tests hold both to the reference). Per sample it keeps only what the metrics need:
    its true rank capped at `rank_cap` = max(predictions, largest k) (int32), its `predictions` best
    candidates (int64) and in gzsl the calibration at which its prediction changes group (float64).
    On the CPU a block costs one torch.topk of rank_cap + 1 and a row sum (plus, in gzsl, a
    comparison for the samples whose true class is past the cap): the ranks come from the top list.
    Memory: one block and a few block-sized boolean masks, plus 8 + 4 + 8 x predictions (+ 8 in
    gzsl) bytes per sample. The results equal the in-memory functions' on the same scores, ties
    included.
    """

    def __init__(self, candidates: Sequence[str], true: np.ndarray, seen_wnids: Sequence[str] | None = None,
                 ks: Sequence[int] = (1, 2, 3, 4, 5), calibration: float = 0.0, predictions: int = 5,
                 curve: bool | None = None, engine: str = "auto"):
        if engine not in ("auto", "numpy", "torch"):
            raise GozError(f"engine must be auto, numpy or torch, got {engine!r}")
        self.engine = engine
        candidates = list(candidates)
        _check_candidates(candidates)
        if not candidates:
            raise GozError("no candidates to evaluate against")
        try:
            true = np.asarray(true)
        except ValueError as error:
            raise GozError(f"true must be an array of class indices ({error})") from None
        if true.ndim != 1 or not np.issubdtype(true.dtype, np.integer):
            raise GozError(f"true must be (n_samples,) integer indices into the candidates, got {true.dtype} {true.shape}")
        if len(true) == 0:
            raise GozError("no samples to evaluate")
        if true.min() < 0 or true.max() >= len(candidates):
            raise GozError(f"true holds indices outside [0, {len(candidates)}): {true.min()}..{true.max()}")
        if predictions < 1:
            raise GozError(f"predictions must be at least 1, got {predictions}")
        self.ks = _check_ks(ks)
        _check_calibration(calibration, seen_wnids)
        self.candidates, self.true = candidates, true.astype(np.int64)
        self.is_seen = None if seen_wnids is None else _seen_mask(candidates, seen_wnids)
        _check_groups(self.is_seen, self.true)
        if curve and self.is_seen is None:
            raise GozError("the seen-unseen curve needs seen_wnids (the gzsl setting)")
        self.curve = self.is_seen is not None if curve is None else curve
        self._offsets = None if self.is_seen is None or calibration == 0.0 else calibration * self.is_seen
        self._groups = None if self.is_seen is None else (_column_group(self.is_seen), _column_group(~self.is_seen))
        self._k = min(predictions, len(candidates))
        # Ranks are kept exactly up to this cap (a rank at the cap means "the cap or more"): every k asked and
        # every place of the lists is below it, so no metric changes, and a block needs no full count.
        self.rank_cap = max(predictions, max(self.ks))
        n = len(true)
        self._ranks = np.empty(n, dtype=np.int32)
        self._topk = np.empty((n, self._k), dtype=np.int64)
        self._thresholds = np.empty(n, dtype=np.float64) if self.curve else None
        self._filled = 0
        self._device_constants: dict[torch.device, dict] = {}

    @property
    def n_samples(self) -> int:
        return len(self.true)

    def update(self, scores) -> None:
        """Ranks the next `len(scores)` samples (their scores against every candidate, in candidate order)."""
        on_device = isinstance(scores, torch.Tensor) and scores.device.type != "cpu"
        if self.engine == "torch" or (self.engine == "auto" and on_device):
            block = scores if isinstance(scores, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(scores))
            if block.dtype == torch.bool or block.is_complex():
                raise GozError(f"scores must be real numbers, got dtype {block.dtype}")
        else:
            block = scores.numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
            if block.dtype.kind not in "fiu":
                raise GozError(f"scores must be real numbers, got dtype {block.dtype}")
        if block.ndim != 2 or block.shape[1] != len(self.candidates):
            raise GozError(f"a score block must be (rows, {len(self.candidates)} candidates), got {tuple(block.shape)}")
        start, stop = self._filled, self._filled + block.shape[0]
        if stop > self.n_samples:
            raise GozError(f"more score rows ({stop}) than samples ({self.n_samples})")
        if block.shape[0] == 0:
            return
        if isinstance(block, torch.Tensor):
            self._update_torch(block.to(_ranking_dtype(block.dtype)), start, stop)
        else:
            dtype = np.float32 if block.dtype in (np.float16, np.float32) else np.float64
            self._update_numpy(np.ascontiguousarray(block, dtype=dtype), start, stop)
        self._filled = stop

    def _update_numpy(self, block: np.ndarray, start: int, stop: int) -> None:
        """On the CPU: numpy's comparisons and counts (several times faster than torch's there), on row slices
        in parallel threads (numpy leaves Python's lock while it loops); torch.topk for the lists."""
        # A NaN or an infinity anywhere in a row makes its sum one too (a sum past float32's range is only a
        # suspect, checked below); torch sums on every thread, numpy on one.
        suspect = ~torch.isfinite(torch.from_numpy(block).sum(dim=1)).numpy()
        if suspect.any() and not np.isfinite(block[suspect]).all():
            raise GozError(f"scores hold NaN or infinite values (rows {start}..{stop - 1}); "
                           "the model diverged or its input holds NaN/inf")
        # One more than the cap: whether the true class is past it, whether the lists' last place is tied.
        values, index = (t.numpy() for t in torch.from_numpy(block).topk(min(self.rank_cap + 1, block.shape[1]),
                                                                          dim=1))
        workers = max(1, min(torch.get_num_threads(), len(block) // 256))
        bounds = np.linspace(0, len(block), workers + 1).astype(int)
        parts = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

        def rank_rows(rows: slice) -> None:
            samples = slice(start + rows.start, start + rows.stop)
            ranks, thresholds, best = self._numpy_rows(block[rows], self.true[samples], values[rows], index[rows])
            self._ranks[samples], self._topk[samples] = ranks, best
            if self._thresholds is not None:
                self._thresholds[samples] = thresholds

        if len(parts) == 1:
            rank_rows(parts[0])
        else:
            with ThreadPoolExecutor(max_workers=len(parts)) as pool:
                list(pool.map(rank_rows, parts))

    def _numpy_rows(self, block: np.ndarray, true: np.ndarray, values: np.ndarray,
                    index: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Ranks (capped), thresholds (gzsl) and lists of some rows, from their scores and their top cap + 1."""
        rows = np.arange(len(block))
        true_scores = block[rows, true]
        at_or_above = values >= true_scores[:, None]         # (rows, cap + 1) of the best candidates
        # Every candidate that beats or ties the true class is in the top list when the true class beats the
        # list's last score (or the list is every candidate): counted there. Otherwise the rank is past the cap.
        listed = (values.shape[1] == block.shape[1]) | (true_scores > values[:, -1])
        if self._offsets is None:
            ranks = np.where(listed, np.count_nonzero(at_or_above, axis=1) - 1, self.rank_cap)
        else:  # calibrated stacking, in float64 as `evaluate` subtracts the offsets: a count over the whole block
            shifted = block.astype(np.float64) - self._offsets
            ranks = np.minimum(np.count_nonzero(shifted >= shifted[rows, true][:, None], axis=1) - 1, self.rank_cap)
            del shifted
        thresholds = None
        if self._thresholds is not None:  # as `seen_unseen_curve`: the calibration beyond which the sample is right
            seen, unseen = self._groups
            sample_is_seen = self.is_seen[true]
            # How many of the sample's own group (itself included) score at least as high as its true class.
            own_group = np.count_nonzero(at_or_above & (self.is_seen[index] == sample_is_seen[:, None]), axis=1)
            # Past the cap every listed candidate scores at least as high: one of the own group (not the true
            # class itself) among them settles it; only the others need a count over the whole row.
            unlisted = np.flatnonzero(~listed)
            beaten = ((self.is_seen[index[unlisted]] == sample_is_seen[unlisted, None])
                      & (index[unlisted] != true[unlisted, None])).any(axis=1)
            own_group[unlisted[beaten]] = 2
            unlisted = unlisted[~beaten]
            if len(unlisted):
                at_least = block[unlisted] >= true_scores[unlisted, None]
                seen_at_least = np.count_nonzero(at_least[:, seen], axis=1)
                own_group[unlisted] = np.where(sample_is_seen[unlisted], seen_at_least,
                                               np.count_nonzero(at_least, axis=1) - seen_at_least)
                del at_least
            best_seen = block[:, seen].max(axis=1).astype(np.float64)
            best_unseen = block[:, unseen].max(axis=1).astype(np.float64)
            true64 = true_scores.astype(np.float64)
            threshold = np.where(sample_is_seen, true64 - best_unseen, best_seen - true64)
            thresholds = np.where(own_group > 1, np.where(sample_is_seen, -np.inf, np.inf), threshold)
        # The lists: torch.topk's choice among candidates tied at the last place is replaced by the lowest indices.
        k = self._k
        kth, best = values[:, k - 1], index[:, :k].copy()
        tied_past = values[:, k] == kth if values.shape[1] > k else np.zeros(len(block), dtype=bool)
        for row in np.flatnonzero(tied_past):
            above = np.flatnonzero(block[row] > kth[row])
            best[row] = np.concatenate([above, np.flatnonzero(block[row] == kth[row])[:k - len(above)]])
        best.sort(axis=1)                                                  # by index, then stably by score
        order = np.argsort(-np.take_along_axis(block, best, axis=1), axis=1, kind="stable")
        return ranks, thresholds, np.take_along_axis(best, order, axis=1)

    def _update_torch(self, block: torch.Tensor, start: int, stop: int) -> None:
        """On a GPU (or with engine="torch"): the same rules in torch, where the block is."""
        sums = block.sum(dim=1)
        suspect = ~torch.isfinite(sums)
        if bool(suspect.any()) and not bool(torch.isfinite(block[suspect]).all()):
            raise GozError(f"scores hold NaN or infinite values (rows {start}..{stop - 1}); "
                           "the model diverged or its input holds NaN/inf")
        constants = self._constants(block.device)
        true = torch.from_numpy(self.true[start:stop]).to(block.device)
        true_scores = block.gather(1, true[:, None])
        at_least = block >= true_scores                   # (rows, C): the candidates that beat or tie the true class
        if self._offsets is None:
            ranking = at_least
        else:  # calibrated stacking, in float64 as `evaluate` subtracts the offsets
            shifted = block.to(torch.float64) - constants["offsets"]
            ranking = shifted >= shifted.gather(1, true[:, None])
            del shifted
        self._ranks[start:stop] = (ranking.sum(dim=1) - 1).clamp(max=self.rank_cap).cpu().numpy()
        del ranking
        if self._thresholds is not None:
            self._thresholds[start:stop] = self._curve_thresholds(block, true, true_scores, at_least,
                                                                  constants).cpu().numpy()
        del at_least
        self._topk[start:stop] = self._best(block).cpu().numpy()

    def finish(self) -> Evaluation:
        if self._filled != self.n_samples:
            raise GozError(f"scores were given for {self._filled} of the {self.n_samples} samples")
        metrics = _metrics_of_ranks(self._ranks, self.true, len(self.candidates), self.is_seen, self.ks)
        curve = None
        if self._thresholds is not None:
            curve = _curve_of_thresholds(self._thresholds, self.is_seen[self.true])
        return Evaluation(metrics, curve, self._topk, self._ranks)

    # -- per block ----------------------------------------------------------------------------------
    def _constants(self, device: torch.device) -> dict:
        """The candidate masks and offsets, on the device of the blocks (moved once)."""
        if device not in self._device_constants:
            constants: dict = {"columns": torch.arange(len(self.candidates), device=device, dtype=torch.float64)}
            if self.is_seen is not None:
                constants["is_seen"] = torch.from_numpy(self.is_seen).to(device)
                constants["seen"] = _column_group(self.is_seen, device)
                constants["unseen"] = _column_group(~self.is_seen, device)
            if self._offsets is not None:
                constants["offsets"] = torch.from_numpy(self._offsets).to(device)
            self._device_constants[device] = constants
        return self._device_constants[device]

    def _curve_thresholds(self, block: torch.Tensor, true: torch.Tensor, true_scores: torch.Tensor,
                          at_least: torch.Tensor, constants: dict) -> torch.Tensor:
        """As `seen_unseen_curve`: the calibration beyond which the sample is right (+-inf: never)."""
        sample_is_seen = constants["is_seen"][true]
        seen_at_least = _columns(at_least, constants["seen"]).sum(dim=1)
        own_group = torch.where(sample_is_seen, seen_at_least, at_least.sum(dim=1) - seen_at_least)
        best_seen = _columns(block, constants["seen"]).amax(dim=1).to(torch.float64)
        best_unseen = _columns(block, constants["unseen"]).amax(dim=1).to(torch.float64)
        true64 = true_scores[:, 0].to(torch.float64)
        threshold = torch.where(sample_is_seen, true64 - best_unseen, best_seen - true64)
        never = torch.where(sample_is_seen, -torch.inf, torch.inf).to(torch.float64)
        return torch.where(own_group > 1, never, threshold)

    def _best(self, block: torch.Tensor) -> torch.Tensor:
        """`topk_predictions`' rule: by score descending, equal scores by index ascending (also at the last place)."""
        k = self._k
        values, index = block.topk(k, dim=1)
        kth = values[:, -1:]
        ambiguous = (block >= kth).sum(dim=1) > k     # more candidates tied at the last place than places left
        if bool(ambiguous.any()):
            rows = ambiguous.nonzero()[:, 0]
            tied_rows, tied_kth = block[rows], kth[rows]
            above = (tied_rows > tied_kth).sum(dim=1, keepdim=True)   # these all make the list (< k of them)
            columns = self._constants(block.device)["columns"]
            # The tied candidates' lowest indices: the largest of -index among them.
            lowest_tied = torch.where(tied_rows == tied_kth, -columns, -torch.inf).topk(k, dim=1).indices
            place = torch.arange(k, device=block.device)[None, :]
            fill = lowest_tied.gather(1, (place - above).clamp(min=0))
            index[rows] = torch.where(place < above, index[rows], fill)
        index = index.sort(dim=1).values                                  # by index, then stably by score
        order = block.gather(1, index).sort(dim=1, descending=True, stable=True).indices
        return index.gather(1, order)


def _ranking_dtype(dtype: torch.dtype) -> torch.dtype:
    """The precision the in-memory functions compare in: float32 for float16/32, float64 otherwise (exact)."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16, torch.float32) else torch.float64


def _column_group(mask: np.ndarray, device: torch.device | None = None) -> slice | np.ndarray | torch.Tensor:
    """Columns where `mask` holds: a slice when contiguous (a view, no copy), else indices (a tensor on `device`)."""
    columns = np.flatnonzero(mask)
    if len(columns) and columns[-1] - columns[0] + 1 == len(columns):
        return slice(int(columns[0]), int(columns[-1]) + 1)
    return columns if device is None else torch.from_numpy(columns).to(device)


def _columns(block: torch.Tensor, group: slice | torch.Tensor) -> torch.Tensor:
    return block[:, group] if isinstance(group, slice) else block.index_select(1, group)
