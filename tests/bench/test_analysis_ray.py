"""`sweep(engine="ray")` on a ray.cluster_utils.Cluster: the draws run as Ray tasks, the results equal the local engine's."""

import json

import checkout
import pytest
import ray
from ray.cluster_utils import Cluster

from goz import splits
from goz.bench.analysis.sweep import sweep
from goz.splits import read_counts
from goz.splits.lemmas import LemmaFilter, with_lemmas
from goz.wordnet.edges import load_hierarchy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    """One node, two CPUs: two draws at a time (the test machine has two cores)."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    tests = checkout.TESTS
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": f"{tests.parent / 'src'}:{tests}"}})
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_ray_draws_equal_the_local_ones(synthetic_benchmark, tmp_path, cluster):
    b = synthetic_benchmark
    seen, unseen = splits.load(b.seen), splits.load(b.unseen)
    hierarchy = with_lemmas(load_hierarchy(b.hierarchy), {w: (f"word{i}",) for i, w in enumerate(unseen)})
    counts = {f"word{i}": 10 + 100 * i for i in range(len(unseen))}

    def run(engine):
        return sweep("words", seen=seen, counts=read_counts(b.test), hierarchy=hierarchy, train=b.train, test=b.test,
                     semantics=b.semantics, models=["eszsl"], hyperparameters={"eszsl": {"gamma": 10.0, "lam": 1e4}},
                     bench_hierarchy=str(b.hierarchy), bins=[0, 500, 5000], draws=2, classes=3, threads=1,
                     lemma_filter=LemmaFilter(word_counts=counts), engine=engine, out=tmp_path / engine,
                     progress=False)

    local, remote = run("local"), run("ray")
    assert [d.classes for d in remote.draws] == [d.classes for d in local.draws] and len(local.draws) == 4
    assert [d.metrics for d in remote.draws] == [d.metrics for d in local.draws]
    for draw in remote.draws:   # each task wrote its own results folder
        assert json.loads((draw.folder / "eszsl_zsl.json").read_text())["metrics"] == draw.metrics[("eszsl", "zsl")]
    strip = lambda path: [line.rsplit(",", 2)[0] for line in path.read_text().splitlines()]
    assert strip(tmp_path / "ray" / "sweep.csv") == strip(tmp_path / "local" / "sweep.csv")
