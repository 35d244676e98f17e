"""Flower's Deployment Engine for real: a SuperLink with TLS and SuperNode authentication and
SuperNodes as separate processes on loopback, started with `fedland deploy`, running the
project's apps with `flwr run`. The tests of this module share one federation (the last one
kills a node); every process started is stopped by its id, also when a test fails.

Nothing waits on a fixed round time: a node that dies is reported by the SuperLink itself once
its heartbeats stop, so the tests hold on a loaded machine too."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from fedland.federation.deployment import write_node_key
from fedland.simulations.harness import stop_process_tree
from tests.deployed import Federation
from tests.wheel_env import without_checkout

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def federation(tmp_path_factory, wheel_tools):
    """A SuperLink with two registered SuperNodes online (partitions 0 and 1 of 2), every
    process (and `flwr run`) from a fresh environment with only the wheel, running the app
    folder that its `fedland deploy app` writes."""
    root = tmp_path_factory.mktemp("deployment")
    app = root / "app"
    command = [wheel_tools / "fedland", "deploy", "app", "--out", str(app)]
    env = without_checkout(wheel_tools)
    written = subprocess.run(command, env=env, capture_output=True, text=True)
    assert written.returncode == 0, written.stderr
    federation = Federation(root, tools=wheel_tools, app=app)
    try:
        federation.start_superlink()
        federation.start_registered_nodes(2)
        yield federation
    finally:
        federation.stop()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.is_file() else []


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in _lines(path)]


def test_an_unregistered_node_is_refused(federation, tmp_path):
    private, _ = write_node_key(tmp_path / "keys", "stranger")
    federation.start_supernode("stranger", private, 0, 2)
    assert federation.processes["stranger"].wait(timeout=60) != 0
    assert "2004" in federation.log("stranger") or "412" in federation.log("superlink")


def test_two_nodes_over_tls_train_and_the_run_outlives_one_killed_mid_run(federation, tmp_path):
    """Round 1 with both authenticated nodes; node 2 is killed as soon as round 1 is
    recorded (long before it could answer round 2: its app process alone takes seconds to
    start), the SuperLink reports it gone when its heartbeats stop, and round 2 ends with
    node 1 alone. Runs last in this module: it leaves the federation with one node."""
    out = tmp_path / "run"
    settings = ["federation.min_train_nodes=1", "federation.min_available_nodes=1"]
    done = {}
    thread = threading.Thread(target=lambda: done.update(result=federation.run(out, 2, *settings)))
    thread.start()
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(_lines(metrics)) < 2 and thread.is_alive():
        time.sleep(0.1)  # until round 1 is recorded
    node = federation.processes["node2"]
    helpers = psutil.Process(node.pid).children(recursive=True)  # its executor, app processes
    node.kill()
    node.wait()
    for helper in helpers:
        stop_process_tree(helper.pid)
    thread.join(timeout=400)
    result = done["result"]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    rows = _rows(metrics)
    assert [row["round"] for row in rows] == [0, 1, 2]
    assert [(row["accepted"], row["failed"]) for row in rows[1:]] == [(2, 0), (1, 1)]
    assert rows[2]["nme"] != rows[1]["nme"]  # the survivor's update still moves the model

    for name in ("node1", "node2"):  # the wheel's SuperNodes, not the checkout's
        assert str(federation.tools) in " ".join(federation.processes[name].args)
    tool = [*federation.fedland, "deploy", "traffic", "--run", str(out)]
    traffic = subprocess.run(tool, env=federation.env, capture_output=True, text=True)
    assert traffic.returncode == 0, traffic.stdout + traffic.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["uplink_ratio"] > 3  # the quickstart's 4-bit uplink
    assert summary["uplink_bytes"] == sum(row["uplink_bytes"] for row in rows)
    wire = summary["network_traffic"]
    payload = summary["uplink_bytes"] + summary["downlink_bytes"]
    assert wire["inbound_bytes"] > 0 and wire["total_bytes"] >= payload
    for name in ("superlink", "node1", "node2"):
        assert "PRIVATE KEY" not in federation.log(name)
