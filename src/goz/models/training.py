"""What the models share: checking training data, the seen classes that have a class vector,
device choice, minibatches and row chunks of large (float16/float32) feature arrays.

Feature arrays may be 500,000 x 2048: nothing here converts or copies a whole array; batches are
taken by index and converted one at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from goz.errors import GozError
from goz.models.base import TrainingData
from goz.semantics import SemanticsTable

CHUNK_ROWS = 8192


@dataclass
class SeenClasses:
    """The seen classes a model trains on: those with a class vector (the others are dropped)."""

    wnids: list[str]
    vectors: np.ndarray        # (C, d) float32
    labels: np.ndarray         # (N,) int64 index into `wnids`, -1 for samples of a dropped class
    rows: np.ndarray           # (M,) int64 the training rows whose class is kept


def seen_classes(data: TrainingData, semantics: SemanticsTable) -> SeenClasses:
    """Checks `data` and keeps the seen classes that have a vector in `semantics`."""
    features, labels = data.features, np.asarray(data.labels)
    if getattr(features, "ndim", None) != 2 or getattr(features.dtype, "kind", None) != "f":
        raise GozError(f"training features must be a floating-point (N, D) array, got "
                       f"{getattr(features, 'dtype', type(features).__name__)} {getattr(features, 'shape', None)}")
    if labels.shape != (features.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise GozError(f"training labels must be ({features.shape[0]},) integers, got {labels.dtype} {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(data.seen_wnids)):
        raise GozError(f"training labels must index the {len(data.seen_wnids)} seen classes, "
                       f"got {labels.min()}..{labels.max()}")
    wnids, vectors = semantics.select(data.seen_wnids, role="seen classes")
    if not wnids:
        raise GozError("none of the seen classes has a class vector: nothing to train on")
    kept = {wnid: i for i, wnid in enumerate(wnids)}
    remap = np.array([kept.get(wnid, -1) for wnid in data.seen_wnids], dtype=np.int64)
    new_labels = remap[labels]
    rows = np.flatnonzero(new_labels >= 0)
    if not len(rows):
        raise GozError("no training sample belongs to a seen class with a class vector: nothing to train on")
    return SeenClasses(wnids, vectors, new_labels, rows)


def candidate_vectors(semantics: SemanticsTable, candidates: Sequence[str]) -> np.ndarray:
    """(len(candidates), d) vectors; a candidate without a vector is an error (drop it beforehand)."""
    missing = [wnid for wnid in candidates if wnid not in semantics]
    if missing:
        raise GozError(f"{len(missing)} candidate classes have no class vector (e.g. {missing[0]}); "
                       "drop them with SemanticsTable.select before scoring")
    return np.stack([semantics.vector(wnid) for wnid in candidates]) if len(candidates) else \
        np.zeros((0, semantics.dim), np.float32)


def to_tensor(features: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One batch of features on `device` in `dtype` (converted here, batch by batch)."""
    return torch.from_numpy(np.ascontiguousarray(features)).to(device=device, dtype=dtype)


def row_chunks(features: np.ndarray, device: torch.device,
               dtype: torch.dtype = torch.float32) -> Iterator[tuple[slice, torch.Tensor]]:
    """(row slice, tensor) for consecutive blocks of `CHUNK_ROWS` rows of `features`."""
    for start in range(0, features.shape[0], CHUNK_ROWS):
        block = slice(start, min(start + CHUNK_ROWS, features.shape[0]))
        tensor = to_tensor(features[block], device, dtype)
        if not torch.isfinite(tensor).all():
            raise GozError(f"feature rows {block.start}..{block.stop - 1} hold NaN or infinite values")
        yield block, tensor


def minibatch_rows(rows: np.ndarray, batch_size: int, n_batches: int, seed: int) -> Iterator[np.ndarray]:
    """`n_batches` sorted index arrays drawn with replacement from `rows`, as the original sampled."""
    generator = np.random.default_rng(seed)
    for _ in range(n_batches):
        # Sorted indices read memory (or an HDF5-backed memmap) front to back; order within a batch is irrelevant.
        yield np.sort(generator.choice(rows, size=batch_size, replace=True))


def linear_init(out_features: int, in_features: int, seed: int, device: torch.device) -> torch.Tensor:
    """A trainable (out, in) weight drawn like torch.nn.Linear's default, from its own seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    bound = 1.0 / np.sqrt(in_features)
    weight = torch.empty(out_features, in_features).uniform_(-bound, bound, generator=generator)
    return weight.to(device).requires_grad_(True)


def check_scoring_input(features: np.ndarray, expected_dim: int, model: str) -> None:
    if getattr(features, "ndim", None) != 2 or features.shape[1] != expected_dim \
            or getattr(features.dtype, "kind", None) != "f":
        raise GozError(f"{model}: features must be a floating-point (n, {expected_dim}) array like the training "
                       f"features, got {getattr(features, 'dtype', type(features).__name__)} "
                       f"{getattr(features, 'shape', None)}")
