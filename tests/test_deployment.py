"""Flower's Deployment Engine for real: a SuperLink with TLS and SuperNode authentication and
SuperNodes as separate processes on loopback, started with `fedland deploy`, running the
project's apps with `flwr run`. The tests of this module share one federation (the last one
kills a node); every process started is stopped by its id, also when a test fails.

Nothing waits on a fixed round time: a node that dies is reported by the SuperLink itself once
its heartbeats stop, so the tests hold on a loaded machine too."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from fedland.federation.deployment import write_certificates, write_connection, write_node_key
from fedland.simulations.harness import APP_DIR, flower_environment, free_ports, stop_process_tree
from tests.conftest import TINY_FEDERATION

pytestmark = [pytest.mark.slow, pytest.mark.integration]
CONNECTION = "fedland"


class Federation:
    """A SuperLink and SuperNodes started as `fedland deploy` processes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.certs = write_certificates(root / "certs")
        self.home = root / "flwr-home"
        self.env = flower_environment(self.home)
        (self.port,) = free_ports(1)
        write_connection(self.home, CONNECTION, f"127.0.0.1:{self.port}", self.certs["ca"])
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = (self.root / f"{name}.log").open("w")
        command = [sys.executable, "-m", "fedland.cli", "deploy", *args]
        process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text()

    def start_superlink(self) -> None:
        self.start("superlink", "superlink", "--certs", str(self.root / "certs"),
                   "--host", "127.0.0.1", "--port", str(self.port))  # fmt: skip
        context = ssl.create_default_context(cafile=str(self.certs["ca"]))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                url = f"https://127.0.0.1:{self.port}/health"
                with urllib.request.urlopen(url, context=context, timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise AssertionError("the SuperLink did not come up:\n" + self.log("superlink"))

    def flwr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        tool = str(Path(sys.executable).with_name("flwr"))
        return subprocess.run(
            [tool, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def register(self, public_key: Path) -> None:
        result = self.flwr("supernode", "register", str(public_key), CONNECTION, "--format", "json")
        assert json.loads(result.stdout)["success"], result.stdout + result.stderr

    def start_supernode(self, name: str, key: Path, partition: int, count: int) -> None:
        (port,) = free_ports(1)
        self.start(name, "supernode", "--superlink", f"127.0.0.1:{self.port}",
                   "--ca", str(self.certs["ca"]), "--key", str(key), "--port", str(port),
                   "--partition-id", str(partition), "--num-partitions", str(count))  # fmt: skip

    def wait_online(self, count: int) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            listed = self.flwr("supernode", "list", CONNECTION, "--format", "json")
            nodes = json.loads(listed.stdout).get("nodes", []) if listed.returncode == 0 else []
            if sum(node.get("status") == "online" for node in nodes) >= count:
                return
            time.sleep(1)
        raise AssertionError(f"fewer than {count} SuperNodes came online")

    def run(self, out: Path, rounds: int, *settings: str) -> subprocess.CompletedProcess:
        cache = f"data.synthetic.cache_dir={self.root / 'cache'}"
        overrides = " ".join([*TINY_FEDERATION, cache, "partition.num_partitions=2", *settings])
        run_config = f"num-server-rounds={rounds} out='{out}' set='{overrides}'"
        return self.flwr("run", str(APP_DIR), CONNECTION, "--run-config", run_config,
                         "--stream", timeout=400)  # fmt: skip

    def stop(self) -> None:
        for process in self.processes.values():
            stop_process_tree(process.pid)
            process.wait()


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    """A SuperLink with two registered SuperNodes online (partitions 0 and 1 of 2)."""
    root = tmp_path_factory.mktemp("deployment")
    federation = Federation(root)
    try:
        federation.start_superlink()
        for index, name in enumerate(("node1", "node2")):
            private, public = write_node_key(root / "keys", name)
            federation.register(public)
            federation.start_supernode(name, private, index, 2)
        federation.wait_online(2)
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

    tool = [sys.executable, "-m", "fedland.cli", "deploy", "traffic", "--run", str(out)]
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
