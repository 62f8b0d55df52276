"""The structure issue's bugs: each concept has one owner, so every entry point sees the same facts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import checkout
from goz import models
from goz.cli import main


def test_builtin_test_sets_load_in_a_fresh_interpreter(tmp_path):
    # A fresh interpreter that imports nothing but goz.splits (the hop registration was an import side
    # effect); the test sets ship with goz, so nothing is fetched into the empty GOZ_HOME.
    code = "from goz import splits; print(len(splits.load('3-hops')), sorted(splits.BUILTIN))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(checkout.SRC), "GOZ_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("7860 ") and "'all'" in result.stdout and "'imagenet-graph'" in result.stdout
    assert not (tmp_path / "home").exists()


@pytest.fixture
def cyclic_edges(synthetic_benchmark, tmp_path):
    lines = synthetic_benchmark.hierarchy.read_text().splitlines()
    child, parent = next(line for line in lines if not line.startswith("#")).split("\t")
    path = tmp_path / "cyclic.tsv"
    path.write_text("\n".join(lines + [f"{parent}\t{child}"]) + "\n")  # parent -> child closes a loop
    return path


@pytest.mark.parametrize("command", ["bench", "split-check", "analyze-bias"])
def test_a_cyclic_hierarchy_is_refused_by_every_command(synthetic_benchmark, cyclic_edges, tmp_path, capsys, command):
    b = synthetic_benchmark
    argv = {
        "bench": ["bench", "--models", "sgcn", "--settings", "zsl", "--train", str(b.train), "--test", str(b.test),
                  "--semantics", str(b.semantics), "--seen", str(b.seen), "--unseen", str(b.unseen),
                  "--quiet", "--out", str(tmp_path / "out")],
        "split-check": ["split", "check", str(b.unseen), "--seen", str(b.seen)],
        "analyze-bias": ["analyze", "bias", "--seen", str(b.seen), "--unseen", str(b.unseen), "--train", str(b.train),
                         "--test", str(b.test), "--out", str(tmp_path / "bias")],
    }[command] + ["--hierarchy", str(cyclic_edges)]
    start = time.monotonic()
    assert main(argv) == 2
    assert time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert "cycle" in err and str(cyclic_edges) in err and "Traceback" not in err


def test_aliases_are_accepted_wherever_a_model_name_is(synthetic_benchmark, tmp_path, capsys):
    b = synthetic_benchmark
    assert models.canonical_name("gcn2") == "sgcn" and models.model_class("gcn2") is models.model_class("sgcn")
    argv = ["bench", "--models", "gcn2", "--settings", "zsl", "--train", str(b.train), "--test", str(b.test),
            "--semantics", str(b.semantics), "--seen", str(b.seen), "--unseen", str(b.unseen),
            "--hierarchy", str(b.hierarchy), "--set", "gcn2.epochs=3", "--set", "gcn2.hidden=[16]", "--quiet",
            "--threads", "1", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    result = json.loads((tmp_path / "out" / "sgcn_zsl.json").read_text())
    assert result["model"] == "sgcn" and result["parameters"]["epochs"] == 3


def test_model_facts_live_on_the_model_classes():
    names = models.list_models()
    assert models.display_sorted(names)[:6] == ["conse", "devise", "eszsl", "gcn6", "sgcn", "dgp"]
    for name in names:
        cls = models.model_class(name)
        # Every model takes the run's seed, device and progress; its budgets name real hyper-parameters.
        accepted = models.hyperparameter_names(cls)
        assert {"seed", "device", "progress"} <= accepted
        assert set(cls.demo_hyperparameters) <= accepted and set(cls.test_hyperparameters) <= accepted
        assert isinstance(models.create(name).fits_on_class_means, bool)
