"""Makes the README's analysis figures (docs/analyses/*.png) from `goz demo`'s SYNTHETIC data.

    PYTHONPATH=src python tools/readme_figures.py [--demo build/readme-demo] [--out docs/analyses]

Runs `goz demo --out DEMO` (skipped when DEMO already holds a finished demo), then every
`goz analyze` subcommand on the demo's data, as tests/bench/test_analysis_synthetic.py does: the
synthetic classes are not WordNet synsets, so each command gets the demo's edges hierarchy
(`--hierarchy`), a lemma file naming the classes (`--lemmas`) and a word-count file (`--word-counts`),
both written here (`write_names`): class i of the seen (unseen) split is named `seen<i>` (`unseen<i>`),
its word count drawn from a log-normal law around 1,000. Image counts are the demo's test store's.
The analyses run on the demo's ESZSL and SGCN results (a linear and a graph model, as the paper),
the sweep and the bias comparison with the demo's training budgets. The commands run in DEMO (short
paths in the figures' labels); their outputs go to DEMO/analyses/<analysis>/, and one PNG of each
to OUT/<analysis>.png. Deterministic: a fresh demo gives byte-identical PNGs. About 2.5 minutes on
2 busy cores, plus 2 to 3 for the demo the first time. Every figure's title says SYNTHETIC DATA: the
analyses label synthetic inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from statistics import NormalDist

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("eszsl", "sgcn")           # a linear and a graph model, as the paper's analyses
WORD_BINS = "10,100,1000,10000,100000"
# analysis -> (the PNG under DEMO/analyses/<analysis>/ copied to OUT/<analysis>.png)
FIGURES = {"errors": "errors.png", "factors": "factors_sgcn_zsl.png", "sweep": "sweep.png",
           "bias": "bias_compare.png", "population": "population_words.png"}


def goz(*args: object, cwd: Path) -> None:
    """Runs `python -m goz ARGS` (this interpreter) in `cwd`, printing the command; stops on failure."""
    command = [sys.executable, "-m", "goz", *map(str, args)]
    print(f"$ (cd {cwd} && goz {shlex.join(command[3:])})", flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=cwd, stdout=subprocess.DEVNULL,
                   env=os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                                                  os.environ.get("PYTHONPATH")]))})
    print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)


def write_names(demo: Path, out: Path) -> tuple[Path, Path]:
    """The lemma file (wnid<TAB>lemma) and word-count file (word count) of the demo's classes: class i
    of a split is `<split><i>`; the counts of each split follow a log-normal law (median 1,000, one
    decade per standard deviation) at evenly spaced quantiles, in a seeded random order."""
    from goz import splits

    rng = np.random.default_rng(0)
    lemma_lines, count_lines = [], []
    for prefix in ("seen", "unseen"):
        classes = splits.load(demo / "data" / f"{prefix}.txt")
        quantiles = (rng.permutation(len(classes)) + 0.5) / len(classes)
        for i, (wnid, quantile) in enumerate(zip(classes, quantiles)):
            word = f"{prefix}{i:03d}"
            lemma_lines.append(f"{wnid}\t{word}")
            count_lines.append(f"{word} {round(10 ** (3 + NormalDist().inv_cdf(quantile)))}")
    lemmas, counts = out / "lemmas.tsv", out / "word_counts.txt"
    lemmas.write_text("# SYNTHETIC DATA: names of goz demo's classes\n" + "\n".join(lemma_lines) + "\n")
    counts.write_text("\n".join(count_lines) + "\n")
    return lemmas, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, default=ROOT / "build" / "readme-demo", help="goz demo's folder")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "analyses", help="where the PNGs go")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")      # small matrices: one thread is as fast, and frugal
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    start = time.perf_counter()

    demo = args.demo.resolve()
    if not ((demo / "data" / "benchmark.json").exists()
            and all((demo / "results" / f"{m}_zsl.json").exists() for m in MODELS)):
        demo.parent.mkdir(parents=True, exist_ok=True)
        goz("demo", "--out", demo.name, "--quiet", cwd=demo.parent)
    work = demo / "analyses"
    if work.exists():
        shutil.rmtree(work)                              # every figure from this run, none left from an older one
    (work / "results").mkdir(parents=True)
    # The demo's results folder mixes data (clip runs on the CLIP-like pair): analyze ESZSL and SGCN only.
    for model in MODELS:
        for setting in ("zsl", "gzsl"):
            for suffix in (".json", ".predictions.npz"):
                shutil.copy2(demo / "results" / f"{model}_{setting}{suffix}", work / "results")
    write_names(demo, work)

    from goz.demo import demo_hyperparameters

    budgets = [option for model in MODELS for key, value in demo_hyperparameters(model).items()
               for option in ("--set", f"{model}.{key}={json.dumps(value, separators=(',', ':'))}")]
    # Paths relative to the demo folder, where the commands run: short enough for the figures' labels.
    hierarchy = ["--hierarchy", "data/hierarchy.tsv"]
    names = ["--lemmas", "analyses/lemmas.tsv", "--word-counts", "analyses/word_counts.txt"]
    stores = ["--train", "data/train_features.h5", "--test", "data/test_features.h5", "--semantics", "data/semantics.h5"]
    seen, counts = ["--seen", "data/seen.txt"], ["--counts", "data/test_features.h5"]
    models = ["--models", ",".join(MODELS), "--classifier-weights", "data/classifier_weights.npz", *budgets]

    goz("analyze", "errors", "analyses/results", *seen, *counts, *names, "--out", "analyses/errors", *hierarchy,
        cwd=demo)
    goz("analyze", "factors", "analyses/results", *seen, *counts, *names, "--out", "analyses/factors", *hierarchy,
        cwd=demo)
    goz("analyze", "sweep", "words", *seen, *counts, *stores, *models, "--bins", WORD_BINS, "--draws", "3",
        "--classes", "10", "--threads", "1", *names, "--out", "analyses/sweep", "--quiet", *hierarchy, cwd=demo)
    goz("analyze", "bias", "--compare", *seen, "--unseen", "data/unseen.txt", *stores, *models, "--window", "20",
        "--step", "10", "--out", "analyses/bias", "--quiet", *hierarchy, cwd=demo)
    goz("analyze", "population", *counts, *names, "--out", "analyses/population", *hierarchy, cwd=demo)

    args.out.mkdir(parents=True, exist_ok=True)
    for analysis, png in FIGURES.items():
        target = args.out / f"{analysis}.png"
        shutil.copyfile(work / analysis / png, target)
        print(f"{target}: {target.stat().st_size / 1024:.0f} KB (from {work / analysis / png})")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
