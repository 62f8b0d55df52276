import numpy as np
import pytest

from goz.bench.analysis import analyze_bias, analyze_errors, trivial_semantics
from goz.errors import GozError
from goz.store import write_store

from split_fixtures import (BEAGLE, CLAW, GINGER, HUSKY, KITTEN, MALLET, PAIRS, POODLE, SEEN, TABBY, hierarchy,
                            write_predictions)


def test_error_categories_on_a_hand_built_case(tmp_path):
    write_predictions(tmp_path / "eszsl_zsl.predictions.npz", PAIRS)
    write_predictions(tmp_path / "conse_gzsl.predictions.npz", [(BEAGLE, BEAGLE), (TABBY, TABBY)])
    analysis = analyze_errors(tmp_path, hierarchy=hierarchy(), max_hops=4, seen=SEEN, out=tmp_path / "out")
    runs = {(r.model, r.setting): r for r in analysis.runs}
    eszsl = runs[("eszsl", "zsl")]
    assert eszsl.categories == {"correct": 1, "ancestor": 1, "descendant": 1, "sibling": 2,
                                "within 4 hops": 1, "unrelated": 1}
    assert eszsl.class_accuracy == {BEAGLE: 0.25, KITTEN: 0.0, TABBY: 0.0}
    assert runs[("conse", "gzsl")].categories == {"correct": 2}
    assert analyze_errors(tmp_path, hierarchy=hierarchy(), max_hops=3).runs[1].categories["unrelated"] == 2
    text = (tmp_path / "out" / "errors.md").read_text()
    assert "| eszsl | zsl | 7 | 14.29 | 14.29 | 14.29 | 28.57 | 14.29 | 14.29 |" in text
    for name in ("errors.png", "factors_eszsl_zsl.png", "factors_conse_gzsl.png"):
        assert (tmp_path / "out" / name).read_bytes()[:4] == b"\x89PNG"


def test_per_class_accuracy_correlates_with_factors(tmp_path):
    # Accuracy falls with hop distance to the seen classes: beagle (2 hops) 1.0, mallet (2) 1.0,
    # tabby (4) 0.5, ginger (5) 0.0.
    pairs = [(BEAGLE, BEAGLE), (MALLET, MALLET), (TABBY, TABBY), (TABBY, GINGER), (GINGER, TABBY)]
    write_predictions(tmp_path / "m_zsl.predictions.npz", pairs, [BEAGLE, MALLET, TABBY, GINGER])
    run = analyze_errors(tmp_path, hierarchy=hierarchy(), seen=SEEN,
                         counts={BEAGLE: 10, MALLET: 20, TABBY: 30, GINGER: 40}).runs[0]
    pearson, spearman = run.correlations["hop distance to seen"]
    assert pearson < -0.9 and spearman < -0.9
    assert run.correlations["image count"][1] == pytest.approx(-0.9486833, abs=1e-6)
    assert np.isnan(run.correlations["lemma usage count"][0])   # every synthetic lemma counts 1


def test_bad_predictions_files(tmp_path):
    with pytest.raises(GozError, match="no \\*.predictions.npz"):
        analyze_errors(tmp_path, hierarchy=hierarchy())
    np.savez(tmp_path / "m_zsl.predictions.npz", candidates=np.array([BEAGLE]), true=np.array([3]),
             topk=np.array([[0]]))
    with pytest.raises(GozError, match="not indices"):
        analyze_errors(tmp_path, hierarchy=hierarchy())
    np.savez(tmp_path / "m_zsl.predictions.npz", candidates=np.array(["n09999999"]), true=np.array([0]),
             topk=np.array([[0]]))
    with pytest.raises(GozError, match="not in the hierarchy"):
        analyze_errors(tmp_path, hierarchy=hierarchy())
    (tmp_path / "m_zsl.predictions.npz").write_bytes(b"garbage")
    with pytest.raises(GozError, match="not a predictions file"):
        analyze_errors(tmp_path, hierarchy=hierarchy())


def test_trivial_vectors_and_structural_windows(tmp_path):
    analysis = analyze_bias(SEEN, [BEAGLE, MALLET, TABBY, GINGER], hierarchy=hierarchy(), out=tmp_path)
    assert analysis.distance == {BEAGLE: 2, MALLET: 2, TABBY: 4, GINGER: 5}
    assert analysis.nearest[GINGER] == [HUSKY, POODLE, CLAW]
    semantics = trivial_semantics(SEEN, analysis.nearest)
    np.testing.assert_allclose(semantics.vector(HUSKY), [1, 0, 0])
    np.testing.assert_allclose(semantics.vector(BEAGLE), [0.5, 0.5, 0])
    np.testing.assert_allclose(semantics.vector(MALLET), [0, 0, 1])
    np.testing.assert_allclose(semantics.vector(GINGER), [1 / 3] * 3, rtol=1e-6)
    text = (tmp_path / "bias.md").read_text()
    # beagle and tabby share [husky, poodle]: only mallet has a distinct vector among the 2-hop classes
    assert "| 2 hops | 2 | 1.50 | 50.00 |" in text and "| all | 4 | 2.00 | 50.00 |" in text
    assert (tmp_path / "bias.png").exists()
    with pytest.raises(GozError, match="also seen"):
        analyze_bias(SEEN, [HUSKY], hierarchy=hierarchy())
    with pytest.raises(GozError, match="both --train and --test"):
        analyze_bias(SEEN, [BEAGLE], hierarchy=hierarchy(), train=tmp_path / "x.h5")


def test_trivial_baseline_finds_a_planted_structural_bias(tmp_path):
    # Unseen images sit at the mean of their nearest seen classes: the structure alone names them.
    rng = np.random.default_rng(0)
    means = {w: 3.0 * rng.normal(size=16) for w in SEEN}

    def images(center, n):
        return (center + 0.1 * rng.normal(size=(n, 16))).astype(np.float32), np.arange(n)

    write_store(tmp_path / "train.h5", {w: images(means[w], 20) for w in SEEN})
    planted = {BEAGLE: [HUSKY, POODLE], MALLET: [CLAW]}
    write_store(tmp_path / "test.h5", {w: images(np.mean([means[s] for s in near], axis=0), 10)
                                       for w, near in planted.items()})
    analysis = analyze_bias(SEEN, list(planted), hierarchy=hierarchy(), train=tmp_path / "train.h5",
                            test=tmp_path / "test.h5", model_params={"gamma": 1.0, "lam": 1.0}, out=tmp_path)
    assert analysis.nearest == planted
    assert analysis.class_accuracy == {BEAGLE: 1.0, MALLET: 1.0}
    assert "| 2 hops | 2 | 1.50 | 100.00 | 100.00 |" in (tmp_path / "bias.md").read_text()
