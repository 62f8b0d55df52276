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

As in the reference code (xianyongqin/f-CLSWGAN: clswgan.py, classifier.py, classifier2.py,
util.py, model.py): generator Linear(d + z, h) -> LeakyReLU(0.2) -> Linear(h, D) -> ReLU, critic
Linear(D + d, h) -> LeakyReLU(0.2) -> Linear(h, 1), every Linear (the softmax classifiers' too)
drawn N(0, 0.02) with zero bias, Adam (beta1 0.5) everywhere, 5 critic steps per generator step,
each on a fresh minibatch drawn without replacement, the generator step on the last critic batch's
classes, gradient penalty 10, noise of the class vectors' dimension, features min-max scaled per
dimension on every training feature (a constant dimension keeps scale 1, as scikit-learn's
MinMaxScaler), classifiers trained on shuffled epochs, the pretrained one with its own learning
rate and batch size. Budgets are given in minibatches (`gan_iterations`, `pretrain_batches`,
`classifier_batches`) or in epochs like the reference (`gan_epochs`, `pretrain_epochs`,
`classifier_epochs`); an epoch is ceil(rows / batch size) minibatches.

`preset="paper"` (`--set clswgan.preset=paper`) sets the reference's values (PRESETS below, each
with its source); explicit hyper-parameters still win. The defaults are budgets for 2 CPU cores at
GOZ scale (README, "Modern baselines"). Different from the reference, whatever the values: class
vectors enter unit-norm times sqrt(d); the final classifier reports the end of its budget, not the
best of its epochs as scored on the test set (classifier2.py keeps that one).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from goz.device import resolve_device
from goz.errors import GozError
from goz.models import register_model
from goz.models.base import TrainingData, ZSLModel
from goz.models.training import candidate_vectors, check_scoring_input, row_chunks, seen_classes, to_tensor
from goz.progress import progress_bar

CACHED_CLASSIFIERS = 4    # final classifiers kept (one per candidate set: zsl and gzsl need two)
INIT_STD = 0.02           # util.weights_init: every Linear N(0, 0.02), bias 0

# The budgets for 2 CPU cores at GOZ scale (1000 x 500 training features of 2048-d, 500 unseen).
DEFAULTS = {"hidden": 512, "noise_dim": None, "gan_iterations": 400, "gan_epochs": None, "critic_iterations": 5,
            "batch_size": 64, "lr": 5e-4, "gradient_penalty": 10.0, "cls_weight": 0.1,
            "pretrain_batches": 200, "pretrain_epochs": None, "pretrain_batch_size": 256, "pretrain_lr": 1e-2,
            "classifier_batches": 400, "classifier_epochs": None, "classifier_batch_size": 256,
            "classifier_lr": 1e-2, "synthesized_per_class": 100}

# The reference's values. Sources: xianyongqin/f-CLSWGAN (read in its copy myaghmaei/f-CLSWGAN at
# 3ccae2e, identical but for one line): clswgan.py argument defaults and calls, and the CUB scripts
# (scripts/reproduce_zsl_cub.sh, reproduce_gzsl_cub.sh), the ones with lr 1e-4, cls_weight 0.01 and
# 300 features per class; the release has no ImageNet script. README.md lists them with line numbers.
PRESETS = {
    "paper": {
        "hidden": 4096,                  # --ngh 4096 --ndh 4096 (CUB scripts; clswgan.py:34 default ngh 4096)
        "noise_dim": None,               # --nz = --attSize (CUB scripts: 312 and 312)
        "gan_epochs": 70,                # --nepoch 70 (reproduce_zsl_cub.sh; 56 in reproduce_gzsl_cub.sh)
        "gan_iterations": None,
        "critic_iterations": 5,          # --critic_iter 5 (clswgan.py:37)
        "batch_size": 64,                # --batch_size 64 (clswgan.py:30)
        "lr": 1e-4,                      # --lr 0.0001 (clswgan.py:40, CUB scripts)
        "gradient_penalty": 10.0,        # --lambda1 10 (clswgan.py:38)
        "cls_weight": 0.01,              # --cls_weight 0.01 (CUB scripts; clswgan.py:39 default 1)
        "pretrain_epochs": 50,           # classifier.CLASSIFIER(..., 0.001, 0.5, 50, 100) (clswgan.py:177)
        "pretrain_batches": None,
        "pretrain_batch_size": 100,      # (clswgan.py:177)
        "pretrain_lr": 1e-3,             # (clswgan.py:177)
        "classifier_epochs": 25,         # classifier2.CLASSIFIER(..., opt.classifier_lr, 0.5, 25, opt.syn_num) (:258, :263)
        "classifier_batches": None,
        "classifier_batch_size": 300,    # batch size = --syn_num (clswgan.py:258, :263)
        "classifier_lr": 1e-3,           # --classifier_lr 0.001 (clswgan.py:41, CUB scripts)
        "synthesized_per_class": 300,    # --syn_num 300 (CUB scripts; clswgan.py:24 default 100)
    },
}

_BUDGETS = (("gan_iterations", "gan_epochs"), ("pretrain_batches", "pretrain_epochs"),
            ("classifier_batches", "classifier_epochs"))


def _linear(n_in: int, n_out: int, generator: torch.Generator) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    with torch.no_grad():
        layer.weight.normal_(0.0, INIT_STD, generator=generator)
        layer.bias.zero_()
    return layer


def _mlp(sizes: tuple[int, int, int], generator: torch.Generator, output: nn.Module | None) -> nn.Sequential:
    layers = [_linear(sizes[0], sizes[1], generator), nn.LeakyReLU(0.2), _linear(sizes[1], sizes[2], generator)]
    return nn.Sequential(*layers, *([output] if output is not None else []))


def _epoch_batches(n_rows: int, batch_size: int, n_batches: int, seed: int) -> Iterator[np.ndarray]:
    """Positions 0..n_rows-1 in `n_batches` minibatches of consecutive shuffled epochs (a batch may run on
    into the next epoch's permutation), as classifier.py / classifier2.py `next_batch` draw them."""
    generator = np.random.default_rng(seed)
    order, position = generator.permutation(n_rows), 0
    for _ in range(n_batches):
        parts, needed = [], batch_size
        while needed:
            if position == n_rows:
                order, position = generator.permutation(n_rows), 0
            take = min(needed, n_rows - position)
            parts.append(order[position:position + take])
            position, needed = position + take, needed - take
        yield np.sort(np.concatenate(parts))  # sorted: memory read front to back; order within a batch is irrelevant


def _independent_batches(n_rows: int, batch_size: int, n_batches: int, seed: int) -> Iterator[np.ndarray]:
    """`n_batches` minibatches, each drawn without replacement, independently (util.py `next_batch`)."""
    generator = np.random.default_rng(seed)
    size = min(batch_size, n_rows)
    for _ in range(n_batches):
        yield np.sort(generator.choice(n_rows, size=size, replace=False))


@register_model("clswgan", aliases=("f-clswgan",))
class CLSWGAN(ZSLModel):
    """Feature-generating conditional WGAN-GP with a classification loss, then a softmax classifier."""

    display_order = 30
    demo_hyperparameters = {"hidden": 256, "gan_iterations": 300, "pretrain_batches": 100,
                            "classifier_batches": 200, "synthesized_per_class": 100}
    test_hyperparameters = {"hidden": 32, "gan_iterations": 15, "critic_iterations": 2, "batch_size": 32,
                            "pretrain_batches": 20, "classifier_batches": 30, "pretrain_batch_size": 64,
                            "classifier_batch_size": 64, "synthesized_per_class": 20}

    def __init__(self, preset: str | None = None, hidden: int | None = None, noise_dim: int | None = None,
                 gan_iterations: int | None = None, gan_epochs: int | None = None,
                 critic_iterations: int | None = None, batch_size: int | None = None, lr: float | None = None,
                 gradient_penalty: float | None = None, cls_weight: float | None = None,
                 pretrain_batches: int | None = None, pretrain_epochs: int | None = None,
                 pretrain_batch_size: int | None = None, pretrain_lr: float | None = None,
                 classifier_batches: int | None = None, classifier_epochs: int | None = None,
                 classifier_batch_size: int | None = None, classifier_lr: float | None = None,
                 synthesized_per_class: int | None = None, **common):
        """Every hyper-parameter left None takes the preset's value, else DEFAULTS'; the resolved values are
        the attributes (and what results record)."""
        given = {key: value for key, value in locals().items() if key in DEFAULTS}
        if preset is not None and preset not in PRESETS:
            raise GozError(f"clswgan: unknown preset {preset!r}; presets: {', '.join(sorted(PRESETS))}")
        explicit = {key: value for key, value in given.items() if value is not None}
        resolved = DEFAULTS | PRESETS.get(preset, {})
        for batches, epochs in _BUDGETS:
            if batches in explicit and epochs in explicit:
                raise GozError(f"clswgan: give {batches} or {epochs}, not both")
            if batches in explicit:
                resolved[epochs] = None   # an explicit minibatch budget replaces the preset's epochs
            if epochs in explicit:
                resolved[batches] = None
        resolved |= explicit
        self.preset = preset
        for key, value in resolved.items():
            setattr(self, key, value)
        super().__init__(**common)

    # -- checks ----------------------------------------------------------------------------------------

    def _check_hyperparameters(self) -> None:
        for name, minimum in (("hidden", 1), ("critic_iterations", 1), ("batch_size", 1),
                              ("pretrain_batch_size", 1), ("classifier_batch_size", 1),
                              ("synthesized_per_class", 1)):
            self._check_integer(name, getattr(self, name), minimum)
        for batches, epochs in _BUDGETS:
            value, name = (getattr(self, epochs), epochs) if getattr(self, epochs) is not None else \
                (getattr(self, batches), batches)
            self._check_integer(name, value, 0)
        if self.noise_dim is not None:
            self._check_integer("noise_dim", self.noise_dim, 1, " (or None: the class vectors' dimension)")
        for name in ("lr", "pretrain_lr", "classifier_lr", "gradient_penalty", "cls_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
                    and value >= 0 and (value > 0 or not name.endswith("lr"))):
                raise GozError(f"clswgan: {name} must be a finite number {'> 0' if name.endswith('lr') else '>= 0'}, "
                               f"got {value!r}")

    @staticmethod
    def _check_integer(name: str, value, minimum: int, hint: str = "") -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise GozError(f"clswgan: {name} must be an integer >= {minimum}{hint}, got {value!r}")

    def _finite(self, loss: torch.Tensor, what: str, step: int) -> None:
        if not torch.isfinite(loss):
            raise GozError(f"clswgan: the {what} loss is {loss.item()} at step {step}: the training features hold "
                           "NaN/inf values, or a learning rate is too high")

    @staticmethod
    def _n_batches(batches: int | None, epochs: int | None, n_rows: int, batch_size: int) -> int:
        """The minibatch budget: given, or epochs of ceil(rows / batch size) minibatches (the reference's loops)."""
        return batches if epochs is None else epochs * math.ceil(n_rows / batch_size)

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
        n_rows = len(seen.rows)
        n_pretrain = self._n_batches(self.pretrain_batches, self.pretrain_epochs, n_rows, self.pretrain_batch_size)
        pretrained = self._train_softmax(
            len(seen.wnids), self._real_batches(_epoch_batches(n_rows, self.pretrain_batch_size, n_pretrain,
                                                               self.seed + 10)),
            n_pretrain, self.pretrain_lr, "clswgan pretrained classifier")
        self.classifiers_: dict[tuple[str, ...], nn.Linear] = {}
        semantic_dim, noise_dim = seen.vectors.shape[1], self.noise_dim or seen.vectors.shape[1]
        self.noise_dim_ = noise_dim
        self.generator_ = _mlp((semantic_dim + noise_dim, self.hidden, self.feature_dim_), torch_generator,
                               nn.ReLU()).to(self.device_)
        critic = _mlp((self.feature_dim_ + semantic_dim, self.hidden, 1), torch_generator, None).to(self.device_)
        betas = (0.5, 0.999)
        generator_optimizer = torch.optim.Adam(self.generator_.parameters(), lr=self.lr, betas=betas)
        critic_optimizer = torch.optim.Adam(critic.parameters(), lr=self.lr, betas=betas)
        n_steps = self._n_batches(self.gan_iterations, self.gan_epochs, n_rows, self.batch_size)
        batches = self._real_batches(_independent_batches(n_rows, self.batch_size,
                                                          n_steps * self.critic_iterations, self.seed + 20))
        mixing = torch.Generator().manual_seed(self.seed + 3)
        for step in progress_bar(range(n_steps), enabled=self.progress, desc="clswgan GAN", unit="step"):
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
        """Per-dimension min-max scaling to [0, 1] on every training row (util.py's MinMaxScaler().fit_transform);
        a constant dimension gets scale 1, as MinMaxScaler gives it, so test values there stay finite."""
        low = np.full(self.feature_dim_, np.inf, np.float32)
        high = np.full(self.feature_dim_, -np.inf, np.float32)
        every_row = len(rows) == features.shape[0]
        for start in range(0, len(rows), 8192):
            # A block of rows at a time: the training features may be a 2 GB float16 array, never copied whole.
            block = features[start:start + 8192] if every_row else features[rows[start:start + 8192]]
            block = to_tensor(block, torch.device("cpu"))
            if not torch.isfinite(block).all():
                raise GozError(f"clswgan: training features hold NaN or infinite values (rows {start}.."
                               f"{start + len(block) - 1} of the training classes)")
            low = np.minimum(low, block.min(0).values.numpy())
            high = np.maximum(high, block.max(0).values.numpy())
        span = high - low
        self.offset_ = torch.from_numpy(low).to(self.device_)
        self.span_ = torch.from_numpy(np.where(span > 0, span, 1.0).astype(np.float32)).to(self.device_)

    def _condition(self, unit_vectors: np.ndarray) -> torch.Tensor:
        """Unit class vectors times sqrt(d): coordinates of unit variance like the noise's. Adam moves every
        weight at the same rate, so tiny inputs (a unit 300-d vector's) would need thousands of steps to matter."""
        return torch.from_numpy(unit_vectors * np.float32(np.sqrt(unit_vectors.shape[1]))).to(self.device_)

    def _scaled(self, block: torch.Tensor) -> torch.Tensor:
        return (block - self.offset_) / self.span_

    def _draw_noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.noise_dim_, generator=self._noise).to(self.device_)

    def _real_batches(self, positions: Iterator[np.ndarray]):
        """(scaled features, labels) of the training rows at `positions` (indices into the kept rows)."""
        for batch in positions:
            rows = self._rows[batch]
            real = to_tensor(self._features[rows], self.device_)
            if not torch.isfinite(real).all():
                raise GozError(f"clswgan: training features hold NaN or infinite values (rows {rows[:3]}...)")
            yield self._scaled(real), torch.from_numpy(self._labels[rows]).to(self.device_)

    def _train_softmax(self, n_classes: int, batches, n_batches: int, lr: float, description: str) -> nn.Linear:
        """A linear softmax classifier (N(0, 0.02) init, Adam with beta1 0.5, as classifier.py) on scaled
        features, frozen after."""
        classifier = _linear(self.feature_dim_, n_classes,
                             torch.Generator().manual_seed(self.seed + n_classes)).to(self.device_)
        optimizer = torch.optim.Adam(classifier.parameters(), lr=lr, betas=(0.5, 0.999))
        for step, (features, labels) in enumerate(progress_bar(batches, enabled=self.progress, total=n_batches,
                                                               desc=description, unit="batch")):
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
        pool = len(real_rows) + len(synthetic)
        n_batches = self._n_batches(self.classifier_batches, self.classifier_epochs, pool, self.classifier_batch_size)

        def batches():
            for batch in _epoch_batches(pool, self.classifier_batch_size, n_batches, self.seed + 7):
                from_real = batch[batch < len(real_rows)]
                from_synthetic = torch.from_numpy(batch[batch >= len(real_rows)] - len(real_rows)).to(self.device_)
                rows = real_rows[from_real]
                real = self._scaled(to_tensor(self._features[rows], self.device_))
                real_labels = torch.from_numpy(label_of_seen[self._labels[rows]]).to(self.device_)
                yield (torch.cat([real, synthetic[from_synthetic]]),
                       torch.cat([real_labels, synthetic_labels[from_synthetic]]))

        classifier = self._train_softmax(len(key), batches(), n_batches, self.classifier_lr,
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
