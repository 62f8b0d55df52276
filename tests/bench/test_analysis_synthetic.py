"""Every analysis on the demo's data (goz.demo.QUICK_SIZES): sweeps (and a killed one resumed), the error
factors, the population, the structural bias side by side, LaTeX tables; bad inputs."""

import json

import numpy as np
import pytest

from goz import splits
from goz.bench.analysis.bias import compare_bias
from goz.bench.analysis.factors import analyze_factors
from goz.bench.analysis.population import analyze_population
from goz.bench.analysis.sweep import sweep
from goz.bench.run import run_bench
from goz.cli import main
from goz.errors import GozError
from goz.splits import build_split, read_counts
from goz.splits.lemmas import LemmaFilter, read_lemma_names, sense_matches, with_lemmas
from goz.splits.word_counts import class_word_count, read_word_counts
from goz.store import FeatureStore
from goz.wordnet.edges import load_hierarchy

ESZSL = {"eszsl": {"gamma": 10.0, "lam": 10000.0}}     # the demo's budget
SGCN = {"sgcn": {"epochs": 20, "hidden": [16]}}         # the contract tests' budget


@pytest.fixture(scope="module")
def named(synthetic_benchmark, tmp_path_factory):
    """The quick benchmark with names: unseen class i is `word{i}`, counted 10 + i (i < 7), 100 + 10 i
    (i < 14) or 5000 + i times; eight of them are also called "shared" (one primary sense, seven secondary)."""
    root = tmp_path_factory.mktemp("named")
    seen, unseen = splits.load(synthetic_benchmark.seen), splits.load(synthetic_benchmark.unseen)
    lemmas, counts = root / "lemmas.tsv", root / "counts.txt"
    lines = [f"{w}\tseen{i}" for i, w in enumerate(seen)]
    lines += [f"{w}\tword{i}" + (",shared" if i % 2 == 0 and i < 16 else "") for i, w in enumerate(unseen)]
    lemmas.write_text("\n".join(lines) + "\n")
    word_count = {f"word{i}": (10 + i if i < 7 else 100 + 10 * i if i < 14 else 5000 + i) for i in range(len(unseen))}
    counts.write_text("".join(f"{w} {n}\n" for w, n in word_count.items()) + "shared 3\n")
    hierarchy = load_hierarchy(synthetic_benchmark.hierarchy)
    hierarchy = with_lemmas(hierarchy, read_lemma_names(lemmas, hierarchy))
    results = root / "results"
    run_bench(["eszsl"], ["zsl"], synthetic_benchmark.train, synthetic_benchmark.test, synthetic_benchmark.semantics,
              seen, unseen, out=results, hierarchy=synthetic_benchmark.hierarchy, hyperparameters=ESZSL,
              threads=1, progress=False)
    return {"b": synthetic_benchmark, "seen": seen, "unseen": unseen, "lemmas": lemmas, "counts": counts,
            "word_count": word_count, "hierarchy": hierarchy, "results": results,
            "image_counts": read_counts(synthetic_benchmark.test)}


def _sweep(named, kind, out, **options):
    b = named["b"]
    defaults = {"seen": named["seen"], "counts": named["image_counts"], "hierarchy": named["hierarchy"],
                "train": b.train, "test": b.test, "semantics": b.semantics, "models": ["eszsl"],
                "hyperparameters": ESZSL, "bench_hierarchy": b.hierarchy, "classes": 3, "draws": 2, "threads": 1,
                "progress": False, "out": out}
    return sweep(kind, **(defaults | options))


def test_word_sweep_draws_within_each_bin_and_records_an_empty_one(named, tmp_path):
    counts = read_word_counts(named["counts"])
    result = _sweep(named, "words", tmp_path, bins=[0, 30, 1000, 100000, 200000],
                    lemma_filter=LemmaFilter(word_counts=counts), word_source=named["counts"], latex=True)
    assert [b.label for b in result.bins] == ["(0, 30)", "(30, 1000)", "(1000, 100000)", "(100000, 200000)"]
    assert set(result.skipped) == {"(100000, 200000)"} and "only 0 candidates" in result.skipped["(100000, 200000)"]
    assert len(result.draws) == 6
    for draw in result.draws:
        low, high = [(0, 30), (30, 1000), (1000, 100000)][draw.bin]
        drawn = [class_word_count([f"word{named['unseen'].index(w)}"], counts) for w in draw.classes]
        assert all(low < n < high for n in drawn) and draw.x == pytest.approx(np.mean(drawn))
        assert splits.load(draw.folder / "split.txt") == draw.classes
        rebuilt = build_split(named["seen"], named["image_counts"], None, sample=3, seed=draw.seed,
                              hierarchy=named["hierarchy"], min_images=1,
                              lemma_filter=LemmaFilter(word_counts=counts, min_word_count=low, max_word_count=high))
        assert rebuilt.unseen == draw.classes                  # the draw is the `goz split build --sample` split
        saved = json.loads((draw.folder / "eszsl_zsl.json").read_text())
        assert saved["metrics"]["top1"] == draw.metrics[("eszsl", "zsl")]["top1"]
    assert result.draws[0].classes != result.draws[1].classes   # two seeds, two draws
    for row in result.aggregate():
        values = [d.metrics[("eszsl", "zsl")]["top1"] for d in result.draws if result.bins[d.bin].label == row["bin"]]
        assert row["mean"] == pytest.approx(np.mean(values)) and row["draws"] == 2 and row["low"] <= row["mean"]
    text = (tmp_path / "sweep.md").read_text()
    assert "SYNTHETIC DATA" in text and "Skipped bins (recorded, not drawn): (100000, 200000)" in text
    assert all(line.endswith(",synthetic") for line in (tmp_path / "sweep.csv").read_text().splitlines()[1:])
    assert r"\begin{tabular}" in (tmp_path / "sweep.tex").read_text()
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    plan = json.loads((tmp_path / "sweep.json").read_text())
    assert len(plan["planned"]) == 6 and plan["skipped"]
    with pytest.raises(GozError, match="no bin has enough candidates"):
        _sweep(named, "words", tmp_path / "none", bins=[200000, 300000], lemma_filter=LemmaFilter(word_counts=counts))


def test_a_killed_sweep_resumes_without_recomputing_finished_draws(named, tmp_path, monkeypatch):
    import goz.bench.analysis.sweep as sweep_module

    counts = read_word_counts(named["counts"])
    options = {"bins": [0, 30, 1000, 100000], "lemma_filter": LemmaFilter(word_counts=counts)}
    real_run_draw, calls = sweep_module.run_draw, []

    def killed_after_two(task):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the sweep is killed while its third draw runs
        calls.append(task.folder)
        return real_run_draw(task)

    monkeypatch.setattr(sweep_module, "run_draw", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        _sweep(named, "words", tmp_path, **options)
    finished = {folder: (tmp_path / folder / "eszsl_zsl.json") for folder in calls}
    before = {folder: (path.stat().st_mtime_ns, path.read_text()) for folder, path in finished.items()}
    assert not (tmp_path / "sweep.md").exists()
    monkeypatch.setattr(sweep_module, "run_draw", real_run_draw)
    result = _sweep(named, "words", tmp_path, **options)
    after = {folder: (path.stat().st_mtime_ns, path.read_text()) for folder, path in finished.items()}
    assert after == before                                     # the two finished draws were reused, untouched
    assert len(result.draws) == 6 and all(d.metrics for d in result.draws)
    assert (tmp_path / "sweep.md").exists()


def test_sense_image_and_ratio_sweeps(named, tmp_path):
    h = named["hierarchy"]
    shared = [w for i, w in enumerate(named["unseen"]) if i % 2 == 0 and i < 16]
    primary = [w for w in shared if sense_matches(h, w, "shared", "primary")]
    assert len(primary) == 1
    result = _sweep(named, "sense", tmp_path / "sense", draws=1, lemma_filter=LemmaFilter(single_word=True))
    by_bin = {result.bins[d.bin].label: d for d in result.draws}
    assert set(by_bin["secondary"].classes) <= set(shared) - set(primary)
    # a class is a candidate when any lemma passes: every class is primary for its own word
    assert by_bin["secondary"].pool == 7 and by_bin["primary"].pool == 20
    images = {w: 5 + 40 * i for i, w in enumerate(named["unseen"])}     # 5 .. 765 images
    by_images = _sweep(named, "images", tmp_path / "images", bins=[0, 300, 1000], draws=1, counts=images)
    for draw, (low, high) in zip(by_images.draws, [(0, 300), (300, 1000)]):
        assert all(low <= images[w] < high for w in draw.classes)
        assert draw.x == pytest.approx(np.mean([images[w] for w in draw.classes]))
    assert [d.pool for d in by_images.draws] == [8, 12]
    ratio = _sweep(named, "ratio", tmp_path / "ratio", bins=[0.0, 1.0], draws=1)
    assert [d.x for d in ratio.draws] == [0.0, 1.0] and all(len(d.classes) == 3 for d in ratio.draws)
    assert "Pearson r of top1 on x" in (tmp_path / "ratio" / "sweep.md").read_text()


def test_error_factors_population_and_bias_from_the_cli(named, tmp_path, capsys):
    b = named["b"]
    common = ["--hierarchy", str(b.hierarchy)]
    out = tmp_path / "factors"
    assert main(["analyze", "factors", str(named["results"]), "--seen", str(b.seen), "--counts", str(b.test),
                 "--lemmas", str(named["lemmas"]), "--word-counts", str(named["counts"]), "--out", str(out),
                 "--format", "latex", *common]) == 0
    text = (out / "factors.md").read_text()
    assert "SYNTHETIC DATA" in text and "min hops to other unseen" in text and (out / "factors.tex").exists()
    assert (out / "factors_eszsl_zsl.png").read_bytes()[:4] == b"\x89PNG"
    out = tmp_path / "population"
    assert main(["analyze", "population", "--counts", str(b.train), "--lemmas", str(named["lemmas"]),
                 "--word-counts", str(named["counts"]), "--out", str(out), *common]) == 0
    assert "SYNTHETIC DATA" in (out / "population.md").read_text()
    assert all((out / f"population_{name}.png").exists() for name in ("images", "depth", "words"))
    out = tmp_path / "bias"
    assert main(["analyze", "bias", "--compare", "--seen", str(b.seen), "--unseen", str(b.unseen), "--train",
                 str(b.train), "--test", str(b.test), "--semantics", str(b.semantics), "--models", "eszsl",
                 "--set", "eszsl.gamma=10", "--set", "eszsl.lam=10000", "--window", "10", "--step", "5",
                 "--out", str(out), "--quiet", *common]) == 0
    assert "3 windows" in (out / "bias_compare.md").read_text()
    assert main(["analyze", "bias", "--compare", "--seen", str(b.seen), "--unseen", str(b.unseen), *common]) == 2
    assert "needs --train, --test, --semantics" in capsys.readouterr().err


def test_error_factors_values(named):
    h = named["hierarchy"]
    analysis = analyze_factors(named["results"], hierarchy=h, seen=named["seen"], counts=named["image_counts"],
                               word_counts=read_word_counts(named["counts"]), word_cap=1000)
    run = analysis.runs[0]
    unseen = named["unseen"]
    assert set(run.accuracy) == set(unseen)
    to_seen = h.hop_distances(named["seen"])
    for i, w in enumerate(unseen):
        assert analysis.values["image count"][w] == 10
        assert analysis.values["word count"][w] == min(max(named["word_count"][f"word{i}"],
                                                           3 if i % 2 == 0 and i < 16 else 0), 1000)
        assert analysis.values["min hops to seen"][w] == to_seen[w]
        others = [h.hop_distance(w, o) for o in unseen if o != w]
        assert analysis.values["min hops to other unseen"][w] == min(others)
        assert analysis.values["mean hops to other unseen"][w] == pytest.approx(np.mean(others))
    assert np.isnan(run.correlations["image count"].pearson)     # every class has 10 test images
    assert run.correlations["word count"].n == len(unseen)
    with pytest.raises(GozError, match="seen classes are not in the hierarchy"):
        analyze_factors(named["results"], hierarchy=h, seen=["n09999999"])


def test_bias_windows_side_by_side(named, tmp_path):
    b = named["b"]
    comparison = compare_bias(named["seen"], named["unseen"], hierarchy=named["hierarchy"], train=b.train, test=b.test,
                              semantics=b.semantics, models=["eszsl"], hyperparameters=ESZSL, window=10, step=5,
                              progress=False, out=tmp_path)
    assert comparison.models == ["trivial", "eszsl"] and len(comparison.windows) == 3
    assert [w.start for w in comparison.windows] == [0, 5, 10]
    assert comparison.windows[0].min_seen <= comparison.windows[-1].min_seen
    for window in comparison.windows:
        assert all(0.0 <= window.accuracy[m] <= 1.0 for m in comparison.models) and 0.0 < window.consistency <= 1.0
    assert len((tmp_path / "bias_compare.csv").read_text().splitlines()) == 1 + 3 * 2
    with pytest.raises(GozError, match="smaller than one window"):
        compare_bias(named["seen"], named["unseen"], hierarchy=named["hierarchy"], train=b.train, test=b.test,
                     semantics=b.semantics, window=50, progress=False)


def test_population_records_unknown_classes(named, tmp_path):
    counts = dict(named["image_counts"]) | {"n09999999": 40}
    population = analyze_population(counts, hierarchy=named["hierarchy"], word_counts={}, out=tmp_path,
                                    synthetic=True)
    assert population.left_out["classes of the counts that are not in the hierarchy"] == ["n09999999"]
    assert "Left out: 1 classes of the counts" in (tmp_path / "population.md").read_text()
    with FeatureStore(named["b"].test) as store:
        depth = {named["hierarchy"].depth(w) for w in store.classes}
    assert {row[0] for row in population.by_depth()} == depth


def test_table_in_latex(named, capsys):
    assert main(["table", str(named["results"]), "--format", "latex"]) == 0
    printed = capsys.readouterr().out
    tex = (named["results"] / "table.tex").read_text()
    assert printed == tex and r"\toprule" in tex and "SYNTHETIC DATA" in tex
    markdown = (named["results"] / "table.md").read_text()
    row = next(line for line in markdown.splitlines() if line.startswith("| eszsl"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert " & ".join(cells) + r" \\" in tex                    # the numbers as the Markdown shows them
