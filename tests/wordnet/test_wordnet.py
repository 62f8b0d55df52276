import gzip
import subprocess
import sys
from pathlib import Path

import pytest

import checkout

import goz.wordnet
from goz.cli import main
from goz.errors import GozError
from goz.wordnet import Synset
from goz.wordnet.database import read_database, read_resource, write_resource

ROOT = checkout.ROOT
DOG, CHIHUAHUA, ENTITY = "n02084071", "n02085620", "n00001740"

# A tiny database in WordNet's file format (wndb(5)): license header lines start with two spaces,
# w_cnt and lex_id are hexadecimal, non-hypernym pointers (~, +, %p) must be skipped.
FAKE_DATA = """\
  1 A fake WordNet database for the tests.
  2 It follows the layout of data.noun.
00000100 03 n 01 thing 0 002 ~ 00000200 n 0000 ~ 00000300 n 0000 | the root of this tiny world; "a quote | with a bar"  
00000200 05 n 02 animal 0 Beast 1 003 @ 00000100 n 0000 + 00000999 v 0101 %p 00000300 n 0000 | a living creature  
00000300 15 n 01 place 0 001 @ 00000100 n 0000 | somewhere  
00000400 15 n 03 Paris 0 City_of_Light 0 paris b 001 @i 00000300 n 0000 | a city  
00000500 20 n 01 Paris 0 002 @ 00000200 n 0000 @ 00000300 n 0000 | a plant that is also a place  
"""
FAKE_INDEX = """\
  1 A fake index.noun.
animal n 1 2 @ + 1 1 00000200  
beast n 1 1 @ 1 0 00000200  
city_of_light n 1 1 @i 1 0 00000400  
paris n 2 2 @ @i 2 1 00000400 00000500  
place n 1 1 @ 1 0 00000300  
thing n 1 1 ~ 1 1 00000100  
"""
FAKE_CNTLIST = """\
animal%1:05:00:: 1 7
paris%1:15:00:: 1 3
paris%1:15:11:: 1 2
beast%1:05:01:: 1 1
vanished%1:05:00:: 1 9
"""
FAKE_SYNSETS = [
    Synset("n00000100", ("thing",), (0,), 'the root of this tiny world; "a quote | with a bar"', (), (), (1,)),
    Synset("n00000200", ("animal", "Beast"), (7, 1), "a living creature", ("n00000100",), (), (1, 1)),
    Synset("n00000300", ("place",), (0,), "somewhere", ("n00000100",), (), (1,)),
    Synset("n00000400", ("Paris", "City_of_Light", "paris"), (3, 0, 2), "a city", (), ("n00000300",), (1, 1, 1)),
    Synset("n00000500", ("Paris",), (0,), "a plant that is also a place", ("n00000200", "n00000300"), (), (2,)),
]


def write_fake_database(directory: Path, data: str = FAKE_DATA) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data.noun").write_text(data)
    (directory / "index.noun").write_text(FAKE_INDEX)
    (directory / "cntlist.rev").write_text(FAKE_CNTLIST)
    return directory


def test_generator_reproduces_a_fake_database_exactly(tmp_path):
    synsets, metadata = read_database(write_fake_database(tmp_path / "dict"))
    assert synsets == FAKE_SYNSETS
    assert metadata["synsets"] == 5 and metadata["word_senses"] == 8
    assert metadata["hypernym_edges"] == 4 and metadata["instance_hypernym_edges"] == 1
    hierarchy = read_resource(write_resource(synsets, metadata, tmp_path / "nouns.tsv.gz"))
    assert list(hierarchy.synsets.values()) == FAKE_SYNSETS
    assert hierarchy.attrs["sha256"]["data.noun"] == metadata["sha256"]["data.noun"]
    assert hierarchy.roots == ["n00000100"]
    assert hierarchy.senses("PARIS") == ["n00000400", "n00000500"]
    assert hierarchy.most_frequent_sense("city of light") == "n00000400"
    assert hierarchy.is_most_frequent_sense("n00000400") and not hierarchy.is_most_frequent_sense("n00000500")
    assert hierarchy.most_frequent_sense("unicorn") is None


def test_build_script_writes_the_same_bytes_twice(tmp_path):
    database = write_fake_database(tmp_path / "dict")
    outputs = []
    for name in ("a.tsv.gz", "b.tsv.gz"):
        result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_wordnet.py"), "--wordnet", str(database),
                                 "--out", str(tmp_path / name)], capture_output=True, text=True,
                                env={"PYTHONPATH": str(ROOT / "src")})
        assert result.returncode == 0, result.stderr
        assert "5 synsets" in result.stdout
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1]
    assert list(read_resource(tmp_path / "a.tsv.gz").synsets.values()) == FAKE_SYNSETS


@pytest.mark.parametrize("bad_line, message", [
    ("00000600 03 n 02 lonely 0 000 | two words announced, one given", "data.noun:8: malformed synset line"),
    ("00000600 03 n 01 lonely 0 001 @ 00000100 n | short pointer", "data.noun:8: malformed synset line"),
    ("00000600 03 n 01 lonely 0 000 | a lemma missing from index.noun", "'lonely' of synset 00000600 is not listed"),
])
def test_malformed_database_names_file_and_line(tmp_path, bad_line, message):
    database = write_fake_database(tmp_path / "dict", FAKE_DATA + bad_line + "  \n")
    with pytest.raises(GozError, match=message):
        read_database(database)


def test_damaged_resource_is_a_clean_error(tmp_path):
    synsets, metadata = read_database(write_fake_database(tmp_path / "dict"))
    path = write_resource(synsets, metadata, tmp_path / "nouns.tsv.gz")
    text = gzip.decompress(path.read_bytes()).decode()
    (tmp_path / "short.tsv.gz").write_bytes(gzip.compress(text.rsplit("\n", 2)[0].encode() + b"\n"))
    with pytest.raises(GozError, match="do not match the counts"):
        read_resource(tmp_path / "short.tsv.gz")
    (tmp_path / "cut.tsv.gz").write_bytes(path.read_bytes()[:200])
    with pytest.raises(GozError, match="not a goz WordNet resource"):
        read_resource(tmp_path / "cut.tsv.gz")


# -- the shipped WordNet 3.0 resource ---------------------------------------------------------------

def test_shipped_resource_holds_wordnet_30_facts():
    wordnet = goz.wordnet.load()
    assert goz.wordnet.load() is wordnet
    assert len(wordnet) == 82115
    assert wordnet.roots == [ENTITY]
    assert wordnet.is_ancestor(DOG, CHIHUAHUA) and wordnet.parents(CHIHUAHUA) == ("n02085374",)
    dog = wordnet.synsets[DOG]
    assert dog.lemmas == ("dog", "domestic_dog", "Canis_familiaris") and dog.lemma_counts[0] == 42
    assert dog.gloss.startswith("a member of the genus Canis (probably descended from the common wolf)")
    assert wordnet.synsets["n10954498"].instance_hypernyms == ("n10428004",)  # Einstein, instance of physicist
    assert wordnet.lemmas("n10428004") == ("physicist",)
    assert wordnet.most_frequent_sense("dog") == DOG and wordnet.is_most_frequent_sense(DOG, "dog")
    assert wordnet.senses("Chihuahua").index(CHIHUAHUA) == 2 and not wordnet.is_most_frequent_sense(CHIHUAHUA)
    assert wordnet.depth(CHIHUAHUA) == 10 and wordnet.depth(ENTITY) == 0


def test_shipped_resource_matches_the_published_wordnet_30_statistics():
    wordnet = goz.wordnet.load()
    synsets = list(wordnet.synsets.values())
    # wnstats(7) of WordNet 3.0: 117,798 noun strings, 82,115 synsets, 146,312 word-sense pairs.
    assert len({lemma.lower() for s in synsets for lemma in s.lemmas}) == 117798
    assert len({(lemma.lower(), s.wnid) for s in synsets for lemma in s.lemmas}) == 146312
    assert wordnet.attrs["synsets"] == 82115
    assert wordnet.attrs["instance_hypernym_edges"] == sum(len(s.instance_hypernyms) for s in synsets) == 8577
    # Generated from Princeton's WordNet 3.0 data.noun as packaged by Debian (wordnet-base 1:3.0).
    assert wordnet.attrs["sha256"]["data.noun"] == "fea17d2f9656611334eac790e5d69e47645fa180c4aa481fb4cd9b3520754ca2"
    # Every lemma's sense numbers 1..n are each used exactly once across its synsets.
    numbers: dict[str, list[int]] = {}
    for s in synsets:
        for lemma, number in dict(zip((x.lower() for x in s.lemmas), s.sense_numbers)).items():
            numbers.setdefault(lemma, []).append(number)
    assert all(sorted(n) == list(range(1, len(n) + 1)) for n in numbers.values())


def test_license_is_shipped_next_to_the_resource():
    license_text = (ROOT / "src" / "goz" / "data" / "wordnet" / "LICENSE").read_text()
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in license_text


def test_cli_show_synset_and_word(capsys):
    assert main(["wordnet", "show", CHIHUAHUA, "hot dog"]) == 0
    out = capsys.readouterr().out
    assert "hypernym   n02085374 toy_dog, toy" in out and "depth      10" in out
    assert "hot dog: 3 noun sense(s)" in out and "2. n07697537 hotdog, hot_dog, red_hot" in out
    assert main(["wordnet", "show", "xyzzy"]) == 2
    assert "neither a noun synset id nor a noun" in capsys.readouterr().err


def test_from_edges_numbers_senses_in_order_of_appearance():
    hierarchy = goz.wordnet.Hierarchy.from_edges([("river_bank", "land"), ("money_bank", "firm")],
                                                 lemmas={"river_bank": ["bank", "shore"], "money_bank": ["Bank"]})
    assert hierarchy.synsets["money_bank"].sense_numbers == (2,)
    assert hierarchy.senses("bank") == ["river_bank", "money_bank"]
    assert hierarchy.is_most_frequent_sense("river_bank", "bank")
    assert not hierarchy.is_most_frequent_sense("money_bank")
