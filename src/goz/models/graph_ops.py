"""Sparse propagation matrices of the graph baselines, and the seen-class classifier weights they regress.

Everything here is scipy.sparse (no dense N x N matrix: the GOZ graph has a few thousand nodes,
the ImageNet-21K one ~32k) and registers no model; `goz.models.graph` builds the networks.

Node order is the `ClassGraph`'s; nothing here assumes more about it than `ClassGraph.index`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from goz.errors import GozError
from goz.wordnet.hierarchy import ClassGraph


def row_normalized(matrix: sp.spmatrix) -> sp.csr_matrix:
    """D^-1 M: every row sums to one; empty rows stay empty (as `normt_spm` in the DGP code)."""
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    inverse = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums != 0)
    return sp.csr_matrix(sp.diags(inverse) @ matrix, dtype=np.float32)


def symmetric_normalized(matrix: sp.spmatrix) -> sp.csr_matrix:
    """D^-1/2 M D^-1/2 with D the row sums of the symmetric M (zero-degree rows stay empty)."""
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.divide(1.0, np.sqrt(sums), out=np.zeros_like(sums), where=sums != 0)
    return sp.csr_matrix(sp.diags(scale) @ matrix @ sp.diags(scale), dtype=np.float32)


def _with_self_loops(graph: ClassGraph) -> sp.csr_matrix:
    adjacency = graph.undirected_adjacency() + sp.identity(len(graph), format="csr")
    adjacency.data[:] = 1.0
    return adjacency.tocsr()


def gcn_propagation(graph: ClassGraph) -> sp.csr_matrix:
    """GCN-6 (Wang et al. 2018): D^-1/2 (A + I) D^-1/2 over the undirected hierarchy."""
    return symmetric_normalized(_with_self_loops(graph))


def sgcn_propagation(graph: ClassGraph) -> sp.csr_matrix:
    """SGCN / GCN-2 (Kampffmeyer et al. 2019): row normalization of the symmetrized A + I."""
    return row_normalized(_with_self_loops(graph))


def ancestor_distance_groups(graph: ClassGraph, max_distance: int = 4) -> list[sp.csr_matrix]:
    """0/1 matrices G_0..G_max: G_k[i, j] = 1 when j is an ancestor of i at shortest directed
    distance k (G_0 is the identity); the last group holds every distance >= max_distance.

    Computed level by level with sparse products (a multi-source BFS up the DAG for all nodes at
    once), so memory is the number of (node, ancestor) pairs, never N x N.
    """
    if max_distance < 1:
        raise GozError(f"dgp: max_distance must be at least 1, got {max_distance}")
    parents = sp.csr_matrix(graph.parent_edges, dtype=np.float32)
    parents.data[:] = 1.0
    frontier = sp.identity(len(graph), dtype=np.float32, format="csr")
    reached = frontier.copy()
    levels = [frontier]
    while frontier.nnz:
        step = frontier @ parents
        step.data[:] = 1.0
        frontier = (step - step.multiply(reached)).tocsr()  # keep only pairs first reached now
        frontier.eliminate_zeros()
        if frontier.nnz:
            levels.append(frontier)
            reached = (reached + frontier).tocsr()
    groups = levels[:max_distance] + [sum(levels[max_distance:], sp.csr_matrix((len(graph), len(graph)), dtype=np.float32))]
    return [sp.csr_matrix(group, dtype=np.float32) for group in groups]


def dgp_propagation(graph: ClassGraph, max_distance: int = 4) -> tuple[list[sp.csr_matrix], list[sp.csr_matrix]]:
    """(descendant phase, ancestor phase) matrices of DGP, one per distance group.

    Descendant phase: node i averages its descendants at that distance (rows of G_k^T normalized);
    ancestor phase: node i averages its ancestors at that distance (rows of G_k normalized), as
    `normt_spm(adj, 'in')` and `normt_spm(adj.T, 'in')` in the public DGP code.
    """
    groups = ancestor_distance_groups(graph, max_distance)
    return [row_normalized(group.T) for group in groups], [row_normalized(group) for group in groups]


def receptive_rows(matrices: Sequence[sp.csr_matrix], rows: np.ndarray) -> np.ndarray:
    """Sorted columns that any of `matrices` reads for `rows`: the inputs those output rows need."""
    needed = np.zeros(matrices[0].shape[1], dtype=bool)
    for matrix in matrices:
        needed[matrix[rows].indices] = True
    return np.flatnonzero(needed)


# -- the seen classes' classifier weights (the regression targets) ----------------------------------------

def read_classifier_weights(path: str | Path, seen_wnids: Sequence[str],
                            row_wnids: Sequence[str] | None = None) -> np.ndarray:
    """(len(seen_wnids), D + 1) classifier weights with the bias as last column, rows in seen order.

    Accepted files:
    - a checkpoint (`.pt`, `.pth`) of a torchvision, timm or efficientnet-pytorch classifier: the
      state dict's final layer (`fc.`, `classifier.`, `classifier.1.`, `head.`, `head.fc.`,
      `heads.head.`, `_fc.` weight (C, D) and bias (C,)), loaded with `torch.load(weights_only=True)`
      so no pickled code ever runs; by default its rows are in the ImageNet order, the sorted wnids;
    - `.npy`: a (C, D + 1) array, rows in `seen_wnids` order by default;
    - `.npz`: `weights` (C, D + 1), or `weight` (C, D) with `bias` (C,); optional `wnids` (C,)
      naming the rows.
    `row_wnids` names the file's rows explicitly and overrides these defaults.
    """
    path = Path(path)
    if not path.exists():
        raise GozError(f"{path}: no such classifier weights file")
    stored_wnids: list[str] | None = None
    if path.suffix in (".pt", ".pth"):
        weights = _read_checkpoint_fc(path)
        default_rows = sorted(seen_wnids)
    elif path.suffix in (".npy", ".npz"):
        weights, stored_wnids = _read_array_file(path)
        default_rows = list(seen_wnids)
    else:
        raise GozError(f"{path}: classifier weights must be a .pt/.pth state dict or a .npy/.npz array")
    if weights.ndim != 2 or not np.isfinite(weights).all():
        raise GozError(f"{path}: classifier weights must be a finite 2-D array, got shape {weights.shape}")
    rows = list(row_wnids if row_wnids is not None else stored_wnids if stored_wnids is not None else default_rows)
    if len(rows) != len(weights):
        raise GozError(f"{path}: {len(weights)} classifier rows but {len(rows)} row wnids")
    position = {wnid: row for row, wnid in enumerate(rows)}
    missing = [wnid for wnid in seen_wnids if wnid not in position]
    if missing:
        raise GozError(f"{path}: no classifier row for {len(missing)} seen classes: {', '.join(missing[:10])}")
    return weights[[position[wnid] for wnid in seen_wnids]].astype(np.float32)


def _read_checkpoint_fc(path: Path) -> np.ndarray:
    import torch  # only checkpoints need torch; keeps this module cheap to import

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # weights_only refuses pickled code with an UnpicklingError; any failure is bad input
        raise GozError(f"{path}: not a plain tensor state dict, refused ({type(error).__name__}: "
                       f"{str(error).splitlines()[0] if str(error) else ''})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise GozError(f"{path}: expected a state dict, found {type(state).__name__}")
    layer = _final_layer(state)
    if layer is None:
        raise GozError(f"{path}: the state dict has no final classification layer "
                       f"(fc., classifier., head., heads.head., _fc. ... weight and bias)")
    weight, bias = state[layer + "weight"], state[layer + "bias"]
    if weight.ndim != 2 or bias.shape != (weight.shape[0],):
        raise GozError(f"{path}: {layer}weight {tuple(weight.shape)} and {layer}bias {tuple(bias.shape)} do not match")
    return torch.cat([weight, bias[:, None]], dim=1).float().numpy()


# The final layer of torchvision (fc, classifier.N, heads.head, head), timm (classifier, head, head.fc)
# and efficientnet-pytorch (_fc) models, optionally wrapped (module., model.).
_FINAL_LAYER = re.compile(r"^(?:module\.|model\.)*(?:fc|_fc|last_linear|classifier(?:\.\d+)?|head(?:\.fc)?"
                          r"|heads\.head|head\.\d+)\.$")


def _final_layer(state: dict) -> str | None:
    """The prefix (`fc.`, `classifier.1.`, ...) of the last final-layer-named weight and bias pair;
    the 1000-way one when several qualify (an ImageNet classifier beside others)."""
    import torch

    found = [key[: -len("weight")] for key, value in state.items()
             if key.endswith(".weight") and _FINAL_LAYER.match(key[: -len("weight")])
             and isinstance(value, torch.Tensor) and value.ndim == 2
             and isinstance(state.get(key[: -len("weight")] + "bias"), torch.Tensor)]
    imagenet = [prefix for prefix in found if state[prefix + "weight"].shape[0] == 1000]
    return (imagenet or found or [None])[-1]


def _read_array_file(path: Path) -> tuple[np.ndarray, list[str] | None]:
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False), None
        with np.load(path, allow_pickle=False) as arrays:
            wnids = [str(w) for w in arrays["wnids"]] if "wnids" in arrays else None
            if "weights" in arrays:
                return arrays["weights"], wnids
            if "weight" in arrays and "bias" in arrays:
                weight, bias = arrays["weight"], arrays["bias"]
                if weight.ndim != 2 or bias.shape != (weight.shape[0],):
                    raise GozError(f"{path}: weight {weight.shape} and bias {bias.shape} do not match")
                return np.concatenate([weight, bias[:, None]], axis=1), wnids
            raise GozError(f"{path}: expected arrays 'weights', or 'weight' and 'bias'; found {', '.join(arrays.files)}")
    except (OSError, ValueError, EOFError) as error:
        raise GozError(f"{path}: not a readable numpy array file without pickled objects ({error})") from None
