import numpy as np

from goz.wordnet import Hierarchy

#        a
#      /   \
#     b     c
#    / \     \
#   d   e     f
#        \   /
#          g      (two parents: a DAG like WordNet)
EDGES = [("b", "a"), ("c", "a"), ("d", "b"), ("e", "b"), ("f", "c"), ("g", "e"), ("g", "f")]


def test_graph_queries_on_a_small_dag():
    h = Hierarchy.from_edges(EDGES)
    assert h.roots == ["a"]
    assert h.ancestors("g") == {"e", "f", "b", "c", "a"}
    assert h.descendants("b") == {"d", "e", "g"}
    assert sorted(h.children("b")) == ["d", "e"]
    assert h.depth("g") == 3 and h.depth("a") == 0
    assert h.hop_distance("d", "f") == 4 and h.hop_distance("d", "g") == 3
    assert h.lowest_common_ancestor("d", "g") == "b"
    assert h.lowest_common_ancestor("d", "f") == "a"
    assert h.hop_distances(["d"], max_hops=1) == {"d": 0, "b": 1}


def test_induced_graph_keeps_order_and_parent_edges():
    h = Hierarchy.from_edges(EDGES)
    graph = h.induced_graph(["g", "d"])
    assert graph.wnids[:2] == ["g", "d"] and set(graph.wnids) == {"g", "d", "e", "f", "b", "c", "a"}
    edges = {(graph.wnids[i], graph.wnids[j]) for i, j in zip(*graph.parent_edges.nonzero())}
    assert edges == {e for e in EDGES}
    adjacency = graph.undirected_adjacency().toarray()
    np.testing.assert_array_equal(adjacency, adjacency.T)
    assert adjacency.diagonal().sum() == 0
