"""A miniature GOZ benchmark made of SYNTHETIC DATA, for the demo, the tests and the benchmarks.

Same layout as the real one: a train store (seen classes), a test store (unseen test samples AND
held-out seen samples, as the published test file holds both), split files, a 300-d semantics
table, a class hierarchy (a latent tree saved as `child<TAB>parent` lines) and the seen classes'
"pretrained classifier" (`classifier_weights.npz`, (seen, D + 1) weights and bias in seen-split
order: the analogue of the ResNet fc layer that the original graph models regress).

How the data relate (so that zero-shot transfer is possible but imperfect):
every tree node has a latent vector that drifts from its parent's (a random walk down the tree);
a class vector is a linear map of its latent plus "word-vector" noise; a class's visual prototype
is a smooth function of its latent, plus a linear map of its class vector, plus class-specific
noise that no side information explains; a sample is ReLU(prototype + noise), sparse and
non-negative like pooled ResNet features. Classes are the tree's leaves, so no class is an
ancestor or descendant of another.

A second, "CLIP-like" store and table pair (`clip_train_features.h5`, `clip_test_features.h5`,
`clip_semantics.h5`, same classes and sample counts) stands in for a vision-language model, whose
image and text embeddings share one space: both are noisy views of the class latent through one
shared linear map (text: class latent + text noise; image: class latent + class noise + sample
noise). The stores' `backbone` and the table's `encoder` are `clip:synthetic`. The `clip` model
(which compares features and class vectors directly) runs on this pair; every other model runs on
either. Both pairs are SYNTHETIC DATA and labelled so.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import special

from goz import splits
from goz.errors import GozError
from goz.home import atomic_path, write_text_atomic
from goz.progress import progress_bar
from goz.provenance import SYNTHETIC_DATA, SYNTHETIC_LABEL
from goz.semantics import SemanticsTable
from goz.store import StoreBuilder
from goz.wordnet.edges import save_edges

# Fake WordNet ids: valid form (n + 8 digits) in a range WordNet 3.0 does not use (its offsets stop below n1...).
INTERNAL_BASE, CLASS_BASE = 90_000_000, 91_000_000


@dataclass(frozen=True)
class BenchmarkConfig:
    """Everything that determines the generated benchmark; two equal configs give identical files."""

    seed: int = 0
    n_seen: int = 200
    n_unseen: int = 100
    train_per_class: int = 50
    test_per_class: int = 20          # unseen-class test samples per class
    seen_test_per_class: int = 10     # held-out seen-class samples per class (the gzsl seen part)
    dim: int = 2048
    semantic_dim: int = 300
    latent_dim: int = 32
    classes_per_group: int = 6        # leaves under one lowest internal node, on average
    semantic_noise: float = 1.0       # word-vector noise, relative to the latent signal
    class_noise: float = 1.0          # class-specific visual noise no side information explains
    sample_noise: float = 4.0         # within-class visual noise, independent per dimension
    nuisance_rank: int = 16           # within-class noise shared by all classes along a few directions (pose, light)
    # Its strength per direction, relative to a prototype's spread: each direction adds this std to every
    # dimension, so 16 directions at 0.5 give per-dimension std 2. At 2.0 (std 8, 80-94 % of the within-class
    # variance, 35-50 x the between-class variance) a single sample carried so little of its class (nearest true
    # class mean: 41 % of the demo's 100 unseen classes) that a feature generator could not learn class means
    # (clswgan at chance for every budget tried); the difficulty now lies in the class vectors, as in ZSL.
    nuisance_noise: float = 0.5
    clip_dim: int = 64                # dimension of the CLIP-like joint embedding space


@dataclass(frozen=True)
class SyntheticBenchmark:
    """Paths of a generated benchmark; feed them to `goz bench` / `run_bench`."""

    root: Path
    train: Path
    test: Path
    semantics: Path
    seen: Path
    unseen: Path
    hierarchy: Path
    classifier_weights: Path
    config: BenchmarkConfig
    clip_train: Path                  # the CLIP-like pair: image embeddings (train, test) and class embeddings
    clip_test: Path
    clip_semantics: Path


def make_benchmark(out_dir: str | Path, seed: int = 0, n_seen: int = 200, n_unseen: int = 100,
                   train_per_class: int = 50, test_per_class: int = 20, seen_test_per_class: int = 10,
                   dim: int = 2048, semantic_dim: int = 300, progress: bool = False, **tuning) -> SyntheticBenchmark:
    """Generates (or reuses, when `out_dir` already holds the same config) a synthetic benchmark.

    Deterministic: the same arguments give byte-identical arrays. `tuning` overrides the other
    `BenchmarkConfig` fields (latent_dim, noise levels, classes_per_group).
    """
    config = BenchmarkConfig(seed=seed, n_seen=n_seen, n_unseen=n_unseen, train_per_class=train_per_class,
                             test_per_class=test_per_class, seen_test_per_class=seen_test_per_class,
                             dim=dim, semantic_dim=semantic_dim, **tuning)
    if min(n_seen, n_unseen, train_per_class, test_per_class, dim, semantic_dim) < 1 or seen_test_per_class < 0:
        raise GozError(f"synthetic benchmark: sizes must be positive, got {config}")
    root = Path(out_dir)
    paths = SyntheticBenchmark(root, root / "train_features.h5", root / "test_features.h5", root / "semantics.h5",
                               root / "seen.txt", root / "unseen.txt", root / "hierarchy.tsv",
                               root / "classifier_weights.npz", config, root / "clip_train_features.h5",
                               root / "clip_test_features.h5", root / "clip_semantics.h5")
    manifest = root / "benchmark.json"
    expected_manifest = {"data": SYNTHETIC_DATA, "description": SYNTHETIC_LABEL} | asdict(config)
    if manifest.exists() and _read_manifest(manifest) == expected_manifest and all(
            p.exists() for p in (paths.train, paths.test, paths.semantics, paths.seen, paths.unseen, paths.hierarchy,
                                 paths.classifier_weights, paths.clip_train, paths.clip_test, paths.clip_semantics)):
        return paths
    root.mkdir(parents=True, exist_ok=True)
    manifest.unlink(missing_ok=True)  # the manifest, written last, marks a complete benchmark

    rng = np.random.default_rng(seed)
    nuisance = rng.standard_normal((config.nuisance_rank, dim)).astype(np.float32)
    edges, internal, classes = _latent_tree(config, rng)
    unseen = sorted(rng.choice(classes, size=n_unseen, replace=False).tolist())
    unseen_set = set(unseen)
    seen = [c for c in classes if c not in unseen_set]

    nodes = internal + classes
    latents = _tree_latents(nodes, edges, config, rng)
    semantic_map = rng.standard_normal((config.latent_dim, semantic_dim)) / math.sqrt(config.latent_dim)
    vectors = latents @ semantic_map
    vectors += config.semantic_noise * vectors.std() * rng.standard_normal(vectors.shape)
    prototypes = _visual_prototypes(latents[len(internal):], vectors[len(internal):], config, rng)
    prototype = dict(zip(classes, prototypes))

    attrs = {"data": SYNTHETIC_DATA, "description": SYNTHETIC_LABEL, "generator": "goz.synthetic",
             "config": json.dumps(asdict(config))}
    _write_store(paths.train, seen, train_per_class, prototype, config, nuisance, rng, attrs, progress, "train")
    test_counts = {c: test_per_class for c in unseen} | {c: seen_test_per_class for c in seen if seen_test_per_class}
    _write_store(paths.test, sorted(test_counts), test_counts, prototype, config, nuisance, rng, attrs, progress, "test")
    SemanticsTable(nodes, vectors.astype(np.float32), {"data": SYNTHETIC_DATA, "description": SYNTHETIC_LABEL}
                   ).save(paths.semantics)
    splits.save(seen, paths.seen, header=SYNTHETIC_LABEL)
    splits.save(unseen, paths.unseen, header=SYNTHETIC_LABEL)
    save_edges(edges, paths.hierarchy, header=SYNTHETIC_LABEL)
    weights = _seen_classifier(np.stack([prototype[c] for c in seen]), nuisance, config)
    with atomic_path(paths.classifier_weights) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, weights=weights, data=np.array(SYNTHETIC_LABEL))
    _write_clip_like(paths, classes, latents[len(internal):], seen, test_counts, config, attrs, progress)
    write_text_atomic(manifest, json.dumps(expected_manifest, indent=1))
    return paths


def _read_manifest(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _latent_tree(config: BenchmarkConfig,
                 rng: np.random.Generator) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(child, parent) edges of a 4-level tree whose leaves are the classes; (edges, internal nodes, classes)."""
    n_classes = config.n_seen + config.n_unseen
    n_groups = max(2, math.ceil(n_classes / config.classes_per_group))
    level_sizes = [1, max(2, math.ceil(n_groups / 16)), max(2, math.ceil(n_groups / 4)), n_groups]
    levels, next_id = [], INTERNAL_BASE
    for size in level_sizes:
        levels.append([f"n{next_id + i:08d}" for i in range(size)])
        next_id += size
    classes = [f"n{CLASS_BASE + i:08d}" for i in range(n_classes)]
    edges: list[tuple[str, str]] = []
    for children, parents in zip(levels[1:] + [classes], levels):
        # Shuffled round-robin: random shape, yet every internal node gets at least one child.
        order = rng.permutation(len(children))
        edges += [(children[c], parents[rank % len(parents)]) for rank, c in enumerate(order)]
    return edges, [w for level in levels for w in level], classes


def _tree_latents(nodes: list[str], edges: list[tuple[str, str]], config: BenchmarkConfig,
                  rng: np.random.Generator) -> np.ndarray:
    """A random walk down the tree: each node's latent is its parent's plus a Gaussian step."""
    parent = dict(edges)
    index = {w: i for i, w in enumerate(nodes)}
    steps = rng.standard_normal((len(nodes), config.latent_dim))
    latents = np.zeros_like(steps)
    for i, wnid in enumerate(nodes):  # parents come first: internal levels top-down, then classes
        latents[i] = steps[i] + (latents[index[parent[wnid]]] if wnid in parent else 0.0)
    return latents


def _visual_prototypes(latents: np.ndarray, vectors: np.ndarray, config: BenchmarkConfig,
                       rng: np.random.Generator) -> np.ndarray:
    """Pre-activation class means: smooth in the latent + linear in the class vector + class noise."""
    smooth = np.tanh(latents @ rng.standard_normal((config.latent_dim, config.dim)) / math.sqrt(config.latent_dim))
    linear = vectors @ rng.standard_normal((config.semantic_dim, config.dim))
    linear /= linear.std()
    prototypes = smooth / smooth.std() + 0.5 * linear + config.class_noise * rng.standard_normal(smooth.shape)
    return prototypes - 1.0  # a negative offset makes most ReLU outputs zero, like pooled ResNet features


def _seen_classifier(prototypes: np.ndarray, nuisance: np.ndarray, config: BenchmarkConfig) -> np.ndarray:
    """(C, D + 1) weights and bias (zero) of a linear classifier: each class's exact feature mean, centred.

    E[ReLU(m + e)] for e ~ N(0, s^2) is m Phi(m/s) + s phi(m/s); s^2 adds the isotropic and the
    nuisance variance of each dimension. Centred like softmax-trained weights, with no bias, the
    regression targets of graph models stay distinct directions.
    """
    spread = np.sqrt(config.sample_noise ** 2 + config.nuisance_noise ** 2 * (nuisance.astype(np.float64) ** 2).sum(0))
    ratio = prototypes / spread
    means = prototypes * special.ndtr(ratio) + spread * np.exp(-ratio ** 2 / 2) / math.sqrt(2 * math.pi)
    return np.concatenate([means - means.mean(0), np.zeros((len(means), 1))], axis=1).astype(np.float32)


CLIP_LIKE_SPEC = "clip:synthetic"


def _write_clip_like(paths: SyntheticBenchmark, classes: list[str], latents: np.ndarray, seen: list[str],
                     test_counts: dict[str, int], config: BenchmarkConfig, attrs: dict, progress: bool) -> None:
    """The CLIP-like pair: text and image embeddings as noisy views of the class latents through one map."""
    rng = np.random.default_rng([config.seed, 1])  # its own stream: the main benchmark's arrays stay as they were
    shared = rng.standard_normal((config.latent_dim, config.clip_dim)) / math.sqrt(config.latent_dim)
    centres = latents @ shared
    spread = centres.std()
    texts = centres + 0.5 * spread * rng.standard_normal(centres.shape)
    images = centres + 0.5 * spread * rng.standard_normal(centres.shape)
    label = SYNTHETIC_LABEL + "; CLIP-like: image and class embeddings share one space"
    clip_attrs = attrs | {"description": label, "backbone": CLIP_LIKE_SPEC}
    row = {wnid: i for i, wnid in enumerate(classes)}
    for path, wnids, counts, role in ((paths.clip_train, seen, config.train_per_class, "train"),
                                      (paths.clip_test, sorted(test_counts), test_counts, "test")):
        with StoreBuilder(path, clip_attrs | {"role": role}) as builder:
            for wnid in progress_bar(wnids, desc=f"synthetic clip-like {role} store", unit="class", enabled=progress):
                n = counts if isinstance(counts, int) else counts[wnid]
                # Sample noise of 1.5 spreads per dimension: single images are far noisier than their class centre.
                noise = 1.5 * spread * rng.standard_normal((n, config.clip_dim))
                builder.add_class(wnid, (images[row[wnid]] + noise).astype(np.float32),
                                  np.arange(1, n + 1, dtype=np.int64))
    SemanticsTable(classes, texts.astype(np.float32), {"data": "synthetic", "description": label,
                                                       "encoder": CLIP_LIKE_SPEC}).save(paths.clip_semantics)


def _write_store(path: Path, wnids: list[str], counts: int | dict[str, int], prototype: dict[str, np.ndarray],
                 config: BenchmarkConfig, nuisance: np.ndarray, rng: np.random.Generator, attrs: dict, progress: bool,
                 role: str) -> None:
    with StoreBuilder(path, attrs | {"role": role}) as builder:
        for wnid in progress_bar(wnids, desc=f"synthetic {role} store", unit="class", enabled=progress):
            n = counts if isinstance(counts, int) else counts[wnid]
            noise = config.sample_noise * rng.standard_normal((n, config.dim), dtype=np.float32)
            noise += config.nuisance_noise * rng.standard_normal((n, len(nuisance)), dtype=np.float32) @ nuisance
            features = np.maximum(prototype[wnid].astype(np.float32) + noise, 0.0)
            builder.add_class(wnid, features, np.arange(1, n + 1, dtype=np.int64))
