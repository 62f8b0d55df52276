import pickle
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from goz import splits
from goz.errors import FetchError, SplitError
from goz import assets, catalog
from goz.catalog import Asset
from goz.home import sha256_of


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_a_command_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps([_Exploit(marker)]))
    with pytest.raises(SplitError, match="refusing to load pickle"):
        splits.load(path)
    assert not marker.exists()


def test_pickled_list_of_str_and_text_files(tmp_path):
    wnids = ["n00000002", "n00000001"]
    (tmp_path / "a.pickle").write_bytes(pickle.dumps(wnids, protocol=2))
    assert splits.load(tmp_path / "a.pickle") == wnids
    (tmp_path / "b.pickle").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(SplitError, match="expected a pickled list of str"):
        splits.load(tmp_path / "b.pickle")
    (tmp_path / "c.pickle").write_bytes(b"\x80\x04garbage")
    with pytest.raises(SplitError, match="not a readable pickled list"):
        splits.load(tmp_path / "c.pickle")
    text = splits.save(wnids, tmp_path / "s.txt")
    assert splits.load(text) == wnids
    (tmp_path / "bad.txt").write_text("n00000001\n../../etc\n")
    with pytest.raises(SplitError, match="not WordNet ids"):
        splits.load(tmp_path / "bad.txt")
    (tmp_path / "dup.txt").write_text("n00000001\nn00000001 # again\n")
    with pytest.raises(SplitError, match="duplicate"):
        splits.load(tmp_path / "dup.txt")
    with pytest.raises(SplitError, match="unknown split"):
        splits.load("no_such_split")


@pytest.fixture
def local_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_builtin_split_read_once_fetched_and_the_cli_fetches_it(tmp_path, monkeypatch, local_server, capsys):
    root, url = local_server
    monkeypatch.setenv("GOZ_HOME", str(tmp_path / "home"))
    wnids = [f"n{i:08d}" for i in range(5)]
    (root / "split").write_bytes(pickle.dumps(wnids))
    asset = Asset(f"{url}/split", "splits/goz_v1.pickle", sha256_of(root / "split"))
    monkeypatch.setitem(catalog.SPLIT_ASSETS, "goz_v1", asset)
    monkeypatch.setitem(splits.BUILTIN, "goz_v1", splits.BuiltinSplit(asset, splits.read_pickled_wnids, "test"))
    # The API reads GOZ_HOME only (splits sit below assets): a clear error says how to fetch.
    with pytest.raises(SplitError, match="not fetched yet; run `goz fetch splits`"):
        splits.load("goz_v1")
    # A command naming the split fetches it first.
    from goz import cli
    cli.main(["split", "check", "goz_v1"])  # its verdict on these made-up classes does not matter here
    assert (tmp_path / "home" / "splits" / "goz_v1.pickle").read_bytes() == pickle.dumps(wnids)
    assert splits.load("goz_v1") == wnids
    (root / "split").unlink()  # fetched now: nothing asks the server again
    assert splits.load("goz_v1") == wnids
    bad = Asset(f"{url}/missing", "splits/missing.pickle", "0" * 64)
    monkeypatch.setattr(catalog, "SPLIT_ASSETS", {"goz_v1": bad})
    with pytest.raises(FetchError, match="splits/missing.pickle"):
        assets.fetch("splits")


def test_a_folder_or_an_empty_split_is_a_split_error(tmp_path):
    with pytest.raises(SplitError, match="is a folder"):
        splits.load(tmp_path)
    (tmp_path / "empty.txt").write_text("# only a comment\n\n")
    with pytest.raises(SplitError, match="holds no class"):
        splits.load(tmp_path / "empty.txt")
    (tmp_path / "empty.pickle").write_bytes(pickle.dumps([]))
    with pytest.raises(SplitError, match="holds no class"):
        splits.load(tmp_path / "empty.pickle")
