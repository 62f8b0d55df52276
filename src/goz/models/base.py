"""The interface every ZSL model implements (scikit-learn style: hyper-parameters in __init__,
learned state in attributes ending in `_`, no I/O inside models)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from goz.semantics import SemanticsTable

if TYPE_CHECKING:
    from goz.wordnet.hierarchy import ClassGraph


@dataclass
class TrainingData:
    """What a model may learn from. Nothing here comes from the test classes except their
    side information (class vectors, graph nodes), which is what zero-shot learning allows."""

    features: np.ndarray              # (N, D) float32 (or float16 to save memory) training features
    labels: np.ndarray                # (N,) int64, index into seen_wnids
    seen_wnids: list[str]             # the training classes, in label order
    semantics: SemanticsTable         # class vectors of every class that may be scored
    graph: ClassGraph | None = None   # for graph models: seen + candidate classes + their ancestors
    classifier_weights: np.ndarray | None = None  # optional (len(seen_wnids), D + 1) fc weights and bias


class ZSLModel:
    """fit on seen classes, then score test features against any candidate classes."""

    name: ClassVar[str] = "unnamed"

    def fit(self, data: TrainingData) -> ZSLModel:
        raise NotImplementedError

    def scores(self, features: np.ndarray, candidates: Sequence[str]) -> np.ndarray:
        """(n_samples, len(candidates)) compatibility scores; higher means more likely."""
        raise NotImplementedError

    def get_params(self) -> dict:
        """Hyper-parameters (the __init__ arguments), recorded in every result JSON."""
        return {key: value for key, value in vars(self).items()
                if not key.endswith("_") and not key.startswith("_")}
