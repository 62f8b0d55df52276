"""Word counts (the built-in wordfreq tables, count files of the original's forms) and the new lemma rules."""

import pickle
from collections import Counter

import numpy as np
import pytest
from split_fixtures import BEAGLE, EDGES, MALLET, TABBY

from goz.errors import GozError
from goz.splits.lemmas import (
    LemmaFilter,
    SenseVectors,
    filter_lemmas,
    read_lemma_names,
    sense_matches,
    with_lemmas,
)
from goz.splits.word_counts import (
    WordfreqCounts,
    class_word_count,
    describe_word_counts,
    load_word_counts,
    read_word_counts,
)
from goz.wordnet import Hierarchy, load

DOG, BEAGLE_WN, PANGOLIN, AARDVARK = "n02084071", "n02088364", "n02461830", "n02082791"
QUEEN_BEE, QUEEN_MONARCH = "n02313008", "n10499355"


def test_wordfreq_tables_are_read_offline_per_billion_words():
    from wordfreq import word_frequency

    counts = load_word_counts("wordfreq")
    assert isinstance(counts, WordfreqCounts) and load_word_counts(None) == counts
    assert counts["dog"] == round(word_frequency("dog", "en") * 1e9) > counts["beagle"] > counts["anteater"] > 0
    assert counts.get("Beagle") == counts["beagle"]            # lemmas are looked up in lower case
    assert counts["qqxzvwk"] == 0                               # unseen words count 0, as in a Counter
    # a lemma of several words: wordfreq's phrase estimate, at most its rarest token's
    assert 0 < counts["hot_dog"] <= min(counts["hot"], counts["dog"])
    assert "billion" in describe_word_counts(counts)


def test_class_word_count_is_the_largest_lemma_count_capped():
    hierarchy, counts = load(), WordfreqCounts()
    assert hierarchy.lemmas(DOG) == ("dog", "domestic_dog", "Canis_familiaris")
    assert class_word_count(hierarchy.lemmas(DOG), counts) == counts["dog"] > 10_000
    assert class_word_count(hierarchy.lemmas(DOG), counts, cap=10_000) == 10_000
    assert class_word_count((), counts) == 0
    # bounds on real words: beagle (about 1,150 per billion) is in (500, 10,000), dog is not
    bounded = LemmaFilter(word_counts=counts, min_word_count=500, max_word_count=10_000)
    assert filter_lemmas(hierarchy, [DOG, BEAGLE_WN], bounded) == {BEAGLE_WN: ("beagle",)}


def test_sense_rules_on_wordnet():
    h = load()
    # "queen": the bee is the first sense (tag count 16); the monarch is a rarer one (4)
    assert [sense_matches(h, QUEEN_BEE, "queen", s) for s in ("primary", "secondary", "tagged", "any")] == \
        [True, False, True, True]
    assert [sense_matches(h, QUEEN_MONARCH, "queen", s) for s in ("primary", "secondary", "tagged")] == \
        [False, True, False]
    # "anteater": the pangolin is the first sense with one tag; an untagged first sense fails `tagged`
    assert sense_matches(h, PANGOLIN, "anteater", "tagged") and sense_matches(h, AARDVARK, "anteater", "secondary")
    assert sense_matches(h, BEAGLE_WN, "beagle", "primary") and not sense_matches(h, BEAGLE_WN, "beagle", "tagged")
    # one word only: the monarch keeps "queen", not "queen_regnant" nor "female_monarch"
    assert filter_lemmas(h, [QUEEN_MONARCH], LemmaFilter(sense="any", single_word=True)) == {QUEEN_MONARCH: ("queen",)}
    with pytest.raises(GozError, match="unknown sense rule"):
        LemmaFilter(sense="first")
    with pytest.raises(GozError, match="need word counts"):
        LemmaFilter(min_word_count=5)


def test_count_files_text_and_the_originals_pickle(tmp_path):
    text = tmp_path / "counts.txt"
    text.write_text("# wiki counts\ndog 120\nhot dog\t7\nDog 5\n")
    assert read_word_counts(text) == {"dog": 125, "hot_dog": 7}
    text.write_text("dog 120\ncat twelve\n")
    with pytest.raises(GozError, match=r"counts.txt:2: expected 'word count'"):
        read_word_counts(text)
    text.write_text("dog 1 2\n")
    with pytest.raises(GozError, match=r"counts.txt:1:"):
        read_word_counts(text)
    original = tmp_path / "wiki_counts"
    original.write_bytes(pickle.dumps(Counter({"Dog": 3, "beagle": 2})))
    assert read_word_counts(original) == {"dog": 3, "beagle": 2}
    original.write_bytes(pickle.dumps({"dog": 3}))
    assert load_word_counts(original) == {"dog": 3}
    original.write_bytes(pickle.dumps(["dog", 3]))
    with pytest.raises(GozError, match="holds a list"):
        read_word_counts(original)
    original.write_bytes(pickle.dumps({"dog": "many"}))
    with pytest.raises(GozError, match="not word -> count"):
        read_word_counts(original)
    original.write_bytes(pickle.dumps(np.arange(3)))          # any other global is refused: no code runs
    with pytest.raises(GozError, match="refused global"):
        read_word_counts(original)
    with pytest.raises(GozError, match="no such word-count file"):
        read_word_counts(tmp_path / "absent")


def test_lemma_files_name_a_hierarchy_that_has_no_names(tmp_path):
    bare = Hierarchy.from_edges(EDGES)
    path = tmp_path / "lemmas.tsv"
    path.write_text(f"# synthetic names\n{BEAGLE}\tbeagle,little hound\n{TABBY}\tcat\n{MALLET}\tcat\n")
    named = with_lemmas(bare, read_lemma_names(path, bare))
    assert named.lemmas(BEAGLE) == ("beagle", "little_hound") and named.lemmas(MALLET) == ("cat",)
    assert named.parents(BEAGLE) == bare.parents(BEAGLE)
    # "cat" names tabby first, so it is mallet's secondary sense
    assert sense_matches(named, TABBY, "cat", "primary") and sense_matches(named, MALLET, "cat", "secondary")
    path.write_text(f"{BEAGLE}\tbeagle\nn09999999\tghost\n")
    with pytest.raises(GozError, match=r"lemmas.tsv:2: n09999999 is not a synset"):
        read_lemma_names(path, bare)
    path.write_text("beagle\n")
    with pytest.raises(GozError, match=r"lemmas.tsv:1: expected 'wnid<TAB>lemma"):
        read_lemma_names(path, bare)


def test_word_vector_sense_check():
    # "saw" names a tool (its first sense) and a proverb; its vector points at the proverb's context.
    tool, saw_tool, saying, saw_saying, root = "n00000010", "n00000011", "n00000020", "n00000021", "n00000001"
    h = Hierarchy.from_edges([(tool, root), (saying, root), (saw_tool, tool), (saw_saying, saying)],
                             {root: ["entity"], tool: ["tool"], saying: ["proverb"], saw_tool: ["saw"],
                              saw_saying: ["saw"]})
    vectors = SenseVectors({"tool": np.array([1.0, 0.0]), "proverb": np.array([0.0, 1.0]),
                            "saw": np.array([0.2, 0.9])})
    assert not vectors.agrees(h, saw_tool, "saw") and vectors.agrees(h, saw_saying, "saw")
    agree = LemmaFilter(sense="any", sense_vectors=vectors)
    assert filter_lemmas(h, [saw_tool, saw_saying], agree) == {saw_saying: ("saw",)}
    # the original's "secondary" arm: not the first sense, and the vectors point elsewhere: none here
    disagree = LemmaFilter(sense="secondary", sense_vectors=vectors, sense_check="disagree")
    assert filter_lemmas(h, [saw_tool, saw_saying], disagree) == {}
    primary_disagree = LemmaFilter(sense="primary", sense_vectors=vectors, sense_check="disagree")
    assert filter_lemmas(h, [saw_tool, saw_saying], primary_disagree) == {saw_tool: ("saw",)}
    assert not SenseVectors({}).agrees(h, saw_tool, "saw")         # no vector: not kept
