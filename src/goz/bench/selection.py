"""Hyper-parameter selection on the seen classes only (never on test classes).

A fraction of the seen classes plays the unseen classes: models are fitted on the other seen
classes and scored (zsl top-1, pooled) on the held-out classes' training samples.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from goz import models
from goz.bench.evaluate import evaluate
from goz.errors import GozError
from goz.models.base import TrainingData


def _split_seen_classes(data: TrainingData, holdout_fraction: float, seed: int) -> tuple[TrainingData, np.ndarray,
                                                                                          np.ndarray, list[str]]:
    """(fit data, held-out rows, their labels as indices into the held-out classes, held-out wnids)."""
    with_vectors = [i for i, wnid in enumerate(data.seen_wnids) if wnid in data.semantics]
    n_holdout = int(round(holdout_fraction * len(with_vectors)))
    if n_holdout < 2 or n_holdout >= len(with_vectors):
        raise GozError(f"holdout_fraction={holdout_fraction} of {len(with_vectors)} seen classes with a class "
                       f"vector holds out {n_holdout}; need at least 2 held out and 1 left to fit on")
    held_out = np.sort(np.random.default_rng(seed).permutation(with_vectors)[:n_holdout])
    is_held_out = np.zeros(len(data.seen_wnids), dtype=bool)
    is_held_out[held_out] = True
    fit_classes = np.flatnonzero(~is_held_out)
    labels = np.asarray(data.labels)
    sample_held_out = is_held_out[labels]
    fit_rows, holdout_rows = np.flatnonzero(~sample_held_out), np.flatnonzero(sample_held_out)
    new_index = np.full(len(data.seen_wnids), -1, dtype=np.int64)
    new_index[fit_classes] = np.arange(len(fit_classes))
    new_index[held_out] = np.arange(len(held_out))
    fit_data = replace(
        data,
        # One copy of the fitting rows, in their own dtype (float16 stays float16).
        features=data.features[fit_rows],
        labels=new_index[labels[fit_rows]],
        seen_wnids=[data.seen_wnids[i] for i in fit_classes],
        classifier_weights=None if data.classifier_weights is None else data.classifier_weights[fit_classes],
    )
    return fit_data, holdout_rows, new_index[labels[holdout_rows]], [data.seen_wnids[i] for i in held_out]


def select_hyperparameters(name: str, data: TrainingData, grid: Mapping[str, Sequence],
                           holdout_fraction: float = 0.2, seed: int = 0) -> tuple[dict, list[dict]]:
    """Grid search for model `name` on pseudo-unseen seen classes.

    `grid` maps hyper-parameter names to candidate values (every combination is tried). Returns
    (the best combination by held-out zsl top-1, the first in grid order on ties; one row per
    combination: its values and `top1`). Memory: one copy of the fitting rows of `data.features`.
    """
    if not grid:
        raise GozError("the hyper-parameter grid is empty")
    fit_data, holdout_rows, holdout_labels, holdout_wnids = _split_seen_classes(data, holdout_fraction, seed)
    holdout_features = data.features[holdout_rows]
    table = []
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid.keys(), values))
        scores = models.create(name, **params).fit(fit_data).scores(holdout_features, holdout_wnids)
        table.append({**params, "top1": evaluate(scores, holdout_labels, holdout_wnids, ks=(1,))["top1"]})
    best = max(table, key=lambda row: row["top1"])
    return {key: best[key] for key in grid}, table
