import h5py
import numpy as np
import pytest

from goz.cli import main
from goz.errors import StoreError
from goz.store import FeatureStore, write_store


def _classes(rng, n_classes=3, n=5, dim=8):
    return {f"n{i:08d}": (rng.random((n + i, dim), dtype=np.float32), np.arange(n + i) * 10 + i)
            for i in range(1, n_classes + 1)}


def test_round_trip_readable_by_plain_h5py(tmp_path):
    rng = np.random.default_rng(0)
    classes = _classes(rng)
    path = write_store(tmp_path / "s.h5", classes, attrs={"model": "resnet50"})
    with h5py.File(path, "r") as h5:  # the original notebooks' access pattern
        for wnid, (x, ids) in classes.items():
            assert h5["images"][wnid].dtype == np.float32 and h5["idx"][wnid].dtype == np.int64
            np.testing.assert_array_equal(h5["images"][wnid][()], x)
            np.testing.assert_array_equal(h5["idx"][wnid][()], ids)
    with FeatureStore(path) as store:
        assert store.classes == sorted(classes) and store.dim == 8
        assert store.attrs["model"] == "resnet50"
        order = ["n00000003", "n00000001"]
        x, y = store.load(order, per_class=4)
        np.testing.assert_array_equal(x[:4], classes[order[0]][0][:4])
        np.testing.assert_array_equal(y, [0] * 4 + [1] * 4)
        means = store.class_means(order)
        np.testing.assert_allclose(means[1], classes[order[1]][0].mean(0), rtol=1e-6)
        batches = list(store.iter_batches(order, batch_size=3))
        np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), store.load(order)[0])
        assert store.info()["samples"] == sum(len(v[1]) for v in classes.values())


def test_reads_file_written_by_plain_h5py(tmp_path):
    path = tmp_path / "orig.h5"
    with h5py.File(path, "w") as h5:
        h5.create_group("images").create_dataset("n00141669", data=np.ones((2, 4), np.float32))
        h5.create_group("idx").create_dataset("n00141669", data=np.array([7, 9]))
    with FeatureStore(path) as store:
        np.testing.assert_array_equal(store.ids("n00141669"), [7, 9])


def _corrupt(tmp_path, mutate):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as h5:
        images, idx = h5.create_group("images"), h5.create_group("idx")
        images.create_dataset("n00000001", data=np.ones((3, 4), np.float32))
        idx.create_dataset("n00000001", data=np.arange(3))
        mutate(h5, images, idx)
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda h5, i, x: (i.__delitem__("n00000001"), i.create_dataset("n00000001", data=np.ones((3, 4), np.int32))),
     "floating point"),
    (lambda h5, i, x: (i.__delitem__("n00000001"), i.create_dataset("n00000001", data=np.ones(3, np.float32))),
     "2-d"),
    (lambda h5, i, x: (x.__delitem__("n00000001"), x.create_dataset("n00000001", data=np.arange(2))),
     "3 feature rows but 2 ids"),
    (lambda h5, i, x: (i.create_dataset("n00000002", data=np.ones((1, 5), np.float32)),
                       x.create_dataset("n00000002", data=[1])), "dimension 5"),
    (lambda h5, i, x: i["n00000001"].__setitem__((0, 0), np.nan), "1 NaN"),
    (lambda h5, i, x: x["n00000001"].__setitem__(1, 0), "duplicate image ids"),
    (lambda h5, i, x: i.create_dataset("n00000002", data=np.ones((1, 4), np.float32)), "no 'idx'"),
])
def test_bad_stores_name_file_and_class(tmp_path, mutate, message):
    path = _corrupt(tmp_path, mutate)
    with pytest.raises(StoreError, match=message) as error:
        FeatureStore(path).validate()
    assert str(path) in str(error.value)


def test_missing_file_group_and_not_hdf5(tmp_path):
    with pytest.raises(StoreError, match="no such feature store"):
        FeatureStore(tmp_path / "nope.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(StoreError, match="not a readable HDF5"):
        FeatureStore(tmp_path / "text.h5")
    with h5py.File(tmp_path / "nogroup.h5", "w") as h5:
        h5.create_group("images")
    with pytest.raises(StoreError, match="missing group 'idx'"):
        FeatureStore(tmp_path / "nogroup.h5")
    path = write_store(tmp_path / "ok.h5", _classes(np.random.default_rng(1)))
    with FeatureStore(path) as store, pytest.raises(StoreError, match="n09999999"):
        store.load(["n09999999"])


def test_store_info_cli(tmp_path, capsys):
    path = write_store(tmp_path / "s.h5", _classes(np.random.default_rng(2)))
    assert main(["store", "info", str(path), "--check"]) == 0
    out = capsys.readouterr().out
    assert "classes    3" in out and "dimension  8" in out
    bad = _corrupt(tmp_path, lambda h5, i, x: i["n00000001"].__setitem__((0, 0), np.inf))
    assert main(["store", "info", str(bad), "--check"]) == 2
    assert "1 NaN or infinite" in capsys.readouterr().err


def test_row_limits_are_checked(tmp_path):
    path = write_store(tmp_path / "s.h5", _classes(np.random.default_rng(0)))
    with FeatureStore(path) as store:
        assert store.features("n00000001", limit=0).shape == (0, 8)
        for bad in (-1, 1.5):
            with pytest.raises(StoreError, match="row limit"):
                store.features("n00000001", limit=bad)
        for bad in (0, -2):
            with pytest.raises(StoreError, match="per_class"):
                store.load(per_class=bad)
            with pytest.raises(StoreError, match="per_class"):
                store.class_means(per_class=bad)
