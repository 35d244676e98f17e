"""End to end through Flower's real Simulation Engine: `fedland simulate` starts a SuperLink,
submits the apps with `flwr run`, Ray runs the virtual nodes, and everything started is
stopped when the run ends. The shared run is the wheel's (a fresh environment without the
checkout); the others run this environment's `fedland`."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedland.cli import main
from fedland.simulations.harness import APP_DIR, flower_environment, stop_process_tree
from tests.conftest import TINY_FEDERATION
from tests.processes import Leftovers
from tests.wheel_env import without_checkout

pytestmark = pytest.mark.slow


def test_simulate_names_a_bad_config_key(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path), "--set", "codec.uplink_bitz=4"]) == 2
    assert "codec.uplink_bitz" in capsys.readouterr().err


def test_simulate_refuses_a_missing_data_root_before_starting_anything(tmp_path, capsys):
    missing = tmp_path / "no-such-dataset"
    assert main(["simulate", "--out", str(tmp_path / "run"), "--set", f"data.root={missing}"]) == 2
    assert f"data.root: {missing} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_flwr_run_runs_the_same_apps_from_the_app_project(tmp_path):
    """`flwr run simulations/app` with the run config of its pyproject.toml, where `set` alone
    makes it a tiny one-round run into `out`: the defaults of num-server-rounds and out do
    not override it."""
    leftovers = Leftovers()
    home = tmp_path / "flwr-home"
    home.mkdir()
    env = flower_environment(home)
    out = tmp_path / "run"
    cache = f"data.synthetic.cache_dir={tmp_path / 'cache'}"
    tiny = [*TINY_FEDERATION, cache, "partition.num_partitions=2", "federation.rounds=1"]
    overrides = " ".join([*tiny, f"federation.out={out}"])
    command = [
        str(Path(sys.executable).with_name("flwr")), "run", str(APP_DIR),
        "--run-config", f"set='{overrides}'",
        "--federation-config", "num-supernodes=2 client-resources-num-cpus=1",
        "--stream",
    ]  # fmt: skip
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    finally:  # `flwr run` leaves its local SuperLink running: stop it and what it started
        left = leftovers()
        for pid in left:
            stop_process_tree(pid)
    assert result.returncode == 0, result.stdout[-2000:]
    assert any("flower-superlink" in command for command in left.values())
    assert leftovers.after(30) == {}
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(row["round"], row.get("accepted")) for row in rows] == [(0, 0), (1, 2)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == 1 and summary["uplink_bytes"] == rows[1]["uplink_bytes"]
    assert 0 < rows[1]["uplink_bytes"] < rows[1]["fp32_uplink_bytes"] / 4
    assert summary["config"]["codec"]["uplink_bits"] == 4  # the quickstart's


def _simulate_command(
    tmp_path: Path, out: Path, rounds: int, program: list[str] | None = None
) -> list[str]:
    """`fedland simulate` of a tiny two-node run into `out`, as a command line (`program`:
    the `fedland` to run, by default this environment's)."""
    command = [*(program or [sys.executable, "-m", "fedland.cli"]), "simulate", "--out", str(out)]
    settings = [*TINY_FEDERATION, f"federation.rounds={rounds}", "partition.num_partitions=2",
                f"data.synthetic.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    for setting in settings:
        command += ["--set", setting]
    return command


@pytest.fixture(scope="module")
def finished(tmp_path_factory, wheel_tools) -> dict:
    """A two-round run of `fedland simulate` from a fresh environment with only the wheel
    (nothing of the checkout on its path), started in an empty folder with `--out run`, and
    a second one started into that folder while it ran."""
    tmp = tmp_path_factory.mktemp("simulate")
    work = tmp / "work"
    work.mkdir()
    command = _simulate_command(tmp, Path("run"), 2, [str(wheel_tools / "fedland")])
    env = without_checkout(wheel_tools)
    out = work / "run"
    leftovers = Leftovers()
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             cwd=work, env=env)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (out / "config.yaml").is_file() and time.monotonic() < deadline:
            time.sleep(0.2)  # the first run's server has taken the folder
        second = subprocess.run([*command, "--set", "codec.uplink_bits=2"], capture_output=True,
                                text=True, timeout=120, cwd=work, env=env)  # fmt: skip
        output, _ = first.communicate(timeout=300)
    finally:
        stop_process_tree(first.pid)
    return {"tmp": tmp, "work": work, "out": out, "first": first, "output": output,
            "second": second, "leftovers": leftovers}  # fmt: skip


def test_simulate_runs_two_clients_for_two_rounds_and_stops_everything(finished):
    out = finished["out"]
    assert finished["first"].returncode == 0, finished["output"][-2000:]
    assert "round 2/2" in finished["output"] and "results in" in finished["output"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["round"] for row in rows] == [0, 1, 2]
    for row in rows[1:]:
        assert row["accepted"] == 2 and row["rejected"] == row["failed"] == 0
        assert 0 < row["uplink_bytes"] < row["fp32_uplink_bytes"] / 4  # 4-bit uplink
        assert 0 < row["downlink_bytes"] < row["fp32_downlink_bytes"] / 2  # 8-bit downlink
        assert row["nme"] > 0 and row["loss"] > 0 and row["seconds"] > 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("uplink_bytes", "downlink_bytes", "fp32_uplink_bytes", "fp32_downlink_bytes"):
        assert summary[key] == sum(row[key] for row in rows)
    assert summary["nme"] == rows[-1]["nme"] and summary["wall_seconds"] > 0
    assert summary["config"]["codec"]["uplink_bits"] == 4
    assert (out / "final.pt").is_file() and (out / "partitions.json").is_file()
    assert [path.name for path in finished["work"].iterdir()] == ["run"]  # nothing else
    assert finished["leftovers"].after(30) == {}  # SuperLink, Ray and the app processes gone


def test_a_second_simulate_into_a_running_folder_is_refused_at_once(finished):
    """Two runs at once into one folder: the second is refused and the first's rows (and
    settings) stay its own."""
    second = finished["second"]
    assert second.returncode == 2 and "another run is using this folder" in second.stderr
    rows = (finished["out"] / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(row)["round"] for row in rows] == [0, 1, 2]
    config = json.loads((finished["out"] / "summary.json").read_text())["config"]
    assert config["codec"]["uplink_bits"] == 4


def test_force_moves_a_finished_run_aside_and_sigterm_stops_every_process(finished, tmp_path):
    """`--force` starts afresh with the finished run beside, whole; then SIGTERM (`kill`,
    `timeout`, a job scheduler) mid-run stops the whole tree (SuperLink, executor,
    simulation, Ray), as Ctrl-C does, and the exit status says which signal."""
    out = tmp_path / "run"
    shutil.copytree(finished["out"], out)
    summary = (out / "summary.json").read_bytes()
    command = [*_simulate_command(finished["tmp"], out, rounds=20), "--force"]
    leftovers, signum = Leftovers(), signal.SIGTERM
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        metrics = out / "metrics.jsonl"
        while time.monotonic() < deadline and run.poll() is None:
            moved = next(tmp_path.glob("run.replaced-*"), None)
            if moved and metrics.is_file() and len(metrics.read_text().splitlines()) >= 2:
                break  # the old run moved, round 1 recorded: every process is up
            time.sleep(0.2)
        assert run.poll() is None, "the run ended before it could be stopped"
        run.send_signal(signum)
        shown, errors = run.communicate(timeout=120)
    finally:
        stop_process_tree(run.pid)
    (moved,) = tmp_path.glob("run.replaced-*")
    assert (moved / "summary.json").read_bytes() == summary
    assert f"moved the run that was in {out} to {moved}" in shown
    assert run.returncode == 128 + signum and signal.Signals(signum).name in errors
    assert leftovers.after(30) == {}
