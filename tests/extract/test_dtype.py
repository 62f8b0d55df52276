"""`goz extract --dtype float16`: half-size stores, recorded, read back as float32, never mixed with float32."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from extract_helpers import make_tree, tiny_backbone
from goz.cli import main
from goz.errors import GozError, StoreError
from goz.extract import extract, verify
from goz.store import FeatureStore, StoreBuilder

COUNTS = {"n00000001": 3, "n00000002": 2}


def test_float16_store_holds_the_float32_features_rounded(tmp_path, monkeypatch, capsys):
    import goz.extract as api

    tree = make_tree(tmp_path / "tree", COUNTS)
    extract(tree, tmp_path / "f32.h5", backbone=tiny_backbone(), progress=False)
    monkeypatch.setattr(api, "load_backbone", lambda *args, **kwargs: tiny_backbone())
    assert main(["extract", str(tree), str(tmp_path / "f16.h5"), "--dtype", "float16", "--quiet"]) == 0
    capsys.readouterr()
    with FeatureStore(tmp_path / "f32.h5") as full, FeatureStore(tmp_path / "f16.h5") as half:
        assert half.attrs["dtype"] == "float16" and full.attrs["dtype"] == "float32"
        for wnid in COUNTS:
            x = half.features(wnid)
            assert x.dtype == np.float32
            np.testing.assert_array_equal(x, full.features(wnid).astype(np.float16).astype(np.float32))
            np.testing.assert_array_equal(half.ids(wnid), full.ids(wnid))
        features, labels = half.load()
        assert features.shape == (5, 8) and labels.tolist() == [0, 0, 0, 1, 1]
    with h5py.File(tmp_path / "f16.h5") as h5, h5py.File(tmp_path / "f32.h5") as reference:
        assert h5["images/n00000001"].dtype == np.float16 and h5["idx/n00000001"].dtype == np.int64
        assert h5["images/n00000001"].id.get_storage_size() * 2 == reference["images/n00000001"].id.get_storage_size()
    # verify recomputes within float16's rounding; a resumed run must keep the store's dtype.
    assert verify(tree, tmp_path / "f16.h5", recompute=2, backbone=tiny_backbone()).ok
    (tree / "n00000003").mkdir()
    (tree / "n00000001" / "n00000001_3.jpg").rename(tree / "n00000003" / "n00000003_3.jpg")
    with pytest.raises(StoreError, match=r"f16\.h5 was extracted with dtype='float16', this run uses 'float32'"):
        extract(tree, tmp_path / "f16.h5", backbone=tiny_backbone(), progress=False)
    with pytest.raises(StoreError, match=r"f32\.h5 was extracted with dtype='float32', this run uses 'float16'"):
        extract(tree, tmp_path / "f32.h5", backbone=tiny_backbone(), dtype="float16", progress=False)
    result = extract(tree, tmp_path / "f16.h5", backbone=tiny_backbone(), dtype="float16", progress=False)
    assert (result.already_done, result.extracted_classes) == (2, 1)
    with h5py.File(tmp_path / "f16.h5") as h5:
        assert {h5[f"images/{w}"].dtype for w in h5["images"]} == {np.dtype(np.float16)}
    with pytest.raises(GozError, match="unknown dtype 'float64'"):
        extract(tree, tmp_path / "f64.h5", backbone=tiny_backbone(), dtype="float64", progress=False)


def test_features_beyond_float16_are_refused(tmp_path):
    tree = make_tree(tmp_path / "tree", {"n00000001": 2})
    backbone = tiny_backbone()
    backbone.model[0].bias.data += 1e6  # features far above float16's 65504
    with pytest.raises(GozError, match=r"class n00000001 has features beyond the range of float16.*--dtype float32"):
        extract(tree, tmp_path / "f.h5", backbone=backbone, dtype="float16", progress=False)
    assert not (tmp_path / "f.h5").exists()
    with pytest.raises(StoreError, match="float32 or float16, not float64"):
        StoreBuilder(tmp_path / "g.h5", dtype=np.float64)
