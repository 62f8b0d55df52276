"""CLIP-style zero-shot classification: the cosine between an image embedding and a class embedding.

Nothing is trained on the seen classes: the image embeddings (a store written by `goz extract
--backbone clip:...`) and the class embeddings (a table from `goz embed --encoder clip:...`) already
live in one space, learnt by the vision-language model's contrastive pre-training. `goz bench`
refuses a store and a table from different CLIP models. Calibrated stacking and the seen-unseen
curve apply to these scores like to every model's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from goz.device import resolve_device
from goz.errors import GozError
from goz.models import register_model
from goz.models.base import TrainingData, ZSLModel
from goz.models.training import (
    candidate_vectors,
    check_scoring_input,
    row_chunks,
)


@register_model("clip")
class CLIPZeroShot(ZSLModel):
    """score(x, c) = cos(x, t_c): x the image embedding, t_c the class's (prompt-ensembled) text embedding.

    `fit` only checks that features and class vectors share a dimension and keeps the unit class
    vectors; the seen classes' samples are never used (`goz bench` does not read them).
    """

    display_order = 20
    joint_embedding = True
    needs_training_features = False  # learns nothing: `goz bench` does not read the training store's samples

    def __init__(self, **common):
        super().__init__(**common)

    @property
    def fits_on_class_means(self) -> bool:
        return True

    def fit(self, data: TrainingData) -> CLIPZeroShot:
        features = data.features
        if getattr(features, "ndim", None) != 2 or getattr(features.dtype, "kind", None) != "f":
            raise GozError(f"clip: features must be a floating-point (N, D) array, got "
                           f"{getattr(features, 'dtype', type(features).__name__)} {getattr(features, 'shape', None)}")
        if features.shape[1] != data.semantics.dim:
            raise GozError(f"clip: image features of dimension {features.shape[1]} and class vectors of dimension "
                           f"{data.semantics.dim} are not one embedding space; the clip model needs a store from "
                           "`goz extract --backbone clip:ARCH:PRETRAINED` and a table from "
                           "`goz embed --encoder clip:ARCH:PRETRAINED` (the same model)")
        self.device_ = resolve_device(self.device)
        self.semantics_ = data.semantics.normalized()
        self.feature_dim_ = features.shape[1]
        return self

    def scores(self, features: np.ndarray, candidates: Sequence[str]) -> np.ndarray:
        if not hasattr(self, "semantics_"):
            raise GozError("clip: call fit() before scores()")
        check_scoring_input(features, self.feature_dim_, self.name)
        targets = torch.from_numpy(candidate_vectors(self.semantics_, candidates)).to(self.device_)
        scores = np.empty((features.shape[0], len(candidates)), dtype=np.float32)
        with torch.no_grad():
            for rows, block in row_chunks(features, self.device_):
                scores[rows] = (torch.nn.functional.normalize(block, dim=1) @ targets.T).cpu().numpy()
        return scores
