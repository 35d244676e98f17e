"""Typed experiment configuration: YAML in, validated dataclasses out.

An unknown key or a value of the wrong type is an error that names the key (`train.epochs:
expected an integer, got 'ten'`). `--set key.sub=value` overrides parse their value as YAML.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fedland.model.config import DUNetConfig


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and key."""


@dataclass
class ModelSection:
    """DU-Net settings (see `fedland.model.DUNetConfig`); landmarks come from the dataset."""

    num_unets: int = 2
    order: int = 1
    width: int = 64
    growth: int = 16
    neck: int = 4
    input_size: int = 128
    num_supervised: int | None = None
    memory_efficient: bool = True
    refine: bool = False
    bits: str = "w32a32g32"
    quant_scope: str = "all"
    per_filter_scale: bool = True
    activation_clip: float = 4.0
    low_bit_saved_activations: bool = True

    def build(self, num_landmarks: int) -> DUNetConfig:
        return DUNetConfig(num_landmarks=num_landmarks, **dataclasses.asdict(self))


@dataclass
class SyntheticSection:
    """The embedded default data, generated on first use and cached."""

    num: int = 1500
    seed: int = 0
    image_size: int = 256
    cache_dir: str | None = None  # default: $XDG_CACHE_HOME/fedland/synthetic


@dataclass
class AugmentSection:
    scale_sigma: float = 0.25
    rotation_sigma: float = 30.0
    rotation_off_probability: float = 0.6
    flip_probability: float | None = None  # None: 0.5 for poses, 0 for faces
    colour_gain: list[float] = field(default_factory=lambda: [0.6, 1.4])


@dataclass
class DataSection:
    dataset: str = "300w"  # 300w, wflw, mpii, lsp, coco
    root: str | None = None  # None: synthetic data in the dataset's format
    train_split: str = "train"
    eval_split: str | None = None  # None: the dataset's usual evaluation split
    sigma: float = 1.5  # Gaussian sigma in heatmap pixels
    dark: bool = False
    skip_bad: bool = False
    workers: int = 2
    synthetic: SyntheticSection = field(default_factory=SyntheticSection)
    augment: AugmentSection = field(default_factory=AugmentSection)


@dataclass
class TrainSection:
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    lr_milestones: list[int] = field(default_factory=lambda: [14, 18])
    lr_factor: float = 0.2
    rmsprop_alpha: float = 0.99
    rmsprop_eps: float = 1e-8
    weight_decay: float = 0.0
    flip_test: bool | None = None  # None: on for poses, off for faces
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    out: str = "runs/train"
    time_limit_minutes: float | None = None


@dataclass
class PartitionSection:
    """How the training split is divided among clients (see `fedland.federation.partition`)."""

    scheme: str = "dirichlet"  # iid, dirichlet, pathological, natural, quantity
    num_partitions: int = 8
    attribute: str = "site"  # a record attribute, or "subset" / "split"
    alpha: float = 0.5
    classes_per_partition: int = 2
    seed: int = 0
    min_partition_size: int = 4


@dataclass
class CodecSection:
    """What travels on the wire each round (see `fedland.codec`)."""

    uplink_bits: int = 32  # 32, 16, 8, 4, 2, 1: client -> server weight deltas
    downlink_bits: int = 32  # the broadcast of the global model, same choices
    block_size: int = 256
    stochastic: bool = True  # stochastic (unbiased) or nearest rounding
    error_feedback: bool = True  # clients keep the uplink residual across rounds
    float_bits: int = 16  # tensors not quantized at the uplink width (BatchNorm, small): 8, 16, 32
    min_quantize_size: int = 1024  # tensors with fewer elements travel as floats
    node_uplink_bits: bool = False  # nodes may pick their own uplink bits (node config)


@dataclass
class FederationSection:
    """Rounds, sampling and local work of a federated run."""

    rounds: int = 10
    local_epochs: int = 1
    local_batches: int | None = None  # cap on batches per round (None: whole epochs)
    lr_milestones: list[int] = field(default_factory=list)  # rounds after which lr *= lr_factor
    fraction_train: float = 1.0
    min_train_nodes: int = 2
    min_available_nodes: int = 2
    round_timeout: float = 3600.0  # seconds the server waits for replies
    client_cpus: float = 1.0  # Simulation Engine resources per client
    client_gpus: float = 0.0
    out: str = "runs/simulate"
    resume: bool = False  # continue the run in `out` from its last checkpointed round


@dataclass
class ExperimentConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    partition: PartitionSection = field(default_factory=PartitionSection)
    codec: CodecSection = field(default_factory=CodecSection)
    federation: FederationSection = field(default_factory=FederationSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> ExperimentConfig:
    """Defaults, then the YAML file, then `key.sub=value` overrides, validated as a whole."""
    data: dict[str, Any] = {}
    source = "--set"
    if path is not None:
        source = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({error})") from error
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        data = loaded or {}
    for override in overrides or []:
        _apply_override(data, override)
    try:
        return _build(ExperimentConfig, data, "")
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def load_config_dict(data: dict[str, Any], overrides: list[str] | None = None) -> ExperimentConfig:
    """A config saved with a run (for example inside a checkpoint), plus overrides."""
    merged = copy.deepcopy(data)
    for override in overrides or []:
        _apply_override(merged, override)
    try:
        return _build(ExperimentConfig, merged, "")
    except ConfigError as error:
        raise ConfigError(f"saved config: {error}") from None


def _apply_override(data: dict[str, Any], override: str) -> None:
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r} is not of the form key.sub=value")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"override {override!r}: value is not valid YAML ({error})") from error
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        where = f"{prefix}{unknown[0]}"
        raise ConfigError(f"{where}: unknown key; known keys here: {', '.join(sorted(known))}")
    values = {}
    for name, value in data.items():
        values[name] = _convert(hints[name], value, f"{prefix}{name}")
    return cls(**values)


def _convert(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.")
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [option for option in options if option is not type(None)]
        return _convert(inner, value, key)
    if origin is list:
        (inner,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_convert(inner, item, f"{key}[{i}]") for i, item in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{key}: unsupported setting type {hint}")


def dump_config(config: ExperimentConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
