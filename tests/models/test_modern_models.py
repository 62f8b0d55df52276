"""The clip and clswgan models beyond the registry-wide contract (tests/models/test_linear_models.py)."""

from dataclasses import replace

import numpy as np
import pytest
from test_linear_models import SyntheticProblem, fast

from goz import models
from goz.bench.evaluate import evaluate
from goz.errors import GozError
from goz.models.clswgan import CLSWGAN, _epoch_batches


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
    # A decisive budget: at 300 generator steps the GAN has not yet become class-conditional (chance for
    # seeds 1 and 2, 0.27-0.51 for seed 0, depending on the kernels); from 1000 steps it has (0.75).
    params = fast("clswgan") | {"gan_iterations": 1000, "hidden": 128, "batch_size": 64, "cls_weight": 1.0,
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


# The reference's values, typed here from the reference itself (xianyongqin/f-CLSWGAN: clswgan.py and the
# CUB scripts), not read from goz's PRESETS table.
PAPER = {"hidden": 4096, "noise_dim": None, "gan_epochs": 70, "gan_iterations": None, "critic_iterations": 5,
         "batch_size": 64, "lr": 1e-4, "gradient_penalty": 10.0, "cls_weight": 0.01, "pretrain_epochs": 50,
         "pretrain_batches": None, "pretrain_batch_size": 100, "pretrain_lr": 1e-3, "classifier_epochs": 25,
         "classifier_batches": None, "classifier_batch_size": 300, "classifier_lr": 1e-3,
         "synthesized_per_class": 300}


def test_clswgan_paper_preset_sets_exactly_the_reference_values():
    params = models.create("clswgan", preset="paper").get_params()
    assert params == PAPER | {"preset": "paper", "seed": 0, "device": "cpu", "progress": True}
    # The spelling of the CLI: `goz bench --set clswgan.preset=paper`.
    from goz.commands.bench import parse_assignments
    assert models.create("clswgan", **parse_assignments(["clswgan.preset=paper"])["clswgan"]).get_params() == params
    # Explicit values win; an explicit minibatch budget replaces the preset's epochs.
    changed = models.create("clswgan", preset="paper", hidden=64, gan_iterations=10).get_params()
    assert (changed["hidden"], changed["gan_iterations"], changed["gan_epochs"]) == (64, 10, None)
    assert changed["pretrain_epochs"] == 50 and changed["lr"] == 1e-4
    default = models.create("clswgan").get_params()
    assert default["preset"] is None and default["lr"] == 5e-4 and default["gan_epochs"] is None
    with pytest.raises(GozError, match="unknown preset 'papr'; presets: paper"):
        models.create("clswgan", preset="papr")
    with pytest.raises(GozError, match="gan_iterations or gan_epochs, not both"):
        models.create("clswgan", gan_iterations=5, gan_epochs=1)


def test_clswgan_epoch_budgets_count_minibatches_like_the_reference():
    """An epoch is ceil(rows / batch size) minibatches (`for i in range(0, ntrain, batch_size)`)."""
    problem = SyntheticProblem()
    steps = {}
    original = CLSWGAN._finite

    def count(self, loss, what, step):
        steps[what] = steps.get(what, 0) + 1
        return original(self, loss, what, step)

    params = fast("clswgan") | {"gan_iterations": None, "gan_epochs": 1, "pretrain_batches": None,
                                "pretrain_epochs": 2, "pretrain_batch_size": 100, "batch_size": 64}
    CLSWGAN._finite = count
    try:
        model = models.create("clswgan", **params).fit(problem.data)
    finally:
        CLSWGAN._finite = original
    rows = len(model._rows)  # seen class 5 has no vector: 23 classes x 30 samples
    assert rows == 23 * 30
    assert steps["clswgan pretrained classifier"] == 2 * -(-rows // 100)
    assert steps["generator"] == -(-rows // 64) and steps["critic"] == steps["generator"] * params["critic_iterations"]


def test_clswgan_classifier_minibatches_are_shuffled_epochs():
    """Like classifier2.py's next_batch: every row once per epoch, a batch running on into the next epoch."""
    batches = list(_epoch_batches(10, 4, 5, seed=0))  # 20 positions: two epochs of 10
    assert all(len(b) == 4 for b in batches)
    drawn = np.concatenate(batches)
    assert np.bincount(drawn, minlength=10).tolist() == [2] * 10
    first_two = set(batches[0].tolist()) | set(batches[1].tolist())
    assert len(first_two) == 8  # no row twice within an epoch
    assert set(range(10)) - first_two <= set(batches[2].tolist())  # the epoch's last 2 rows open batch 3
    assert batches[0].tolist() != [0, 1, 2, 3]  # shuffled


def test_clswgan_constant_training_dimension_keeps_scale_one():
    """A dimension constant in training (a dead unit) scales by 1, as scikit-learn's MinMaxScaler: test
    features that are not constant there stay finite instead of being divided by ~0."""
    problem = SyntheticProblem()
    features = problem.data.features.copy()
    features[:, 0] = 3.0
    model = models.create("clswgan", **fast("clswgan")).fit(replace(problem.data, features=features))
    assert model.span_[0].item() == 1.0 and model.offset_[0].item() == 3.0
    test = problem.test_features.copy()
    test[:, 0] = 1e4
    assert np.isfinite(model.scores(test, problem.unseen_wnids)).all()
