"""The graph baselines' classifiers as the original GOZ benchmark published them, scored as they are.

`gcn6_published`, `sgcn_published` and `dgp_published` are no-training models: each reads the
classifier table `goz fetch published` converted from the GOZ repository (`data/models/gcn_6`,
`gcn_2`, `adgpm`: one classifier per class, predicted by the public DGP code) and scores a test
feature x against candidate c as x . w_c, the bias dropped, as the GOZ notebook scores them
(`bias=True` adds it, as DGP's own evaluation does). They need no class vector and no graph: any
candidate with a row in the table is scored; a candidate without one is an error naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from goz.catalog import published_table_path
from goz.errors import GozError
from goz.home import sha256_of
from goz.models import register_model
from goz.models.base import TrainingData, ZSLModel
from goz.models.classifier_table import ClassifierTable
from goz.models.classifier_table import load as load_classifier_table


class PublishedClassifiers(ZSLModel):
    """Scores with a fixed classifier table; `fit` only reads it and checks the feature dimension."""

    table_name: ClassVar[str] = ""  # the published table's name in the GOZ repository
    needs_class_vectors = False
    in_demo = False  # the synthetic demo has no published table
    needs_training_features = False

    def __init__(self, table: str | None = None, bias: bool = False, **common):
        super().__init__(**common)
        self.table = table
        self.bias = bias

    @property
    def fits_on_class_means(self) -> bool:
        return True  # nothing is learned: the cheapest training input

    def _path(self) -> str:
        return str(self.table or published_table_path(self.table_name))

    def input_fingerprints(self) -> dict[str, str]:
        path = Path(self._path())
        return {"classifier_table": sha256_of(path) if path.is_file() else "missing"}

    def fit(self, data: TrainingData) -> PublishedClassifiers:
        path = self._path()
        try:
            self.table_: ClassifierTable = load_classifier_table(path)
        except GozError as error:
            raise GozError(f"{self.name}: {error}; install the published tables with `goz fetch published`, "
                           f"or give one with --set {self.name}.table=PATH") from None
        self.source_ = path
        if data.features.shape[1] != self.table_.dim:
            raise GozError(f"{self.name}: the features have {data.features.shape[1]} dimensions but the "
                           f"classifiers of {path} have {self.table_.dim}")
        return self

    def scores(self, features: np.ndarray, candidates: Sequence[str]) -> np.ndarray:
        weights, bias = self.table_.rows(list(candidates), f"{self.name} ({self.source_})")
        # float64: a candidate's score must not depend on which other candidates share the product
        scores = np.asarray(features, dtype=np.float64) @ weights.T.astype(np.float64)
        return (scores + bias if self.bias else scores).astype(np.float32)


@register_model("gcn6_published")
class GCN6Published(PublishedClassifiers):
    """GCN-6's classifiers as published by GOZ (`data/models/gcn_6`)."""

    table_name = "gcn_6"
    display_order = 14


@register_model("sgcn_published", aliases=("gcn2_published",))
class SGCNPublished(PublishedClassifiers):
    """SGCN (GCN-2)'s classifiers as published by GOZ (`data/models/gcn_2`)."""

    table_name = "gcn_2"
    display_order = 15


@register_model("dgp_published", aliases=("adgpm_published",))
class DGPPublished(PublishedClassifiers):
    """DGP (ADGPM)'s classifiers as published by GOZ (`data/models/adgpm`)."""

    table_name = "adgpm"
    display_order = 16
