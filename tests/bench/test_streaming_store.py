"""`FeatureStore.iter_chunks`: the test store read in fixed-size chunks (what `goz bench` scores)."""

import h5py
import numpy as np
import pytest

from goz.errors import StoreError
from goz.store import FeatureStore, write_store

SIZES = {"n00000001": 5, "n00000002": 13, "n00000003": 2, "n00000004": 9}


def _classes(dim=6):
    rng = np.random.default_rng(0)
    return {wnid: (rng.normal(size=(n, dim)).astype(np.float32), np.arange(n, dtype=np.int64) * 7 + i)
            for i, (wnid, n) in enumerate(SIZES.items())}


@pytest.fixture
def store_path(tmp_path):
    return write_store(tmp_path / "test.h5", _classes())


@pytest.mark.parametrize("chunk_rows", [1, 4, 7, 29, 100])
def test_chunks_cut_classes_and_give_every_row_once_in_order(store_path, chunk_rows):
    wnids = ["n00000002", "n00000001", "n00000004", "n00000003"]   # not the store's order
    with FeatureStore(store_path) as store:
        chunks = list(store.iter_chunks(wnids, chunk_rows=chunk_rows))
        features, labels = store.load(wnids)
        ids = np.concatenate([store.ids(w) for w in wnids])
    assert all(len(chunk.features) == chunk_rows for chunk in chunks[:-1]) and 0 < len(chunks[-1].features) <= chunk_rows
    np.testing.assert_array_equal(np.concatenate([c.features for c in chunks]), features)
    np.testing.assert_array_equal(np.concatenate([c.labels for c in chunks]), labels)
    np.testing.assert_array_equal(np.concatenate([c.ids for c in chunks]), ids)


def test_selected_rows_only(store_path):
    rows = {"n00000002": np.array([0, 3, 12]), "n00000004": np.array([8])}
    with FeatureStore(store_path) as store:
        chunks = list(store.iter_chunks(["n00000001", "n00000002", "n00000004"], rows, chunk_rows=3))
        expected = np.concatenate([store.features("n00000001"), store.features("n00000002")[[0, 3, 12]],
                                   store.features("n00000004")[[8]]])
        expected_ids = np.concatenate([store.ids("n00000001"), store.ids("n00000002")[[0, 3, 12]],
                                       store.ids("n00000004")[[8]]])
    np.testing.assert_array_equal(np.concatenate([c.features for c in chunks]), expected)
    np.testing.assert_array_equal(np.concatenate([c.ids for c in chunks]), expected_ids)
    np.testing.assert_array_equal(np.concatenate([c.labels for c in chunks]), [0] * 5 + [1] * 3 + [2])


def test_a_float16_store_gives_float16_chunks_or_the_dtype_asked(tmp_path):
    path = tmp_path / "half.h5"
    classes = _classes()
    with h5py.File(path, "w") as handle:   # the layout `goz extract --dtype float16` writes
        for wnid, (features, ids) in classes.items():
            handle.create_dataset(f"images/{wnid}", data=features.astype(np.float16))
            handle.create_dataset(f"idx/{wnid}", data=ids)
    with FeatureStore(path) as store:
        half = np.concatenate([c.features for c in store.iter_chunks(list(SIZES), chunk_rows=8)])
        single = np.concatenate([c.features for c in store.iter_chunks(list(SIZES), chunk_rows=8, dtype=np.float32)])
    assert half.dtype == np.float16 and single.dtype == np.float32
    expected = np.concatenate([features for features, _ in classes.values()]).astype(np.float16)
    np.testing.assert_array_equal(half, expected)
    np.testing.assert_array_equal(single, expected.astype(np.float32))


@pytest.mark.parametrize("rows, chunk_rows, message", [
    ({"n00000002": np.array([3, 1])}, 4, "n00000002: rows to read must increase"),
    ({"n00000002": np.array([0, 13])}, 4, r"inside \[0, 13\)"),
    ({"n00000002": np.array([0.0])}, 4, "integer indices"),
    (None, 0, "chunk_rows must be a positive integer"),
])
def test_bad_selections_are_store_errors(store_path, rows, chunk_rows, message):
    with FeatureStore(store_path) as store, pytest.raises(StoreError, match=message):
        list(store.iter_chunks(["n00000002"], rows, chunk_rows=chunk_rows))


def test_non_finite_values_name_the_class(tmp_path):
    classes = _classes()
    classes["n00000003"][0][1, 2] = np.nan
    path = write_store(tmp_path / "nan.h5", classes)
    with FeatureStore(path) as store, pytest.raises(StoreError, match="class n00000003: 1 NaN"):
        list(store.iter_chunks(list(SIZES), chunk_rows=4))


def test_classes_of_two_precisions_widen_the_chunk(tmp_path):
    path = tmp_path / "mixed.h5"
    classes = _classes()
    with h5py.File(path, "w") as handle:
        for i, (wnid, (features, ids)) in enumerate(classes.items()):
            handle.create_dataset(f"images/{wnid}", data=features.astype(np.float16 if i % 2 == 0 else np.float32))
            handle.create_dataset(f"idx/{wnid}", data=ids)
    with FeatureStore(path) as store:
        chunks = list(store.iter_chunks(list(SIZES), chunk_rows=50))
        expected = np.concatenate([store.features(w) for w in SIZES])
    assert len(chunks) == 1 and chunks[0].features.dtype == np.float32
    np.testing.assert_array_equal(chunks[0].features, expected)


@pytest.mark.parametrize("damage, message", [
    ("group", "features must be a 2-d dataset"),
    ("one_dimensional", "features must be a 2-d dataset"),
    ("integer_features", "features must be floating point"),
    ("ids_group", "ids must be a 1-d dataset"),
    ("short_ids", "3 feature rows but 2 ids"),
    ("other_dim", "dimension 4 differs from the store's 6"),
    ("unwritten_chunks", "only 0 of its"),
])
def test_a_malformed_class_is_a_clear_error_when_streamed(tmp_path, damage, message):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("images/n00000001", data=np.ones((2, 6), np.float32))
        handle.create_dataset("idx/n00000001", data=np.arange(2))
        wnid = "n00000002"
        features, ids = np.ones((3, 6), np.float32), np.arange(3)
        if damage == "group":
            handle.create_group(f"images/{wnid}")
        elif damage == "one_dimensional":
            handle.create_dataset(f"images/{wnid}", data=np.ones(6, np.float32))
        elif damage == "integer_features":
            handle.create_dataset(f"images/{wnid}", data=np.ones((3, 6), np.int32))
        elif damage == "other_dim":
            handle.create_dataset(f"images/{wnid}", data=np.ones((3, 4), np.float32))
        elif damage == "unwritten_chunks":  # a class declared far larger than what the file holds
            handle.create_dataset(f"images/{wnid}", shape=(100_000, 6), dtype=np.float32, chunks=(1000, 6))
            ids = np.arange(100_000)
        else:
            handle.create_dataset(f"images/{wnid}", data=features)
        if damage == "short_ids":
            ids = ids[:2]
        if damage == "ids_group":
            handle.create_group(f"idx/{wnid}")
        else:
            handle.create_dataset(f"idx/{wnid}", data=ids)
    with FeatureStore(path) as store, pytest.raises(StoreError, match=f"bad.h5: class n00000002.*{message}"):
        list(store.iter_chunks(["n00000001", "n00000002"], chunk_rows=4))
