"""The interface every ZSL model implements (scikit-learn style: hyper-parameters in __init__,
learned state in attributes ending in `_`, no I/O inside models)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from goz.semantics import SemanticsTable

if TYPE_CHECKING:
    import torch

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
    """fit on seen classes, then score test features against any candidate classes.

    A model's facts live on its class, so adding a model is one module (see ARCHITECTURE.md):
    `display_order` places it in tables, `uses_graph` says it scores any node of the class graph
    (no class vector needed), `demo_hyperparameters` / `test_hyperparameters` are its reduced
    budgets for `goz demo` and for the contract tests, and `fits_on_class_means` says it needs only
    each seen class's mean feature. `joint_embedding` says it compares image features with class
    vectors directly, so both must come from one embedding space (a CLIP store and table). Every
    model takes `seed`, `device` and `progress`.
    """

    name: ClassVar[str] = "unnamed"                # set by `register_model`
    aliases: ClassVar[tuple[str, ...]] = ()        # set by `register_model`
    display_order: ClassVar[int] = 100             # tables list models by this, then by name
    uses_graph: ClassVar[bool] = False             # needs the class graph (`TrainingData.graph`)
    joint_embedding: ClassVar[bool] = False        # compares features with class vectors directly (one space: CLIP)
    needs_class_vectors: ClassVar[bool] = True     # False: scores a candidate without a class vector
    in_demo: ClassVar[bool] = True                 # False: needs real files the synthetic demo lacks
    needs_training_features: ClassVar[bool] = True  # False: learns nothing, `goz bench` skips reading them
    demo_hyperparameters: ClassVar[dict] = {}      # budgets cut for a CPU demo on the synthetic benchmark
    test_hyperparameters: ClassVar[dict] = {}      # small but real settings for the model contract tests

    def __init__(self, *, seed: int = 0, device: str = "cpu", progress: bool = True):
        self.seed = seed
        self.device = device
        self.progress = progress

    @property
    def fits_on_class_means(self) -> bool:
        """True when `fit` needs only each seen class's mean feature (`goz bench` then streams the means)."""
        return False

    def fit(self, data: TrainingData) -> ZSLModel:
        raise NotImplementedError

    def scores(self, features: np.ndarray, candidates: Sequence[str]) -> np.ndarray:
        """(n_samples, len(candidates)) compatibility scores; higher means more likely."""
        raise NotImplementedError

    def score_matrix(self, candidates: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """For models whose scores are a product with one matrix: (weights (D, C), bias (C,) or None) such
        that `scores(x, candidates)` is `x @ weights (+ bias)` in float32. `goz bench` then scores the test
        store in chunks with that product on its device, without calling `scores`; None (the default):
        it calls `scores`."""
        return None

    def input_fingerprints(self) -> dict[str, str]:
        """Fingerprints of the files the model reads itself (not through `TrainingData`), so that a
        result is reused only when they are unchanged; most models read none."""
        return {}

    def get_params(self) -> dict:
        """Hyper-parameters (the __init__ arguments), recorded in every result JSON."""
        return {key: value for key, value in vars(self).items()
                if not key.endswith("_") and not key.startswith("_")}
