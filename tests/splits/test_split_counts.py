import numpy as np
import pytest

from goz.errors import GozError
from goz.splits.counts import read_counts, read_release_status
from goz.store import write_store

RELEASE = """<ReleaseStatus>
  <releaseData>fall2011</releaseData>
  <images>
    <synsetInfos>
      <synset wnid="n00000111" released="1" version="winter11" numImages="269" />
      <synset wnid="n00000112" released="1" version="winter11" numImages="0" />
      <synset wnid="n00000111" released="1" version="winter11" numImages="5" />
    </synsetInfos>
  </images>
</ReleaseStatus>
"""

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<ReleaseStatus><synset wnid="n00000111" numImages="&lol3;"/></ReleaseStatus>
"""


def test_release_status_keeps_the_first_of_repeated_wnids(tmp_path):
    path = tmp_path / "ReleaseStatus.xml"
    path.write_text(RELEASE)
    assert read_counts(path) == {"n00000111": 269, "n00000112": 0}


@pytest.mark.parametrize("text, message", [
    (BILLION_LAUGHS, "refused unsafe XML"),
    ("<ReleaseStatus><synset wnid='n00000111' numImages='12'>", "not well-formed"),
    ("<ReleaseStatus><synset wnid='dog' numImages='12'/></ReleaseStatus>", "valid wnid"),
    ("<ReleaseStatus></ReleaseStatus>", "no <synset"),
])
def test_bad_release_status_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "ReleaseStatus.xml"
    path.write_text(text)
    with pytest.raises(GozError, match=message):
        read_release_status(path)


def test_url_list_counts_lines_and_tolerates_latin1(tmp_path):
    path = tmp_path / "urls.txt"
    path.write_bytes(b"n00000111_1\thttp://a/1.jpg\nn00000111_2\thttp://a/caf\xe9.jpg\n\nn00000113_7\thttp://b/x.jpg\n")
    assert read_counts(path) == {"n00000111": 2, "n00000113": 1}
    path.write_bytes(b"n00000111_1\thttp://a/1.jpg\nnot a url line\n")
    with pytest.raises(GozError, match=r"urls.txt:2: expected"):
        read_counts(path)


def test_image_tree_and_feature_store(tmp_path):
    tree = tmp_path / "images"
    (tree / "n00000111").mkdir(parents=True)
    (tree / "n00000112").mkdir()
    (tree / "not-a-class").mkdir()
    for name in ("a.jpg", "b.JPEG", "c.png", "manifest.json"):
        (tree / "n00000111" / name).write_bytes(b"x")
    assert read_counts(tree) == {"n00000111": 3, "n00000112": 0}
    store = tmp_path / "features.h5"
    write_store(store, {"n00000111": (np.zeros((4, 3), np.float32), np.arange(4)),
                        "n00000113": (np.zeros((2, 3), np.float32), np.arange(2))})
    assert read_counts(store) == {"n00000111": 4, "n00000113": 2}
    with pytest.raises(GozError, match="no such image-count source"):
        read_counts(tmp_path / "missing.xml")
