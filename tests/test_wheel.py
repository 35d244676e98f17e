"""The wheel is the whole product on a machine without the checkout: it installs the `fedland`
import package only (the apps inside it) and ships its configs and its Flower App project.
Runs from the wheel alone: `fedland simulate` from an empty folder (tests/test_simulation.py)
and a whole deployment, SuperLink, SuperNodes and `flwr run` (tests/test_deployment.py)."""

from __future__ import annotations

import subprocess
import tomllib
import zipfile

import pytest

import fedland
from fedland.simulations.harness import APP_DIR
from tests.wheel_env import ROOT, SOURCES, without_checkout


def test_the_app_project_and_the_package_have_one_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    app = tomllib.loads((APP_DIR / "pyproject.toml").read_text())
    assert project["version"] == app["project"]["version"] == fedland.__version__
    components = app["tool"]["flwr"]["app"]["components"]
    assert components == {"serverapp": "fedland.server.app:app",
                          "clientapp": "fedland.clients.app:app"}  # fmt: skip


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


@pytest.mark.slow
def test_the_wheel_environment_imports_its_own_copy_and_writes_the_app_project(
    wheel_tools, tmp_path
):
    where = subprocess.run(
        [wheel_tools / "python", "-c", "import fedland.server.app as a; print(a.__file__)"],
        check=True, capture_output=True, text=True, cwd=tmp_path,
        env=without_checkout(wheel_tools),
    ).stdout  # fmt: skip
    assert where.startswith(str(wheel_tools.parent))  # the wheel's copy, not the checkout's
    app = subprocess.run([wheel_tools / "fedland", "deploy", "app", "--out", "app"],
                         cwd=tmp_path, env=without_checkout(wheel_tools), capture_output=True,
                         text=True)  # fmt: skip
    assert app.returncode == 0, app.stderr
    written = (tmp_path / "app" / "pyproject.toml").read_text()
    assert written == (APP_DIR / "pyproject.toml").read_text()
