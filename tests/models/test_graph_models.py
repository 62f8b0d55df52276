"""Graph baselines (gcn6, sgcn/gcn2, dgp): propagation matrices, targets, learning a planted target."""

import os
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from goz import models
from goz.errors import GozError
from goz.models import TrainingData
from goz.models.graph import SGCN, GraphNetwork, node_inputs
from goz.models.graph_ops import (
    ancestor_distance_groups,
    dgp_propagation,
    gcn_propagation,
    read_classifier_weights,
    sgcn_propagation,
)
from goz.semantics import SemanticsTable
from goz.wordnet import Hierarchy

GRAPH_MODELS = ["gcn6", "sgcn", "dgp"]
SMALL = {"gcn6": {"hidden": (48, 48, 32, 32, 24)}, "sgcn": {"hidden": (64,)}, "dgp": {"hidden": (64,)}}


@pytest.fixture(autouse=True)
def one_thread():
    """These graphs are tiny: several threads only add synchronization (10x slower on a busy CI machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- the propagation matrices on hand-built graphs --------------------------------------------------------

def test_normalizations_on_a_tiny_graph():
    # a <- b <- c (a chain: c's parent is b, b's parent is a), plus d under a
    graph = Hierarchy.from_edges([("b", "a"), ("c", "b"), ("d", "a")]).induced_graph(["a", "b", "c", "d"])
    with_loops = np.array([[1, 1, 0, 1], [1, 1, 1, 0], [0, 1, 1, 0], [1, 0, 0, 1]], dtype=float)
    degree = with_loops.sum(1)  # 3, 3, 2, 2
    np.testing.assert_allclose(gcn_propagation(graph).toarray(), with_loops / np.sqrt(np.outer(degree, degree)), rtol=1e-6)
    np.testing.assert_allclose(sgcn_propagation(graph).toarray(), with_loops / degree[:, None], rtol=1e-6)
    assert sp.issparse(gcn_propagation(graph)) and sp.issparse(sgcn_propagation(graph))


#   r
#   ├── a ── a1 ── a2 ── a3 ── a4 ── a5
#   └── b ── m          (m also under a2: a DAG; shortest distance counts)
EDGES = [("a", "r"), ("a1", "a"), ("a2", "a1"), ("a3", "a2"), ("a4", "a3"), ("a5", "a4"),
         ("b", "r"), ("m", "b"), ("m", "a2")]


def test_dgp_distance_groups_on_a_hand_built_dag():
    graph = Hierarchy.from_edges(EDGES).induced_graph(["r", "a", "a1", "a2", "a3", "a4", "a5", "b", "m"])
    groups = ancestor_distance_groups(graph, max_distance=4)
    assert len(groups) == 5 and all(sp.issparse(g) for g in groups)
    expected = [set() for _ in range(5)]
    ancestors_at = {  # node -> {ancestor: shortest directed distance}
        "r": {}, "a": {"r": 1}, "a1": {"a": 1, "r": 2}, "a2": {"a1": 1, "a": 2, "r": 3},
        "a3": {"a2": 1, "a1": 2, "a": 3, "r": 4}, "a4": {"a3": 1, "a2": 2, "a1": 3, "a": 4, "r": 5},
        "a5": {"a4": 1, "a3": 2, "a2": 3, "a1": 4, "a": 5, "r": 6}, "b": {"r": 1},
        "m": {"b": 1, "a2": 1, "r": 2, "a1": 2, "a": 3},  # r: 2 via b, not 4 via a2
    }
    for node, found in ancestors_at.items():
        expected[0].add((node, node))
        for ancestor, distance in found.items():
            expected[min(distance, 4)].add((node, ancestor))
    for k, group in enumerate(groups):
        got = {(graph.wnids[i], graph.wnids[j]) for i, j in zip(*group.nonzero())}
        assert got == expected[k], f"distance group {k}"
        assert set(group.data) == {1.0}
    descendant_phase, ancestor_phase = dgp_propagation(graph, max_distance=4)
    r, a2 = graph.index["r"], graph.index["a2"]
    # the root averages its 2 children at distance 1 and its 3 descendants at distance >= 4
    assert descendant_phase[1][r].toarray().ravel()[[graph.index["a"], graph.index["b"]]].tolist() == [0.5, 0.5]
    np.testing.assert_allclose(descendant_phase[4][r].sum(), 1.0)
    assert descendant_phase[4][r].nnz == 3  # a3, a4, a5
    # a2 averages its ancestors a1 (distance 1), a (2), r (3); no ancestor at distance >= 4: an empty row
    assert ancestor_phase[1][a2].toarray().ravel()[graph.index["a1"]] == 1.0
    assert ancestor_phase[4][a2].nnz == 0
    np.testing.assert_array_equal(ancestor_phase[0].toarray(), np.eye(len(graph)))


# -- a planted, graph-smooth target ------------------------------------------------------------------------

def planted_problem(seed=0, branching=4, depth=4, feature_dim=16, vector_dim=32):
    """A tree whose class means drift smoothly from parent to child; targets are the exact
    nearest-mean classifiers of the leaves (means on a sphere: the bias is equal for all, so 0)."""
    rng = np.random.default_rng(seed)
    edges, latent, level = [], {"n0": rng.normal(size=feature_dim)}, ["n0"]
    for d in range(depth):
        nxt = []
        for parent in level:
            for _ in range(branching):
                child = f"n{len(latent)}"
                latent[child] = latent[parent] + rng.normal(size=feature_dim) * 0.9 ** d
                edges.append((child, parent))
                nxt.append(child)
        level = nxt
    leaves = list(level)
    rng.shuffle(leaves)
    seen, unseen = leaves[:int(0.6 * len(leaves))], leaves[int(0.6 * len(leaves)):]
    hierarchy = Hierarchy.from_edges(edges)
    graph = hierarchy.induced_graph(seen + unseen)
    means = {w: 6.0 * z / np.linalg.norm(z) for w, z in latent.items()}
    projection = rng.normal(size=(feature_dim, vector_dim))
    semantics = SemanticsTable(list(latent), np.stack([latent[w] @ projection + 0.3 * rng.normal(size=vector_dim)
                                                        for w in latent]))
    weights = np.stack([np.append(means[w], 0.0) for w in seen]).astype(np.float32)

    def samples(wnids, per_class):
        x = np.concatenate([means[w] + rng.normal(size=(per_class, feature_dim)) for w in wnids])
        return x.astype(np.float32), np.repeat(np.arange(len(wnids)), per_class)

    features, labels = samples(seen, 30)
    test_x, test_y = samples(unseen, 20)
    data = TrainingData(features, labels, seen, semantics, graph=graph, classifier_weights=weights)
    return data, unseen, test_x, test_y


def top1(model, test_x, test_y, candidates):
    return float((model.scores(test_x, candidates).argmax(1) == test_y).mean())


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_each_model_predicts_unseen_classes_far_above_chance(name):
    data, unseen, test_x, test_y = planted_problem()
    model = models.create(name, **SMALL[name], epochs=150, lr=5e-3, weight_decay=0.0, progress=False).fit(data)
    chance = 1 / len(unseen)
    assert top1(model, test_x, test_y, unseen) > 10 * chance, name
    assert model.node_classifiers_.shape == (len(data.graph), data.features.shape[1] + 1)
    np.testing.assert_allclose(np.linalg.norm(model.node_classifiers_, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_same_seed_same_result(name):
    data, unseen, test_x, _ = planted_problem()
    runs = [models.create(name, **SMALL[name], epochs=5, seed=3, progress=False).fit(data).scores(test_x, unseen)
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    other = models.create(name, **SMALL[name], epochs=5, seed=4, progress=False).fit(data).scores(test_x, unseen)
    assert not np.array_equal(runs[0], other)


def dense_reference(network, inputs, specs):
    """The layers as the public GCN/DGP code writes them, with dense matrices over the whole graph."""
    h = inputs
    for number, spec in enumerate(specs):
        weight = network.weights[number].detach().numpy()
        bias = network.biases[number].detach().numpy() if len(network.biases) else 0.0
        logits = network.mixtures[spec.phase].detach().numpy() if spec.phase is not None else np.zeros(1)
        mixture = np.exp(logits) / np.exp(logits).sum()
        if spec.bias_before_propagation:  # DGP: sum_k a_k A_k (h W + b)
            h = sum(a * m.toarray() @ (h @ weight + bias) for a, m in zip(mixture, spec.matrices))
        else:  # GCN: A h W + b
            h = spec.matrices[0].toarray() @ h @ weight + bias
        if number < len(specs) - 1:
            h = np.where(h > 0, h, 0.2 * h)
    return h / np.linalg.norm(h, axis=1, keepdims=True)


@pytest.mark.parametrize("name", GRAPH_MODELS)
@pytest.mark.parametrize("bias", [True, False])
def test_receptive_field_training_rows_match_the_dense_whole_graph_computation(name, bias):
    data, *_ = planted_problem()
    graph = data.graph
    specs = models.create(name, **SMALL[name]).layer_specs(graph, 17)
    torch.manual_seed(0)
    network = GraphNetwork(specs, data.semantics.dim, dropout=0.5, bias=bias).eval()
    with torch.no_grad():
        for mixture in network.mixtures:
            mixture.copy_(torch.randn(len(mixture)))  # unequal distance-group weights
        for vector in network.biases:
            vector.copy_(torch.randn(len(vector)))
    inputs = node_inputs(data.semantics, graph)
    rows = np.array([graph.index[w] for w in data.seen_wnids[:20]])
    plan = network.plan(rows, torch.device("cpu"))
    if name == "sgcn":  # two hops of a tree; DGP's and GCN-6's receptive fields cover this whole small tree
        assert len(plan.input_rows) < len(graph)
    with torch.no_grad():
        part = network(torch.from_numpy(inputs)[plan.input_rows], plan).numpy()
    np.testing.assert_allclose(part, dense_reference(network, inputs, specs)[rows], atol=2e-5)


def test_bfloat16_precision_learns_too():
    data, unseen, test_x, test_y = planted_problem()
    model = models.create("dgp", hidden=(64,), epochs=150, lr=5e-3, weight_decay=0.0, precision="bfloat16",
                          progress=False).fit(data)
    assert top1(model, test_x, test_y, unseen) > 10 / len(unseen)
    with pytest.raises(GozError, match="precision"):
        models.create("dgp", precision="float8")


def test_learned_softmax_classifier_and_early_stopping():
    data, unseen, test_x, test_y = planted_problem()
    data.classifier_weights = None
    model = models.create("sgcn", hidden=(64,), epochs=400, lr=5e-3, weight_decay=0.0, holdout_fraction=0.2,
                          patience=10, classifier_batches=200, classifier_lr=1e-2, progress=False).fit(data)
    assert top1(model, test_x, test_y, unseen) > 10 / len(unseen)
    assert len(model.history_) < 400 and all("holdout_loss" in r for r in model.history_)
    again = models.create("sgcn", **model.get_params()).fit(data)
    np.testing.assert_array_equal(again.node_classifiers_, model.node_classifiers_)


def test_registry_and_gcn2_alias():
    assert set(GRAPH_MODELS) <= set(models.list_models()) and "gcn2" not in models.list_models()
    assert type(models.create("gcn2")) is SGCN and models.create("gcn2").name == "sgcn"
    assert models.create("dgp").get_params()["epochs"] == 3000


def test_clear_errors():
    data, unseen, test_x, _ = planted_problem()
    with pytest.raises(GozError, match="graph"):
        models.create("sgcn", epochs=1, progress=False).fit(TrainingData(data.features, data.labels, data.seen_wnids,
                                                                          data.semantics))
    model = models.create("sgcn", hidden=(8,), epochs=1, progress=False).fit(data)
    with pytest.raises(GozError, match="not nodes of the training graph"):
        model.scores(test_x, unseen + ["n_unknown"])
    with pytest.raises(GozError, match="classifier_weights"):
        data.classifier_weights = data.classifier_weights[:, :5]
        models.create("dgp", hidden=(8,), epochs=1, progress=False).fit(data)


def test_cuda_requested_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data, *_ = planted_problem()
    with pytest.raises(GozError, match="CUDA is not available"):
        models.create("dgp", hidden=(8,), epochs=1, device="cuda", progress=False).fit(data)


# -- classifier weights from files -------------------------------------------------------------------------

def test_classifier_weights_from_a_torchvision_state_dict(tmp_path):
    rows = ["n3", "n1", "n2"]  # torchvision's row order is the sorted wnids
    weight, bias = torch.arange(12, dtype=torch.float32).reshape(3, 4), torch.tensor([10.0, 20.0, 30.0])
    torch.save({"conv1.weight": torch.zeros(2, 2), "fc.weight": weight, "fc.bias": bias}, tmp_path / "resnet.pth")
    got = read_classifier_weights(tmp_path / "resnet.pth", rows)
    full = np.concatenate([weight.numpy(), bias.numpy()[:, None]], axis=1)  # rows n1, n2, n3
    np.testing.assert_array_equal(got, full[[2, 0, 1]])
    torch.save({"fc.weight": weight}, tmp_path / "nobias.pth")
    with pytest.raises(GozError, match="no final classification layer"):
        read_classifier_weights(tmp_path / "nobias.pth", rows)
    with pytest.raises(GozError, match="no classifier row for 1 seen classes: n9"):
        read_classifier_weights(tmp_path / "resnet.pth", ["n1", "n9"], row_wnids=["n1", "n2", "n3"])
    with pytest.raises(GozError, match="3 classifier rows but 2 row wnids"):
        read_classifier_weights(tmp_path / "resnet.pth", ["n1", "n2"])


def test_classifier_weights_from_numpy_files(tmp_path):
    weights = np.arange(15, dtype=np.float32).reshape(3, 5)
    np.save(tmp_path / "w.npy", weights)
    np.testing.assert_array_equal(read_classifier_weights(tmp_path / "w.npy", ["a", "b", "c"]), weights)
    np.savez(tmp_path / "w.npz", weight=weights[:, :4], bias=weights[:, 4], wnids=np.array(["c", "a", "b"]))
    np.testing.assert_array_equal(read_classifier_weights(tmp_path / "w.npz", ["a", "b", "c"]), weights[[1, 2, 0]])
    with pytest.raises(GozError, match="3 classifier rows but 2"):
        read_classifier_weights(tmp_path / "w.npy", ["a", "b"], row_wnids=["a", "b"])
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(GozError, match="without pickled objects"):
        read_classifier_weights(tmp_path / "objects.npy", ["a"])


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_malicious_checkpoint_is_refused_without_running_it(tmp_path):
    marker = str(tmp_path / "payload_ran")
    with open(tmp_path / "evil.pth", "wb") as handle:
        pickle.dump({"fc.weight": _Payload(marker), "fc.bias": _Payload(marker)}, handle)
    with pytest.raises(GozError, match="refused"):
        read_classifier_weights(tmp_path / "evil.pth", ["a"])
    torch.save({"fc.weight": _Payload(marker)}, tmp_path / "evil_zip.pth")
    with pytest.raises(GozError, match="refused"):
        read_classifier_weights(tmp_path / "evil_zip.pth", ["a"])
    assert not os.path.exists(marker)


def test_dropout_masks_and_scales_the_propagated_values():
    from goz.models.graph import _drop

    torch.manual_seed(0)
    h = torch.ones(400, 500)
    dropped, scale = _drop(h, 0.5, training=True)
    assert set(dropped.unique().tolist()) == {0.0, 1.0} and scale == 2.0
    assert abs((dropped == 0).float().mean().item() - 0.5) < 0.01
    assert _drop(h, 0.5, training=False) == (h, 1.0) and _drop(h, 0.0, training=True) == (h, 1.0)


@pytest.mark.parametrize("backend", ["scipy", "torch"])
def test_mixed_propagation_matches_dense_autograd(backend):
    """Forward and both gradients (input, mixture) of the one-pattern propagation equal the dense
    sum_k a_k M_k (scale h) under torch autograd, on the CPU (scipy) and the torch-sparse path (GPUs)."""
    import dataclasses

    from goz.models.graph import _MixedPropagation, _propagation

    rng = np.random.default_rng(0)
    full = sp.random(30, 50, density=0.2, format="csr", random_state=1, dtype=np.float32)
    full.data[:] = rng.uniform(0.1, 1.0, full.nnz)
    groups = rng.integers(0, 3, full.nnz)
    blocks = [sp.csr_matrix((np.where(groups == k, full.data, 0), full.indices.copy(), full.indptr.copy()),
                            shape=full.shape)
              for k in range(3)]
    for block in blocks:
        block.eliminate_zeros()
    prop = _propagation(blocks, torch.device("cpu"))
    if backend == "torch":
        prop = dataclasses.replace(prop, scipy_pattern=None, scipy_transposed=None)
    logits = torch.randn(3, dtype=torch.float64).float().requires_grad_()
    h = torch.randn(50, 7, requires_grad=True)
    upstream = torch.randn(30, 7)
    out = _MixedPropagation.apply(torch.softmax(logits, 0), h, prop, 2.0)
    (out * upstream).sum().backward()
    got = out.detach(), h.grad.clone(), logits.grad.clone()
    h.grad, logits.grad = None, None
    dense = [torch.from_numpy(b.toarray()) for b in blocks]
    mixture = torch.softmax(logits, 0)
    expected = sum(mixture[k] * dense[k] for k in range(3)) @ (2.0 * h)
    (expected * upstream).sum().backward()
    torch.testing.assert_close(got[0], expected.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[1], h.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[2], logits.grad, atol=1e-5, rtol=1e-5)
    # A group with no entry among these rows still gets its (zero) gradient.
    empty = blocks + [sp.csr_matrix(full.shape, dtype=np.float32)]
    four = torch.zeros(4, requires_grad=True)
    _MixedPropagation.apply(torch.softmax(four, 0), h, _propagation(empty, torch.device("cpu")), 1.0).sum().backward()
    assert four.grad.shape == (4,)
    shared = [blocks[0], blocks[0]]
    with pytest.raises(GozError, match="share an entry"):
        _propagation(shared, torch.device("cpu"))


def test_gcn6_as_published_has_no_bias_and_no_dropout():
    data, *_ = planted_problem()
    model = models.create("gcn6", hidden=(8,) * 5, epochs=2, progress=False)
    assert model.bias is False and model.dropout == 0.0 and model.get_params()["bias"] is False
    network = GraphNetwork(model.layer_specs(data.graph, 9), 4, model.dropout, bias=model.bias)
    assert len(network.biases) == 0 and [n for n, _ in network.named_parameters()] == [
        f"weights.{i}" for i in range(6)]
    variant = models.create("gcn6", hidden=(8,) * 5, bias=True, dropout=0.5)
    assert len(GraphNetwork(variant.layer_specs(data.graph, 9), 4, variant.dropout, bias=True).biases) == 6
    for name in ("sgcn", "dgp"):  # the DGP code's layers have biases and dropout
        assert models.create(name).bias is True and models.create(name).dropout == 0.5


def test_graph_models_score_without_the_bias_unless_asked():
    data, unseen, test_x, _ = planted_problem()
    model = models.create("sgcn", hidden=(8,), epochs=2, progress=False).fit(data)
    rows = [model.index_[w] for w in unseen]
    weights, bias = model.node_classifiers_[rows, :-1], model.node_classifiers_[rows, -1]
    np.testing.assert_allclose(model.scores(test_x, unseen), test_x @ weights.T, rtol=1e-5, atol=1e-5)
    model.score_bias = True
    np.testing.assert_allclose(model.scores(test_x, unseen), test_x @ weights.T + bias, rtol=1e-5, atol=1e-5)
    assert models.create("dgp", score_bias=True).get_params()["score_bias"] is True


def test_fused_loss_matches_normalize_then_squared_error():
    from goz.models.graph import _NormalizedSquaredError

    torch.manual_seed(0)
    z = (3 * torch.randn(40, 9)).requires_grad_()
    targets = torch.nn.functional.normalize(torch.randn(40, 9), dim=1)
    loss = _NormalizedSquaredError.apply(z, targets)
    (3 * loss).backward()
    fused = loss.detach(), z.grad.clone()
    z.grad = None
    reference = ((torch.nn.functional.normalize(z, dim=1) - targets) ** 2).sum() / (2 * len(z))
    (3 * reference).backward()
    torch.testing.assert_close(fused[0], reference.detach())
    torch.testing.assert_close(fused[1], z.grad)
