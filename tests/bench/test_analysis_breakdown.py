"""The global error breakdown (the original's Global Error Distribution), distances, and bad results folders."""

import numpy as np
import pytest
from split_fixtures import (
    ANIMAL,
    BEAGLE,
    CLAW,
    DOG,
    GINGER,
    HACKSAW,
    HUSKY,
    KITTEN,
    MALLET,
    POODLE,
    ROOT,
    SAW,
    SIAMESE,
    TABBY,
    TOOL,
    hierarchy,
    write_predictions,
)

from goz.bench import results
from goz.bench.analysis import analyze_errors, read_noisy
from goz.bench.analysis.common import read_runs
from goz.bench.analysis.distances import hop_matrix, pruned_parents
from goz.errors import GozError
from goz.splits.lemmas import LemmaFilter

# (true, top-1): exact, ancestor, descendant, wrong, exact, wrong, exact, wrong
PAIRS = [(BEAGLE, BEAGLE), (BEAGLE, DOG), (KITTEN, GINGER), (TABBY, SIAMESE), (TABBY, TABBY), (GINGER, HACKSAW),
         (GINGER, GINGER), (HACKSAW, BEAGLE)]


def test_breakdown_shares_follow_the_originals_summary(tmp_path):
    write_predictions(tmp_path / "eszsl_zsl.predictions.npz", PAIRS)
    noisy = tmp_path / "noisy.txt"
    noisy.write_text(f"# noisy images\n{TABBY}_3.JPEG\n{GINGER}_5\n")
    assert read_noisy(noisy) == {f"{TABBY}_3", f"{GINGER}_5"}
    # well named: one-word lemmas; ginger kitten is two words
    analysis = analyze_errors(tmp_path, hierarchy=hierarchy(), lemma_filter=LemmaFilter(sense="any", single_word=True),
                              noisy=read_noisy(noisy), out=tmp_path / "out", latex=True)
    b = analysis.runs[0].breakdown
    assert b.factors == ["visual", "structural", "semantic"] and b.skipped == {}
    # accuracy under each relaxation (visual, structural, semantic), counted by hand
    expected = {(0, 0, 0): 3 / 8, (0, 1, 0): 5 / 8, (1, 0, 0): 3 / 6, (1, 1, 0): 5 / 6,
                (0, 0, 1): 2 / 6, (0, 1, 1): 4 / 6, (1, 0, 1): 2 / 5, (1, 1, 1): 4 / 5}
    assert b.accuracy == pytest.approx(expected)
    assert b.samples[(1, 0, 1)] == 5 and b.samples[(0, 0, 0)] == 8
    gains = {"visual": (1 / 8 + 5 / 24 + 1 / 15 + 2 / 15) / 4, "structural": (1 / 4 + 1 / 3 + 1 / 3 + 2 / 5) / 4,
             "semantic": (-1 / 24 + 1 / 24 - 1 / 10 - 1 / 30) / 4}
    scale = (4 / 5 - 3 / 8) / sum(gains.values())
    assert b.shares == pytest.approx({"exact": 3 / 8, "model error": 1 / 5,
                                      **{k: v * scale for k, v in gains.items()}})
    assert sum(b.shares.values()) == pytest.approx(1.0)
    text = (tmp_path / "out" / "errors.md").read_text()
    assert "| eszsl | zsl | 8 | 37.50 | 13.20 | 32.60 | -3.30 | 20.00 |" in text
    assert (tmp_path / "out" / "errors_breakdown.png").read_bytes()[:4] == b"\x89PNG"
    assert r"\toprule" in (tmp_path / "out" / "errors.tex").read_text()
    csv = (tmp_path / "out" / "errors.csv").read_text()
    assert "eszsl,zsl,share visual," in csv and "accuracy relaxed: visual + semantic,0.4,5" in csv


def test_without_a_noise_list_the_visual_share_is_not_measured(tmp_path):
    write_predictions(tmp_path / "m_zsl.predictions.npz", PAIRS)
    b = analyze_errors(tmp_path, hierarchy=hierarchy(), out=tmp_path / "out").runs[0].breakdown
    assert b.factors == ["structural"] and set(b.skipped) == {"visual", "semantic"}
    assert b.shares == pytest.approx({"exact": 3 / 8, "structural": 2 / 8, "model error": 3 / 8})
    assert "Not measured: semantic: no lemma filter; visual: no list of noisy images (--noisy)" in \
        (tmp_path / "out" / "errors.md").read_text()
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{TABBY}_3\nnot-an-image\n")
    with pytest.raises(GozError, match=r"bad.txt:2: expected an image key"):
        read_noisy(bad)


def _write_result(directory, model, data, store):
    result = results.new_result(model=model, setting="zsl", data=data, seed=0,
                                fingerprints={"data": data, "train_store": store}, parameters={},
                                metrics={f"top{k}": 0.1 for k in range(1, 6)}, classes={}, inputs={}, run={})
    index = {BEAGLE: 0, TABBY: 1}
    predictions = results.Predictions([BEAGLE, TABBY], np.array([0, 1]), np.array([[0], [0]]),
                                      np.array([BEAGLE, TABBY]), np.array([1, 2]), data)
    results.save_result(directory, result, predictions)
    return index


def test_a_results_folder_of_mixed_data_is_refused(tmp_path):
    _write_result(tmp_path, "eszsl", "real", "a")
    _write_result(tmp_path, "conse", "real", "b")
    with pytest.raises(GozError, match="measured on different data"):
        analyze_errors(tmp_path, hierarchy=hierarchy())
    assert len(read_runs(tmp_path, allow_mixed=True)) == 2
    _write_result(tmp_path, "devise", "synthetic", "a")
    with pytest.raises(GozError, match="real and SYNTHETIC DATA results in one folder"):
        read_runs(tmp_path, allow_mixed=True)
    with pytest.raises(GozError, match="no such results folder"):
        read_runs(tmp_path / "absent")


def test_hops_in_wordnet_and_in_the_originals_pruned_tree():
    h = hierarchy()
    classes = [HUSKY, POODLE, CLAW, BEAGLE, MALLET, GINGER]
    # cat (one parent, only kitten below among the classes) and saw (only kitten) are contracted
    parents = pruned_parents(h, classes)
    assert "n00000012" not in parents and SAW not in parents
    assert parents[KITTEN] == {ANIMAL, TOOL} and parents[GINGER] == {KITTEN} and parents[DOG] == {ANIMAL}
    assert ROOT in parents and TABBY not in parents
    full = hop_matrix(h, [HUSKY, CLAW], [GINGER, BEAGLE, MALLET])
    pruned = hop_matrix(h, [HUSKY, CLAW], [GINGER, BEAGLE, MALLET], graph="pruned", classes=classes)
    assert full.tolist() == [[5, 2, 6], [5, 6, 2]]   # ginger-kitten-cat-animal-dog-husky
    assert pruned.tolist() == [[4, 2, 6], [4, 6, 2]]  # ginger-kitten-animal-dog-husky
    assert np.all(pruned <= full)
    with pytest.raises(GozError, match="not in the pruned tree"):
        hop_matrix(h, [HUSKY], [TABBY], graph="pruned", classes=[HUSKY, GINGER])
    with pytest.raises(GozError, match="unknown hop graph"):
        hop_matrix(h, [HUSKY], [TABBY], graph="tree")
