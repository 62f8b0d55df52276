"""`goz split` and `goz analyze` end to end on the synthetic hierarchy (an edges file)."""

from goz import splits
from goz.cli import main

from split_fixtures import (BEAGLE, COUNTS, DOG, GINGER, HACKSAW, KITTEN, MALLET, PAIRS, SEEN, TABBY, write_edges,
                            write_predictions)


def _inputs(tmp_path):
    edges = tmp_path / "edges.tsv"
    write_edges(edges)
    seen = splits.save(SEEN, tmp_path / "seen.txt")
    release = tmp_path / "ReleaseStatus.xml"
    release.write_text("<ReleaseStatus>" + "".join(f'<synset wnid="{w}" numImages="{n}"/>' for w, n in COUNTS.items())
                       + "</ReleaseStatus>")
    return str(edges), str(seen), str(release)


def test_split_check_exit_codes(tmp_path, capsys):
    edges, seen, release = _inputs(tmp_path)
    good = splits.save([BEAGLE, TABBY, MALLET], tmp_path / "good.txt")
    assert main(["split", "check", str(good), "--seen", seen, "--hierarchy", edges, "--counts", release]) == 0
    assert "ok: 3 unseen + 3 seen classes pass every check" in capsys.readouterr().out
    bad = splits.save([DOG, KITTEN, GINGER], tmp_path / "bad.txt")
    assert main(["split", "check", str(bad), "--seen", seen, "--hierarchy", edges, "--counts", release,
                 "--min-images", "300"]) == 1
    out = capsys.readouterr().out
    assert f"ancestor {GINGER}" in out and f"images   {DOG}" in out and "FAILED" in out
    assert main(["split", "check", str(tmp_path / "missing.txt"), "--hierarchy", edges]) == 2
    assert "goz: error: unknown split" in capsys.readouterr().err


def test_split_build_then_check_hops_and_compare(tmp_path, capsys):
    edges, seen, release = _inputs(tmp_path)
    out = tmp_path / "built.txt"
    assert main(["split", "build", "--seen", seen, "--counts", release, "--size", "3", "--out", str(out),
                 "--hierarchy", edges, "--no-lemma-filter", "--seed", "1"]) == 0
    assert "distribution matching" in capsys.readouterr().out
    built = splits.load(out)
    assert len(built) == 3 and (tmp_path / "built.txt.report.png").exists()
    assert main(["split", "check", str(out), "--seen", seen, "--hierarchy", edges, "--counts", release]) == 0
    candidates = splits.save([TABBY, BEAGLE, MALLET, GINGER, HACKSAW], tmp_path / "candidates.txt")
    assert main(["split", "hops", "--seen", seen, "--candidates", str(candidates), "--max-hops", "2",
                 "--hierarchy", edges, "--out", str(tmp_path / "near.txt")]) == 0
    assert splits.load(tmp_path / "near.txt") == [BEAGLE, MALLET]
    capsys.readouterr()
    assert main(["split", "compare", str(out), str(tmp_path / "near.txt"), "--seen", seen, "--hierarchy", edges,
                 "--out", str(tmp_path / "cmp")]) == 0
    assert "## Hop distance to the nearest seen class" in capsys.readouterr().out
    assert (tmp_path / "cmp" / "compare.png").exists()
    assert main(["split", "build", "--seen", seen, "--counts", release, "--size", "30", "--out", str(out),
                 "--hierarchy", edges, "--no-lemma-filter"]) == 2
    assert splits.load(out) == built   # a failed build leaves the earlier split untouched


def test_analyze_errors_and_bias_commands(tmp_path, capsys):
    edges, seen, _ = _inputs(tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    write_predictions(results / "eszsl_zsl.predictions.npz", PAIRS)
    assert main(["analyze", "errors", str(results), "--hierarchy", edges, "--seen", seen]) == 0
    assert "| eszsl | zsl | 7 |" in capsys.readouterr().out
    assert (results / "analysis" / "errors.png").exists()
    unseen = splits.save([BEAGLE, MALLET, TABBY], tmp_path / "unseen.txt")
    assert main(["analyze", "bias", "--seen", seen, "--unseen", str(unseen), "--hierarchy", edges,
                 "--out", str(tmp_path / "bias")]) == 0
    assert "| 2 hops | 2 |" in capsys.readouterr().out
    assert main(["analyze", "bias", "--seen", seen, "--unseen", str(unseen), "--hierarchy", edges,
                 "--param", "=3"]) == 2


def test_on_the_synthetic_benchmark_of_goz_demo(tmp_path, capsys):
    from goz.synthetic import make_benchmark

    data = make_benchmark(tmp_path / "data", seed=0, n_seen=20, n_unseen=10, train_per_class=10, test_per_class=5,
                          seen_test_per_class=2, dim=64, semantic_dim=16)
    common = ["--seen", str(data.seen), "--hierarchy", str(data.hierarchy)]
    assert main(["split", "check", str(data.unseen), *common, "--counts", str(data.test), "--semantics",
                 str(data.semantics)]) == 0
    assert "ok: 10 unseen + 20 seen classes" in capsys.readouterr().out
    assert main(["analyze", "bias", "--unseen", str(data.unseen), *common, "--train", str(data.train),
                 "--test", str(data.test), "--param", "progress=false", "--out", str(tmp_path / "bias")]) == 0
    assert "trivial baseline top-1 % (eszsl, per class)" in (tmp_path / "bias" / "bias.md").read_text()
