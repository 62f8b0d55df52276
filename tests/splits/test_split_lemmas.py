import pytest

from goz.errors import GozError
from goz.splits import build_split
from goz.splits.lemmas import LemmaFilter, filter_lemmas, read_vocabulary, read_word_counts
from goz.wordnet import Hierarchy

from split_fixtures import (BANDSAW, BEAGLE, CAT, COUNTS, EDGES, HACKSAW, LEMMAS, MALLET, SAW, SEEN, TABBY)

# "saw" first appears on SAW (sense 1), then on HACKSAW and BANDSAW; "cat" first on CAT.
AMBIGUOUS = LEMMAS | {HACKSAW: ["hacksaw", "saw"], BANDSAW: ["saw"], TABBY: ["tabby", "cat"]}


def ambiguous_hierarchy() -> Hierarchy:
    return Hierarchy.from_edges(EDGES, AMBIGUOUS)


def test_most_frequent_sense_keeps_the_right_lemmas():
    h = ambiguous_hierarchy()
    kept = filter_lemmas(h, [SAW, HACKSAW, BANDSAW, TABBY, CAT], LemmaFilter())
    assert kept == {SAW: ("saw",), HACKSAW: ("hacksaw",), TABBY: ("tabby",), CAT: ("cat",)}   # bandsaw: none left
    assert filter_lemmas(h, [BANDSAW], LemmaFilter(sense="any")) == {BANDSAW: ("saw",)}


def test_word_count_bounds_are_strict_and_vocabulary_filters():
    h = ambiguous_hierarchy()
    counts = {"tabby": 600, "hacksaw": 500, "beagle": 1_000_000, "mallet": 999_999}
    bounded = LemmaFilter(word_counts=counts, min_word_count=500, max_word_count=1_000_000)
    assert filter_lemmas(h, [TABBY, HACKSAW, BEAGLE, MALLET, SAW], bounded) == {TABBY: ("tabby",),
                                                                             MALLET: ("mallet",)}
    vocabulary = LemmaFilter(vocabulary=frozenset({"tabby", "saw"}))
    assert filter_lemmas(h, [TABBY, HACKSAW, SAW], vocabulary) == {TABBY: ("tabby",), SAW: ("saw",)}


def test_lemma_filter_inside_build_drops_classes_without_lemmas():
    built = build_split(SEEN, COUNTS, 2, hierarchy=ambiguous_hierarchy(),
                        lemma_filter=LemmaFilter(vocabulary=frozenset({"beagle", "hacksaw", "mallet", "saw"})))
    assert built.stages["lemma filter"] == 4 and set(built.unseen) == {BEAGLE, MALLET}
    assert built.lemmas == {BEAGLE: ("beagle",), MALLET: ("mallet",)}


def test_word_count_and_vocabulary_files(tmp_path):
    counts = tmp_path / "counts.txt"
    counts.write_text("Tabby 600\ntabby 5\n\nmallet\t12\n")
    assert read_word_counts(counts) == {"tabby": 605, "mallet": 12}
    counts.write_text("tabby six hundred\n")
    with pytest.raises(GozError, match="counts.txt:1: expected 'word count'"):
        read_word_counts(counts)
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("the 0.1 0.2\nTabby 0.3 0.4\nmallet 0.5 0.6\n")
    assert read_vocabulary(vectors, ["tabby", "Mallet", "saw"]) == {"tabby", "mallet"}
