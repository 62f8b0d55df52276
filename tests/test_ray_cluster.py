"""goz download and goz extract on a local multi-node Ray cluster (ray.cluster_utils.Cluster): the work
spreads over the nodes, a node killed mid-run loses nothing, and the result equals the local engine's."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import checkout
import ray
from ray.cluster_utils import Cluster

from download_server import FaultServer
from extract_helpers import make_tree, tiny_backbone
from goz.download import download
from goz.download.plan import shard_of_host
from goz.extract import extract
from goz.store import FeatureStore
from node_recorder import NodeRecordingTransform

HOSTS = tuple(f"127.0.0.{i}" for i in range(1, 7))


@pytest.fixture(scope="module")
def cluster():
    """A head (no CPU: it runs the driver, not the work) and two worker nodes with two (logical) CPUs each,
    told apart by custom resources; shut down at the end."""
    # A lost node is noticed in about a second, not after Ray's default 30 s of missed health checks.
    health = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 300, "health_check_failure_threshold": 3}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "resources": {"head": 1},
                                                            "include_dashboard": False, "_system_config": health})
    workers = [cluster.add_node(num_cpus=2, resources={f"worker_{i}": 1}) for i in range(2)]
    cluster.wait_for_nodes()
    tests = checkout.TESTS
    # The workers import this checkout's goz and the tests' helpers.
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": f"{tests.parent / 'src'}:{tests}"}})
    try:
        yield cluster, workers
    finally:
        ray.shutdown()
        cluster.shutdown()


def _kill_when(condition, node, cluster, killed: list) -> threading.Thread:
    """Removes `node` (a cluster node, or a function choosing one) once `condition()` holds."""
    def watch():
        deadline = time.monotonic() + 120
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.05)
        cluster.remove_node(node() if callable(node) else node, allow_graceful=False)
        killed.append(time.monotonic())
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _shard_stats(out: Path) -> list[dict]:
    found = []
    for path in (out / ".goz" / "stats").glob("shard-*.json"):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found


def _recorded(out: Path) -> int:
    count = 0
    for path in (out / ".goz" / "manifest").glob("*.sqlite"):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as connection:
                count += connection.execute("SELECT count(*) FROM items").fetchone()[0]
        except sqlite3.Error:
            continue
    return count


def _outcomes(out: Path) -> dict[str, str]:
    found = {}
    for path in (out / ".goz" / "manifest").glob("*.sqlite"):
        with sqlite3.connect(path) as connection:
            found.update(connection.execute("SELECT key, outcome FROM items").fetchall())
    return found


def test_download_spreads_over_nodes_survives_a_lost_node_and_equals_local(cluster, tmp_path):
    ray_cluster, workers = cluster
    server = FaultServer(delay=0.2, hosts=HOSTS)
    try:
        kinds = ["/img/c{i}", "/img/d{i}", "/status/404", "/img/e{i}", "/status/500", "/img/f{i}"]
        # Half the URLs on one host: its shard runs longest, so it is still running when the others are done.
        hosts = [HOSTS[0] if i % 2 == 0 else HOSTS[1 + (i // 2) % 5] for i in range(96)]
        lines = [f"n0000000{i % 4}_{i}\t{server.url(kinds[i % 6].format(i=i), hosts[i])}" for i in range(96)]
        long_shard = shard_of_host(HOSTS[0], 8)
        urls = tmp_path / "urls.txt"
        urls.write_text("".join(line + "\n" for line in lines))
        options = dict(shards=8, per_host=2, deadline=10.0, concurrency=8, decode_workers=1, progress=False)
        finished_on, killed_node = set(), []

        def spread_and_long_shard_running() -> bool:  # shards finished on two nodes, the long one running
            stats = _shard_stats(tmp_path / "ray")
            finished_on.update(s["node"] for s in stats if s["status"] == "finished")
            return len(finished_on) >= 2 and any(s["status"] == "running" and s["shard"] == long_shard
                                                 for s in stats)

        def node_of_a_running_shard():
            running = next(s for s in _shard_stats(tmp_path / "ray") if s["shard"] == long_shard)
            killed_node.append(running)
            return next(node for node in ray_cluster.worker_nodes if node.node_id == running["node"])

        killed: list[float] = []
        watcher = _kill_when(spread_and_long_shard_running, node_of_a_running_shard, ray_cluster, killed)
        remote = download(urls, tmp_path / "ray", engine="ray", **options)
        watcher.join(30)
        local = download(urls, tmp_path / "local", **options)
    finally:
        server.close()
    assert killed and len(finished_on) >= 2, finished_on  # the shards ran on two nodes; one was lost mid-shard
    stats = _shard_stats(tmp_path / "ray")
    assert all(s["status"] == "finished" for s in stats)
    [lost] = killed_node  # the shard running on the lost node was run again, to its end, on another node
    assert [s["node"] for s in stats if s["shard"] == lost["shard"]] != [lost["node"]]
    assert _outcomes(tmp_path / "ray") == _outcomes(tmp_path / "local") and len(_outcomes(tmp_path / "local")) == 96
    assert remote.outcomes == local.outcomes == {"ok": 64, "http_error": 32}
    ray_files = sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").glob("n*/*"))
    assert ray_files == sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").glob("n*/*"))
    assert not list((tmp_path / "ray").rglob("*.part"))
    ray_cluster.add_node(num_cpus=2, resources={"worker_2": 1})  # the next test has three nodes again
    ray_cluster.wait_for_nodes()


def test_extract_spreads_over_nodes_survives_a_lost_node_and_equals_local(cluster, tmp_path):
    ray_cluster, _ = cluster
    images = make_tree(tmp_path / "images", {f"n0000000{i}": 6 for i in range(1, 7)})
    local = extract(images, tmp_path / "local.h5", backbone=tiny_backbone(), progress=False)
    marks = tmp_path / "nodes"
    marks.mkdir()
    recording = tiny_backbone()  # the same model and preprocessing, and a record of the nodes that decoded
    recording.transform = NodeRecordingTransform(recording.transform, str(marks), delay=0.2)

    def nodes_seen() -> set[str]:
        return {p.name.split("-")[0] for p in marks.iterdir()}

    def busy_node():  # the worker node that decoded first: killing it makes the work move
        first = min(marks.iterdir(), key=lambda p: p.stat().st_mtime).name.split("-")[0]
        return next(node for node in ray_cluster.worker_nodes if node.node_id == first)

    killed: list[float] = []

    def kill_busy_node():
        deadline = time.monotonic() + 120
        while not any(marks.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        ray_cluster.remove_node(busy_node(), allow_graceful=False)
        killed.append(time.monotonic())

    watcher = threading.Thread(target=kill_busy_node, daemon=True)
    watcher.start()
    try:
        extract(images, tmp_path / "ray.h5", backbone=recording, engine="ray", batch_size=1, progress=False)
    except Exception:  # noqa: BLE001 (whatever the lost node ends the run with, the rerun below resumes it)
        pass
    watcher.join(60)
    assert killed, "the node was not killed"
    extract(images, tmp_path / "ray.h5", backbone=recording, engine="ray", batch_size=1, progress=False)
    assert len(nodes_seen()) >= 2, nodes_seen()  # decoding ran on more than one node
    with FeatureStore(tmp_path / "local.h5") as expected, FeatureStore(tmp_path / "ray.h5") as actual:
        assert actual.classes == expected.classes and len(expected.classes) == 6 and not local.skipped
        for wnid in expected.classes:
            np.testing.assert_array_equal(actual.ids(wnid), expected.ids(wnid))
            np.testing.assert_allclose(actual.features(wnid), expected.features(wnid), rtol=1e-5, atol=1e-6)
