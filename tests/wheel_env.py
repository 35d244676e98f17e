"""A wheel built from the project's sources and a fresh virtual environment that holds it:
what a machine without the checkout has. Built once per test session (conftest fixtures)."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"fedland": "fedland", "server": "fedland/server", "clients": "fedland/clients",
           "simulations": "fedland/simulations"}  # fmt: skip


def build_wheel(source: Path, out: Path) -> Path:
    """Built from a copy of the project's sources in `source`, so the checkout gets no build
    files."""
    for name in (*SOURCES, "pyproject.toml", "README.md"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("fedland-*.whl")
    return built


def fresh_environment(root: Path, wheel: Path) -> Path:
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


def without_checkout(tools: Path) -> dict[str, str]:
    """The environment of a process that sees only `tools` (and the system's commands)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PATH"] = os.pathsep.join([str(tools), "/usr/bin", "/bin"])
    return env
