"""Facts of the real WordNet 3.0 noun hierarchy that the split tools rely on."""

from goz.split import check_split, hop_split
from goz.split.hops import nearest_sources
from goz.split.lemmas import LemmaFilter, filter_lemmas
from goz.wordnet import load

DOG, HUSKY, ESKIMO_DOG, HUSKY_PARENT = "n02084071", "n02110185", "n02109961", "n02109811"
CRANE_BIRD, CRANE_MACHINE, TANK, BIG_CAT = "n02012849", "n03126707", "n04389033", "n02127808"


def test_check_flags_real_ancestors():
    report = check_split([HUSKY, ESKIMO_DOG], [DOG], hierarchy=load())
    assert {(v.rule, v.wnid) for v in report.violations} == {("ancestor", HUSKY), ("ancestor", ESKIMO_DOG)}
    assert check_split([HUSKY, CRANE_BIRD, TANK], hierarchy=load()).ok


def test_hops_on_wordnet():
    h = load()
    assert h.parents(HUSKY) == (HUSKY_PARENT,)
    # husky -> sled dog -> working dog -> dog; sled dog -> Eskimo dog
    assert h.parents(ESKIMO_DOG) == ("n02103406",) and h.ancestors(HUSKY_PARENT) >= {"n02103406", DOG}
    within = hop_split([HUSKY], [HUSKY_PARENT, ESKIMO_DOG, DOG, TANK], 3, hierarchy=h)
    assert within == {HUSKY_PARENT: 1, ESKIMO_DOG: 3, DOG: 3} and list(within)[1:] == [ESKIMO_DOG, DOG]
    assert nearest_sources(h, ESKIMO_DOG, {HUSKY, TANK}) == (3, [HUSKY])


def test_most_frequent_sense_on_wordnet():
    # "crane" is first Stephen Crane: neither the bird nor the machine keeps it; "cat" is first the
    # true cat, so big cat keeps only "big_cat".
    kept = filter_lemmas(load(), [CRANE_BIRD, CRANE_MACHINE, TANK, DOG, BIG_CAT], LemmaFilter())
    assert kept[DOG] == ("dog", "domestic_dog", "Canis_familiaris")
    assert kept[BIG_CAT] == ("big_cat",) and CRANE_BIRD not in kept and CRANE_MACHINE not in kept
    assert kept[TANK][0] == "tank"
