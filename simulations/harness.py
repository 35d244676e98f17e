"""Run a federation on Flower's Simulation Engine, exactly as `flwr run` does, and stop
everything it started.

The harness starts its own SuperLink in simulation mode on free loopback ports (not the
shared background one `flwr run` would leave running), submits the app with `flwr run
--stream` under a private `FLWR_HOME`, echoes the server's progress lines, keeps Flower's full
log in `OUT/flwr.log` (appended, so a resumed run keeps the earlier log), and stops the
SuperLink's whole process group by id when the run ends, fails or is interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from fedland.config import ExperimentConfig, dump_config, validate
from fedland.federation.deployment import write_connection
from fedland.federation.ledger import read_rows
from fedland.federation.run_folder import (
    RUN_FILES,
    folder_lock,
    refuse_another_run,
    set_aside,
    stamp,
)

# The Flower App project that `flwr run` packages (its pyproject.toml only: the apps are
# this package's fedland.server and fedland.clients).
APP_DIR = Path(__file__).with_name("app")
CONNECTION = "fedland-simulation"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
STARTUP_SECONDS = 60.0
# Flower's own log lines worth showing beside the server's progress lines.
PROBLEMS = ("ERROR", "rejected", "failed", "no usable update")


class SimulationError(ChildProcessError):
    """A run that could not start or did not finish; the message says where the log is."""


def simulate(
    config: ExperimentConfig,
    out: str | Path,
    echo: Callable[[str], None] = print,
    app_dir: Path = APP_DIR,
    force: bool = False,
    cpus: int | None = None,
) -> dict:
    """Run `config` on the Simulation Engine with one virtual node per partition; returns
    the run's summary (also in `OUT/summary.json`). A folder holding another run is refused
    before anything starts, unless the run resumes it or `force` moves that run aside.
    `cpus`: the CPUs Ray may give this run's clients (default: all of the machine's)."""
    validate(config)
    root = config.data.root
    if root is not None and not Path(root).exists():  # the nodes here read the same path
        raise FileNotFoundError(f"data.root: {root} does not exist")
    out = Path(out).resolve()
    with stopping_on_signals(), folder_lock(out, "simulate"):
        if force and not config.federation.resume and (moved := set_aside(out)) is not None:
            echo(f"moved the run that was in {out} to {moved}")
        refuse_another_run(out, config.federation.resume)
        config.federation.out = str(out)
        return _simulate(config, out, echo, app_dir, cpus)


def _simulate(
    config: ExperimentConfig,
    out: Path,
    echo: Callable[[str], None],
    app_dir: Path,
    cpus: int | None,
) -> dict:
    before = {name: stamp(out / name) for name in RUN_FILES}
    federation = config.federation
    resources = (
        f"num-supernodes={config.partition.num_partitions} "
        f"client-resources-num-cpus={_number(federation.client_cpus)} "
        f"client-resources-num-gpus={_number(federation.client_gpus)}"
    )
    if cpus is not None:
        resources += f" init-args-num-cpus={cpus}"
    with tempfile.TemporaryDirectory(prefix="fedland-flwr-") as home:
        experiment = Path(home) / "experiment.yaml"  # the server writes the run's own copy
        experiment.write_text(dump_config(config))
        run_config = f"config='{experiment}' out='{out}' num-server-rounds={federation.rounds}"
        log_path = Path(home) / "flwr.log"
        with log_path.open("w") as log:
            env = flower_environment(Path(home))
            with local_superlink(env, log) as control:
                write_connection(Path(home), CONNECTION, control, ca=None)
                command = [
                    _tool("flwr"), "run", str(app_dir), CONNECTION,
                    "--run-config", run_config, "--federation-config", resources, "--stream",
                ]  # fmt: skip
                with subprocess.Popen(
                    command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                ) as process:
                    assert process.stdout is not None
                    for line in process.stdout:
                        log.write(line)
                        log.flush()
                        if _shown(line):
                            echo(line.rstrip())
                    code = process.wait()
        log_path = _keep_log(log_path, out, before)
    summary_path = out / "summary.json"
    if stamp(summary_path) == before["summary.json"]:  # no new summary: the run did not end
        rows = read_rows(out / "metrics.jsonl")
        raise SimulationError(
            f"the run did not finish (flwr run exited with {code}, {len(rows)} round(s) "
            f"recorded); see {log_path}"
        )
    return json.loads(summary_path.read_text())


def _keep_log(log: Path, out: Path, before: dict) -> Path:
    """Flower's log joins the run folder's `flwr.log` when the server took the folder (a
    run file changed); otherwise (refused, failed before start) it is kept outside it."""
    taken = any(stamp(out / name) != seen for name, seen in before.items() if name != "flwr.log")
    if not taken:
        kept = Path(tempfile.mkstemp(prefix="fedland-simulate-", suffix=".log")[1])
        kept.write_bytes(log.read_bytes())
        return kept
    with (out / "flwr.log").open("ab") as handle:
        handle.write(log.read_bytes())
    return out / "flwr.log"


@contextmanager
def stopping_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP (`kill`, `timeout`, a job scheduler, a closed terminal) end the run
    the way Ctrl-C does: as a KeyboardInterrupt (carrying `signum`), so every `with` block
    stops what it started. Only the main thread can receive signals; elsewhere, nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: object) -> None:
        error = KeyboardInterrupt(signal.Signals(signum).name)
        error.signum = signum
        raise error

    previous = {number: signal.signal(number, interrupt) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _shown(line: str) -> bool:
    """The server's progress lines and problems; not Flower's routine log or Ray's tips."""
    if line.startswith("\x1b["):  # a Flower log line
        return any(word in line for word in PROBLEMS)
    return "Warning: " not in line and not line.lstrip().startswith("warnings.warn")


def flower_environment(home: Path) -> dict[str, str]:
    """A private FLWR_HOME, no per-run `uv sync` (offline), no update check."""
    env = dict(os.environ)
    env["FLWR_HOME"] = str(home)
    env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] = "1"
    env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
    tools = str(Path(sys.executable).parent)  # the SuperLink starts flower-superexec by name
    env["PATH"] = os.pathsep.join(filter(None, [tools, env.get("PATH")]))
    return env


@contextmanager
def local_superlink(env: dict[str, str], log) -> Iterator[str]:
    """A SuperLink in simulation mode on a free loopback port; yields its address
    and stops its process tree (SuperLink, executor, simulation process, Ray) on the way out."""
    (port,) = free_ports(1)  # one HTTP port serves the Control, Fleet and runtime APIs
    command = [
        _tool("flower-superlink"), "--insecure", "--simulation",
        "--isolation", "subprocess",
        "--host", "127.0.0.1", "--port", str(port),
        "--disable-runtime-dependency-installation",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_ready(process, port)
        yield f"127.0.0.1:{port}"
    finally:
        stop_process_tree(process.pid)
        process.wait()


def stop_process_tree(pid: int, grace: float = 10.0) -> None:
    """SIGTERM a process and all its descendants, SIGKILL what is left after `grace`
    seconds. The SuperLink starts its executor in a session of its own, so stopping the
    process group would miss the simulation process and Ray."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for member in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.terminate()
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(alive, timeout=grace)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _wait_until_ready(process: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SimulationError(f"flower-superlink exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SimulationError(f"flower-superlink did not become ready in {STARTUP_SECONDS:.0f} s")


def _tool(name: str) -> str:
    """The Flower command next to this interpreter (the project's environment)."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def _number(value: float) -> int | float:
    """Flower wants whole resource counts as TOML integers."""
    return int(value) if float(value).is_integer() else value
