"""The published ImageNet graph of the graph baselines (DGP's make_induced_graph.py rule), built from
the lists shipped with goz on the packaged WordNet 3.0."""

import json

import numpy as np
import pytest

import goz.wordnet
from goz import splits
from goz import catalog
from goz.catalog import (
    IMAGENET_SPLIT,
    IMAGENET_TESTSETS,
    IMAGENET_XML_WNIDS,
    PackagedFile,
    imagenet_xml_wnids,
    packaged_path,
)
from goz.errors import GozError
from goz.wordnet import Hierarchy, Synset
from goz.wordnet import imagenet_graph as module
from goz.wordnet.imagenet_graph import (
    PUBLISHED_EDGES,
    PUBLISHED_NODES,
    imagenet_graph,
)


def test_the_published_graph_on_the_packaged_wordnet():
    graph = imagenet_graph()
    assert (len(graph), graph.parent_edges.nnz) == (PUBLISHED_NODES, PUBLISHED_EDGES) == (32_324, 32_544)
    testsets = json.loads(packaged_path(IMAGENET_TESTSETS).read_text())
    xml = imagenet_xml_wnids()
    assert len(xml) == len(set(xml)) == 32_295 and set(xml) <= set(graph.wnids)
    # DGP's node order: the 1000 seen classes, the 20,842 `all` classes as imagenet-split.json lists them
    # (make_induced_graph.py reads that file, not the test-sets file), then the rest of the XML.
    dgp_split = json.loads(packaged_path(IMAGENET_SPLIT).read_text())
    assert graph.wnids[:1000] == testsets["train"] == dgp_split["train"]
    assert graph.wnids[1000:21_842] == dgp_split["test"] and set(dgp_split["test"]) == set(testsets["all"])
    assert sum(a != b for a, b in zip(dgp_split["test"], testsets["all"])) > 20_000  # the order really differs
    keys = set(graph.wnids[:21_842])
    assert graph.wnids[21_842:] == [w for w in xml if w not in keys]
    # Hypernym edges only, never instance hypernyms; every hypernym link between two nodes is an edge.
    wordnet = goz.wordnet.load()
    edges = graph.parent_edges.tocoo()
    pairs = {(graph.wnids[c], graph.wnids[p]) for c, p in zip(edges.row, edges.col)}
    expected = {(w, h) for w in graph.wnids for h in wordnet.synsets[w].hypernyms if h in graph.index}
    assert pairs == expected
    assert not any(p in wordnet.synsets[c].instance_hypernyms for c, p in pairs)
    assert imagenet_graph() is graph  # cached


def test_classes_already_in_the_graph_change_nothing_and_others_are_added_with_their_hypernyms():
    published = imagenet_graph()
    assert imagenet_graph(published.wnids[-5:]) is published
    wordnet = goz.wordnet.load()
    xml = set(imagenet_xml_wnids())
    outside = next(w for w in wordnet.synsets if w not in published.index and wordnet.synsets[w].hypernyms
                   and all(h not in published.index for h in wordnet.synsets[w].hypernyms))
    grown = imagenet_graph([outside])
    assert grown.wnids[:len(published.wnids[:21_842])] == published.wnids[:21_842]
    assert grown.wnids[21_842] == outside and set(published.wnids) < set(grown.wnids)
    added = set(grown.wnids) - set(published.wnids)
    # Walked up to (and not past) the first ImageNet synset on each path.
    for wnid in added - {outside}:
        assert wnid not in xml and wordnet.is_ancestor(wnid, outside)
    with pytest.raises(GozError, match="not synsets of the hierarchy.*--graph split"):
        imagenet_graph(["n99999999"])


def test_the_rule_on_a_hand_built_hierarchy(monkeypatch):
    """Keys walk up hypernyms breadth first, stopping at XML synsets; instance hypernyms are not followed."""
    #   n1 root (xml) <- n2 (xml) <- n3 (key) ; n3 -> n4 (not xml) -> n1 ; n5 key, instance of n6 ; n7 xml only
    synsets = [Synset("n00000001"), Synset("n00000002", hypernyms=("n00000001",)),
               Synset("n00000004", hypernyms=("n00000001",)), Synset("n00000006"),
               Synset("n00000003", hypernyms=("n00000002", "n00000004")),
               Synset("n00000005", instance_hypernyms=("n00000006",)), Synset("n00000007", hypernyms=("n00000001",)),
               Synset("n00000008", hypernyms=("n00000002",))]
    hierarchy = Hierarchy(synsets)
    monkeypatch.setattr(module, "imagenet_xml_wnids", lambda: ("n00000007", "n00000002", "n00000001"))
    monkeypatch.setattr(module, "_key_classes", lambda: ["n00000003", "n00000005"])
    graph = imagenet_graph(hierarchy=hierarchy)
    assert graph.wnids == ["n00000003", "n00000005", "n00000002", "n00000004", "n00000001", "n00000007"]
    edges = graph.parent_edges.tocoo()
    assert sorted((graph.wnids[c], graph.wnids[p]) for c, p in zip(edges.row, edges.col)) == [
        ("n00000002", "n00000001"), ("n00000003", "n00000002"), ("n00000003", "n00000004"),
        ("n00000004", "n00000001"), ("n00000007", "n00000001")]
    assert imagenet_graph(["n00000008"], hierarchy=hierarchy).wnids[2] == "n00000008"


def test_packaged_files_are_checked_by_sha256(tmp_path, monkeypatch):
    assert packaged_path(IMAGENET_XML_WNIDS).name == "imagenet-xml-wnids.json"
    wrong = PackagedFile(IMAGENET_XML_WNIDS.relative_path, "0" * 64, IMAGENET_XML_WNIDS.origin)
    with pytest.raises(GozError, match="sha256 differs from the published file"):
        packaged_path(wrong)
    with pytest.raises(GozError, match="missing from the goz installation"):
        packaged_path(PackagedFile("imagenet/nothing.json", "0" * 64, "nowhere"))
    assert catalog.packaged_path.cache_info().currsize >= 1


def test_imagenet_test_sets_and_graph_nodes_are_built_in_splits_read_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("GOZ_HOME", str(tmp_path / "empty-home"))  # nothing fetched, nothing to fetch
    assert [len(splits.load(name)) for name in ("2-hops", "3-hops", "all")] == [1549, 7860, 20_842]
    nodes = splits.load("imagenet-graph")
    assert nodes == imagenet_graph().wnids and len(nodes) == 32_324
    assert not (tmp_path / "empty-home").exists()
    assert np.all([splits.BUILTIN[name].asset is not None for name in ("2-hops", "3-hops", "all")])
