"""Facts of the real WordNet 3.0 noun hierarchy that the split tools rely on."""

from goz.splits import check_split, hop_split
from goz.splits.hops import nearest_sources
from goz.splits.lemmas import LemmaFilter, filter_lemmas
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


def test_build_on_wordnet_with_every_lemma_condition(tmp_path, capsys):
    from goz import splits
    from goz.cli import main

    release = tmp_path / "ReleaseStatus.xml"
    release.write_text("<ReleaseStatus>" + "".join(
        f'<synset wnid="{w}" numImages="200"/>' for w in (ESKIMO_DOG, CRANE_BIRD, TANK, DOG, BIG_CAT, HUSKY))
        + '<synset wnid="n02085620" numImages="3"/></ReleaseStatus>')
    seen = splits.save([HUSKY], tmp_path / "seen.txt")
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("tank 0.1 0.2\nbig_cat 0.3 0.4\ncrane 0.5 0.6\ndog 0.7 0.8\n")
    counts = tmp_path / "counts.txt"
    counts.write_text("tank 900\nbig_cat 800\ncrane 700\ndog 5000000\n")
    out = tmp_path / "built.txt"
    assert main(["split", "build", "--seen", str(seen), "--counts", str(release), "--size", "2", "--out", str(out),
                 "--vocabulary", str(vectors), "--word-counts", str(counts), "--min-word-count", "500",
                 "--max-word-count", "1000000"]) == 0
    printed = capsys.readouterr().out
    # 5 candidates; the lemma filter keeps tank and big cat (crane: not its first sense; Eskimo dog:
    # no vector; dog: too frequent); nothing else to drop.
    assert "       5  at least 100 images" in printed and "       2  lemma filter" in printed
    assert splits.load(out) == sorted([TANK, BIG_CAT])
    assert main(["split", "check", str(out), "--seen", str(seen), "--counts", str(release), "--min-images", "100"]) == 0
