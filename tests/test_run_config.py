"""How a `flwr run` finds its experiment: the YAML, then `set`, then `num-server-rounds` and
`out` where the user gave them; pyproject's defaults never override the first two."""

from __future__ import annotations

import tomllib

import pytest

from fedland.config import ConfigError
from fedland.federation.settings import experiment_from_run_config
from fedland.simulations.configs import QUICKSTART
from fedland.simulations.harness import APP_DIR

DEFAULTS = tomllib.loads((APP_DIR / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]


@pytest.fixture
def experiment(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("federation:\n  rounds: 7\n  out: runs/mine\ncodec:\n  uplink_bits: 2\n")
    return str(path)


def _resolved(**run_config) -> tuple[int, str, int]:
    config = experiment_from_run_config(run_config, QUICKSTART)
    return config.federation.rounds, config.federation.out, config.codec.uplink_bits


def test_pyproject_defaults_run_the_quickstart_as_it_is():
    assert _resolved(**DEFAULTS) == _resolved() == (20, "runs/quickstart", 4)


def test_a_yaml_keeps_its_own_rounds_and_out_under_pyproject_defaults(experiment):
    assert _resolved(**{**DEFAULTS, "config": experiment}) == (7, "runs/mine", 2)


def test_set_overrides_the_yaml(experiment):
    given = {**DEFAULTS, "config": experiment, "set": "federation.rounds=50 federation.out=b"}
    assert _resolved(**given) == (50, "b", 2)
    assert _resolved(**{**DEFAULTS, "set": "federation.rounds=50"}) == (50, "runs/quickstart", 4)


def test_num_server_rounds_and_out_given_override_set_and_the_yaml(experiment):
    given = {"config": experiment, "set": "federation.rounds=50 federation.out=b"}
    assert _resolved(**given, **{"num-server-rounds": 3}, out="c") == (3, "c", 2)
    assert _resolved(**{**DEFAULTS, "num-server-rounds": 4}) == (4, "runs/quickstart", 4)
    assert _resolved(**{**DEFAULTS, "out": "elsewhere"}) == (20, "elsewhere", 4)


@pytest.mark.parametrize("rounds", ["many", -1])
def test_a_bad_num_server_rounds_names_the_key(rounds):
    with pytest.raises(ConfigError, match="num-server-rounds"):
        experiment_from_run_config({"num-server-rounds": rounds}, QUICKSTART)
