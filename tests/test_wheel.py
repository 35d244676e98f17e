"""The wheel is the whole product on a machine without the checkout: it installs the `fedland`
import package only (the apps inside it), ships its configs and its Flower App project, and
`fedland simulate` runs the quickstart from an empty folder."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

import fedland
from fedland.simulations.harness import APP_DIR
from tests.conftest import TINY_FEDERATION
from tests.deployed import Federation
from tests.processes import Leftovers

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"fedland": "fedland", "server": "fedland/server", "clients": "fedland/clients",
           "simulations": "fedland/simulations"}  # fmt: skip


def test_the_app_project_and_the_package_have_one_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    app = tomllib.loads((APP_DIR / "pyproject.toml").read_text())
    assert project["version"] == app["project"]["version"] == fedland.__version__
    components = app["tool"]["flwr"]["app"]["components"]
    assert components == {"serverapp": "fedland.server.app:app",
                          "clientapp": "fedland.clients.app:app"}  # fmt: skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the project's sources, so the checkout gets no build files."""
    source = tmp_path_factory.mktemp("source")
    for name in (*SOURCES, "pyproject.toml", "README.md"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("fedland-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_the_fedland_package_only_with_every_module_and_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {
        "fedland",
        f"fedland-{fedland.__version__}.dist-info",
    }
    expected = {
        f"{target}/{path.relative_to(ROOT / folder).as_posix()}"
        for folder, target in SOURCES.items()
        for path in (ROOT / folder).rglob("*")
        if path.suffix in (".py", ".yaml", ".toml") and "__pycache__" not in path.parts
    }
    assert expected - set(names) == set()
    assert "fedland/simulations/app/pyproject.toml" in names
    assert "fedland/simulations/configs/quickstart.yaml" in names


def _fresh_environment(root: Path, wheel: Path) -> Path:
    """A new virtual environment holding the wheel; its dependencies are this environment's
    (through a path file, which does not run this environment's editable-install hook), and
    Flower's commands are written for its own interpreter."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--ignore-installed", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    for entry in importlib.metadata.distribution("flwr").entry_points:
        if entry.group == "console_scripts":
            module, _, attribute = entry.value.partition(":")
            script = root / "bin" / entry.name
            lines = [f"#!{python}", "import sys", f"from {module} import {attribute}"]
            script.write_text("\n".join([*lines, f"sys.exit({attribute}())", ""]))
            script.chmod(0o755)
    return root / "bin"


@pytest.fixture(scope="module")
def wheel_tools(wheel, tmp_path_factory) -> Path:
    """The bin folder of a fresh environment that holds the wheel."""
    return _fresh_environment(tmp_path_factory.mktemp("wheel-env") / "venv", wheel)


def _without_checkout(tools: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PATH"] = os.pathsep.join([str(tools), "/usr/bin", "/bin"])
    return env


@pytest.mark.slow
def test_fedland_simulate_runs_from_an_empty_folder_with_only_the_wheel(wheel_tools, tmp_path):
    tools = wheel_tools
    where = subprocess.run(
        [tools / "python", "-c", "import fedland.server.app as a, sys; print(a.__file__)"],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    ).stdout  # fmt: skip
    assert where.startswith(str(tools.parent))  # the wheel's copy, not the checkout's

    empty = tmp_path / "empty"
    empty.mkdir()
    settings = [*TINY_FEDERATION, "federation.rounds=1", "partition.num_partitions=2",
                f"data.synthetic.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    command = [tools / "fedland", "simulate", "--out", "run"]
    for setting in settings:
        command += ["--set", setting]
    env = _without_checkout(tools)
    leftovers = Leftovers()
    result = subprocess.run(command, cwd=empty, env=env, capture_output=True, text=True,
                            timeout=400)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((empty / "run" / "summary.json").read_text())
    assert summary["rounds"] == 1 and summary["config"]["codec"]["uplink_bits"] == 4
    assert [path.name for path in empty.iterdir()] == ["run"]
    assert leftovers.after(30) == {}

    app = subprocess.run([tools / "fedland", "deploy", "app", "--out", "app"], cwd=empty,
                         env=env, capture_output=True, text=True)  # fmt: skip
    assert app.returncode == 0, app.stderr
    assert (empty / "app" / "pyproject.toml").read_text() == (
        APP_DIR / "pyproject.toml"
    ).read_text()


@pytest.mark.slow
@pytest.mark.integration
def test_supernodes_with_only_the_wheel_train_a_round_on_the_deployment_engine(
    wheel_tools, tmp_path
):
    """Every process (SuperLink, SuperNodes, their ClientApps, `flwr run`) is the wheel
    environment's, and the app folder is the one `fedland deploy app` writes."""
    app = tmp_path / "app"
    command = [wheel_tools / "fedland", "deploy", "app", "--out", str(app)]
    env = _without_checkout(wheel_tools)
    written = subprocess.run(command, env=env, capture_output=True, text=True)
    assert written.returncode == 0, written.stderr
    federation = Federation(tmp_path / "federation", tools=wheel_tools, app=app)
    leftovers = Leftovers()
    try:
        federation.start_superlink()
        federation.start_registered_nodes(2)
        result = federation.run(tmp_path / "run", 1)
    finally:
        federation.stop()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [(row["round"], row["accepted"], row["failed"]) for row in rows] == [
        (0, 0, 0),
        (1, 2, 0),
    ]
    assert rows[1]["nme"] != rows[0]["nme"]
    for name in ("node1", "node2"):
        assert str(wheel_tools) in " ".join(federation.processes[name].args)
    assert leftovers.after(30) == {}
