"""The linear baselines of the GOZ benchmark: ConSE, DeViSE and ESZSL.

Defaults follow the original benchmark notebooks: 500 minibatches of 2000 samples drawn with
replacement, Adam at PyTorch's default learning rate (1e-3, the original passed none), unit-norm
class vectors for ConSE and DeViSE, raw class vectors and class-mean features for ESZSL with
gamma = lambda = 100. Seen classes without a class vector are dropped from training (993 of the
1000 ILSVRC classes have a GloVe vector).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from goz.device import resolve_device
from goz.errors import GozError
from goz.models import register_model
from goz.models.base import TrainingData, ZSLModel
from goz.models.training import (
    SeenClasses,
    candidate_vectors,
    check_scoring_input,
    linear_init,
    minibatch_rows,
    row_chunks,
    seen_classes,
    to_tensor,
)
from goz.progress import progress_bar


class _LinearBaseline(ZSLModel):
    """Shared plumbing: device, the class vectors kept at fit time, row-chunked scoring."""

    device: str

    def _start_fit(self, data: TrainingData, normalize: bool) -> SeenClasses:
        self._check_hyperparameters()
        self.device_ = resolve_device(self.device)
        self.semantics_ = data.semantics.normalized() if normalize else data.semantics
        seen = seen_classes(data, self.semantics_)
        self.seen_wnids_ = seen.wnids
        self.feature_dim_ = data.features.shape[1]
        return seen

    def _check_hyperparameters(self) -> None:
        """Counts must be integers (n_batches >= 0, others >= 1), rates and regularizers finite, >= 0 (lr > 0)."""
        params = self.get_params()
        for name, minimum in (("top_t", 1), ("batch_size", 1), ("n_batches", 0)):
            if name in params and (isinstance(params[name], bool) or not isinstance(params[name], int)
                                   or params[name] < minimum):
                raise GozError(f"{self.name}: {name} must be an integer >= {minimum}, got {params[name]!r}")
        for name in ("lr", "margin", "gamma", "lam"):
            value = params.get(name)
            if value is not None and not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0
                                          and (value > 0 or name != "lr")):
                raise GozError(f"{self.name}: {name} must be a finite number {'> 0' if name == 'lr' else '>= 0'}, "
                               f"got {value!r}")

    def _candidates(self, features: np.ndarray, candidates: Sequence[str]) -> torch.Tensor:
        if not hasattr(self, "semantics_"):
            raise GozError(f"{self.name}: call fit() before scores()")
        check_scoring_input(features, self.feature_dim_, self.name)
        return torch.from_numpy(candidate_vectors(self.semantics_, candidates)).to(self.device_)

    def _score_rows(self, features: np.ndarray, n_candidates: int,
                    score_block: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
        """Applies `score_block(float32 tensor) -> tensor` to row chunks; (n, C) float32 numpy."""
        scores = np.empty((features.shape[0], n_candidates), dtype=np.float32)
        with torch.no_grad():
            for rows, block in row_chunks(features, self.device_):
                scores[rows] = score_block(block).float().cpu().numpy()
        return scores


def _adam_minibatches(model: ZSLModel, weight: torch.Tensor, rows: np.ndarray,
                      loss_of_batch: Callable[[np.ndarray], torch.Tensor]) -> None:
    """Adam on `weight` over `model.n_batches` minibatches; `loss_of_batch(rows) -> scalar loss`."""
    optimizer = torch.optim.Adam([weight], lr=model.lr)
    batches = minibatch_rows(rows, model.batch_size, model.n_batches, model.seed)
    for number, batch in enumerate(progress_bar(batches, total=model.n_batches, desc=model.name, unit="batch",
                                        disable=not model.progress)):
        optimizer.zero_grad()
        loss = loss_of_batch(batch)
        if not torch.isfinite(loss):
            raise GozError(f"{model.name}: the training loss is {loss.item()} at minibatch {number}: the training "
                           f"features hold NaN/inf values, or the learning rate ({model.lr}) is too high")
        loss.backward()
        optimizer.step()


@register_model("conse")
class ConSE(_LinearBaseline):
    """Convex combination of semantic embeddings (Norouzi et al. 2014).

    A softmax classifier over the seen classes (linear, no bias, cross-entropy, Adam) embeds an
    image as the probability-weighted mean of the unit class vectors of its `top_t` most likely
    seen classes, re-normalized; a candidate's score is its cosine similarity with that embedding.
    """

    display_order = 1
    demo_hyperparameters = {"batch_size": 1000, "n_batches": 100}
    test_hyperparameters = {"batch_size": 64, "n_batches": 60, "lr": 1e-2}

    def __init__(self, top_t: int = 5, batch_size: int = 2000, n_batches: int = 500, lr: float = 1e-3, **common):
        self.top_t = top_t
        self.batch_size = batch_size
        self.n_batches = n_batches
        self.lr = lr
        super().__init__(**common)

    def fit(self, data: TrainingData) -> ConSE:
        seen = self._start_fit(data, normalize=True)
        weight = linear_init(len(seen.wnids), self.feature_dim_, self.seed, self.device_)

        def loss_of_batch(batch: np.ndarray) -> torch.Tensor:
            logits = to_tensor(data.features[batch], self.device_) @ weight.T
            labels = torch.from_numpy(seen.labels[batch]).to(self.device_)
            return torch.nn.functional.cross_entropy(logits, labels)

        _adam_minibatches(self, weight, seen.rows, loss_of_batch)
        self.classifier_ = weight.detach()
        self.seen_vectors_ = torch.from_numpy(seen.vectors).to(self.device_)
        return self

    def scores(self, features: np.ndarray, candidates: Sequence[str]) -> np.ndarray:
        targets = torch.nn.functional.normalize(self._candidates(features, candidates), dim=1)
        top_t = min(self.top_t, len(self.seen_wnids_))

        def score_block(block: torch.Tensor) -> torch.Tensor:
            probabilities, classes = torch.softmax(block @ self.classifier_.T, dim=1).topk(top_t, dim=1)
            embedding = (probabilities.unsqueeze(-1) * self.seen_vectors_[classes]).sum(dim=1)
            return torch.nn.functional.normalize(embedding, dim=1) @ targets.T

        return self._score_rows(features, len(candidates), score_block)


def hinge_rank_loss(similarities: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean over samples of the sum over wrong classes c of max(0, margin - s_true + s_c)."""
    true = labels.unsqueeze(1)
    violations = torch.clamp(margin - similarities.gather(1, true) + similarities, min=0)
    return violations.scatter(1, true, 0.0).sum(dim=1).mean()


@register_model("devise")
class DeViSE(_LinearBaseline):
    """Deep visual-semantic embedding (Frome et al. 2013), linear as in the GOZ benchmark.

    A linear map M projects features into the semantic space; training minimizes the hinge rank
    loss of the original code: with s_c = sigmoid(<M x, v_c>) over the seen classes' unit vectors,
    sum over wrong classes c of max(0, margin - s_true + s_c), averaged over the minibatch (the
    original averaged over all batch x class entries, true class included: the same gradient up to
    a constant factor, which Adam's updates do not see).
    Score: the dot product of M x with the candidate's unit class vector (for one sample this
    ranks candidates exactly like the cosine, since |M x| is common to all of them).
    """

    display_order = 2
    demo_hyperparameters = {"batch_size": 1000, "n_batches": 100}
    test_hyperparameters = {"batch_size": 64, "n_batches": 60, "lr": 1e-2}

    def __init__(self, margin: float = 0.7, batch_size: int = 2000, n_batches: int = 500, lr: float = 1e-3, **common):
        self.margin = margin
        self.batch_size = batch_size
        self.n_batches = n_batches
        self.lr = lr
        super().__init__(**common)

    def fit(self, data: TrainingData) -> DeViSE:
        seen = self._start_fit(data, normalize=True)
        vectors = torch.from_numpy(seen.vectors).to(self.device_)
        weight = linear_init(vectors.shape[1], self.feature_dim_, self.seed, self.device_)

        def loss_of_batch(batch: np.ndarray) -> torch.Tensor:
            similarities = torch.sigmoid(to_tensor(data.features[batch], self.device_) @ weight.T @ vectors.T)
            return hinge_rank_loss(similarities, torch.from_numpy(seen.labels[batch]).to(self.device_), self.margin)

        _adam_minibatches(self, weight, seen.rows, loss_of_batch)
        self.projection_ = weight.detach()
        return self

    def scores(self, features: np.ndarray, candidates: Sequence[str]) -> np.ndarray:
        targets = self._candidates(features, candidates)
        return self._score_rows(features, len(candidates), lambda block: block @ self.projection_.T @ targets.T)


@register_model("eszsl")
class ESZSL(_LinearBaseline):
    """Embarrassingly simple zero-shot learning (Romera-Paredes & Torr 2015), closed form.

    V = (X^T X + gamma I)^-1 X^T Y S (S^T S + lambda I)^-1 (`lam` is lambda) and score(x, c) =
    x V s_c^T, with S the seen class vectors (C x d). Default (`per_sample=False`, the GOZ benchmark's variant): X holds
    the seen class-mean features (C x D) and Y is the identity. `per_sample=True`: X holds every
    training sample and Y their one-hot labels; X^T X and X^T Y are streamed over row chunks in
    float64 (Y is never materialized). The solve runs in float64; scoring in float32.
    """

    display_order = 3
    # Regularizers that suit the synthetic class vectors' scale.
    demo_hyperparameters = {"gamma": 10.0, "lam": 10000.0}
    test_hyperparameters = {"gamma": 1.0, "lam": 1.0}

    def __init__(self, gamma: float = 100.0, lam: float = 100.0, per_sample: bool = False,
                 normalize_semantics: bool = False, **common):
        self.gamma = gamma
        self.lam = lam
        self.per_sample = per_sample
        self.normalize_semantics = normalize_semantics
        # The closed form draws nothing at random; `seed` is accepted (and recorded) like every model's.
        super().__init__(**common)

    @property
    def fits_on_class_means(self) -> bool:
        """The class-mean variant needs only each seen class's mean feature: `goz bench` streams those
        from the store instead of loading every training sample."""
        return not self.per_sample

    def fit(self, data: TrainingData) -> ESZSL:
        seen = self._start_fit(data, normalize=self.normalize_semantics)
        n_classes, dim = len(seen.wnids), self.feature_dim_
        double = torch.float64
        class_sums = torch.zeros(n_classes, dim, dtype=double, device=self.device_)
        counts = torch.zeros(n_classes, dtype=double, device=self.device_)
        gram = torch.zeros(dim, dim, dtype=double, device=self.device_) if self.per_sample else None
        labels = torch.from_numpy(seen.labels)
        with progress_bar(total=data.features.shape[0], desc=self.name, unit="row", enabled=self.progress) as progress:
            for rows, block in row_chunks(data.features, self.device_, double):
                block_labels = labels[rows].to(self.device_)
                kept = block_labels >= 0
                block, block_labels = block[kept], block_labels[kept]
                class_sums.index_add_(0, block_labels, block)
                counts.index_add_(0, block_labels, torch.ones_like(block_labels, dtype=double))
                if gram is not None:
                    gram += block.T @ block
                progress.update(rows.stop - rows.start)
        vectors = torch.from_numpy(seen.vectors).to(self.device_, double)
        if self.per_sample:
            features_by_classes = class_sums.T                      # X^T Y
        else:
            if (counts == 0).any():
                empty = [seen.wnids[i] for i in torch.flatnonzero(counts == 0).tolist()]
                raise GozError(f"eszsl: {len(empty)} seen classes have no training sample (e.g. {empty[0]})")
            class_means = class_sums / counts.unsqueeze(1)
            gram = class_means.T @ class_means
            features_by_classes = class_means.T                     # X^T with Y = identity
        regularized_gram = gram + self.gamma * torch.eye(dim, dtype=double, device=self.device_)
        semantic_gram = vectors.T @ vectors + self.lam * torch.eye(vectors.shape[1], dtype=double,
                                                                   device=self.device_)
        try:
            left = torch.linalg.solve(regularized_gram, features_by_classes @ vectors)   # (D, d)
            # Right-multiplying by the inverse of a symmetric matrix is solving on the transpose.
            self.projection_ = torch.linalg.solve(semantic_gram, left.T).T
        except torch.linalg.LinAlgError as error:
            raise GozError(f"eszsl: singular system with gamma={self.gamma}, lam={self.lam} ({error}); "
                           "use positive gamma and lam") from None
        return self

    def score_matrix(self, candidates: Sequence[str]) -> tuple[torch.Tensor, None]:
        if not hasattr(self, "projection_"):
            raise GozError(f"{self.name}: call fit() before scores()")
        targets = torch.from_numpy(candidate_vectors(self.semantics_, candidates)).to(self.device_, torch.float64)
        return (self.projection_ @ targets.T).float(), None                          # (D, C)

    def scores(self, features: np.ndarray, candidates: Sequence[str]) -> np.ndarray:
        compatibility, _ = self.score_matrix(candidates)
        check_scoring_input(features, self.feature_dim_, self.name)
        return self._score_rows(features, len(candidates), lambda block: block @ compatibility)
