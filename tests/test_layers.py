"""Dependencies point one way: commands -> apps (server, clients, simulations) -> federation
-> task -> model, data, codec -> quant. Each layer is imported alone in a fresh interpreter,
and nothing of a layer above it may come along."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import fedland
import fedland.clients
import fedland.server
import fedland.simulations

# Lowest first; a module belongs to the first layer with a prefix that names it.
LAYERS = {
    "quant": ("fedland.quant", "fedland.table", "fedland.seeds"),
    "model, data, codec": (
        "fedland.model", "fedland.data", "fedland.codec", "fedland.metrics", "fedland.config",
        "fedland.visualize", "fedland.evaluation",
    ),
    "task": ("fedland.task", "fedland.train", "fedland.predict"),
    "federation, centralized": ("fedland.federation", "fedland.centralized"),
    "apps": ("fedland.server", "fedland.clients", "fedland.simulations"),
    "commands": ("fedland.commands", "fedland.cli"),
}  # fmt: skip


def _layer_of(module: str) -> int | None:
    for index, prefixes in enumerate(LAYERS.values()):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def _modules() -> list[str]:
    names = []
    for package in (fedland, fedland.server, fedland.clients, fedland.simulations):
        names.append(package.__name__)
        names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return sorted(set(names))


def test_every_module_has_a_layer():
    unplaced = [m for m in _modules() if m != "fedland" and _layer_of(m) is None]
    assert unplaced == []


@pytest.fixture(scope="module")
def loaded_by_layer(tmp_path_factory) -> dict[int, subprocess.CompletedProcess]:
    """Each layer imported alone in its own fresh interpreter (away from the checkout), all
    started at once."""
    tmp = tmp_path_factory.mktemp("layers")
    running = {}
    for layer in range(len(LAYERS)):
        own = [m for m in _modules() if _layer_of(m) == layer]
        script = (
            "import importlib, json, sys\n"
            f"for name in {own!r}: importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))"
        )
        running[layer] = subprocess.Popen(
            [sys.executable, "-c", script], cwd=tmp, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
    results = {}
    for layer, process in running.items():
        stdout, stderr = process.communicate(timeout=300)
        results[layer] = subprocess.CompletedProcess(
            process.args, process.returncode, stdout, stderr
        )
    return results


@pytest.mark.parametrize("layer", range(len(LAYERS)), ids=list(LAYERS))
def test_a_layer_imports_nothing_above_it(layer, loaded_by_layer):
    result = loaded_by_layer[layer]
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout)
    above = [m for m in loaded if (_layer_of(m) or -1) > layer]
    assert above == [], f"{list(LAYERS)[layer]} pulls in {above}"
