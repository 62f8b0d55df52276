"""Classifier tables: wnid -> a linear classifier (weight row and bias) for test features.

The format of predicted classifiers, such as those the original GOZ benchmark published for its
graph models (converted by `goz fetch published`): HDF5 with `wnids` (utf-8 strings), `weights`
float32 (C, D) and `bias` float32 (C,), plus free-form attributes (where the table came from); or
`.npz` with the same three arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from goz.errors import GozError
from goz.semantics.table import index_wnid_rows, read_wnid_arrays, write_wnid_arrays


@dataclass
class ClassifierTable:
    wnids: list[str]
    weights: np.ndarray  # (C, D) float32
    bias: np.ndarray     # (C,) float32
    attrs: dict = field(default_factory=dict)

    def __post_init__(self):
        self.weights = np.asarray(self.weights, dtype=np.float32)
        self.bias = np.asarray(self.bias, dtype=np.float32).reshape(-1)
        self._row = index_wnid_rows("classifier table", self.wnids, weights=self.weights, bias=self.bias)

    @property
    def dim(self) -> int:
        return self.weights.shape[1]

    def __contains__(self, wnid: object) -> bool:
        return wnid in self._row

    def __len__(self) -> int:
        return len(self.wnids)

    def rows(self, wnids: Sequence[str], source: str = "classifier table") -> tuple[np.ndarray, np.ndarray]:
        """(weights (n, D), bias (n,)) of `wnids` in their order; GozError naming the classes it lacks."""
        missing = [w for w in wnids if w not in self._row]
        if missing:
            raise GozError(f"{source}: no classifier for {len(missing)} of the {len(wnids)} classes asked for: "
                           f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
        index = [self._row[w] for w in wnids]
        return self.weights[index], self.bias[index]

    def save(self, path: str | Path) -> Path:
        """Writes HDF5 (or .npz by suffix) atomically."""
        return write_wnid_arrays(path, self.wnids, {"weights": self.weights, "bias": self.bias}, self.attrs)


def load(path: str | Path) -> ClassifierTable:
    path = Path(path)
    if not path.is_file():
        raise GozError(f"{path}: no such classifier table (the published ones: `goz fetch published`)")
    wnids, arrays, attrs = read_wnid_arrays(path, ("weights", "bias"), "a classifier table")
    return ClassifierTable(wnids, arrays["weights"], arrays["bias"], attrs)
