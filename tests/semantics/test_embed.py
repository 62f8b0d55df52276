import gzip
import logging
import zipfile

import numpy as np
import pytest

from goz import semantics
from goz.cli import main
from goz.errors import GozError
from goz.semantics import embed, load_word_vectors
from goz.wordnet import Hierarchy, Synset

WORDS = {
    "dog": [1.0, 0.0, 0.0, 2.0],
    "domestic": [0.0, 1.0, 0.0, 2.0],
    "canis": [0.0, 0.0, 1.0, 2.0],
    "ice_cream": [4.0, 4.0, 4.0, 4.0],
    "ice": [9.0, 9.0, 9.0, 9.0],
    "york": [0.0, 2.0, 0.0, 0.0],
    "toy": [0.5, 0.5, -1.5, 3.25],
    "X-Ray": [1.0, -1.0, 1.0, -1.0],
    "unused": [7.0, 7.0, 7.0, 7.0],
}
HIERARCHY = Hierarchy([
    Synset("n00000001", ("thing",)),
    Synset("n00000002", ("dog", "domestic_dog", "Canis_familiaris"), hypernyms=("n00000001",)),
    Synset("n00000003", ("ice_cream", "frozen_dessert"), hypernyms=("n00000001",)),
    Synset("n00000004", ("New York", "toy-like-York"), hypernyms=("n00000001",)),
    Synset("n00000005", ("unicorn", "mythical_beast"), hypernyms=("n00000001",)),
    Synset("n00000006", ("dog_toy-york", "X-ray_dog"), hypernyms=("n00000001",)),
])
CLASSES = ["n00000002", "n00000003", "n00000004", "n00000005", "n00000006"]
V = {word: np.array(vector, np.float32) for word, vector in WORDS.items()}
EXPECTED = {
    # dog; domestic_dog -> mean(domestic, dog); Canis_familiaris -> canis (familiaris unknown)
    "n00000002": np.mean([V["dog"], (V["domestic"] + V["dog"]) / 2, V["canis"]], axis=0),
    # ice_cream is in the vocabulary as a whole (its part "ice" is not used); frozen_dessert has nothing
    "n00000003": V["ice_cream"],
    # "New York" split on the space -> york; "toy-like-York" split on '-' -> mean(toy, york)
    "n00000004": np.mean([V["york"], (V["toy"] + V["york"]) / 2], axis=0),
    # terms first, then '-' parts: dog_toy-york -> mean(dog, mean(toy, york)); X-ray_dog -> mean(x-ray, dog),
    # the file's "X-Ray" matching once lower-cased
    "n00000006": np.mean([(V["dog"] + (V["toy"] + V["york"]) / 2) / 2, (V["X-Ray"] + V["dog"]) / 2], axis=0),
}


def glove_text(words=WORDS) -> str:
    return "".join(f"{w} {' '.join(f'{x:g}' for x in v)}\n" for w, v in words.items())


def header_text(words=WORDS, trailing: str = "") -> str:
    lines = "".join(f"{w} {' '.join(f'{x:g}' for x in v)}{trailing}\n" for w, v in words.items())
    return f"{len(words)} {len(next(iter(words.values())))}\n" + lines


def word2vec_binary(words=WORDS, newline: bool = True) -> bytes:
    records = [w.encode() + b" " + np.array(v, "<f4").tobytes() + (b"\n" if newline else b"") for w, v in words.items()]
    return f"{len(words)} 4\n".encode() + b"".join(records)


def write_every_format(directory):
    files = {}
    files["glove.txt"] = directory / "vectors.txt"
    files["glove.txt"].write_text(glove_text())
    files["glove.zip"] = directory / "glove.zip"
    with zipfile.ZipFile(files["glove.zip"], "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("glove.2d.txt", glove_text({w: v[:2] for w, v in WORDS.items()}))
        archive.writestr("glove.4d.txt", glove_text())
    files["word2vec.txt"] = directory / "word2vec.txt"
    files["word2vec.txt"].write_text(header_text())
    files["fasttext.vec"] = directory / "wiki.vec"
    files["fasttext.vec"].write_text(header_text(trailing=" "))
    files["word2vec.bin"] = directory / "vectors.bin"
    files["word2vec.bin"].write_bytes(word2vec_binary(newline=True))
    files["gensim.bin"] = directory / "gensim.bin"
    files["gensim.bin"].write_bytes(word2vec_binary(newline=False))
    files["glove.txt.gz"] = directory / "vectors.txt.gz"
    files["glove.txt.gz"].write_bytes(gzip.compress(glove_text().encode()))
    return files


@pytest.mark.parametrize("kind", ["glove.txt", "glove.zip", "word2vec.txt", "fasttext.vec", "word2vec.bin",
                                  "gensim.bin", "glove.txt.gz"])
def test_every_format_gives_the_same_class_vectors(tmp_path, kind, caplog):
    path = write_every_format(tmp_path)[kind]
    with caplog.at_level(logging.WARNING):
        table = embed(path, CLASSES, HIERARCHY)
    assert table.wnids == ["n00000002", "n00000003", "n00000004", "n00000006"]
    for wnid, expected in EXPECTED.items():
        np.testing.assert_allclose(table.vector(wnid), expected, rtol=1e-6)
    assert table.attrs["missing_count"] == 1 and table.attrs["missing"] == "n00000005"
    assert "1 of 5 classes have no word vector" in caplog.text and "n00000005" in caplog.text
    expected_format = {"zip": "glove", "txt": "glove", "gz": "glove", "vec": "fasttext", "bin": "word2vec-bin"}
    assert table.attrs["format"] == ("word2vec" if kind == "word2vec.txt" else expected_format[kind.split(".")[-1]])


def test_only_the_needed_words_are_kept_and_zip_member_can_be_chosen(tmp_path):
    files = write_every_format(tmp_path)
    assert set(load_word_vectors(files["glove.zip"], ["dog", "york", "absent"])) == {"dog", "york"}
    small = load_word_vectors(files["glove.zip"], ["dog"], member="glove.2d.txt")
    np.testing.assert_array_equal(small["dog"], [1.0, 0.0])
    assert set(load_word_vectors(files["word2vec.bin"])) == set(WORDS)
    assert "x-ray" not in load_word_vectors(files["word2vec.bin"], ["x-ray"])
    assert set(load_word_vectors(files["word2vec.bin"], ["x-ray"], lowercase=True)) == {"x-ray"}
    with pytest.raises(GozError, match="no member 'glove.300d.txt'"):
        load_word_vectors(files["glove.zip"], ["dog"], member="glove.300d.txt")


def test_normalize_and_save_round_trip(tmp_path):
    table = embed(write_every_format(tmp_path)["glove.txt"], CLASSES, HIERARCHY, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(table.vectors, axis=1), 1.0, rtol=1e-6)
    loaded = semantics.load(table.save(tmp_path / "semantics.h5"))
    assert loaded.wnids == table.wnids and loaded.attrs["missing"] == "n00000005" and loaded.attrs["normalized"]
    np.testing.assert_array_equal(loaded.vectors, table.vectors)


@pytest.mark.parametrize("content, message", [
    ("dog 1 2 3 4\ncat 1 2 3\n", r"vectors.txt:2: expected a word and 4 values, found 3"),
    ("cat 1 2 3 4\ndog 1 2 x 4\n", r"vectors.txt:2: a value is not a number"),
    ("dog 1 2 nan 4\n", r"vectors.txt:1: expected 4 finite numbers"),
    ("3 4\ndog 1 2 3 4\ncat 1 2 3 4\n", r"header announces 3 words but the file holds 2"),
    ("dog\n", r"vectors.txt:1: no vector values"),
])
def test_malformed_text_files_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "vectors.txt"
    path.write_text(content)
    with pytest.raises(GozError, match=message):
        load_word_vectors(path, ["dog"])


def test_lowercase_keeps_the_first_casing_of_a_word(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("Paris 1 2\nparis 3 4\nÉcole 5 6\n")
    found = load_word_vectors(path, ["paris", "école"], lowercase=True)
    np.testing.assert_array_equal(found["paris"], [1, 2])
    np.testing.assert_array_equal(found["école"], [5, 6])
    np.testing.assert_array_equal(load_word_vectors(path, ["paris"])["paris"], [3, 4])


def test_unneeded_bad_values_and_words_with_spaces_are_not_parsed(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("dog 1 2\ncat x y\n. . . 5 6\n")
    assert set(load_word_vectors(path, ["dog", "."], fmt="glove")) == {"dog"}
    with pytest.raises(GozError, match="vectors.txt:2: a value is not a number"):
        load_word_vectors(path, ["cat"])


def test_malformed_binary_and_wrong_format(tmp_path):
    path = tmp_path / "vectors.bin"
    path.write_bytes(word2vec_binary()[:-10])
    with pytest.raises(GozError, match=f"truncated: word {len(WORDS)} of the {len(WORDS)} announced is incomplete"):
        load_word_vectors(path, ["dog"])
    path.write_bytes(b"not a header\n")
    with pytest.raises(GozError, match="expected a header line"):
        load_word_vectors(path, ["dog"])
    glove = tmp_path / "glove.txt"
    glove.write_text(glove_text())
    with pytest.raises(GozError, match=r"glove.txt:1: expected a header line"):
        load_word_vectors(glove, ["dog"], fmt="fasttext")
    with pytest.raises(GozError, match="unknown word-vector format"):
        load_word_vectors(glove, ["dog"], fmt="elmo")
    with pytest.raises(GozError, match="no such word-vector file"):
        load_word_vectors(tmp_path / "absent.txt", ["dog"])
    archive = write_every_format(tmp_path)["glove.zip"]
    data = bytearray(archive.read_bytes())
    data[60:90] = b"\xff" * 30  # inside the first member's compressed data
    archive.write_bytes(bytes(data))
    with pytest.raises(GozError, match="glove.zip: cannot read the word-vector file"):
        load_word_vectors(archive, ["dog"], member="glove.2d.txt")


def test_classes_outside_the_hierarchy_or_without_any_word_are_errors(tmp_path):
    path = write_every_format(tmp_path)["glove.txt"]
    with pytest.raises(GozError, match="not WordNet noun synsets: n99999999"):
        embed(path, ["n00000002", "n99999999"], HIERARCHY)
    with pytest.raises(GozError, match="not one word"):
        embed(path, ["n00000005"], HIERARCHY)


def test_cli_embeds_split_classes_with_the_packaged_wordnet(tmp_path, capsys, monkeypatch):
    # Real WordNet 3.0: dog (n02084071), Chihuahua (n02085620), cat (n02121620), a classless one.
    words = {"dog": [1.0, 0.0], "domestic": [0.0, 1.0], "chihuahua": [3.0, 4.0], "cat": [0.0, 2.0]}
    archive = tmp_path / "glove.6B.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("glove.6B.2d.txt", glove_text(words))
    seen, unseen = tmp_path / "seen.txt", tmp_path / "unseen.txt"
    seen.write_text("n02084071\nn02121620\n")
    unseen.write_text("n02085620\nn00001740\n")
    out = tmp_path / "out" / "semantics.h5"
    assert main(["embed", "--vectors", str(archive), "--classes", str(seen), str(unseen), "--out", str(out),
                 "--normalize"]) == 0
    printed = capsys.readouterr().out
    assert "3 of 4 classes, dimension 2" in printed and "without a vector (1): n00001740" in printed
    table = semantics.load(out)
    assert table.wnids == ["n02084071", "n02121620", "n02085620"]
    # cat's lemmas: cat, true_cat -> cat twice; normalized
    np.testing.assert_allclose(table.vector("n02121620"), [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(table.vector("n02085620"), [0.6, 0.8], atol=1e-6)
    assert main(["embed", "--vectors", str(tmp_path / "none.zip"), "--classes", str(seen), "--out", str(out)]) == 2
    assert "no such word-vector file" in capsys.readouterr().err
    monkeypatch.setenv("GOZ_HOME", str(tmp_path / "home"))
    assert main(["embed", "--classes", str(seen), "--out", str(out)]) == 2  # default: GOZ_HOME/glove/glove.6B.zip
    assert f"{tmp_path / 'home' / 'glove' / 'glove.6B.zip'}: no such word-vector file" in capsys.readouterr().err


def test_lemma_case_as_spelled_looks_lemmas_up_as_wordnet_spells_them(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text(glove_text())
    lower = embed(path, CLASSES, HIERARCHY)
    spelled = embed(path, CLASSES, HIERARCHY, lemma_case="as-spelled")
    assert lower.attrs["lemma_case"] == "lower" and spelled.attrs["lemma_case"] == "as-spelled"
    expected = {
        # Canis_familiaris: neither "Canis" nor "familiaris" is a word of the file (it has "canis")
        "n00000002": np.mean([V["dog"], (V["domestic"] + V["dog"]) / 2], axis=0),
        "n00000003": V["ice_cream"],
        # "New York": "York" is not "york"; toy-like-York: only its part "toy"
        "n00000004": V["toy"],
        # X-ray_dog: the file spells "X-Ray", so only "dog"
        "n00000006": np.mean([(V["dog"] + (V["toy"] + V["york"]) / 2) / 2, V["dog"]], axis=0),
    }
    assert spelled.wnids == list(expected) == lower.wnids
    for wnid, vector in expected.items():
        np.testing.assert_allclose(spelled.vector(wnid), vector, rtol=1e-6)
        np.testing.assert_allclose(lower.vector(wnid), EXPECTED[wnid], rtol=1e-6)
    # a cased vocabulary: as-spelled takes the word with the lemma's casing, lower the first of either
    path.write_text(glove_text({"paris": [1.0, 0.0], "Paris": [0.0, 1.0]}))
    city = Hierarchy([Synset("n00000001", ("Paris",))])
    np.testing.assert_array_equal(embed(path, ["n00000001"], city, lemma_case="as-spelled").vector("n00000001"),
                                  [0.0, 1.0])
    np.testing.assert_array_equal(embed(path, ["n00000001"], city).vector("n00000001"), [1.0, 0.0])
    with pytest.raises(GozError, match="unknown lemma case 'upper'"):
        embed(path, ["n00000001"], city, lemma_case="upper")


def test_cli_lemma_case(tmp_path, capsys):
    # Granny Smith (n07742313): lemma "Granny_Smith"; GloVe 6B's words are lower-case
    vectors = tmp_path / "vectors.txt"
    vectors.write_text(glove_text({"granny": [1.0, 0.0], "smith": [0.0, 1.0]}))
    split = tmp_path / "split.txt"
    split.write_text("n07742313\n")
    out = tmp_path / "semantics.h5"
    assert main(["embed", "--vectors", str(vectors), "--classes", str(split), "--out", str(out)]) == 0
    np.testing.assert_allclose(semantics.load(out).vector("n07742313"), [0.5, 0.5])
    assert semantics.load(out).attrs["lemma_case"] == "lower"
    capsys.readouterr()
    assert main(["embed", "--vectors", str(vectors), "--classes", str(split), "--out", str(out),
                 "--lemma-case", "as-spelled"]) == 2
    assert "not one word of the 1 classes' lemmas is in this file" in capsys.readouterr().err


def test_cli_embeds_every_node_of_the_published_imagenet_graph(tmp_path, capsys):
    words = {"dog": [1.0, 0.0], "chihuahua": [3.0, 4.0], "cat": [0.0, 2.0], "entity": [1.0, 1.0]}
    vectors = tmp_path / "vectors.txt"
    vectors.write_text(glove_text(words))
    out = tmp_path / "graph.h5"
    assert main(["embed", "--vectors", str(vectors), "--classes", "imagenet-graph", "--out", str(out)]) == 0
    assert "of 32324 classes, dimension 2" in capsys.readouterr().out
    table = semantics.load(out)
    assert {"n02084071", "n02085620"} <= set(table.wnids) and table.attrs["classes"] == 32_324


BIRD_CRANE, MACHINE_CRANE, TENCH = "n02012849", "n03126707", "n01440764"


def test_goz_embed_warns_naming_the_classes_that_share_a_vector(tmp_path, capsys, caplog):
    # The ILSVRC-2012 bird and machine both have the single WordNet lemma "crane": one word vector.
    archive = tmp_path / "glove.txt"
    archive.write_text(glove_text({"crane": [1.0, 2.0], "tench": [0.0, 1.0], "tinca": [3.0, 1.0]}))
    classes = tmp_path / "classes.txt"
    classes.write_text(f"{TENCH}\n{BIRD_CRANE}\n{MACHINE_CRANE}\n")
    with caplog.at_level(logging.WARNING, logger="goz"):
        assert main(["embed", "--vectors", str(archive), "--classes", str(classes), "--out", str(tmp_path / "t.h5")]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("1 group(s) of classes share one class vector" in w and f"{BIRD_CRANE} = {MACHINE_CRANE}" in w
               for w in warnings), warnings
    table = semantics.load(tmp_path / "t.h5")
    assert table.duplicate_vectors() == [[BIRD_CRANE, MACHINE_CRANE]]
    assert table.duplicate_vectors([MACHINE_CRANE, TENCH, BIRD_CRANE]) == [[MACHINE_CRANE, BIRD_CRANE]]
    assert table.duplicate_vectors([TENCH, BIRD_CRANE, "n09999999"]) == []  # a class without a vector is ignored
    with pytest.raises(SystemExit):  # --class-names is for text encoders
        main(["embed", "--vectors", str(archive), "--classes", str(classes), "--class-names", "wordnet",
              "--out", str(tmp_path / "t.h5")])
    assert main(["embed", "--vectors", str(archive), "--classes", str(classes), "--class-names", "curated",
                 "--out", str(tmp_path / "t.h5")]) == 2
    assert "--class-names and --prompts apply to a text encoder (--encoder)" in capsys.readouterr().err


def test_duplicate_vectors_groups_equal_and_nearly_equal_rows_only():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((2000, 16)).astype(np.float32)
    vectors[7] = vectors[3]
    vectors[1500] = vectors[3] * np.float32(1 + 2e-7)   # the same text embedded in another batch
    vectors[11] = vectors[12] = 0.0                      # two zero vectors are one vector too
    vectors[20] = vectors[21] + 1e-3                     # close, but another vector
    wnids = [f"n{i:08d}" for i in range(2000)]
    table = semantics.SemanticsTable(wnids, vectors)
    assert table.duplicate_vectors() == [[wnids[3], wnids[7], wnids[1500]], [wnids[11], wnids[12]]]
    assert table.duplicate_vectors([wnids[1500], wnids[20], wnids[3]]) == [[wnids[1500], wnids[3]]]
    assert semantics.SemanticsTable(wnids[:1], vectors[:1]).duplicate_vectors() == []
