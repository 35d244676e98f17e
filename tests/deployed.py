"""A Deployment Engine federation on loopback: a SuperLink with TLS and SuperNode
authentication and SuperNodes as separate `fedland deploy` processes, driven with `flwr run`.

`tools` is the folder of the `fedland` and `flwr` commands to use: this environment's, or a
fresh one that holds only the wheel (then nothing else is on the processes' path)."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from fedland.federation.deployment import write_certificates, write_connection, write_node_key
from fedland.simulations.harness import APP_DIR, flower_environment, free_ports, stop_process_tree
from tests.conftest import TINY_FEDERATION

CONNECTION = "fedland"


class Federation:
    """A SuperLink and SuperNodes started as `fedland deploy` processes."""

    def __init__(self, root: Path, tools: Path | None = None, app: Path = APP_DIR) -> None:
        self.root = root
        self.app = app
        self.certs = write_certificates(root / "certs")
        self.home = root / "flwr-home"
        self.env = flower_environment(self.home)
        if tools is None:
            self.fedland = [sys.executable, "-m", "fedland.cli"]
            self.tools = Path(sys.executable).parent
        else:
            self.fedland = [str(tools / "fedland")]
            self.tools = tools
            self.env.pop("PYTHONPATH", None)
            self.env["PATH"] = os.pathsep.join([str(tools), "/usr/bin", "/bin"])
        (self.port,) = free_ports(1)
        write_connection(self.home, CONNECTION, f"127.0.0.1:{self.port}", self.certs["ca"])
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = (self.root / f"{name}.log").open("w")
        process = subprocess.Popen([*self.fedland, "deploy", *args], env=self.env, stdout=log,
                                   stderr=subprocess.STDOUT, cwd=self.root)  # fmt: skip
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
        return subprocess.run([str(self.tools / "flwr"), *args], env=self.env, cwd=self.root,
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip

    def register(self, public_key: Path) -> None:
        result = self.flwr("supernode", "register", str(public_key), CONNECTION, "--format", "json")
        assert json.loads(result.stdout)["success"], result.stdout + result.stderr

    def start_supernode(self, name: str, key: Path, partition: int, count: int) -> None:
        (port,) = free_ports(1)
        self.start(name, "supernode", "--superlink", f"127.0.0.1:{self.port}",
                   "--ca", str(self.certs["ca"]), "--key", str(key), "--port", str(port),
                   "--partition-id", str(partition), "--num-partitions", str(count))  # fmt: skip

    def start_registered_nodes(self, count: int) -> None:
        """`count` registered SuperNodes (partitions 0..count-1 of count), online."""
        for index in range(count):
            name = f"node{index + 1}"
            private, public = write_node_key(self.root / "keys", name)
            self.register(public)
            self.start_supernode(name, private, index, count)
        self.wait_online(count)

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
        return self.flwr("run", str(self.app), CONNECTION, "--run-config", run_config,
                         "--stream", timeout=400)  # fmt: skip

    def stop(self) -> None:
        for process in self.processes.values():
            stop_process_tree(process.pid)
            process.wait()
