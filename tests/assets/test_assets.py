import hashlib
import io
import pickle
import socket
import tarfile
import zipfile

import h5py
import httpx
import numpy as np
import pytest
from local_http import LocalServer

from goz import assets as fetch
from goz import cli, splits
from goz.assets import http as asset_http
from goz.errors import FetchError
from goz import catalog
from goz.catalog import Asset
from goz.store import FeatureStore, write_store

TRAIN_ID, TEST_ID = "1_XFAswLqvcH2FkO_aa3CDpiRTcUXM1gm", "1Ru3nd9ZsHF_TzPorLackI83dWfe98u4s"
URL_LINES = b"n00004475_6590\thttp://example.org/a.jpg\nn00005787_13\thttp://example.org/\xe9.jpg\n"


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(asset_http, "BACKOFF_SECONDS", 0.0)


@pytest.fixture
def server():
    server = LocalServer().start()
    yield server
    server.stop()


def store_bytes(tmp_path, name, classes=3, rows=4, values=None) -> bytes:
    rng = np.random.default_rng(len(name))
    data = {f"n{i:08d}": (rng.normal(size=(rows, 8)) if values is None else np.full((rows, 8), values),
                          np.arange(rows) + 100 * i) for i in range(classes)}
    return write_store(tmp_path / "made" / name, data).read_bytes()


def run_cli(capsys, *argv):
    code = cli.main(["fetch", *argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


# -- Google Drive --------------------------------------------------------------------------------------

def serve_drive_with_form(server, files_by_id):
    def download(handler, request):
        file_id = request.query["id"]
        if request.query.get("confirm") == "t" and request.query.get("uuid") == "u-1":
            handler.send_file(files_by_id[file_id], request, "application/octet-stream")
            return
        page = f"""<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>
            <p class="uc-warning-caption">Google Drive can't scan this file for viruses.</p>
            <form id="download-form" action="{server.url}/download" method="get">
            <input type="submit" id="uc-download-link" value="Download anyway"/>
            <input type="hidden" name="id" value="{file_id}"><input type="hidden" name="export" value="download">
            <input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="u-1">
            </form></body></html>"""
        handler.send_body(200, page.encode(), "text/html; charset=utf-8")
    server.routes["/download"] = download


def test_features_through_the_drive_confirmation_form(tmp_path, server, monkeypatch, capsys):
    train, test = store_bytes(tmp_path, "train.h5"), store_bytes(tmp_path, "test.h5", classes=5)
    serve_drive_with_form(server, {TRAIN_ID: train, TEST_ID: test})
    monkeypatch.setenv("GOZ_DRIVE_URL", f"{server.url}/download")
    goz_home = tmp_path / "home"
    code, out, _ = run_cli(capsys, "features", "--home", str(goz_home))
    assert code == 0
    for name, data, classes in (("train_features.h5", train, 3), ("test_features.h5", test, 5)):
        path = goz_home / "features" / name
        assert path.read_bytes() == data and str(path) in out
        with FeatureStore(path) as store:
            assert len(store.classes) == classes
    confirmed = [r for r in server.requests if "confirm" in r.query]
    assert [r.query for r in confirmed] == [{"id": TRAIN_ID, "export": "download", "confirm": "t", "uuid": "u-1"},
                                            {"id": TEST_ID, "export": "download", "confirm": "t", "uuid": "u-1"}]


def test_interrupted_drive_download_resumes_after_the_form(tmp_path, server, monkeypatch):
    train, test = store_bytes(tmp_path, "train.h5"), store_bytes(tmp_path, "test.h5")
    serve_drive_with_form(server, {TRAIN_ID: train, TEST_ID: test})
    monkeypatch.setenv("GOZ_DRIVE_URL", f"{server.url}/download")
    partial = tmp_path / "home" / "features" / "train_features.h5.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(train[:1000])
    fetch.fetch("features", home=tmp_path / "home")
    first_file_request = next(r for r in server.requests if "confirm" in r.query)
    assert first_file_request.headers["range"] == "bytes=1000-"
    assert (tmp_path / "home" / "features" / "train_features.h5").read_bytes() == train


def test_drive_cookie_token_scheme(tmp_path, server, monkeypatch):
    train, test = store_bytes(tmp_path, "train.h5"), store_bytes(tmp_path, "test.h5")

    def uc(handler, request):
        if request.query.get("confirm") == "tok3n" and "download_warning_7=tok3n" in request.headers.get("cookie", ""):
            handler.send_file({TRAIN_ID: train, TEST_ID: test}[request.query["id"]], request, "application/x-hdf5")
        else:
            handler.send_body(200, b"<html><title>Google Drive - Virus scan warning</title></html>",
                              "text/html", {"Set-Cookie": "download_warning_7=tok3n; Path=/"})

    server.routes["/uc"] = uc
    monkeypatch.setattr(fetch, "DRIVE_DOWNLOAD_URL", f"{server.url}/uc")
    monkeypatch.delenv("GOZ_DRIVE_URL", raising=False)
    paths = fetch.fetch("features", home=tmp_path / "home")
    assert [p.read_bytes() for p in paths] == [train, test]


def test_drive_error_page_is_refused(tmp_path, server, monkeypatch, capsys):
    quota = b"""<html><head><title>Google Drive - Quota exceeded</title></head><body>
        <p class="uc-error-caption">Sorry, you can't view or download this file at this time.</p>
        <p class="uc-error-subcaption">Too many users have viewed or downloaded this file recently.</p></body></html>"""
    server.routes["/download"] = lambda handler, request: handler.send_body(200, quota, "text/html")
    monkeypatch.setenv("GOZ_DRIVE_URL", f"{server.url}/download")
    code, _, err = run_cli(capsys, "features", "--home", str(tmp_path / "home"))
    assert code == 2
    assert "Too many users have viewed or downloaded this file recently" in err
    assert "goz fetch features --from PATH" in err
    assert not list((tmp_path / "home" / "features").glob("[!.]*"))  # only the hidden lock files


def test_wrong_hdf5_layout_is_refused_and_removed(tmp_path, server, monkeypatch, capsys):
    wrong = tmp_path / "wrong.h5"
    with h5py.File(wrong, "w") as h5:
        h5.create_dataset("images/n00000001", data=np.zeros((2, 4), np.float32))  # no idx group
    serve_drive_with_form(server, {TRAIN_ID: wrong.read_bytes(), TEST_ID: b""})
    monkeypatch.setenv("GOZ_DRIVE_URL", f"{server.url}/download")
    code, _, err = run_cli(capsys, "features", "--home", str(tmp_path / "home"))
    assert code == 2 and "missing group 'idx'" in err
    assert not list((tmp_path / "home" / "features").glob("train_features.h5*"))


def test_check_values_reads_every_value(tmp_path, server, monkeypatch):
    nan_store = store_bytes(tmp_path, "nan.h5", values=np.nan)
    serve_drive_with_form(server, {TRAIN_ID: nan_store, TEST_ID: nan_store})
    monkeypatch.setenv("GOZ_DRIVE_URL", f"{server.url}/download")
    with pytest.raises(FetchError, match="NaN or infinite"):
        fetch.fetch("features", home=tmp_path / "strict", check_values=True)
    assert not (tmp_path / "strict" / "features" / "train_features.h5").exists()
    assert len(fetch.fetch("features", home=tmp_path / "lenient")) == 2  # structure alone is fine


def test_features_from_a_local_directory(tmp_path, capsys):
    source = tmp_path / "copies"
    source.mkdir()
    train = store_bytes(tmp_path, "train.h5")
    (source / "train.h5").write_bytes(train)  # the original benchmark's name
    code, out, _ = run_cli(capsys, "features", "--from", str(source), "--home", str(tmp_path / "home"))
    assert code == 0 and (tmp_path / "home" / "features" / "train_features.h5").read_bytes() == train
    (source / "test_features.h5").write_bytes(b"not hdf5")
    code, _, err = run_cli(capsys, "features", "--from", str(source / "test_features.h5"),
                           "--home", str(tmp_path / "home"))
    assert code == 2 and "not a readable HDF5 file" in err
    assert not (tmp_path / "home" / "features" / "test_features.h5").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "features", "--from", str(empty), "--home", str(tmp_path / "h2"))
    assert code == 2 and "looked for train_features.h5 or train.h5 or test_features.h5 or test.h5" in err


# -- splits --------------------------------------------------------------------------------------------

@pytest.fixture
def local_splits(server, monkeypatch):
    contents = {"goz_v1": pickle.dumps([f"n{i:08d}" for i in range(5)]),
                "train": pickle.dumps([f"n{i:08d}" for i in range(10, 13)])}
    published = {}
    for (remote_name, data), (name, relative) in zip(
            contents.items(), [("goz_v1", "splits/goz_v1.pickle"), ("ilsvrc2012", "splits/ilsvrc2012_train.pickle")]):
        server.files[f"/{remote_name}"] = data
        published[name] = Asset(f"{server.url}/{remote_name}", relative, hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(catalog, "SPLIT_ASSETS", published)
    monkeypatch.setattr(splits, "BUILTIN", {name: splits.BuiltinSplit(asset, splits.read_pickled_wnids, name)
                                            for name, asset in published.items()})
    return contents


def test_splits_fetched_by_checksum(tmp_path, local_splits, capsys):
    code, out, _ = run_cli(capsys, "splits", "--home", str(tmp_path / "home"))
    assert code == 0
    assert (tmp_path / "home" / "splits" / "goz_v1.pickle").read_bytes() == local_splits["goz_v1"]
    assert str(tmp_path / "home" / "splits" / "ilsvrc2012_train.pickle") in out


def test_splits_from_a_directory_and_a_wrong_file(tmp_path, local_splits, capsys):
    source = tmp_path / "clone"
    source.mkdir()
    for name, data in local_splits.items():
        (source / name).write_bytes(data)  # named as in the GOZ repository
    paths = fetch.fetch("splits", source=source, home=tmp_path / "home")
    assert [p.name for p in paths] == ["goz_v1.pickle", "ilsvrc2012_train.pickle"]
    (source / "goz_v1").write_bytes(pickle.dumps(["n00000001"]))
    code, _, err = run_cli(capsys, "splits", "--from", str(source / "goz_v1"), "--home", str(tmp_path / "h2"))
    assert code == 2 and "checksum mismatch" in err
    assert not (tmp_path / "h2" / "splits" / "goz_v1.pickle").exists()


# -- GloVe -----------------------------------------------------------------------------------------------

def glove_zip(members=catalog.GLOVE_MEMBERS["glove.6B"]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for member in members:
            archive.writestr(member, "the 0.1 0.2\nof 0.3 0.4\n" * 50)
    return buffer.getvalue()


def test_glove_zip_checked(tmp_path, server, monkeypatch):
    good = glove_zip()
    corrupt = bytearray(good)
    corrupt[corrupt.index(b"of 0.3")] = ord("X")  # the CRC no longer matches
    server.files.update({"/glove.6B.zip": good, "/glove.42B.300d.zip": bytes(corrupt)})
    monkeypatch.setattr(fetch, "GLOVE_URL", server.url + "/{name}.zip")
    (path,) = fetch.fetch("glove", home=tmp_path / "home")
    assert path == tmp_path / "home" / "glove" / "glove.6B.zip" and path.read_bytes() == good
    monkeypatch.setitem(catalog.GLOVE_MEMBERS, "glove.42B.300d", catalog.GLOVE_MEMBERS["glove.6B"])
    with pytest.raises(FetchError, match="not a complete zip"):
        fetch.fetch("glove.42B.300d", home=tmp_path / "home")
    assert not list((tmp_path / "home" / "glove").glob("glove.42B*"))


def test_glove_from_local_copy_and_offline(tmp_path, monkeypatch, capsys):
    incomplete = tmp_path / "glove.6B.zip"
    incomplete.write_bytes(glove_zip(members=["glove.6B.50d.txt"]))
    code, _, err = run_cli(capsys, "glove", "--from", str(incomplete), "--home", str(tmp_path / "home"))
    assert code == 2 and "lacks glove.6B.100d.txt" in err
    incomplete.write_bytes(glove_zip())
    code, out, _ = run_cli(capsys, "glove", "--from", str(incomplete), "--home", str(tmp_path / "home"))
    assert code == 0 and "glove.6B.zip" in out
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setattr(fetch, "GLOVE_URL", dead + "/{name}.zip")
    code, _, err = run_cli(capsys, "glove", "--name", "glove.twitter.27B", "--home", str(tmp_path / "home"))
    assert code == 2
    assert f"{dead}/glove.twitter.27B.zip" in err and "goz fetch glove --name glove.twitter.27B --from PATH" in err


# -- ImageNet URL list -------------------------------------------------------------------------------------

def url_list_tgz(name="fall11_urls.txt", data=URL_LINES) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_imagenet_urls_extracted(tmp_path, server, monkeypatch):
    server.files["/urls.tgz"] = url_list_tgz()
    monkeypatch.setattr(fetch, "IMAGENET_URLS_URL", f"{server.url}/urls.tgz")
    (listing,) = fetch.fetch("imagenet-urls", home=tmp_path / "home")
    assert listing == tmp_path / "home" / "imagenet" / "fall11_urls.txt"
    assert listing.read_bytes() == URL_LINES
    assert [p.name for p in listing.parent.glob("[!.]*")] == ["fall11_urls.txt"]  # the archive is gone
    fetch.fetch("imagenet-urls", home=tmp_path / "home")
    assert len(server.requests) == 1  # installed: not fetched again


def test_imagenet_urls_gone_or_corrupt(tmp_path, server, monkeypatch, capsys):
    monkeypatch.setattr(fetch, "IMAGENET_URLS_URL", f"{server.url}/gone.tgz")
    code, _, err = run_cli(capsys, "imagenet-urls", "--home", str(tmp_path / "home"))
    assert code == 2 and "HTTP 404 Not Found (the file is gone" in err
    assert "goz download FILE OUT" in err and "--from PATH" in err
    server.files["/bad.tgz"] = url_list_tgz()[:-30]
    monkeypatch.setattr(fetch, "IMAGENET_URLS_URL", f"{server.url}/bad.tgz")
    with pytest.raises(FetchError, match="could not extract fall11_urls.txt.*archive was removed"):
        fetch.fetch("imagenet-urls", home=tmp_path / "home")
    assert not list((tmp_path / "home" / "imagenet").glob("[!.]*.t*"))


def test_imagenet_urls_from_local_copies(tmp_path):
    (tmp_path / "list.tgz").write_bytes(url_list_tgz(name="./fall11_urls.txt"))
    (listing,) = fetch.fetch("imagenet-urls", source=tmp_path / "list.tgz", home=tmp_path / "a")
    assert listing.read_bytes() == URL_LINES
    (tmp_path / "fall11_urls.txt").write_bytes(URL_LINES)
    (listing,) = fetch.fetch("imagenet-urls", source=tmp_path / "fall11_urls.txt", home=tmp_path / "b")
    assert listing.read_bytes() == URL_LINES
    (tmp_path / "page.html").write_bytes(b"<html>not a list</html>\n")
    with pytest.raises(FetchError, match="line 1 is not"):
        fetch.fetch("imagenet-urls", source=tmp_path / "page.html", home=tmp_path / "c")
    assert not (tmp_path / "c" / "imagenet" / "fall11_urls.txt").exists()


def test_drive_confirm_link_of_the_older_page():
    page = '<a id="uc-download-link" href="/uc?export=download&amp;confirm=Ab_1&amp;id=XYZ">Download anyway</a>'
    response = httpx.Response(200, html=page, request=httpx.Request("GET", "https://drive.example/uc?id=XYZ"))
    assert fetch.drive_confirmation(response, page) == "https://drive.example/uc?export=download&confirm=Ab_1&id=XYZ"
    assert fetch.drive_confirmation(response, "<html><title>Sign in</title></html>") is None
