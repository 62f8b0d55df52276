"""The Ray Data engine (local Ray on CPU) writes the same store as the local engine."""

from __future__ import annotations


import numpy as np
import pytest

import checkout
import ray

from extract_helpers import make_tree, tiny_backbone
from goz.extract import extract
from goz.store import FeatureStore


@pytest.fixture(scope="module")
def local_ray():
    tests = checkout.TESTS
    # Ray's workers import the test's tiny model and this checkout's goz.
    path = f"{tests.parent / 'src'}:{tests}"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()


def test_ray_engine_equals_local_engine(tmp_path, local_ray):
    images = make_tree(tmp_path / "images", {"n00000001": 3, "n00000002": 2, "n00000003": 4})
    (images / "n00000002" / "n00000002_7.jpg").write_bytes(b"<html>gone</html>")
    local = extract(images, tmp_path / "local.h5", backbone=tiny_backbone(), progress=False)
    distributed = extract(images, tmp_path / "ray.h5", backbone=tiny_backbone(), engine="ray",
                          batch_size=2, progress=False)
    assert distributed.skipped == local.skipped and len(local.skipped) == 1
    with FeatureStore(tmp_path / "local.h5") as expected, FeatureStore(tmp_path / "ray.h5") as actual:
        assert actual.classes == expected.classes == ["n00000001", "n00000002", "n00000003"]
        for wnid in expected.classes:
            np.testing.assert_array_equal(actual.ids(wnid), expected.ids(wnid))
            np.testing.assert_allclose(actual.features(wnid), expected.features(wnid), rtol=1e-5, atol=1e-6)
        assert actual.attrs == expected.attrs
