"""`goz fetch published`: the original benchmark's pandas pickles, checked, read safely, converted."""

import dataclasses
import hashlib
import pickle
import sys

import numpy as np
import pytest
from local_http import LocalServer
from published_pickles import (
    current_pandas_pickle,
    malicious_pickles,
    old_pandas_pickle,
)

from goz import assets, catalog, cli
from goz import semantics as semantics_io
from goz.assets import http as asset_http
from goz.assets import published
from goz.errors import FetchError, GozError
from goz.models import classifier_table

WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361"]


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(asset_http, "BACKOFF_SECONDS", 0.0)


def tables() -> dict[str, tuple[np.ndarray, bytes]]:
    """The four published tables: values, and their pickles (old pandas for two, current for two)."""
    rng = np.random.default_rng(0)
    values = {"glove": rng.normal(size=(4, 6)), "gcn_6": rng.normal(size=(4, 9)),
              "gcn_2": rng.normal(size=(4, 9)), "adgpm": rng.normal(size=(4, 9))}
    values["glove"][2] = 0.0  # GOZ's code gives a class whose lemmas are all missing a zero vector
    return {"glove": (values["glove"], old_pandas_pickle(WNIDS, values["glove"])),
            "gcn_6": (values["gcn_6"], old_pandas_pickle(WNIDS, values["gcn_6"], int64_columns=True)),
            "gcn_2": (values["gcn_2"], current_pandas_pickle(WNIDS, values["gcn_2"], protocol=2)),
            "adgpm": (values["adgpm"], current_pandas_pickle(WNIDS, values["adgpm"]))}


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture
def published_files(monkeypatch):
    """The published tables with these test pickles' blob ids; returns {name: (values, bytes)}."""
    made = tables()
    monkeypatch.setattr(catalog, "PUBLISHED_TABLES", {
        name: dataclasses.replace(table, git_blob_id=blob_id(made[name][1]))
        for name, table in catalog.PUBLISHED_TABLES.items()})
    return made


def check_converted(home, made) -> None:
    glove = semantics_io.load(home / "published" / "glove.h5")
    assert glove.wnids == WNIDS and glove.attrs["zero_vectors"] == 1 and glove.attrs["data"] == "published"
    np.testing.assert_allclose(glove.vectors, made["glove"][0], rtol=1e-6)
    for name in ("gcn_6", "gcn_2", "adgpm"):
        table = classifier_table.load(home / "published" / f"{name}.h5")
        assert table.wnids == WNIDS and table.attrs["git_blob_id"] == catalog.PUBLISHED_TABLES[name].git_blob_id
        np.testing.assert_allclose(table.weights, made[name][0][:, :-1], rtol=1e-6)
        np.testing.assert_allclose(table.bias, made[name][0][:, -1], rtol=1e-6)


def test_git_blob_id_is_gits(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "hello").write_bytes(b"hello\n")
    assert published.git_blob_id(tmp_path / "empty") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert published.git_blob_id(tmp_path / "hello") == "ce013625030ba8dba906f756967f9e9ca394464a"


@pytest.mark.parametrize("variant", ["old pandas, numpy.core", "old pandas, Int64Index columns",
                                     "old pandas, numpy._core and managers", "current pandas, protocol 2",
                                     "current pandas, protocol 4", "current pandas, protocol 5"])
def test_tables_of_old_and_current_pandas_are_read(tmp_path, variant):
    values = np.arange(12.0).reshape(3, 4)
    wnids = WNIDS[:3]
    data = {"old pandas, numpy.core": lambda: old_pandas_pickle(wnids, values),
            "old pandas, Int64Index columns": lambda: old_pandas_pickle(wnids, values, int64_columns=True),
            "old pandas, numpy._core and managers": lambda: old_pandas_pickle(
                wnids, values, numpy_core="numpy._core.multiarray", manager="pandas.core.internals.managers"),
            "current pandas, protocol 2": lambda: current_pandas_pickle(wnids, values, 2),
            "current pandas, protocol 4": lambda: current_pandas_pickle(wnids, values, 4),
            "current pandas, protocol 5": lambda: current_pandas_pickle(wnids, values, 5)}[variant]()
    (tmp_path / "table").write_bytes(data)
    frame = published.read_published_table(tmp_path / "table")
    assert list(frame.index) == wnids and frame.shape == (3, 4)
    np.testing.assert_array_equal(frame.to_numpy(), values)


def test_malicious_pickles_are_refused_without_running(tmp_path):
    marker = tmp_path / "ran"
    for name, data in malicious_pickles(marker).items():
        path = tmp_path / name.replace(" ", "_")
        path.write_bytes(data)
        with pytest.raises(GozError, match=r"refusing to load a pickle that references \S+ .*nothing was run"):
            published.read_published_table(path)
    assert not marker.exists()


def test_not_a_table_is_a_clear_error(tmp_path):
    (tmp_path / "list").write_bytes(pickle.dumps(["n01440764"]))
    with pytest.raises(GozError, match="expected a pickled pandas DataFrame, found list"):
        published.read_published_table(tmp_path / "list")
    (tmp_path / "cut").write_bytes(old_pandas_pickle(WNIDS, np.ones((4, 3)))[:-40])
    with pytest.raises(GozError, match="not a readable pandas pickle"):
        published.read_published_table(tmp_path / "cut")
    (tmp_path / "words").write_bytes(current_pandas_pickle(["cat", "dog"], np.ones((2, 3))))
    with pytest.raises(GozError, match="not WordNet ids, e.g. 'cat'"):
        published.convert(catalog.PUBLISHED_TABLES["gcn_6"], tmp_path / "words", tmp_path / "out.h5")


def test_fetched_from_the_repository_checked_and_converted(tmp_path, published_files, monkeypatch, capsys):
    server = LocalServer().start()
    try:
        for name, table in catalog.PUBLISHED_TABLES.items():
            server.files[f"/{table.repository_path}"] = published_files[name][1]
        monkeypatch.setattr(catalog, "GOZ_REPOSITORY", server.url)
        home = tmp_path / "home"
        code = cli.main(["fetch", "published", "--home", str(home)])
        out = capsys.readouterr().out
    finally:
        server.stop()
    assert code == 0
    for name in ("glove", "gcn_6", "gcn_2", "adgpm"):
        assert str(home / "published" / f"{name}.h5") in out
        assert (home / "published" / "original" / name).read_bytes() == published_files[name][1]
    check_converted(home, published_files)


def test_wrong_file_is_refused_and_nothing_installed(tmp_path, published_files, capsys):
    clone = tmp_path / "GOZ"
    for name, table in catalog.PUBLISHED_TABLES.items():
        (clone / table.repository_path).parent.mkdir(parents=True, exist_ok=True)
        (clone / table.repository_path).write_bytes(published_files[name][1])
    paths = assets.fetch("published", source=clone, home=tmp_path / "home")  # a clone of the GOZ repository
    assert sorted(p.name for p in paths) == ["adgpm.h5", "gcn_2.h5", "gcn_6.h5", "glove.h5"]
    check_converted(tmp_path / "home", published_files)
    (clone / "data" / "models" / "gcn_6").write_bytes(current_pandas_pickle(WNIDS, np.zeros((4, 9))))
    code = cli.main(["fetch", "published", "--from", str(clone / "data" / "models" / "gcn_6"),
                     "--home", str(tmp_path / "h2")])
    err = capsys.readouterr().err
    assert code == 2 and "git blob id" in err and "not the published file" in err and "Traceback" not in err
    assert not (tmp_path / "h2" / "published").exists() or not list((tmp_path / "h2" / "published").rglob("*.h5"))


def test_a_malicious_file_with_the_right_blob_id_is_still_refused(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    evil = malicious_pickles(marker)["os.system"]
    monkeypatch.setattr(catalog, "PUBLISHED_TABLES", {
        "gcn_6": dataclasses.replace(catalog.PUBLISHED_TABLES["gcn_6"], git_blob_id=blob_id(evil))})
    (tmp_path / "gcn_6").write_bytes(evil)
    with pytest.raises(FetchError, match="refusing to load a pickle that references posix.system"):
        assets.fetch("published", source=tmp_path / "gcn_6", home=tmp_path / "home")
    assert not marker.exists() and not (tmp_path / "home" / "published" / "gcn_6.h5").exists()


def test_without_pandas_the_error_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pandas.compat.pickle_compat", None)  # import fails as if not installed
    code = cli.main(["fetch", "published", "--from", str(tmp_path), "--home", str(tmp_path / "home")])
    err = capsys.readouterr().err
    assert code == 2 and "needs pandas: pip install 'goz[published]'" in err
    assert not (tmp_path / "home").exists()
