import h5py
import numpy as np
import pytest

from goz import semantics, splits
from goz.errors import GozError
from goz.store import FeatureStore
from goz.synthetic import make_benchmark
from goz.wordnet.edges import load_edges as load_hierarchy

SMALL = {"n_seen": 12, "n_unseen": 6, "train_per_class": 4, "test_per_class": 3, "seen_test_per_class": 2,
         "dim": 64, "semantic_dim": 300}


def _arrays(path):
    with h5py.File(path, "r") as h5:
        return {f"{group}/{name}": h5[group][name][()] for group in ("images", "idx") for name in h5[group]}


def test_deterministic_for_a_seed(tmp_path):
    a = make_benchmark(tmp_path / "a", seed=3, **SMALL)
    b = make_benchmark(tmp_path / "b", seed=3, **SMALL)
    c = make_benchmark(tmp_path / "c", seed=4, **SMALL)
    for store in ("train", "test"):
        left, right = _arrays(getattr(a, store)), _arrays(getattr(b, store))
        assert left.keys() == right.keys()
        for key in left:
            np.testing.assert_array_equal(left[key], right[key])
    np.testing.assert_array_equal(semantics.load(a.semantics).vectors, semantics.load(b.semantics).vectors)
    for name in ("seen", "unseen", "hierarchy"):
        assert getattr(a, name).read_text() == getattr(b, name).read_text()
    assert not np.array_equal(semantics.load(a.semantics).vectors, semantics.load(c.semantics).vectors)


def test_goz_layout_and_properties(tmp_path):
    bench = make_benchmark(tmp_path, seed=0, **SMALL)
    seen, unseen = splits.load(bench.seen), splits.load(bench.unseen)
    assert len(seen) == 12 and len(unseen) == 6 and not set(seen) & set(unseen)
    with FeatureStore(bench.train) as train, FeatureStore(bench.test) as test:
        train.validate()
        test.validate()
        assert train.classes == sorted(seen) and test.classes == sorted(seen + unseen)
        assert train.dim == test.dim == 64
        assert set(train.counts().values()) == {4}
        assert all(test.count(w) == 3 for w in unseen) and all(test.count(w) == 2 for w in seen)
        assert train.attrs["data"] == test.attrs["data"] == "synthetic"
        assert "SYNTHETIC" in train.attrs["description"]
        x, _ = train.load()
        assert x.dtype == np.float32 and x.min() >= 0 and 0.3 < (x == 0).mean() < 0.95
    with h5py.File(bench.train, "r") as h5:  # the original notebooks' access pattern
        assert h5["images"][seen[0]].dtype == np.float32 and h5["idx"][seen[0]].dtype == np.int64
    table = semantics.load(bench.semantics)
    assert table.dim == 300 and all(w in table for w in seen + unseen)
    assert table.attrs["data"] == "synthetic"
    tree = load_hierarchy(bench.hierarchy)
    classes = seen + unseen
    assert all(w in table for w in tree.synsets)  # graph models get a vector for every node
    for wnid in classes:
        assert not tree.children(wnid)                       # classes are leaves ...
        assert not tree.ancestors(wnid) & set(classes)        # ... so none is another's ancestor
    assert len(tree.roots) == 1
    weights = np.load(bench.classifier_weights)["weights"]
    assert weights.shape == (12, 65) and weights.dtype == np.float32
    graph = tree.induced_graph(classes)
    assert graph.wnids[:len(classes)] == classes and len(graph) > len(classes)


def test_clip_like_pair_shares_one_space_and_is_labelled_synthetic(tmp_path):
    bench = make_benchmark(tmp_path, seed=0, **SMALL, clip_dim=16)
    seen, unseen = splits.load(bench.seen), splits.load(bench.unseen)
    table = semantics.load(bench.clip_semantics)
    assert table.dim == 16 and sorted(table.wnids) == sorted(seen + unseen)
    assert table.attrs["encoder"] == "clip:synthetic" and table.attrs["data"] == "synthetic"
    with FeatureStore(bench.clip_train) as train, FeatureStore(bench.clip_test) as test:
        assert train.classes == sorted(seen) and test.classes == sorted(seen + unseen)
        assert train.dim == test.dim == 16 and set(train.counts().values()) == {4}
        for store in (train, test):
            assert store.attrs["backbone"] == "clip:synthetic" and store.attrs["data"] == "synthetic"
            assert "SYNTHETIC" in store.attrs["description"] and "CLIP-like" in store.attrs["description"]
        # One space: each class's mean image embedding is nearest (cosine) to its own class embedding, mostly.
        means = test.class_means(unseen + seen)
    vectors = np.stack([table.vector(w) for w in unseen + seen])
    similarity = (means / np.linalg.norm(means, axis=1, keepdims=True)) @ (
        vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).T
    assert (similarity.argmax(1) == np.arange(len(vectors))).mean() > 3 / len(vectors)
    # Deterministic like the rest.
    again = make_benchmark(tmp_path / "again", seed=0, **SMALL, clip_dim=16)
    left, right = _arrays(bench.clip_test), _arrays(again.clip_test)
    assert all(np.array_equal(left[key], right[key]) for key in left)


def test_reuses_a_finished_benchmark_and_regenerates_another_config(tmp_path):
    bench = make_benchmark(tmp_path, seed=0, **SMALL)
    stamp = bench.train.stat().st_mtime_ns
    assert make_benchmark(tmp_path, seed=0, **SMALL) == bench
    assert bench.train.stat().st_mtime_ns == stamp
    changed = make_benchmark(tmp_path, seed=1, **SMALL)
    assert changed.config.seed == 1 and changed.train.stat().st_mtime_ns != stamp


def test_rejects_bad_sizes(tmp_path):
    with pytest.raises(GozError, match="positive"):
        make_benchmark(tmp_path, n_unseen=0)


def test_hierarchy_file_errors_name_the_line(tmp_path):
    path = tmp_path / "edges.tsv"
    path.write_text("n90000001\tn90000000\nn90000002 n90000000 extra\n")
    with pytest.raises(GozError, match=r"edges.tsv:2"):
        load_hierarchy(path)
    path.write_text("n90000001\tbanana\n")
    with pytest.raises(GozError, match=r"edges.tsv:1"):
        load_hierarchy(path)
    with pytest.raises(GozError, match="no such hierarchy"):
        load_hierarchy(tmp_path / "missing.tsv")


def test_every_file_of_the_synthetic_benchmark_says_synthetic(tmp_path):
    import json

    from goz.provenance import SYNTHETIC_LABEL
    bench = make_benchmark(tmp_path, n_seen=6, n_unseen=3, train_per_class=2, test_per_class=2, seen_test_per_class=1,
                           dim=8, semantic_dim=4)
    for text in (bench.seen, bench.unseen, bench.hierarchy):
        assert text.read_text().startswith(f"# {SYNTHETIC_LABEL}\n")
    assert str(np.load(bench.classifier_weights)["data"]) == SYNTHETIC_LABEL
    assert json.loads((tmp_path / "benchmark.json").read_text())["data"] == "synthetic"
