"""`build_split` / `goz split build`: image bounds, random draws from the candidate pool, the pool written out."""

import pytest
from split_fixtures import (
    BANDSAW,
    BEAGLE,
    COUNTS,
    GINGER,
    HACKSAW,
    LEMMAS,
    MALLET,
    SEEN,
    SIAMESE,
    TABBY,
    hierarchy,
    write_edges,
)

from goz import splits
from goz.cli import main
from goz.errors import GozError, SplitError
from goz.splits import build_split
from goz.splits.build import random_draw

# After the hierarchy filter, the leaves not seen and with 200 images: ginger, beagle, tabby, mallet, hacksaw.
POOL = sorted([GINGER, BEAGLE, TABBY, MALLET, HACKSAW])


def test_random_draws_come_from_the_pool_and_repeat_under_a_seed():
    built = build_split(SEEN, COUNTS, None, sample=3, seed=4, hierarchy=hierarchy(), lemma_filter=None)
    assert built.candidates == POOL and set(built.unseen) <= set(POOL) and len(built.unseen) == 3
    assert "random draw (seed 4)" in built.stages and built.options["size"] == "random draw of 3"
    again = build_split(SEEN, COUNTS, None, sample=3, seed=4, hierarchy=hierarchy(), lemma_filter=None)
    assert again.unseen == built.unseen
    draws = {tuple(random_draw(POOL, 3, seed)) for seed in range(20)}
    assert len(draws) > 3                                         # seeds give different draws
    assert random_draw(list(reversed(POOL)), 3, 4) == built.unseen  # the pool's order does not matter
    with pytest.raises(SplitError, match="only 5 candidates pass the filters, a random draw of 6"):
        build_split(SEEN, COUNTS, None, sample=6, hierarchy=hierarchy(), lemma_filter=None)
    with pytest.raises(GozError, match="either a split size"):
        build_split(SEEN, COUNTS, 2, sample=2, hierarchy=hierarchy(), lemma_filter=None)


def test_image_bounds_and_available_classes():
    counts = COUNTS | {BEAGLE: 50, TABBY: 400, BANDSAW: 120, SIAMESE: 99}
    built = build_split(SEEN, counts, None, sample=1, hierarchy=hierarchy(), lemma_filter=None,
                        min_images=100, max_images=300)
    # [100, 300): beagle (50) and tabby (400) fall out, bandsaw (120) comes in; siamese (99) stays out
    assert set(built.candidates) == {GINGER, MALLET, HACKSAW, BANDSAW}
    assert "at least 100 images, fewer than 300" in built.stages
    built = build_split(SEEN, counts, None, sample=1, hierarchy=hierarchy(), lemma_filter=None,
                        available=[GINGER, MALLET])
    assert built.candidates == sorted([GINGER, MALLET]) and "among the 2 available classes" in built.stages
    with pytest.raises(GozError, match="must be above --min-images"):
        build_split(SEEN, counts, 2, hierarchy=hierarchy(), lemma_filter=None, min_images=100, max_images=100)


def test_cli_sample_single_word_and_candidates(tmp_path, capsys):
    edges = tmp_path / "edges.tsv"
    write_edges(edges)
    seen = splits.save(SEEN, tmp_path / "seen.txt")
    release = tmp_path / "ReleaseStatus.xml"
    release.write_text("<ReleaseStatus>" + "".join(f'<synset wnid="{w}" numImages="{n}"/>' for w, n in COUNTS.items())
                       + "</ReleaseStatus>")
    names = tmp_path / "lemmas.tsv"   # an edges file names no class: the lemmas come from a file
    names.write_text("".join(f"{w}\t{','.join(l)}\n" for w, l in LEMMAS.items()))
    counts = tmp_path / "counts.txt"
    counts.write_text("beagle 900\ntabby 40\nmallet 5000\nhacksaw 700\nginger_kitten 800\n")
    out, pool = tmp_path / "draw.txt", tmp_path / "pool.txt"
    assert main(["split", "build", "--seen", str(seen), "--counts", str(release), "--sample", "2", "--seed", "3",
                 "--out", str(out), "--write-candidates", str(pool), "--hierarchy", str(edges), "--single-word",
                 "--lemmas", str(names),
                 "--word-counts", str(counts), "--min-word-count", "500", "--max-word-count", "1000"]) == 0
    printed = capsys.readouterr().out
    # the word bounds keep beagle and hacksaw; ginger_kitten is two words
    assert splits.load(pool) == sorted([BEAGLE, HACKSAW]) and sorted(splits.load(out)) == sorted([BEAGLE, HACKSAW])
    assert "random draw (seed 3)" in printed and "the pool of 2 candidates" in printed
    assert "candidate pool of goz split build" in pool.read_text().splitlines()[0]
    with pytest.raises(SystemExit) as stopped:   # neither --size nor --sample: a usage error
        main(["split", "build", "--seen", str(seen), "--counts", str(release), "--out", str(out),
              "--hierarchy", str(edges)])
    assert stopped.value.code == 2
    assert "one of the arguments --size --sample is required" in capsys.readouterr().err
