import hashlib
import threading
import time

import h5py
import numpy as np
import psutil
import pytest

from goz import store as store_module
from goz.cli import main
from goz.errors import StoreError
from goz.store import FeatureStore, combine_digests, write_store


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


def _whole_read_digest(wnid, features, ids):
    """The class digest as goz computed it before hashing in blocks: one read of each dataset."""
    digest = hashlib.sha256(f"{wnid}:{features.shape}".encode())
    digest.update(np.ascontiguousarray(features, dtype="<f4").tobytes())
    digest.update(np.ascontiguousarray(ids, dtype="<i8").tobytes())
    return digest.hexdigest()


def test_fingerprint_hashed_in_blocks_equals_the_whole_read_one(tmp_path, monkeypatch):
    monkeypatch.setenv("GOZ_HOME", str(tmp_path / "home"))
    classes = _classes(np.random.default_rng(3), n=40)
    recorded = write_store(tmp_path / "goz.h5", classes)
    foreign = tmp_path / "foreign.h5"  # no recorded digests; chunked, float64 and int32 as other writers store them
    with h5py.File(foreign, "w") as h5:
        for wnid, (features, ids) in classes.items():
            h5.create_dataset(f"images/{wnid}", data=features.astype(np.float64), chunks=(7, 8))
            h5.create_dataset(f"idx/{wnid}", data=ids.astype(np.int32), chunks=(5,))
    reference = combine_digests({w: _whole_read_digest(w, x, i) for w, (x, i) in classes.items()})
    monkeypatch.setattr(store_module, "BLOCK_BYTES", 100)  # 3 rows of features, 12 ids per block
    with FeatureStore(foreign) as store:
        assert store.content_fingerprint() == reference
    with FeatureStore(recorded) as store:
        assert store.content_fingerprint() == reference


def _peak_rss_growth(action) -> int:
    """Bytes the process's resident memory grew by at its peak while `action()` ran (sampled every 5 ms)."""
    process, peak, done = psutil.Process(), [0], threading.Event()
    start = process.memory_info().rss

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss - start)
            time.sleep(0.005)
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        action()
    finally:
        done.set()
        sampler.join()
    return peak[0]


@pytest.mark.parametrize("layout", ["chunked", "contiguous"])
def test_a_class_declared_larger_than_the_file_is_refused_before_any_read(tmp_path, monkeypatch, layout):
    monkeypatch.setenv("GOZ_HOME", str(tmp_path / "home"))
    path = tmp_path / "huge.h5"
    rows = 2_500_000  # x 1024 float32: 10 GB declared in a file of a few MB
    with h5py.File(path, "w") as h5:
        h5.create_dataset("images/n00000001", data=np.ones((3, 1024), np.float32))
        h5.create_dataset("idx/n00000001", data=np.arange(3))
        chunks = {"chunks": (1024, 1024)} if layout == "chunked" else {}
        huge = h5.create_dataset("images/n00000002", shape=(rows, 1024), dtype=np.float32, **chunks)
        h5.create_dataset("idx/n00000002", data=np.arange(rows))
        if layout == "chunked":
            huge[:2048] = 1.0  # two chunks written, 2,440 never
    assert path.stat().st_size < 50e6
    started = time.monotonic()
    errors = []

    def fingerprint():
        with FeatureStore(path) as store, pytest.raises(StoreError) as error:
            store.content_fingerprint()
        errors.append(str(error.value))
    assert _peak_rss_growth(fingerprint) < 500e6
    assert time.monotonic() - started < 5
    message = errors[0]
    assert str(path) in message and "class n00000002: features: declares (2500000, 1024) float32" in message
    assert ("2 of its 2442 chunks are written" if layout == "chunked" else "the file holds 0 bytes") in message
    assert "re-run goz extract" in message and "\n" not in message
    with FeatureStore(path) as store:  # every reader checks first, not only the fingerprint
        np.testing.assert_array_equal(store.features("n00000001"), np.ones((3, 1024)))
        with pytest.raises(StoreError, match="n00000002: features: declares"):
            store.features("n00000002", limit=1)
        with pytest.raises(StoreError, match="n00000002: features: declares"):
            store.validate()


def test_values_in_other_files_are_refused(tmp_path):
    (tmp_path / "raw.bin").write_bytes(np.ones((3, 4), np.float32).tobytes())
    path = tmp_path / "external.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("images/n00000001", shape=(3, 4), dtype="<f4", external=[(str(tmp_path / "raw.bin"), 0, 48)])
        h5.create_dataset("idx/n00000001", data=np.arange(3))
    with FeatureStore(path) as store, pytest.raises(StoreError, match="values live in other files"):
        store.features("n00000001")
