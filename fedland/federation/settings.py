"""Settings of a federated run as the Flower apps receive them.

The server reads the experiment from Flower's run config and sends a node the part it needs
(`client_view`) with every full model, so a node needs no config file of its own: only its
node config (which partition, where its data lives, its device).

Precedence, lowest first: the YAML (`config`, empty for the quickstart), then `set` (overrides
as in `--set`), then `num-server-rounds` and `out` where the user gave them. Their defaults in
the app project (`simulations/app/pyproject.toml`: 0 and empty) mean "as the experiment
says", so a default never overrides the YAML or `set`.
"""

from __future__ import annotations

import copy
import functools
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fedland import __version__
from fedland.codec import CodecConfig
from fedland.codec.format import ALLOWED_BITS
from fedland.config import (
    DEVICE,
    Allowed,
    ConfigError,
    ExperimentConfig,
    at_least,
    codec_config,
    downlink_choice,
    first_broken,
    load_config,
    load_config_dict,
    one_of,
    resync_config,
    uplink_choice,
)
from fedland.data.meta import DATASETS

# Keys of the ConfigRecord in every train message.
EXPERIMENT = "experiment"
KIND = "downlink-kind"
BASE_ROUND = "base-round"
UPLINK_BITS = "uplink-bits"
SERVER_ROUND = "server-round"
DOWNLINK_SEED = "downlink-seed"  # what the payload was encoded with (rotation, rounding)
UPLINK_SEED = "uplink-seed"  # what the node encodes its reply with; the server decodes by it
# Keys of a reply's MetricRecord beside the training metrics: which share the node trained.
PARTITION_ID = "partition-id"
NUM_PARTITIONS = "num-partitions"  # 0: the node trains on its own data (data-path)
# Read by the server alone (evaluation, rounds, sampling, the run folder, centralized-only
# training keys); a node's copy of the experiment leaves them out and has defaults there.
SERVER_ONLY = {
    "data": ("eval_split",),
    "train": ("epochs", "lr_milestones", "flip_test", "out", "time_limit_minutes"),
    "federation": ("rounds", "fraction_train", "min_train_nodes", "min_available_nodes",
                   "round_timeout", "node_wait_timeout", "client_gpus", "out", "resume",
                   "aggregator", "max_update_norm", "weighting", "trim_fraction",
                   "num_malicious", "krum_threshold", "max_idle_rounds"),
}  # fmt: skip
FEDLAND_VERSION = "fedland-version"  # the server's; a node with another one refuses


def experiment_from_run_config(run_config: dict[str, Any], default: Path) -> ExperimentConfig:
    """The experiment of a `flwr run`: YAML (`config`, else `default`) < `set` <
    `num-server-rounds` and `out`."""
    path = str(run_config.get("config", "") or "") or str(default)
    overrides = shlex.split(str(run_config.get("set", "") or ""))
    try:
        rounds = int(run_config.get("num-server-rounds", 0) or 0)
    except ValueError:
        raise ConfigError(
            f"num-server-rounds: must be a whole number, got {run_config['num-server-rounds']!r}"
        ) from None
    if rounds < 0:
        raise ConfigError(
            f"num-server-rounds: must be at least 1 (0: the experiment's), got {rounds}"
        )
    if rounds:
        overrides.append(f"federation.rounds={rounds}")
    if run_config.get("out"):
        overrides.append(f"federation.out={run_config['out']}")
    return load_config(path, overrides)


def check_version(server_version: str) -> None:
    """The apps are the installed package's, so a node must run the server's fedland."""
    if server_version != __version__:
        raise RuntimeError(
            f"this node runs fedland {__version__} and the server fedland {server_version}: "
            "install the same version on every machine of the federation"
        )


def client_view(config: ExperimentConfig) -> str:
    """The experiment as a node needs it (YAML), without the keys only the server reads: a
    node holds its copy from the message that brought it a full model."""
    data = config.to_dict()
    for section, keys in SERVER_ONLY.items():
        for key in keys:
            del data[section][key]
    return yaml.safe_dump(data, sort_keys=False)


def experiment_from_text(text: str) -> ExperimentConfig:
    """Parsed once per text and process (a node's mod and app read the same experiment every
    round); each caller gets its own copy."""
    return copy.deepcopy(_parsed(text))


@functools.lru_cache(maxsize=4)
def _parsed(text: str) -> ExperimentConfig:
    return load_config_dict(yaml.safe_load(text))


def uplink_codec(config: ExperimentConfig, bits: int | None = None) -> CodecConfig:
    """The uplink codec at the run's width, or at a node's own `bits`."""
    section = config.codec
    bits = section.uplink_bits if bits is None else bits
    return codec_config(section, bits, uplink_choice(section), section.error_feedback,
                        "uplink_bits")  # fmt: skip


def downlink_codec(config: ExperimentConfig) -> CodecConfig:
    """The broadcast always feeds its error back (B chases G), see `downlink`."""
    section = config.codec
    choice = downlink_choice(section)
    return codec_config(section, section.downlink_bits, choice, True, "downlink_bits")


def resync_codec(config: ExperimentConfig) -> CodecConfig:
    """Full models for nodes that do not hold a recent broadcast (see `downlink`)."""
    return resync_config(config.codec)


@dataclass(frozen=True)
class NodeSettings:
    """A node's own settings (`--node-config` of a SuperNode; set by the Simulation Engine
    for `partition-id` and `num-partitions`)."""

    partition_id: int
    num_partitions: int
    data_path: str | None = None
    dataset: str | None = None
    device: str | None = None
    batch_size: int | None = None
    uplink_bits: int | None = None
    memory_efficient: bool | None = None

    @classmethod
    def from_node_config(cls, node_config: dict[str, Any]) -> NodeSettings:
        try:
            partition = int(node_config["partition-id"])
            count = int(node_config["num-partitions"])
        except KeyError as error:
            raise ValueError(f"node config lacks {error.args[0]!r}") from None
        if not 0 <= partition < count:
            raise ValueError(f"node config: partition-id {partition} not in [0, {count})")

        def optional(key: str, kind: Any, *allowed: Allowed) -> Any:
            """The same rules as the experiment's settings, named by the node-config key."""
            value = node_config.get(key)
            if value in (None, ""):
                return None
            try:
                value = kind(value)
            except ValueError:
                message = f"node config {key}: expected {kind.__name__}, got {value!r}"
                raise ValueError(message) from None
            broken = first_broken(allowed, value)
            if broken is not None:
                raise ValueError(f"node config {key}: must be {broken.says}, got {value!r}")
            return value

        return cls(
            partition_id=partition,
            num_partitions=count,
            data_path=optional("data-path", str),
            dataset=optional("dataset", str, one_of(*DATASETS)),
            device=optional("device", str, DEVICE),
            batch_size=optional("batch-size", int, at_least(1)),
            uplink_bits=optional("uplink-bits", int, one_of(*ALLOWED_BITS)),
            memory_efficient=optional("memory-efficient", boolean),
        )


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")
