"""f-CLSWGAN (Xian et al., "Feature Generating Networks for Zero-Shot Learning", CVPR 2018).

A conditional WGAN-GP learns to generate image features from class vectors on the seen classes,
its generator also minimizing the cross-entropy of a softmax classifier pretrained on the seen
classes (the "CLS" loss). Zero-shot classification is then ordinary classification: a softmax
classifier trained on features of the candidate classes, synthesized for the classes without
training samples (real for the seen classes among the candidates, as in the paper's GZSL).

The final classifier depends on the candidate set, so it is trained when `scores` first sees a
candidate set (zsl: unseen only, every feature synthesized; gzsl: real seen + synthesized unseen)
and cached for that set (in a canonical order, so the order of the candidates does not matter).
The model therefore scores any candidate set with a class vector; `goz bench` counts that
classifier's training in `score_seconds`, and `fit_seconds` covers the pretrained classifier and the GAN.

As in the reference code: generator Linear(d + z, h) -> LeakyReLU(0.2) -> Linear(h, D) -> ReLU,
critic Linear(D + d, h) -> LeakyReLU(0.2) -> Linear(h, 1), weights N(0, 0.02), Adam (beta1 0.5),
5 critic steps per generator step, gradient penalty 10, noise of the class vectors' dimension,
features min-max scaled per dimension (from the training features). Different (README, "Modern
baselines"): class vectors enter unit-norm times sqrt(d); learning rates (GAN 5e-4, classifiers
1e-2) and the classification-loss weight (0.1) suit short budgets (tuned on the synthetic
benchmark); budgets differ: the defaults (hidden 512, 400 generator steps of 64 samples, 200 / 400 minibatches of 256
for the pretrained / final classifiers, 100 synthesized features per class) fit GOZ (1000 x 500
features of 2048-d, 500 unseen) in under 15 minutes on 2 CPU cores (benchmarks/bench_clswgan.py);
the paper's (hidden 4096, tens of epochs) want a GPU, e.g. `--device cuda --set clswgan.hidden=4096
--set clswgan.gan_iterations=20000 --set clswgan.classifier_batches=20000`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from goz.errors import GozError
from goz.models import register_model
from goz.models.base import TrainingData, ZSLModel
from goz.models.training import (
    candidate_vectors,
    check_scoring_input,
    minibatch_rows,
    resolve_device,
    row_chunks,
    seen_classes,
    to_tensor,
)

SCALE_ROWS = 50_000       # training rows the min-max scaling is estimated on
CACHED_CLASSIFIERS = 4    # final classifiers kept (one per candidate set: zsl and gzsl need two)


def _mlp(sizes: tuple[int, int, int], generator: torch.Generator, output: nn.Module | None) -> nn.Sequential:
    layers = [nn.Linear(sizes[0], sizes[1]), nn.LeakyReLU(0.2), nn.Linear(sizes[1], sizes[2])]
    if output is not None:
        layers.append(output)
    network = nn.Sequential(*layers)
    with torch.no_grad():
        for layer in network:
            if isinstance(layer, nn.Linear):
                layer.weight.normal_(0.0, 0.02, generator=generator)
                layer.bias.zero_()
    return network


@register_model("clswgan", aliases=("f-clswgan",))
class CLSWGAN(ZSLModel):
    """Feature-generating conditional WGAN-GP with a classification loss, then a softmax classifier."""

    display_order = 30
    demo_hyperparameters = {"hidden": 256, "gan_iterations": 300, "pretrain_batches": 100,
                            "classifier_batches": 200, "synthesized_per_class": 100}
    test_hyperparameters = {"hidden": 32, "gan_iterations": 15, "critic_iterations": 2, "batch_size": 32,
                            "pretrain_batches": 20, "classifier_batches": 30, "classifier_batch_size": 64,
                            "synthesized_per_class": 20}

    def __init__(self, hidden: int = 512, noise_dim: int | None = None, gan_iterations: int = 400,
                 critic_iterations: int = 5, batch_size: int = 64, lr: float = 5e-4, gradient_penalty: float = 10.0,
                 cls_weight: float = 0.1, pretrain_batches: int = 200, classifier_batches: int = 400,
                 classifier_batch_size: int = 256, classifier_lr: float = 1e-2, synthesized_per_class: int = 100,
                 **common):
        self.hidden = hidden
        self.noise_dim = noise_dim
        self.gan_iterations = gan_iterations
        self.critic_iterations = critic_iterations
        self.batch_size = batch_size
        self.lr = lr
        self.gradient_penalty = gradient_penalty
        self.cls_weight = cls_weight
        self.pretrain_batches = pretrain_batches
        self.classifier_batches = classifier_batches
        self.classifier_batch_size = classifier_batch_size
        self.classifier_lr = classifier_lr
        self.synthesized_per_class = synthesized_per_class
        super().__init__(**common)

    # -- checks ----------------------------------------------------------------------------------------

    def _check_hyperparameters(self) -> None:
        for name, minimum in (("hidden", 1), ("gan_iterations", 0), ("critic_iterations", 1), ("batch_size", 1),
                              ("pretrain_batches", 0), ("classifier_batches", 0), ("classifier_batch_size", 1),
                              ("synthesized_per_class", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise GozError(f"clswgan: {name} must be an integer >= {minimum}, got {value!r}")
        if self.noise_dim is not None and (not isinstance(self.noise_dim, int) or self.noise_dim < 1):
            raise GozError(f"clswgan: noise_dim must be an integer >= 1 (or None: the class vectors' dimension), "
                           f"got {self.noise_dim!r}")
        for name in ("lr", "classifier_lr", "gradient_penalty", "cls_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0
                    and (value > 0 or not name.endswith("lr"))):
                raise GozError(f"clswgan: {name} must be a finite number {'> 0' if name.endswith('lr') else '>= 0'}, "
                               f"got {value!r}")

    def _finite(self, loss: torch.Tensor, what: str, step: int) -> None:
        if not torch.isfinite(loss):
            raise GozError(f"clswgan: the {what} loss is {loss.item()} at step {step}: the training features hold "
                           "NaN/inf values, or a learning rate is too high")

    # -- fit -------------------------------------------------------------------------------------------

    def fit(self, data: TrainingData) -> CLSWGAN:
        self._check_hyperparameters()
        self.device_ = resolve_device(self.device)
        self.semantics_ = data.semantics.normalized()
        seen = seen_classes(data, self.semantics_)
        self.seen_wnids_ = seen.wnids
        self.feature_dim_ = data.features.shape[1]
        self._features, self._labels, self._rows = data.features, seen.labels, seen.rows
        torch_generator = torch.Generator().manual_seed(self.seed)
        self._noise = torch.Generator().manual_seed(self.seed + 1)
        self._fit_scaling(data.features, seen.rows)
        seen_vectors = self._condition(seen.vectors)
        pretrained = self._train_softmax(len(seen.wnids), self._real_batches(seen.rows, self.pretrain_batches,
                                                                             self.classifier_batch_size, 1),
                                         self.pretrain_batches, "clswgan pretrained classifier")
        self.classifiers_: dict[tuple[str, ...], nn.Linear] = {}
        semantic_dim, noise_dim = seen.vectors.shape[1], self.noise_dim or seen.vectors.shape[1]
        self.noise_dim_ = noise_dim
        self.generator_ = _mlp((semantic_dim + noise_dim, self.hidden, self.feature_dim_), torch_generator,
                               nn.ReLU()).to(self.device_)
        critic = _mlp((self.feature_dim_ + semantic_dim, self.hidden, 1), torch_generator, None).to(self.device_)
        betas = (0.5, 0.999)
        generator_optimizer = torch.optim.Adam(self.generator_.parameters(), lr=self.lr, betas=betas)
        critic_optimizer = torch.optim.Adam(critic.parameters(), lr=self.lr, betas=betas)
        batches = self._real_batches(seen.rows, self.gan_iterations * self.critic_iterations, self.batch_size, 2)
        mixing = torch.Generator().manual_seed(self.seed + 3)
        for step in tqdm(range(self.gan_iterations), desc="clswgan GAN", unit="step", disable=not self.progress):
            for _ in range(self.critic_iterations):
                real, labels = next(batches)
                vectors = seen_vectors[labels]
                with torch.no_grad():
                    fake = self.generator_(torch.cat([vectors, self._draw_noise(len(real))], dim=1))
                alpha = torch.rand(len(real), 1, generator=mixing).to(self.device_)
                mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
                gradient = torch.autograd.grad(critic(torch.cat([mixed, vectors], dim=1)).sum(), mixed,
                                               create_graph=True)[0]
                penalty = ((gradient.norm(2, dim=1) - 1) ** 2).mean()
                critic_loss = (critic(torch.cat([fake, vectors], dim=1)).mean()
                               - critic(torch.cat([real, vectors], dim=1)).mean() + self.gradient_penalty * penalty)
                self._finite(critic_loss, "critic", step)
                critic_optimizer.zero_grad()
                critic_loss.backward()
                critic_optimizer.step()
            # The generator step reuses the last critic batch's classes, as the reference code does.
            fake = self.generator_(torch.cat([vectors, self._draw_noise(len(real))], dim=1))
            generator_loss = (-critic(torch.cat([fake, vectors], dim=1)).mean()
                              + self.cls_weight * nn.functional.cross_entropy(pretrained(fake), labels))
            self._finite(generator_loss, "generator", step)
            generator_optimizer.zero_grad()
            generator_loss.backward()
            generator_optimizer.step()
        self.generator_.eval().requires_grad_(False)
        return self

    def _fit_scaling(self, features: np.ndarray, rows: np.ndarray) -> None:
        """Per-dimension min-max scaling to [0, 1] (the reference preprocessing), from up to SCALE_ROWS rows."""
        sample = np.sort(np.random.default_rng(self.seed).choice(rows, size=min(len(rows), SCALE_ROWS), replace=False))
        low = np.full(self.feature_dim_, np.inf, np.float32)
        high = np.full(self.feature_dim_, -np.inf, np.float32)
        for _, block in row_chunks(features[sample], torch.device("cpu")):
            low = np.minimum(low, block.min(0).values.numpy())
            high = np.maximum(high, block.max(0).values.numpy())
        self.offset_ = torch.from_numpy(low).to(self.device_)
        self.span_ = torch.from_numpy(np.maximum(high - low, 1e-6)).to(self.device_)

    def _condition(self, unit_vectors: np.ndarray) -> torch.Tensor:
        """Unit class vectors times sqrt(d): coordinates of unit variance like the noise's. Adam moves every
        weight at the same rate, so tiny inputs (a unit 300-d vector's) would need thousands of steps to matter."""
        return torch.from_numpy(unit_vectors * np.float32(np.sqrt(unit_vectors.shape[1]))).to(self.device_)

    def _scaled(self, block: torch.Tensor) -> torch.Tensor:
        return (block - self.offset_) / self.span_

    def _draw_noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.noise_dim_, generator=self._noise).to(self.device_)

    def _real_batches(self, rows: np.ndarray, n_batches: int, batch_size: int, stream: int):
        """(scaled features, labels) of `n_batches` minibatches drawn with replacement from `rows`."""
        for batch in minibatch_rows(rows, batch_size, n_batches, self.seed + 10 * stream):
            real = to_tensor(self._features[batch], self.device_)
            if not torch.isfinite(real).all():
                raise GozError(f"clswgan: training features hold NaN or infinite values (rows {batch[:3]}...)")
            yield self._scaled(real), torch.from_numpy(self._labels[batch]).to(self.device_)

    def _train_softmax(self, n_classes: int, batches, n_batches: int, description: str) -> nn.Linear:
        """A linear softmax classifier (Adam, beta1 0.5 as the reference) on scaled features, frozen after."""
        classifier = nn.Linear(self.feature_dim_, n_classes).to(self.device_)
        with torch.no_grad():
            generator = torch.Generator().manual_seed(self.seed + n_classes)
            bound = 1.0 / np.sqrt(self.feature_dim_)
            classifier.weight.uniform_(-bound, bound, generator=generator)
            classifier.bias.zero_()
        optimizer = torch.optim.Adam(classifier.parameters(), lr=self.classifier_lr, betas=(0.5, 0.999))
        for step, (features, labels) in enumerate(tqdm(batches, total=n_batches, desc=description, unit="batch",
                                                       disable=not self.progress)):
            loss = nn.functional.cross_entropy(classifier(features), labels)
            self._finite(loss, description, step)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return classifier.eval().requires_grad_(False)

    # -- the final classifier, per candidate set --------------------------------------------------------

    def synthesize(self, wnids: Sequence[str], per_class: int) -> torch.Tensor:
        """(len(wnids) * per_class, D) generated features (scaled), class by class in `wnids` order."""
        vectors = self._condition(candidate_vectors(self.semantics_, wnids))
        rows = vectors.repeat_interleave(per_class, dim=0)
        with torch.no_grad():
            return torch.cat([self.generator_(torch.cat([chunk, self._draw_noise(len(chunk))], dim=1))
                              for chunk in rows.split(8192)]) if len(rows) else \
                torch.zeros(0, self.feature_dim_, device=self.device_)

    def _classifier(self, candidates: Sequence[str]) -> tuple[tuple[str, ...], nn.Linear]:
        key = tuple(sorted(set(candidates)))
        if key in self.classifiers_:
            return key, self.classifiers_[key]
        self._noise.manual_seed(self.seed + 1 + len(key))  # the same candidate set always gets the same features
        trained = {wnid: i for i, wnid in enumerate(self.seen_wnids_)}
        real_classes = [w for w in key if w in trained]
        synthetic_classes = [w for w in key if w not in trained]
        column = {wnid: i for i, wnid in enumerate(key)}
        # Real features for the seen candidates (label remapped to the candidate order), synthetic for the rest.
        label_of_seen = np.full(len(self.seen_wnids_), -1, np.int64)
        for wnid in real_classes:
            label_of_seen[trained[wnid]] = column[wnid]
        real_rows = self._rows[label_of_seen[self._labels[self._rows]] >= 0] if real_classes else \
            np.zeros(0, np.int64)
        synthetic = self.synthesize(synthetic_classes, self.synthesized_per_class)
        synthetic_labels = torch.tensor([column[w] for w in synthetic_classes], dtype=torch.long,
                                        device=self.device_).repeat_interleave(self.synthesized_per_class)

        def batches():
            pool = len(real_rows) + len(synthetic)
            for batch in minibatch_rows(np.arange(pool), self.classifier_batch_size, self.classifier_batches,
                                        self.seed + 7):
                from_real = batch[batch < len(real_rows)]
                from_synthetic = torch.from_numpy(batch[batch >= len(real_rows)] - len(real_rows)).to(self.device_)
                rows = real_rows[from_real]
                real = self._scaled(to_tensor(self._features[rows], self.device_))
                real_labels = torch.from_numpy(label_of_seen[self._labels[rows]]).to(self.device_)
                yield (torch.cat([real, synthetic[from_synthetic]]),
                       torch.cat([real_labels, synthetic_labels[from_synthetic]]))

        classifier = self._train_softmax(len(key), batches(), self.classifier_batches,
                                         f"clswgan classifier ({len(real_classes)} real, "
                                         f"{len(synthetic_classes)} synthesized classes)")
        if len(self.classifiers_) >= CACHED_CLASSIFIERS:
            self.classifiers_.pop(next(iter(self.classifiers_)))
        self.classifiers_[key] = classifier
        return key, classifier

    def scores(self, features: np.ndarray, candidates: Sequence[str]) -> np.ndarray:
        """Logits of the softmax classifier trained for this candidate set (trained on first use, then cached)."""
        if not hasattr(self, "generator_"):
            raise GozError("clswgan: call fit() before scores()")
        check_scoring_input(features, self.feature_dim_, self.name)
        candidate_vectors(self.semantics_, candidates)  # a candidate without a vector: a clear error, first
        key, classifier = self._classifier(candidates)
        position = {wnid: i for i, wnid in enumerate(key)}
        columns = torch.tensor([position[w] for w in candidates], dtype=torch.long, device=self.device_)
        scores = np.empty((features.shape[0], len(candidates)), dtype=np.float32)
        with torch.no_grad():
            for rows, block in row_chunks(features, self.device_):
                scores[rows] = classifier(self._scaled(block))[:, columns].cpu().numpy()
        return scores
