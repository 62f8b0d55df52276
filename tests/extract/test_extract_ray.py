"""The Ray Data engine (local Ray on CPU) writes the same store as the local engine."""

from __future__ import annotations


import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import checkout
import ray

from extract_helpers import make_tree, synset_tars, tiny_backbone
from goz.extract import extract
from goz.store import FeatureStore


@pytest.fixture(scope="module")
def local_ray():
    tests = checkout.TESTS
    # Ray's workers import the test's tiny model and this checkout's goz.
    path = f"{tests.parent / 'src'}:{tests}"
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,  # never a cluster of another run
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()


def test_ray_engine_equals_local_engine(tmp_path, local_ray):
    images = make_tree(tmp_path / "images", {"n00000001": 3, "n00000002": 2, "n00000003": 4})
    (images / "n00000002" / "n00000002_7.jpg").write_bytes(b"<html>gone</html>")
    local = extract(images, tmp_path / "local.h5", backbone=tiny_backbone(), batch_size=2, progress=False)
    distributed = extract(images, tmp_path / "ray.h5", backbone=tiny_backbone(), engine="ray",
                          batch_size=2, progress=False)
    assert distributed.skipped == local.skipped and len(local.skipped) == 1
    with FeatureStore(tmp_path / "local.h5") as expected, FeatureStore(tmp_path / "ray.h5") as actual:
        assert actual.classes == expected.classes == ["n00000001", "n00000002", "n00000003"]
        for wnid in expected.classes:
            np.testing.assert_array_equal(actual.ids(wnid), expected.ids(wnid))
            np.testing.assert_array_equal(actual.features(wnid), expected.features(wnid))  # the same batches
        assert actual.attrs == expected.attrs

    # Split by tar: one Ray task per <wnid>.tar, the same store again.
    tars = synset_tars(images, tmp_path / "tars")
    from_tars = extract(tars, tmp_path / "tars.h5", backbone=tiny_backbone(), engine="ray", batch_size=2,
                        progress=False)
    assert from_tars.source == "synset-tars" and [s[1] for s in from_tars.skipped] == ["n00000002.tar/n00000002_7.jpg"]
    with FeatureStore(tmp_path / "local.h5") as expected, FeatureStore(tmp_path / "tars.h5") as actual:
        for wnid in expected.classes:
            np.testing.assert_array_equal(actual.features(wnid), expected.features(wnid))

    # Split by Parquet file: images read by row group and row in the Ray tasks, the same store again.
    files = sorted(images.glob("n*/*.jpg"))
    files = files[1::2] + files[::2]
    (tmp_path / "hf").mkdir()
    for number, part in enumerate((files[:5], files[5:])):
        table = pa.table({"image": pa.array([{"bytes": f.read_bytes(), "path": f.name} for f in part]),
                          "label": pa.array([int(f.parent.name[-1]) - 1 for f in part], pa.int64())})
        pq.write_table(table, tmp_path / "hf" / f"train-{number}.parquet", row_group_size=2)
    labels = tmp_path / "labels.txt"
    labels.write_text("n00000001\nn00000002\nn00000003\n")
    from_parquet = extract(tmp_path / "hf", tmp_path / "hf.h5", backbone=tiny_backbone(), engine="ray", batch_size=2,
                           label_map=labels, progress=False)
    assert from_parquet.source == "parquet" and len(from_parquet.skipped) == 1
    with FeatureStore(tmp_path / "local.h5") as expected, FeatureStore(tmp_path / "hf.h5") as actual:
        for wnid in expected.classes:
            np.testing.assert_array_equal(actual.ids(wnid), expected.ids(wnid))
            np.testing.assert_array_equal(actual.features(wnid), expected.features(wnid))
