"""The clip and clswgan models beyond the registry-wide contract (tests/models/test_linear_models.py)."""

from dataclasses import replace

import numpy as np
import pytest
from test_linear_models import SyntheticProblem, fast

from goz import models
from goz.bench.evaluate import evaluate
from goz.errors import GozError


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def joint_problem() -> SyntheticProblem:
    return SyntheticProblem(joint=True)


def unit(vectors):
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_clip_scores_are_cosines_and_need_one_space(joint_problem):
    model = models.create("clip", progress=False).fit(joint_problem.data)
    vectors = np.stack([joint_problem.data.semantics.vector(w) for w in joint_problem.unseen_wnids])
    np.testing.assert_allclose(model.scores(joint_problem.test_features, joint_problem.unseen_wnids),
                               unit(joint_problem.test_features.astype(np.float64)) @ unit(vectors).T, atol=1e-5)
    top1 = evaluate(model.scores(joint_problem.test_features, joint_problem.unseen_wnids), joint_problem.test_labels,
                    joint_problem.unseen_wnids)["top1"]
    assert top1 > 0.5  # class means are the class vectors: cosine zero-shot works without training
    resnet_like = SyntheticProblem()
    with pytest.raises(GozError, match="not one embedding space"):
        models.create("clip", progress=False).fit(resnet_like.data)
    assert models.model_class("clip").joint_embedding and not models.model_class("clip").needs_training_features


def test_clswgan_trains_one_classifier_per_candidate_set():
    problem = SyntheticProblem()
    model = models.create("clswgan", **fast("clswgan")).fit(problem.data)
    synthesized = model.synthesize(problem.unseen_wnids[:3], 5)
    assert synthesized.shape == (15, problem.test_features.shape[1]) and (synthesized >= 0).all()
    zsl = model.scores(problem.test_features, problem.unseen_wnids)
    assert len(model.classifiers_) == 1
    gzsl_candidates = problem.unseen_wnids + model.seen_wnids_
    model.scores(problem.test_features, gzsl_candidates)
    assert len(model.classifiers_) == 2
    # A candidate set seen before reuses its classifier, whatever the order.
    np.testing.assert_array_equal(model.scores(problem.test_features, problem.unseen_wnids[::-1]), zsl[:, ::-1])
    assert len(model.classifiers_) == 2
    with pytest.raises(GozError, match="no class vector"):
        model.scores(problem.test_features, [problem.missing])


def test_clswgan_learns_unseen_classes_from_their_vectors():
    """On a problem whose class means are linear in the class vectors, synthesized features carry the class."""
    problem = SyntheticProblem()
    # A short budget: a strong classification loss makes the generator class-conditional quickly.
    params = fast("clswgan") | {"gan_iterations": 300, "hidden": 128, "batch_size": 64, "cls_weight": 1.0,
                                "synthesized_per_class": 50, "classifier_batches": 100}
    model = models.create("clswgan", **params).fit(problem.data)
    top1 = evaluate(model.scores(problem.test_features, problem.unseen_wnids), problem.test_labels,
                    problem.unseen_wnids)["top1"]
    assert top1 > 2.5 / len(problem.unseen_wnids), top1


@pytest.mark.parametrize("hyperparameters, message", [
    ({"hidden": 0}, "hidden must be an integer >= 1"),
    ({"lr": 0.0}, "lr must be a finite number > 0"),
    ({"noise_dim": -2}, "noise_dim must be an integer >= 1"),
])
def test_clswgan_bad_hyperparameters_are_goz_errors(hyperparameters, message):
    problem = SyntheticProblem()
    with pytest.raises(GozError, match=message):
        models.create("clswgan", **(fast("clswgan") | hyperparameters)).fit(problem.data)


def test_clswgan_non_finite_features_are_a_goz_error():
    problem = SyntheticProblem()
    poisoned = problem.data.features.copy()
    poisoned[:, 0] = np.nan
    with pytest.raises(GozError, match="NaN"):
        models.create("clswgan", **fast("clswgan")).fit(replace(problem.data, features=poisoned))
