"""Graph baselines: GCN-6, SGCN (GCN-2) and DGP (ADGPM) predict every class's classifier from the
class graph and the class vectors, by regressing the seen classes' classifiers.

- `gcn6` (Wang, Ye and Gupta, CVPR 2018): six graph convolutions 300 -> 2048 -> 2048 -> 1024 ->
  1024 -> 512 -> D+1 over D^-1/2 (A + I) D^-1/2 of the undirected hierarchy, LeakyReLU 0.2, as
  their code: no bias, no dropout. `bias=True` and `dropout=0.5` (dropout on the inputs of every
  layer but the first) give the variant with the layers of the DGP code.
- `sgcn`, alias `gcn2` (Kampffmeyer et al., CVPR 2019): two layers 300 -> 2048 -> D+1 over the
  row-normalized symmetrized A + I, dropout 0.5 before each, LeakyReLU 0.2, biases.
- `dgp` (same paper, ADGPM without fine-tuning): two layers, the first propagating from all
  descendants, the second from all ancestors; edges grouped by shortest directed distance
  (0 = self, 1, 2, 3, >= 4), each group's adjacency row-normalized, and the groups mixed by a
  softmax over learnable weights, one set per phase (see `graph_ops.dgp_propagation`).

Training, as the public DGP code: the inputs are the L2-normalized class vectors of every graph
node (zeros for nodes the semantics table lacks: in the real setting GloVe covers most WordNet
ancestors, and a node without a vector still passes messages; seen classes without a vector stay
training targets, unlike in the linear models); the targets are the seen classes'
classifier weights with the bias as last column, L2-normalized; the network output is
L2-normalized; loss = sum of squared errors over the seen nodes / (2N); Adam, lr 1e-3, weight
decay 5e-4, 3000 epochs. `holdout_fraction` > 0 holds seen classes out of the loss and stops when
their loss has not improved for `patience` epochs, keeping the best epoch's weights.

The targets are `TrainingData.classifier_weights` when given: the original used the fc layer of
the ImageNet ResNet-50 that produced the features (read it with
`graph_ops.read_classifier_weights`); otherwise a softmax classifier (linear with bias) is learned
on the training features first.

The graph is `TrainingData.graph`: `goz bench` gives the published ImageNet graph of the DGP code
(`goz.wordnet.imagenet_graph`, 32,324 nodes) by default, or `hierarchy.induced_graph(seen +
unseen)` (`--graph split`); the models only use `ClassGraph.index`. Every graph node is a
candidate: its classifier comes from the graph, with or without a class vector of its own.

Scores are x . w_c for each candidate c, as the GOZ notebook scored the graph classifiers (the
predicted bias column dropped); `score_bias=True` scores x . w_c + b_c, as DGP's own evaluation.

Each layer only computes the rows the loss (or the prediction) needs: the rows of layer l are the
columns that layer l + 1's propagation reads for its rows, so training touches the seen classes'
receptive field only; the result is the same as propagating the whole graph. Each layer propagates
before its dense product ((A H) W: the propagation's output rows are never more than its inputs),
the mixed matrices of DGP are one sparse pattern, dropout's 1 / (1 - p) scales the stored sparse
values instead of every element, and a first layer without dropout propagates the (constant) class
vectors once, hidden-layer dropout works in place, and the loss is one autograd function. On the
CPU the sparse products use scipy (several times faster than torch's CSR kernels there). `precision="bfloat16"`
runs the dense products under autocast (sparse products stay float32): about 2x faster on CPUs with
AVX512-BF16, at bfloat16's precision; the default is float32, as the original.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from goz.device import resolve_device
from goz.errors import GozError
from goz.models import register_model
from goz.models.base import TrainingData, ZSLModel
from goz.models.graph_ops import (
    dgp_propagation,
    gcn_propagation,
    receptive_rows,
    sgcn_propagation,
)
from goz.models.training import (
    check_scoring_input,
    minibatch_rows,
    row_chunks,
    to_tensor,
)
from goz.progress import progress_bar
from goz.semantics import SemanticsTable
from goz.wordnet.hierarchy import ClassGraph

log = logging.getLogger(__name__)

LEAKY_SLOPE = 0.2
# The dense products in bfloat16 (autocast) are ~3x faster on CPUs with AVX512-BF16 and on GPUs.
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16}


@dataclass
class LayerSpec:
    """One graph convolution: out = act(sum_k a_k M_k dropout(h) W + bias) with a = softmax(logits
    of `phase`), or a = [1] for a single matrix (phase None)."""

    matrices: list[sp.csr_matrix]
    out_dim: int
    dropout: bool
    phase: int | None = None          # which learnable mixture of the matrices (DGP), None: one matrix
    bias_before_propagation: bool = False  # DGP adds the bias before propagating, GCNs after


@dataclass
class _Propagation:
    """sum_k a_k M_k restricted to a layer's output rows and input rows, stored as ONE sparse pattern:
    the matrices of a mixture (DGP's distance groups) never share an entry, so the mixture weights
    only scale each stored value, and a layer costs one sparse product forward and one backward."""

    shape: tuple[int, int]
    base: torch.Tensor            # (nnz,) float32 values of the M_k, in CSR order
    group: torch.Tensor           # (nnz,) int64: k of each value
    pattern: torch.Tensor         # CSR tensor with values `base`: the pattern for sampled products
    transposed_base: torch.Tensor   # (nnz,) `base` in M^T's CSR order
    transposed_group: torch.Tensor  # (nnz,) `group` in M^T's CSR order
    transposed_indptr: torch.Tensor
    transposed_indices: torch.Tensor
    scipy_pattern: sp.csr_matrix | None  # CPU: scipy's CSR product is several times faster than torch's
    scipy_transposed: sp.csr_matrix | None


def _csr_tensor(indptr, indices, values, shape, device) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        # scipy builds valid, sorted CSR, so torch's invariant checks are skipped
        return torch.sparse_csr_tensor(indptr, indices, values, shape, device=device, check_invariants=False)


def _indptr(rows: np.ndarray, n_rows: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))]).astype(np.int64)


def _propagation(blocks: Sequence[sp.csr_matrix], device: torch.device) -> _Propagation:
    shape = blocks[0].shape
    parts = [sp.coo_matrix(block) for block in blocks]
    rows, cols = np.concatenate([p.row for p in parts]), np.concatenate([p.col for p in parts])
    values = np.concatenate([p.data for p in parts]).astype(np.float32)
    group = np.concatenate([np.full(p.nnz, k, np.int64) for k, p in enumerate(parts)])
    order = np.lexsort((cols, rows))  # CSR order: by row, then column
    rows, cols, values, group = rows[order], cols[order], values[order], group[order]
    if len(rows) > 1 and np.any((np.diff(rows) == 0) & (np.diff(cols) == 0)):
        raise GozError("graph propagation: two mixed matrices share an entry")  # never for DGP's distance groups
    indptr = _indptr(rows, shape[0])
    transposed = np.lexsort((rows, cols))  # M^T's CSR order of the same entries
    transposed_indptr = _indptr(cols, shape[1])
    on_cpu = device.type == "cpu"

    def as_long(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64)).to(device)

    base = torch.from_numpy(values).to(device)
    return _Propagation(
        shape, base, as_long(group), _csr_tensor(as_long(indptr), as_long(cols), base, shape, device),
        torch.from_numpy(values[transposed]).to(device), as_long(group[transposed]), as_long(transposed_indptr),
        as_long(rows[transposed]),
        # int32 indices throughout (fewer than 2^31 entries), so scipy never converts them per product
        sp.csr_matrix((values, cols.astype(np.int32), indptr.astype(np.int32)), shape=shape) if on_cpu else None,
        sp.csr_matrix((values[transposed], rows[transposed].astype(np.int32), transposed_indptr.astype(np.int32)),
                      shape=shape[::-1]) if on_cpu else None)


def _sparse_product(pattern: sp.csr_matrix | None, indptr, indices, values: torch.Tensor, shape,
                    h: torch.Tensor) -> torch.Tensor:
    if pattern is not None:  # CPU
        matrix = sp.csr_matrix((values.numpy(), pattern.indices, pattern.indptr), shape=shape)
        return torch.from_numpy(np.asarray(matrix @ h.numpy()))
    return torch.sparse.mm(_csr_tensor(indptr, indices, values, shape, h.device), h)


def _scaled(base: torch.Tensor, group: torch.Tensor, mixture: torch.Tensor, scale: float) -> torch.Tensor:
    """The stored values of sum_k a_k M_k times `scale`; a single matrix needs no per-entry lookup."""
    if len(mixture) == 1:
        return base if scale == 1.0 and bool(mixture[0] == 1.0) else base * (float(mixture[0]) * scale)
    return base * (mixture[group] * scale)


class _MixedPropagation(torch.autograd.Function):
    """(sum_k a_k M_k) (scale * h), float32 (sparse kernels have no bfloat16). Backward: M^T grad for h
    and, for a learnable mixture, d/da_k = sum over M_k's entries of M_k[i, j] scale grad_i . h_j
    (one sampled dense product at the pattern's entries, never a dense rows x inputs matrix)."""

    @staticmethod
    def forward(ctx, mixture: torch.Tensor, h: torch.Tensor, prop: _Propagation, scale: float) -> torch.Tensor:
        with torch.autocast(h.device.type, enabled=False):
            h = h.detach().float().contiguous()
            mixture = mixture.detach()
            values = _scaled(prop.base, prop.group, mixture, scale)
            ctx.prop, ctx.scale, ctx.mixture, ctx.n_groups = prop, scale, mixture, len(mixture)
            ctx.save_for_backward(h if ctx.needs_input_grad[0] else None)
            pattern = prop.scipy_pattern
            indptr, indices = (prop.pattern.crow_indices(), prop.pattern.col_indices()) if pattern is None else (None, None)
            return _sparse_product(pattern, indptr, indices, values, prop.shape, h)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        prop = ctx.prop
        grad = grad.float().contiguous()
        grad_mixture = grad_h = None
        with torch.autocast(grad.device.type, enabled=False):
            if ctx.needs_input_grad[1]:
                transposed = _scaled(prop.transposed_base, prop.transposed_group, ctx.mixture, ctx.scale)
                grad_h = _sparse_product(prop.scipy_transposed, prop.transposed_indptr, prop.transposed_indices,
                                         transposed, prop.shape[::-1], grad)
            if ctx.needs_input_grad[0]:
                (h,) = ctx.saved_tensors
                dots = torch.sparse.sampled_addmm(prop.pattern, grad, h.T, beta=0.0).values()
                grad_mixture = torch.zeros(ctx.n_groups, device=grad.device).index_add_(  # a group may be empty here
                    0, prop.group, dots * prop.base * ctx.scale)
        return grad_mixture, grad_h, None, None


class _NormalizedSquaredError(torch.autograd.Function):
    """sum_i |z_i / |z_i| - t_i|^2 / (2 N), the DGP loss on L2-normalized outputs, in a few passes over
    z instead of the dozen of normalize + subtract + square + sum under autograd (a tenth of an epoch)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        z = z.float()
        norms = torch.linalg.vector_norm(z, dim=1, keepdim=True).clamp_min_(1e-12)  # as F.normalize's eps
        unit = z / norms
        residual = unit - targets
        ctx.save_for_backward(unit, residual, norms)
        return residual.square().sum() / (2 * len(z))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        unit, residual, norms = ctx.saved_tensors
        along = residual.mul_(grad / len(unit))  # d loss / d unit (the residual is not needed any more)
        radial = (unit * along).sum(dim=1, keepdim=True)
        return along.sub_(unit.mul_(radial)).div_(norms), None


@dataclass
class _LayerPlan:
    propagation: _Propagation
    row_mass: torch.Tensor        # (K, rows): M_k's row sums, for the bias of DGP


@dataclass
class _Plan:
    input_rows: torch.Tensor
    layers: list[_LayerPlan]
    constant_first: list = field(default_factory=list)  # [(inputs, M inputs)] when layer 1 has no dropout


def _drop(h: torch.Tensor, p: float, training: bool, in_place: bool = False) -> tuple[torch.Tensor, float]:
    """Dropout's mask, and the 1 / (1 - p) that `_MixedPropagation` applies to the (fewer) stored values
    instead of to every element; the mask is drawn by `torch.rand` (bernoulli_ is ~5x slower on CPUs).
    `in_place` for a hidden layer's fresh activations (never for the shared class vectors)."""
    if not training or p == 0.0:
        return h, 1.0
    drop = torch.rand(h.shape, device=h.device) < p
    return (h.masked_fill_(drop, 0.0) if in_place else h.masked_fill(drop, 0.0)), 1.0 / (1.0 - p)


class GraphNetwork(nn.Module):
    """The stack of graph convolutions described by `LayerSpec`s; output rows L2-normalized.
    `bias=False`: no bias parameters (Wang et al.'s GCN-6)."""

    def __init__(self, specs: Sequence[LayerSpec], in_dim: int, dropout: float, precision: str = "float32",
                 bias: bool = True):
        super().__init__()
        self.specs = list(specs)
        self.dropout = dropout
        self.autocast_dtype = PRECISIONS[precision]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        last = in_dim
        for spec in self.specs:
            weight = nn.Parameter(torch.empty(last, spec.out_dim))
            nn.init.xavier_uniform_(weight)
            self.weights.append(weight)
            if bias:
                self.biases.append(nn.Parameter(torch.zeros(spec.out_dim)))
            last = spec.out_dim
        phases = sorted({s.phase for s in self.specs if s.phase is not None})
        self.mixtures = nn.ParameterList(
            nn.Parameter(torch.ones(len(next(s for s in self.specs if s.phase == p).matrices))) for p in phases)

    def plan(self, rows: np.ndarray, device: torch.device) -> _Plan:
        """The sub-matrices each layer needs to output `rows` of the last layer."""
        layers = []
        for spec in reversed(self.specs):
            inputs = receptive_rows(spec.matrices, rows)
            blocks = [matrix[rows][:, inputs] for matrix in spec.matrices]
            mass = np.stack([np.asarray(block.sum(axis=1)).ravel() for block in blocks]).astype(np.float32)
            layers.append(_LayerPlan(_propagation(blocks, device), torch.from_numpy(mass).to(device)))
            rows = inputs
        return _Plan(torch.from_numpy(rows).long().to(device), layers[::-1])

    def forward(self, node_inputs: torch.Tensor, plan: _Plan, normalize: bool = True) -> torch.Tensor:
        """The plan's output rows from `node_inputs`, the class vectors of the plan's `input_rows`
        (L2-normalized unless `normalize=False`: `loss` normalizes them itself)."""
        with torch.autocast(node_inputs.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            h = self._layers(node_inputs, plan)
        return F.normalize(h.float(), dim=1) if normalize else h

    def loss(self, node_inputs: torch.Tensor, plan: _Plan, targets: torch.Tensor) -> torch.Tensor:
        """The DGP loss: squared error of the normalized outputs against the targets / (2 N)."""
        return _NormalizedSquaredError.apply(self(node_inputs, plan, normalize=False), targets)

    def _layers(self, h: torch.Tensor, plan: _Plan) -> torch.Tensor:
        last = len(self.specs) - 1
        for number, (spec, layer) in enumerate(zip(self.specs, plan.layers)):
            mixture = (torch.ones(1, device=h.device) if spec.phase is None
                       else torch.softmax(self.mixtures[spec.phase], dim=0))
            dropped, scale = (_drop(h, self.dropout, self.training, in_place=number > 0) if spec.dropout
                              else (h, 1.0))
            if number == 0 and scale == 1.0 and spec.phase is None:
                # The class vectors are constants: without dropout, the first propagation is computed once.
                if not plan.constant_first or plan.constant_first[0][0] is not h:
                    plan.constant_first[:] = [(h, _MixedPropagation.apply(mixture, h, layer.propagation, 1.0))]
                propagated = plan.constant_first[0][1]
            else:
                # Propagating before the dense product: a layer's rows are never more than its inputs.
                propagated = _MixedPropagation.apply(mixture, dropped, layer.propagation, scale)
            h = propagated @ self.weights[number]
            if len(self.biases):
                if spec.bias_before_propagation:
                    h = h + (mixture @ layer.row_mass)[:, None] * self.biases[number]
                else:
                    h = h + self.biases[number]
            if number < last:
                h = F.leaky_relu(h, LEAKY_SLOPE)
        return h


def learn_softmax_classifier(features: np.ndarray, labels: np.ndarray, n_classes: int, *, n_batches: int,
                             batch_size: int, lr: float, device: torch.device, seed: int,
                             progress: bool = True) -> np.ndarray:
    """(n_classes, D + 1) weights and bias of a linear softmax classifier trained with Adam.

    Minibatches are drawn by index and converted to float32 per batch, so float16 or memory-mapped
    features of any size never get copied whole.
    """
    classifier = nn.Linear(features.shape[1], n_classes).to(device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr)
    batches = minibatch_rows(np.arange(len(features)), batch_size, n_batches, seed)
    for rows in progress_bar(batches, total=n_batches, desc="softmax classifier", unit="batch", enabled=progress):
        loss = F.cross_entropy(classifier(to_tensor(features[rows], device)),
                               torch.from_numpy(np.asarray(labels[rows], dtype=np.int64)).to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return torch.cat([classifier.weight, classifier.bias[:, None]], dim=1).cpu().numpy()


MISSING_VECTORS_WARNING = 0.01  # above this fraction of graph nodes without a class vector, a warning


def nodes_without_vector(semantics: SemanticsTable, graph: ClassGraph) -> int:
    """How many graph nodes the semantics table has no class vector for (their input is zero)."""
    return sum(1 for wnid in graph.wnids if wnid not in semantics)


def node_inputs(semantics: SemanticsTable, graph: ClassGraph) -> np.ndarray:
    """(len(graph), d) L2-normalized class vectors in graph order; zeros for nodes without one
    (a warning when they are more than 1 % of the nodes)."""
    table = semantics.normalized()
    inputs = np.zeros((len(graph), table.dim), np.float32)
    present = [(row, wnid) for row, wnid in enumerate(graph.wnids) if wnid in table]
    for row, wnid in present:
        inputs[row] = table.vector(wnid)
    missing = len(graph) - len(present)
    if missing > MISSING_VECTORS_WARNING * len(graph):
        log.warning("%d of %d graph nodes (%.1f %%) have no class vector; their input is zero. Embed every node "
                    "of the graph, e.g. `goz embed --classes imagenet-graph` for the published ImageNet graph",
                    missing, len(graph), 100 * missing / len(graph))
    return inputs


class GraphModel(ZSLModel):
    """Shared training and scoring of the graph baselines; subclasses define the layers."""

    uses_graph = True
    needs_class_vectors = False  # a candidate's classifier comes from the graph

    def __init__(self, hidden: Sequence[int], *, dropout: float = 0.5, bias: bool = True, score_bias: bool = False,
                 epochs: int = 3000, lr: float = 1e-3,
                 weight_decay: float = 5e-4, holdout_fraction: float = 0.0, patience: int = 100,
                 classifier_batches: int = 5000, classifier_batch_size: int = 512, classifier_lr: float = 1e-3,
                 precision: str = "float32", **common):
        self.hidden = tuple(int(h) for h in hidden)
        self.dropout = dropout
        self.bias = bool(bias)
        self.score_bias = bool(score_bias)
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.holdout_fraction = holdout_fraction
        self.patience = patience
        self.classifier_batches = classifier_batches
        self.classifier_batch_size = classifier_batch_size
        self.classifier_lr = classifier_lr
        self.precision = precision
        super().__init__(**common)
        if precision not in PRECISIONS:
            raise GozError(f"{self.name}: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if not 0.0 <= dropout < 1.0:
            raise GozError(f"{self.name}: dropout must be in [0, 1), got {dropout}")
        if not 0.0 <= holdout_fraction < 1.0:
            raise GozError(f"{self.name}: holdout_fraction must be in [0, 1), got {holdout_fraction}")

    def layer_specs(self, graph: ClassGraph, out_dim: int) -> list[LayerSpec]:
        raise NotImplementedError

    # -- fit ---------------------------------------------------------------------------------------------
    def _targets(self, data: TrainingData, device: torch.device) -> np.ndarray:
        n_seen = len(data.seen_wnids)
        features_dim = data.features.shape[1] if data.features is not None and data.features.ndim == 2 else None
        if data.classifier_weights is not None:
            weights = np.asarray(data.classifier_weights, dtype=np.float32)
            if weights.ndim != 2 or len(weights) != n_seen:
                raise GozError(f"{self.name}: classifier_weights must be ({n_seen}, D + 1), got {weights.shape}")
            if features_dim is not None and len(data.features) and weights.shape[1] != features_dim + 1:
                raise GozError(f"{self.name}: classifier_weights have {weights.shape[1]} columns but the "
                               f"features have {features_dim} dimensions (expected D + 1 with the bias last)")
        else:
            if features_dim is None or not len(data.features):
                raise GozError(f"{self.name}: no training features to learn the seen classifiers from")
            labels = np.asarray(data.labels)
            if len(labels) != len(data.features) or labels.min() < 0 or labels.max() >= n_seen:
                raise GozError(f"{self.name}: labels must be {len(data.features)} indices into seen_wnids")
            weights = learn_softmax_classifier(data.features, labels, n_seen, n_batches=self.classifier_batches,
                                               batch_size=self.classifier_batch_size, lr=self.classifier_lr,
                                               device=device, seed=self.seed, progress=self.progress)
        return weights / np.maximum(np.linalg.norm(weights, axis=1, keepdims=True), 1e-12)

    def fit(self, data: TrainingData) -> GraphModel:
        graph = data.graph
        if graph is None:
            raise GozError(f"{self.name}: needs TrainingData.graph, e.g. hierarchy.induced_graph(seen + unseen)")
        missing = [w for w in data.seen_wnids if w not in graph.index]
        if missing:
            raise GozError(f"{self.name}: {len(missing)} seen classes are not graph nodes: {', '.join(missing[:10])}")
        device = resolve_device(self.device)
        seen_rows = np.array([graph.index[w] for w in data.seen_wnids], dtype=np.int64)
        order = np.random.default_rng(self.seed).permutation(len(seen_rows))
        n_holdout = int(round(self.holdout_fraction * len(seen_rows)))
        holdout, train = np.sort(order[:n_holdout]), np.sort(order[n_holdout:])
        if not len(train):
            raise GozError(f"{self.name}: no seen class left to train on")
        fork_devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices):  # seeded without touching the caller's RNG state
            torch.manual_seed(self.seed)
            targets = self._targets(data, device)
            network = GraphNetwork(self.layer_specs(graph, targets.shape[1]), data.semantics.dim, self.dropout,
                                   self.precision, bias=self.bias).to(device)
            inputs = torch.from_numpy(node_inputs(data.semantics, graph)).to(device)
            self.history_ = self._train(network, inputs, seen_rows, targets, train, holdout, device)
            network.eval()
            with torch.no_grad():
                everything = network.plan(np.arange(len(graph)), device)
                self.node_classifiers_ = network(inputs[everything.input_rows], everything).cpu().numpy()
        self.wnids_ = list(graph.wnids)
        self.index_ = dict(graph.index)
        self.mixtures_ = [torch.softmax(m.detach(), 0).cpu().numpy().tolist() for m in network.mixtures]
        return self

    def _train(self, network: GraphNetwork, inputs: torch.Tensor, seen_rows: np.ndarray, targets: np.ndarray,
               train: np.ndarray, holdout: np.ndarray, device: torch.device) -> list[dict]:
        def l2_loss(plan: _Plan, plan_inputs: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
            return network.loss(plan_inputs, plan, wanted)

        train_plan = network.plan(seen_rows[train], device)
        train_inputs, train_targets = inputs[train_plan.input_rows], torch.from_numpy(targets[train]).to(device)
        holdout_plan = network.plan(seen_rows[holdout], device) if len(holdout) else None
        holdout_inputs = inputs[holdout_plan.input_rows] if holdout_plan is not None else None
        holdout_targets = torch.from_numpy(targets[holdout]).to(device)
        optimizer = torch.optim.Adam(network.parameters(), lr=self.lr, weight_decay=self.weight_decay, fused=True)
        history, best, best_state, stale = [], np.inf, None, 0
        start, cpu_start = time.perf_counter(), time.process_time()
        bar = progress_bar(range(self.epochs), desc=self.name, unit="epoch", enabled=self.progress)
        for epoch in bar:
            network.train()
            loss = l2_loss(train_plan, train_inputs, train_targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            record = {"epoch": epoch + 1, "loss": loss.item()}
            if holdout_plan is not None:
                network.eval()
                with torch.no_grad():
                    record["holdout_loss"] = l2_loss(holdout_plan, holdout_inputs, holdout_targets).item()
                if record["holdout_loss"] < best:
                    best, stale = record["holdout_loss"], 0
                    best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
                else:
                    stale += 1
            record["seconds"] = time.perf_counter() - start
            record["cpu_seconds"] = time.process_time() - cpu_start  # below seconds x threads on a busy machine
            history.append(record)
            bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k.endswith("loss")}, refresh=False)
            if holdout_plan is not None and stale >= self.patience:
                log.info("%s: held-out loss has not improved for %d epochs, stopping at epoch %d",
                         self.name, self.patience, epoch + 1)
                break
        if best_state is not None:
            network.load_state_dict(best_state)
        return history

    # -- predict -----------------------------------------------------------------------------------------
    def score_matrix(self, candidates: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not hasattr(self, "node_classifiers_"):
            raise GozError(f"{self.name}: call fit() before scores()")
        missing = [w for w in candidates if w not in self.index_]
        if missing:
            raise GozError(f"{self.name}: {len(missing)} candidate classes are not nodes of the training graph "
                           f"(build it with hierarchy.induced_graph(seen + candidates)): {', '.join(missing[:10])}")
        classifiers = torch.from_numpy(self.node_classifiers_[[self.index_[w] for w in candidates]])
        # x . w as the GOZ notebook scores the graph classifiers; `score_bias` adds b, as DGP's evaluation.
        return classifiers[:, :-1].T, (classifiers[:, -1] if self.score_bias else None)

    def scores(self, features: np.ndarray, candidates: Sequence[str]) -> np.ndarray:
        weights, bias = self.score_matrix(candidates)
        check_scoring_input(features, weights.shape[0], self.name)
        out = np.empty((len(features), len(candidates)), np.float32)
        for rows, chunk in row_chunks(features, torch.device("cpu")):
            out[rows] = (chunk @ weights + bias if bias is not None else chunk @ weights).numpy()
        return out


@register_model("gcn6")
class GCN6(GraphModel):
    """GCN-6 (Wang, Ye and Gupta, CVPR 2018) as their code (JudyYe/zero-shot-gcn) defines it: six graph
    convolutions, symmetric normalization, no bias and no dropout (its dropout placeholder is never
    fed). Trained with the DGP recipe (Adam, 3000 epochs, the loss of the DGP code), not Wang et al.'s
    TensorFlow script. DGP's code gives its layers biases: `bias=True, dropout=0.5` is that variant."""

    display_order = 4
    demo_hyperparameters = {"epochs": 80, "hidden": [256, 256, 256, 256, 256]}
    test_hyperparameters = {"epochs": 20, "hidden": (16,) * 5}

    def __init__(self, hidden: Sequence[int] = (2048, 2048, 1024, 1024, 512), *, bias: bool = False,
                 dropout: float = 0.0, **training):
        super().__init__(hidden, bias=bias, dropout=dropout, **training)

    def layer_specs(self, graph: ClassGraph, out_dim: int) -> list[LayerSpec]:
        propagation = gcn_propagation(graph)
        dims = (*self.hidden, out_dim)
        return [LayerSpec([propagation], dim, dropout=number > 0) for number, dim in enumerate(dims)]


@register_model("sgcn", aliases=("gcn2",))
class SGCN(GraphModel):
    """SGCN / GCN-2 (Kampffmeyer et al., CVPR 2019): two graph convolutions, row normalization."""

    display_order = 5
    demo_hyperparameters = {"epochs": 80, "hidden": [512]}
    test_hyperparameters = {"epochs": 20, "hidden": (16,)}

    def __init__(self, hidden: Sequence[int] = (2048,), **training):
        super().__init__(hidden, **training)

    def layer_specs(self, graph: ClassGraph, out_dim: int) -> list[LayerSpec]:
        propagation = sgcn_propagation(graph)
        return [LayerSpec([propagation], dim, dropout=True) for dim in (*self.hidden, out_dim)]


@register_model("dgp")
class DGP(GraphModel):
    """DGP / ADGPM (Kampffmeyer et al., CVPR 2019): dense propagation over all descendants, then all
    ancestors, with softmax-weighted distance groups; layers alternate the two phases."""

    display_order = 6
    demo_hyperparameters = {"epochs": 80, "hidden": [512]}
    test_hyperparameters = {"epochs": 20, "hidden": (16,)}

    def __init__(self, hidden: Sequence[int] = (2048,), max_distance: int = 4, **training):
        super().__init__(hidden, **training)
        self.max_distance = max_distance

    def layer_specs(self, graph: ClassGraph, out_dim: int) -> list[LayerSpec]:
        phases = dgp_propagation(graph, self.max_distance)
        return [LayerSpec(phases[number % 2], dim, dropout=True, phase=number % 2, bias_before_propagation=True)
                for number, dim in enumerate((*self.hidden, out_dim))]
