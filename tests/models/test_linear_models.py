import logging
from dataclasses import replace

import numpy as np
import pytest
import torch

from goz import models
from goz.errors import GozError
from goz.bench.evaluate import evaluate
from goz.models import TrainingData
from goz.models import training as model_training
from goz.models.linear import hinge_rank_loss
from goz.semantics import SemanticsTable
from goz.wordnet import Hierarchy

N_SEEN, N_UNSEEN, SEMANTIC_DIM, FEATURE_DIM = 24, 8, 12, 32
PER_SEEN_CLASS, PER_UNSEEN_CLASS = 30, 15


def fast(name: str) -> dict:
    """Every model takes `seed`, `device` and `progress` (goz bench passes them to all)."""
    return {"seed": 0, "device": "cpu", "progress": False, **models.model_class(name).test_hyperparameters}


class SyntheticProblem:
    """Class vectors predict class means through a random linear map; features are means plus noise.

    The unseen classes are held out of training. Seen class 5 has no class vector (it must be
    dropped with a warning). A tree (root -> 4 groups -> classes) gives graph models their graph,
    and nearest-mean classifier weights stand in for the seen classes' fc weights. `joint`: the
    features live in the class vectors' space (class means are the class vectors), as CLIP's do.
    """

    def __init__(self, seed: int = 0, dtype=np.float32, joint: bool = False):
        rng = np.random.default_rng(seed)
        wnids = [f"n{100 + i:08d}" for i in range(N_SEEN + N_UNSEEN)]
        self.seen_wnids, self.unseen_wnids = wnids[:N_SEEN], wnids[N_SEEN:]
        vectors = rng.normal(size=(len(wnids), SEMANTIC_DIM))
        means = 4 * vectors if joint else vectors @ rng.normal(size=(SEMANTIC_DIM, FEATURE_DIM))
        self.missing = self.seen_wnids[5]
        semantics = SemanticsTable([w for w in wnids if w != self.missing],
                                   np.delete(vectors, 5, axis=0).astype(np.float32))

        def samples(classes, per_class):
            features = np.concatenate([means[c] + rng.normal(scale=2.0, size=(per_class, means.shape[1]))
                                       for c in classes])
            return features.astype(dtype), np.repeat(np.arange(len(classes)), per_class)

        features, labels = samples(range(N_SEEN), PER_SEEN_CLASS)
        self.test_features, self.test_labels = samples(range(N_SEEN, N_SEEN + N_UNSEEN), PER_UNSEEN_CLASS)
        groups = [f"n{i:08d}" for i in range(1, 5)]
        tree = Hierarchy.from_edges([(g, "n00000000") for g in groups] +
                                    [(w, groups[i % 4]) for i, w in enumerate(wnids)])
        classifier_weights = np.hstack([means[:N_SEEN], -0.5 * (means[:N_SEEN] ** 2).sum(1, keepdims=True)])
        self.data = TrainingData(features, labels, self.seen_wnids, semantics,
                                 graph=tree.induced_graph(self.seen_wnids + self.unseen_wnids),
                                 classifier_weights=classifier_weights.astype(np.float32))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def problem() -> SyntheticProblem:
    return SyntheticProblem()


@pytest.fixture(scope="module")
def joint_problem() -> SyntheticProblem:
    return SyntheticProblem(joint=True)


def problem_for(name: str, problem: SyntheticProblem, joint_problem: SyntheticProblem) -> SyntheticProblem:
    """Models that compare features with class vectors directly (clip) need them in one space."""
    return joint_problem if models.model_class(name).joint_embedding else problem


def eszsl_closed_form(x: np.ndarray, y: np.ndarray, s: np.ndarray, gamma: float, lam: float) -> np.ndarray:
    """V = (X^T X + gamma I)^-1 X^T Y S (S^T S + lambda I)^-1 with explicit inverses, in float64."""
    x, s = x.astype(np.float64), s.astype(np.float64)
    return (np.linalg.inv(x.T @ x + gamma * np.eye(x.shape[1])) @ x.T @ y @ s
            @ np.linalg.inv(s.T @ s + lam * np.eye(s.shape[1])))


def kept_classes(problem: SyntheticProblem) -> tuple[list[int], np.ndarray]:
    kept = [i for i, w in enumerate(problem.seen_wnids) if w != problem.missing]
    return kept, np.stack([problem.data.semantics.vector(problem.seen_wnids[i]) for i in kept])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_eszsl_class_mean_variant_is_the_closed_form(dtype):
    problem = SyntheticProblem(dtype=dtype)
    model = models.create("eszsl", gamma=3.0, lam=0.5, progress=False).fit(problem.data)
    kept, vectors = kept_classes(problem)
    features = problem.data.features.astype(np.float64)
    means = np.stack([features[problem.data.labels == c].mean(0) for c in kept])
    expected = eszsl_closed_form(means, np.eye(len(kept)), vectors, 3.0, 0.5)
    np.testing.assert_allclose(model.projection_.cpu().numpy(), expected, rtol=1e-9, atol=1e-12)
    candidate_vectors = np.stack([problem.data.semantics.vector(w) for w in problem.unseen_wnids])
    np.testing.assert_allclose(model.scores(problem.test_features, problem.unseen_wnids),
                               problem.test_features.astype(np.float64) @ expected @ candidate_vectors.T,
                               rtol=1e-4, atol=1e-4)


def test_eszsl_fitted_on_class_means_equals_fitted_on_samples(problem):
    """`goz bench` hands class-mean ESZSL one mean row per class (fits_on_class_means): same model."""
    on_samples = models.create("eszsl", gamma=3.0, lam=0.5, progress=False)
    assert on_samples.fits_on_class_means and not models.create("eszsl", per_sample=True).fits_on_class_means
    on_samples.fit(problem.data)
    labels = problem.data.labels
    means = np.stack([problem.data.features[labels == c].astype(np.float64).mean(0)
                      for c in range(len(problem.seen_wnids))]).astype(np.float32)
    on_means = models.create("eszsl", gamma=3.0, lam=0.5, progress=False).fit(
        replace(problem.data, features=means, labels=np.arange(len(means))))
    np.testing.assert_allclose(on_means.projection_.cpu().numpy(), on_samples.projection_.cpu().numpy(),
                               rtol=1e-5, atol=1e-7)


def test_eszsl_per_sample_variant_streams_to_the_closed_form(problem, monkeypatch):
    monkeypatch.setattr(model_training, "CHUNK_ROWS", 50)    # several chunks, the last one partial
    model = models.create("eszsl", gamma=3.0, lam=0.5, per_sample=True, progress=False).fit(problem.data)
    kept, vectors = kept_classes(problem)
    rows = np.isin(problem.data.labels, kept)
    one_hot = (problem.data.labels[rows][:, None] == np.array(kept)[None, :]).astype(np.float64)
    expected = eszsl_closed_form(problem.data.features[rows], one_hot, vectors, 3.0, 0.5)
    np.testing.assert_allclose(model.projection_.cpu().numpy(), expected, rtol=1e-9, atol=1e-12)


def test_hinge_rank_loss_by_hand():
    similarities = torch.tensor([[0.9, 0.5, 0.1], [0.2, 0.6, 0.3]])
    # row 0 (true 0): 0.3 + 0; row 1 (true 2): 0.6 + 1.0
    assert hinge_rank_loss(similarities, torch.tensor([0, 2]), 0.7).item() == pytest.approx((0.3 + 1.6) / 2)


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_conse_and_devise_scores_follow_their_formulas(problem):
    x = problem.test_features.astype(np.float64)
    targets = unit(np.stack([problem.data.semantics.vector(w) for w in problem.unseen_wnids]))
    conse = models.create("conse", **fast("conse")).fit(problem.data)
    seen_vectors = unit(np.stack([problem.data.semantics.vector(w) for w in conse.seen_wnids_]))
    logits = x @ conse.classifier_.cpu().numpy().T
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    top = np.argsort(-probabilities, axis=1)[:, :5]
    embedding = unit(np.einsum("nt,ntd->nd", np.take_along_axis(probabilities, top, 1), seen_vectors[top]))
    np.testing.assert_allclose(conse.scores(problem.test_features, problem.unseen_wnids), embedding @ targets.T,
                               rtol=1e-4, atol=1e-5)
    devise = models.create("devise", **fast("devise")).fit(problem.data)
    np.testing.assert_allclose(devise.scores(problem.test_features, problem.unseen_wnids),
                               x @ devise.projection_.cpu().numpy().T @ targets.T, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name, extra", [("conse", {}), ("devise", {}), ("eszsl", {}),
                                         ("eszsl", {"per_sample": True})])
def test_linear_models_are_far_above_chance_and_reproducible(problem, name, extra):
    def run(seed_params):
        model = models.create(name, **{**fast(name), **extra, **seed_params}).fit(problem.data)
        return model.scores(problem.test_features, problem.unseen_wnids)

    scores = run({"seed": 3})
    top1 = evaluate(scores, problem.test_labels, problem.unseen_wnids)["top1"]
    assert top1 > 4 / N_UNSEEN, f"{name}: top-1 {top1:.2f}, chance is {1 / N_UNSEEN:.2f}"
    np.testing.assert_array_equal(run({"seed": 3}), scores)
    if name != "eszsl":    # the seed really drives initialization and minibatches (ESZSL draws nothing)
        assert not np.array_equal(run({"seed": 4}), scores)


@pytest.mark.parametrize("name", ["conse", "devise", "eszsl"])
def test_seen_classes_without_a_vector_are_dropped_with_a_warning(problem, name, caplog):
    with caplog.at_level(logging.WARNING):
        model = models.create(name, **fast(name)).fit(problem.data)
    assert problem.missing in caplog.text
    assert model.seen_wnids_ == [w for w in problem.seen_wnids if w != problem.missing]
    # gzsl candidates: unseen plus the seen classes that have a vector.
    candidates = problem.unseen_wnids + model.seen_wnids_
    assert model.scores(problem.test_features, candidates).shape == (len(problem.test_features), len(candidates))


def test_scoring_errors_are_goz_errors(problem):
    model = models.create("eszsl", progress=False)
    with pytest.raises(GozError, match="fit"):
        model.scores(problem.test_features, problem.unseen_wnids)
    model.fit(problem.data)
    with pytest.raises(GozError, match="no class vector"):
        model.scores(problem.test_features, [problem.missing])
    with pytest.raises(GozError, match=f"\\(n, {FEATURE_DIM}\\)"):
        model.scores(problem.test_features[:, :5], problem.unseen_wnids)


@pytest.mark.parametrize("name", ["conse", "devise", "eszsl"])
def test_non_finite_or_wrong_features_are_goz_errors(problem, name):
    poisoned = problem.data.features.copy()
    poisoned[np.flatnonzero(problem.data.labels == 0)[0], 3] = np.nan
    with pytest.raises(GozError, match="NaN"):
        models.create(name, **fast(name)).fit(replace(problem.data, features=poisoned))
    with pytest.raises(GozError, match="floating-point"):
        models.create(name, **fast(name)).fit(replace(problem.data, features=problem.data.features.astype(int)))
    model = models.create(name, **fast(name)).fit(problem.data)
    test = problem.test_features.copy()
    test[-1, 0] = np.inf
    with pytest.raises(GozError, match="NaN or infinite"):
        model.scores(test, problem.unseen_wnids)


@pytest.mark.parametrize("name, hyperparameters, message", [
    ("conse", {"top_t": 0}, "top_t must be an integer >= 1"),
    ("devise", {"batch_size": -1}, "batch_size must be an integer >= 1"),
    ("devise", {"lr": float("nan")}, "lr must be a finite number > 0"),
    ("eszsl", {"gamma": -1.0}, "gamma must be a finite number >= 0"),
    ("eszsl", {"gamma": 0.0, "lam": 0.0}, "singular"),
])
def test_bad_hyperparameters_are_goz_errors(problem, name, hyperparameters, message):
    data = problem.data
    if name == "eszsl":  # a rank-deficient problem: class means all zero, so only gamma > 0 makes it solvable
        data = replace(data, features=np.zeros_like(data.features))
    with pytest.raises(GozError, match=message):
        models.create(name, **{**fast(name), **hyperparameters}).fit(data)


@pytest.mark.parametrize("shift_labels, message", [(N_SEEN, "index the 24 seen classes"),
                                                    (None, "no training sample")])
def test_bad_training_labels_are_a_goz_error(problem, shift_labels, message):
    labels = problem.data.labels + shift_labels if shift_labels else np.full_like(problem.data.labels, 5)
    with pytest.raises(GozError, match=message):
        models.create("devise", **fast("devise")).fit(replace(problem.data, labels=labels))


@pytest.mark.parametrize("name", ["conse", "devise", "eszsl"])
def test_cuda_device_is_used_or_refused_clearly(problem, name):
    if not torch.cuda.is_available():
        with pytest.raises(GozError, match="CUDA is not available"):
            models.create(name, **{**fast(name), "device": "cuda"}).fit(problem.data)
        return
    cpu = models.create(name, **fast(name)).fit(problem.data).scores(problem.test_features, problem.unseen_wnids)
    cuda = models.create(name, **{**fast(name), "device": "cuda"}).fit(problem.data)
    np.testing.assert_allclose(cuda.scores(problem.test_features, problem.unseen_wnids), cpu, rtol=1e-3, atol=1e-3)


def test_hyperparameter_selection_uses_held_out_seen_classes(problem):
    from goz.bench.selection import select_hyperparameters

    grid = {"n_batches": [0, 60], "batch_size": [64], "lr": [1e-2], "progress": [False]}
    best, table = select_hyperparameters("devise", problem.data, grid, holdout_fraction=0.25, seed=1)
    assert [row["n_batches"] for row in table] == [0, 60]
    assert best == {"n_batches": 60, "batch_size": 64, "lr": 1e-2, "progress": False}
    assert table[1]["top1"] > table[0]["top1"]
    _, again = select_hyperparameters("devise", problem.data, grid, holdout_fraction=0.25, seed=1)
    assert again == table
    with pytest.raises(GozError, match="held out"):
        select_hyperparameters("eszsl", problem.data, {"gamma": [1.0]}, holdout_fraction=0.01)


@pytest.fixture
def published_home(tmp_path, monkeypatch, problem):
    """GOZ_HOME holding published classifier tables for every class of the problem (models/published.py)."""
    from goz.models.classifier_table import ClassifierTable
    from goz.catalog import published_table_path
    from goz.models.published import PublishedClassifiers
    monkeypatch.setenv("GOZ_HOME", str(tmp_path / "home"))
    wnids = problem.seen_wnids + problem.unseen_wnids
    rng = np.random.default_rng(3)
    for cls in PublishedClassifiers.__subclasses__():
        ClassifierTable(wnids, rng.normal(size=(len(wnids), FEATURE_DIM)), rng.normal(size=len(wnids))).save(
            published_table_path(cls.table_name))


@pytest.mark.parametrize("name", models.list_models())
def test_every_registered_model_keeps_the_contract(problem, joint_problem, published_home, name):
    """fit returns self; scores are (n, C), finite, per candidate, and identical across two fits."""
    problem = problem_for(name, problem, joint_problem)
    model = models.create(name, **fast(name))
    assert model.fit(problem.data) is model
    assert not any(key.endswith("_") for key in model.get_params())
    candidates = problem.unseen_wnids + [w for w in problem.seen_wnids if w != problem.missing]
    scores = model.scores(problem.test_features, candidates)
    assert scores.shape == (len(problem.test_features), len(candidates)) and np.isfinite(scores).all()
    np.testing.assert_allclose(model.scores(problem.test_features, candidates[::-1]), scores[:, ::-1],
                               rtol=1e-5, atol=1e-6)
    again = models.create(name, **fast(name)).fit(problem.data)
    np.testing.assert_array_equal(again.scores(problem.test_features, candidates), scores)


@pytest.mark.parametrize("name", models.list_models())
def test_unknown_hyperparameter_is_a_goz_error_naming_the_accepted_ones(name):
    with pytest.raises(GozError, match="no hyper-parameter not_a_parameter; it takes: .*seed"):
        models.create(name, not_a_parameter=1)
    assert models.hyperparameter_names(type(models.create(name))) >= set(models.create(name).get_params())
