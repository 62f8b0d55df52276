import numpy as np
import pytest

from goz import splits
from goz.errors import GozError, SplitError
from goz.semantics import SemanticsTable
from goz.splits import check_split, compare_splits, hop_split, load_hierarchy
from goz.splits.build import (build_split, dispatch, excluded_branches, hierarchy_filter, target_distribution,
                             _seeded_rank)
from goz.catalog import read_testset
from goz.splits.hops import nearest_sources
from goz.wordnet import Hierarchy

from split_fixtures import (ANIMAL, BANDSAW, BEAGLE, CAT, CLAW, DOG, EDGES, GINGER, HACKSAW, HUSKY,
                            COUNTS, KITTEN, LEAVES, MALLET, POODLE, ROOT, SAW, SEEN, SIAMESE, TABBY, TOOL, hierarchy,
                            write_edges)


# -- check ------------------------------------------------------------------------------------------
def test_a_clean_split_passes():
    report = check_split([BEAGLE, TABBY, MALLET], SEEN, hierarchy=hierarchy(),
                         counts={w: 5 for w in LEAVES}, semantics=SemanticsTable(LEAVES, np.eye(len(LEAVES))))
    assert report.ok and report.violations == []
    assert "ok: 3 unseen + 3 seen classes" in report.summary()


def test_every_violation_is_reported():
    report = check_split([DOG, BEAGLE, HUSKY, "n99999999"], SEEN, hierarchy=hierarchy(),
                         counts={HUSKY: 3, POODLE: 3, CLAW: 0, DOG: 3, BEAGLE: 3}, min_images=1,
                         semantics=SemanticsTable([HUSKY, POODLE, CLAW, DOG], np.eye(4)))
    found = {(v.rule, v.wnid) for v in report.violations}
    assert found == {("overlap", HUSKY), ("unknown", "n99999999"),
                     ("ancestor", HUSKY), ("ancestor", POODLE), ("ancestor", BEAGLE),
                     ("images", CLAW), ("images", "n99999999"),
                     ("vector", BEAGLE), ("vector", "n99999999")}
    assert not report.ok and "FAILED: 9 violations" in report.summary()
    assert any(f"descendant of unseen class {DOG}" in v.message for v in report.violations if v.wnid == BEAGLE)


def test_ancestor_within_the_unseen_split_alone():
    report = check_split([CAT, KITTEN, GINGER], hierarchy=hierarchy())
    assert {(v.rule, v.wnid) for v in report.violations} == {("ancestor", KITTEN), ("ancestor", GINGER)}
    assert sum(v.wnid == GINGER for v in report.violations) == 2   # below both cat and kitten


# -- build steps -------------------------------------------------------------------------------------
def test_hierarchy_filter_is_greedy_deepest_first():
    h = hierarchy()
    candidates = [DOG, BEAGLE, CAT, TABBY, KITTEN, GINGER, SAW, HACKSAW, TOOL, MALLET]
    accepted = hierarchy_filter(h, candidates, SEEN, _seeded_rank(h, 0))
    assert accepted[0] == GINGER                    # the deepest candidate comes first
    assert set(accepted) == {GINGER, BEAGLE, TABBY, HACKSAW, MALLET}


def test_branch_exclusions_keep_nodes_with_another_parent():
    h = hierarchy()
    assert excluded_branches(h, [SAW], []) == {SAW, HACKSAW, BANDSAW}      # kitten is also under cat
    assert excluded_branches(h, [], [CAT]) == {TABBY, SIAMESE}             # kitten is also under saw
    assert excluded_branches(h, [SAW], [CAT]) == {SAW, HACKSAW, BANDSAW, TABBY, SIAMESE, KITTEN, GINGER}
    with pytest.raises(GozError, match="n09999999"):
        excluded_branches(h, ["n09999999"], [])


def test_target_distribution_and_dispatch():
    np.testing.assert_allclose(target_distribution(np.array([3.0, 1.0]), np.array([9.0, 9.0]), 1.0), [0.75, 0.25])
    np.testing.assert_allclose(target_distribution(np.array([3.0, 1.0]), np.array([9.0, 9.0]), 0.0), [0.25, 0.75])
    np.testing.assert_allclose(target_distribution(np.array([3.0, 1.0]), np.array([9.0, 9.0]), 0.5), [0.5, 0.5])
    np.testing.assert_allclose(target_distribution(np.array([0.0, 0.0]), np.array([1.0, 3.0]), 1.0), [0.25, 0.75])
    np.testing.assert_allclose(target_distribution(np.array([4.0]), np.array([2.0]), 0.0), [1.0])
    assert dispatch(4, np.array([10, 10]), np.array([0.75, 0.25]), np.array([0, 1])).tolist() == [3, 1]
    assert dispatch(4, np.array([1, 10]), np.array([0.75, 0.25]), np.array([0, 1])).tolist() == [1, 3]
    equal = np.full(3, 1 / 3)
    assert dispatch(5, np.array([9, 9, 9]), equal, np.array([2, 0, 1])).tolist() == [1, 2, 2]
    assert dispatch(5, np.array([9, 9, 9]), equal, np.array([0, 2, 1])).tolist() == [2, 1, 2]
    assert dispatch(3, np.array([0, 5, 5]), np.array([0.8, 0.1, 0.1]), np.array([0, 1, 2])).sum() == 3


def test_distribution_matching_follows_the_seen_distribution():
    # After the filters: beagle, tabby, ginger under animal (2 seen); mallet, hacksaw under tool (1 seen).
    for seed in range(6):
        unseen = set(build_split(SEEN, COUNTS, 3, hierarchy=hierarchy(), lemma_filter=None, seed=seed).unseen)
        assert {BEAGLE, MALLET} < unseen and len(unseen & {TABBY, GINGER}) == 1 and HACKSAW not in unseen
    for seed in range(6):
        unseen = set(build_split(SEEN, COUNTS, 3, hierarchy=hierarchy(), lemma_filter=None, seed=seed,
                                 ratio=0.0).unseen)
        assert {MALLET, HACKSAW} < unseen and len(unseen & {TABBY, GINGER}) == 1 and BEAGLE not in unseen
    seeds = {tuple(build_split(SEEN, COUNTS, 3, hierarchy=hierarchy(), lemma_filter=None, seed=s).unseen)
             for s in range(8)}
    assert len(seeds) == 2   # the only free choice, tabby or ginger, depends on the seed


def test_build_is_deterministic_and_passes_check(tmp_path):
    h = hierarchy()
    first = build_split(SEEN, COUNTS, 4, hierarchy=h, lemma_filter=None, seed=3, report_depth=1,
                        out=tmp_path / "split.txt")
    again = build_split(SEEN, COUNTS, 4, hierarchy=h, lemma_filter=None, seed=3)
    assert first.unseen == again.unseen and len(first.unseen) == 4
    assert check_split(first.unseen, SEEN, hierarchy=h, counts=COUNTS, min_images=100).ok
    assert splits.load(tmp_path / "split.txt") == first.unseen
    report = (tmp_path / "split.txt.report.md").read_text()
    assert "| hierarchy filter | 5 |" in report and "| distribution matching | 4 |" in report
    assert (tmp_path / "split.txt.report.png").read_bytes()[:4] == b"\x89PNG"
    assert {b[0]: b[1:] for b in first.branches} == {ANIMAL: (2, 3, 3), TOOL: (1, 2, 1)} or \
        {b[0]: b[1:] for b in first.branches} == {ANIMAL: (2, 3, 2), TOOL: (1, 2, 2)}


def test_build_counts_min_images_and_too_few_candidates():
    built = build_split(SEEN, COUNTS, 2, hierarchy=hierarchy(), lemma_filter=None, min_images=100,
                        exclude=[SAW])
    assert built.stages == {"at least 100 images": 13, "branch exclusions": 11, "hierarchy filter": 4,
                            "distribution matching": 2}
    with pytest.raises(SplitError, match="only 5 candidates pass the filters, 6 requested"):
        build_split(SEEN, COUNTS, 6, hierarchy=hierarchy(), lemma_filter=None)
    with pytest.raises(GozError, match="ratio"):
        build_split(SEEN, COUNTS, 2, hierarchy=hierarchy(), lemma_filter=None, ratio=1.5)


# -- hops ---------------------------------------------------------------------------------------------
def test_hop_split_and_nearest_seen_classes():
    h = hierarchy()
    within = hop_split(SEEN, [TABBY, BEAGLE, HUSKY, MALLET, GINGER, CAT, HACKSAW], 3, hierarchy=h)
    assert within == {BEAGLE: 2, MALLET: 2, CAT: 3}
    assert list(within) == [BEAGLE, MALLET, CAT]
    assert hop_split(SEEN, [GINGER, TABBY], 5, hierarchy=h) == {TABBY: 4, GINGER: 5}
    assert nearest_sources(h, BEAGLE, set(SEEN)) == (2, [HUSKY, POODLE])
    assert nearest_sources(h, GINGER, set(SEEN)) == (5, [HUSKY, POODLE, CLAW])
    assert nearest_sources(h, HUSKY, set(SEEN)) == (0, [HUSKY])
    with pytest.raises(GozError, match="at least 1"):
        hop_split(SEEN, [TABBY], 0, hierarchy=h)
    with pytest.raises(GozError, match="n09999999"):
        hop_split(SEEN, ["n09999999"], 2, hierarchy=h)


def test_compare_splits_overlap_and_histograms(tmp_path):
    comparison = compare_splits([BEAGLE, TABBY, GINGER], [BEAGLE, MALLET], names=("x", "y"), seen=SEEN,
                                hierarchy=hierarchy(), out=tmp_path)
    assert comparison.common == 1 and comparison.sizes == (3, 2)
    assert comparison.histograms == {"x": {2: 1, 4: 1, 5: 1}, "y": {2: 2}}
    text = (tmp_path / "compare.md").read_text()
    assert "| x | 1 | 1 | 1 | 1 | 1 |" in text and "| y | 2 | 0 | 0 | 2 | 2 |" in text
    assert (tmp_path / "compare.png").exists()


def test_standard_test_sets_are_registered_and_read(tmp_path):
    assert {"2-hops", "3-hops", "all"} <= set(splits.BUILTIN)
    assert splits.BUILTIN["2-hops"].asset.sha256.startswith("3014729204d9")  # the shipped copy, checked on use
    path = tmp_path / "testsets.json"
    path.write_text('{"train": ["n00000111"], "2-hops": ["n00000113", "n00000212"], "3-hops": []}')
    assert read_testset(path, "2-hops") == [BEAGLE, MALLET]
    assert splits.BUILTIN["2-hops"].read(path) == [BEAGLE, MALLET]
    with pytest.raises(SplitError, match="'all'"):
        splits.BUILTIN["all"].read(path)
    path.write_text("{not json")
    with pytest.raises(SplitError, match="not the ImageNet test-sets JSON"):
        splits.BUILTIN["2-hops"].read(path)


def test_edges_file_hierarchy(tmp_path):
    path = tmp_path / "edges.tsv"
    write_edges(path)
    h = load_hierarchy(path)
    assert len(h) == 18 and h.ancestors(GINGER) == {KITTEN, CAT, SAW, ANIMAL, TOOL, ROOT}
    path.write_text(f"{HUSKY}\t{DOG}\n{DOG}\t{ANIMAL}\n{ANIMAL}\t{HUSKY}\n{CAT}\t{ANIMAL}\n")
    with pytest.raises(GozError, match="cycle"):
        load_hierarchy(path)
    path.write_text(f"{HUSKY}\t{DOG}\t{ANIMAL}\n")
    with pytest.raises(GozError, match=":1: expected"):
        load_hierarchy(path)
    assert len(EDGES) == 18


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_built_splits_always_pass_check_on_random_dags(seed):
    rng = np.random.default_rng(seed)
    nodes = [f"n{i:08d}" for i in range(400)]
    # Each node after the first has one to three parents among the nodes before it: a random DAG.
    edges = [(nodes[i], nodes[int(p)]) for i in range(1, len(nodes))
             for p in set(rng.integers(0, i, size=rng.integers(1, 4)).tolist())]
    h = Hierarchy.from_edges(edges)
    leaves = [w for w in nodes if not h.children(w)]
    seen = rng.choice(leaves, size=len(leaves) // 4, replace=False).tolist()
    counts = {w: int(rng.integers(0, 300)) for w in nodes} | {w: 300 for w in seen}
    for ratio in (0.0, 0.5, 1.0):
        built = build_split(seen, counts, 10, hierarchy=h, lemma_filter=None, ratio=ratio, seed=seed,
                            exclude_below=[nodes[5]])
        assert len(built.unseen) == 10
        report = check_split(built.unseen, seen, hierarchy=h, counts=counts, min_images=100)
        assert report.ok, report.summary()
