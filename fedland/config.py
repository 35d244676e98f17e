"""Typed experiment configuration: YAML in, validated dataclasses out.

An unknown key or a value of the wrong type is an error that names the key (`train.epochs:
expected an integer, got 'ten'`). `--set key.sub=value` overrides parse their value as YAML.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fedland.codec.format import ALLOWED_BITS, DEFAULT_METHOD, FLOAT_BITS, MAX_BLOCK, CodecConfig
from fedland.codec.methods import METHODS, SCALE_CHOICES, resolve_scale
from fedland.data.meta import DATASETS
from fedland.model.config import INPUT_MULTIPLE, QUANT_SCOPES, DUNetConfig, ModelConfigError
from fedland.quant.bitspec import BitSpec


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and key."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Allowed:
    """What a setting may be, and how an error says so."""

    test: Callable[[Any], bool]
    says: str


def at_least(low: float) -> Allowed:
    return Allowed(lambda value: value >= low, f"at least {low}")


def between(low: float, high: float) -> Allowed:
    return Allowed(lambda value: low <= value <= high, f"from {low} to {high}")


def one_of(*choices: Any) -> Allowed:
    return Allowed(lambda value: value in choices, f"one of {', '.join(map(str, choices))}")


POSITIVE = Allowed(lambda value: value > 0, "positive")
FRACTION = Allowed(lambda value: 0 < value <= 1, "in (0, 1]")
PROBABILITY = between(0, 1)
DEVICE = Allowed(
    lambda value: re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value) is not None,
    "auto, cpu, mps, cuda or cuda:N",
)
BIT_SPEC = Allowed(lambda value: _parses(BitSpec.parse, value), "a bit spec such as w1a8g8")
PARTITION_SCHEMES = ("iid", "dirichlet", "pathological", "natural", "quantity")
AGGREGATORS = ("fedavg", "median", "trimmed_mean", "krum", "multi_krum", "bulyan")
WEIGHTINGS = ("capped", "claimed", "equal")
ATTACKS = ("none", "sign_flip", "scale", "gaussian", "zero", "random", "examples", "mirror")
NORM_BOUND = Allowed(
    lambda value: value in ("auto", "none") or _parses(_positive_number, value),
    "auto, none or a positive number",
)


def first_broken(rules: tuple[Allowed, ...], value: Any) -> Allowed | None:
    """The first rule that `value` (each item of a list; None always passes) breaks."""
    values = value if isinstance(value, list) else [value]
    for rule in rules:
        if any(one is not None and not rule.test(one) for one in values):
            return rule
    return None


def _positive_number(text: str) -> float:
    number = float(text)
    if not number > 0 or number == float("inf"):
        raise ValueError(text)
    return number


def _parses(parse: Callable[[Any], Any], value: Any) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


def setting(default: Any, *allowed: Allowed) -> Any:
    """A field of a section with what it may be (checked item by item for lists); None, where
    the type allows it, is always allowed. A list default is copied for each instance."""
    metadata = {"allowed": allowed}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class ModelSection:
    """DU-Net settings (fields of `fedland.model.DUNetConfig` less `num_landmarks`, which comes
    from the dataset). The defaults are a CPU-sized model; DUNetConfig's are the paper's."""

    num_unets: int = setting(2, at_least(1))
    order: int = setting(1, at_least(0))
    width: int = setting(64, at_least(1))
    growth: int = setting(16, at_least(1))
    neck: int = setting(4, at_least(1))
    input_size: int = setting(128, at_least(INPUT_MULTIPLE))
    num_supervised: int | None = setting(None, at_least(1))
    memory_efficient: bool = True
    refine: bool = False
    bits: str = setting("w32a32g32", BIT_SPEC)
    quant_scope: str = setting("all", one_of(*QUANT_SCOPES))
    per_filter_scale: bool = True
    activation_clip: float = setting(4.0, POSITIVE)
    low_bit_saved_activations: bool = True

    def build(self, num_landmarks: int) -> DUNetConfig:
        return DUNetConfig(num_landmarks=num_landmarks, **dataclasses.asdict(self))


@dataclass
class SyntheticSection:
    """The embedded default data, generated on first use and cached."""

    num: int = setting(1500, at_least(1))
    seed: int = 0
    image_size: int = setting(256, at_least(32))
    cache_dir: str | None = None  # default: $XDG_CACHE_HOME/fedland/synthetic


@dataclass
class AugmentSection:
    scale_sigma: float = setting(0.25, at_least(0))
    rotation_sigma: float = setting(30.0, at_least(0))
    rotation_off_probability: float = setting(0.6, PROBABILITY)
    flip_probability: float | None = setting(None, PROBABILITY)  # None: 0.5 poses, 0 faces
    colour_gain: list[float] = setting([0.6, 1.4], POSITIVE)


@dataclass
class DataSection:
    dataset: str = setting("300w", one_of(*DATASETS))
    root: str | None = None  # None: synthetic data in the dataset's format
    train_split: str = "train"
    eval_split: str | None = None  # None: the dataset's usual evaluation split
    sigma: float = setting(1.5, POSITIVE)  # Gaussian sigma in heatmap pixels
    dark: bool = False
    skip_bad: bool = False
    workers: int = setting(2, at_least(0))
    synthetic: SyntheticSection = field(default_factory=SyntheticSection)
    augment: AugmentSection = field(default_factory=AugmentSection)


@dataclass
class TrainSection:
    epochs: int = setting(20, at_least(1))
    batch_size: int = setting(16, at_least(1))
    lr: float = setting(1e-3, POSITIVE)
    lr_milestones: list[int] = setting([14, 18], at_least(1))
    lr_factor: float = setting(0.2, POSITIVE)
    rmsprop_alpha: float = setting(0.99, PROBABILITY)
    rmsprop_eps: float = setting(1e-8, POSITIVE)
    weight_decay: float = setting(0.0, at_least(0))
    flip_test: bool | None = None  # None: on for poses, off for faces
    seed: int = 0
    device: str = setting("auto", DEVICE)
    out: str = "runs/train"
    time_limit_minutes: float | None = setting(None, POSITIVE)


@dataclass
class PartitionSection:
    """How the training split is divided among clients (see `fedland.federation.partition`)."""

    scheme: str = setting("dirichlet", one_of(*PARTITION_SCHEMES))
    num_partitions: int = setting(8, at_least(1))
    attribute: str = "site"  # a record attribute, or "subset" / "split"
    alpha: float = setting(0.5, POSITIVE)
    classes_per_partition: int = setting(2, at_least(1))
    seed: int = 0
    min_partition_size: int = setting(4, at_least(0))


@dataclass
class CodecSection:
    """What travels on the wire each round (see `fedland.codec`)."""

    uplink_bits: int = setting(32, one_of(*ALLOWED_BITS))  # client -> server weight deltas
    downlink_bits: int = setting(32, one_of(*ALLOWED_BITS))  # the broadcast global model
    method: str = setting(DEFAULT_METHOD, one_of(*METHODS))  # see fedland.codec.methods
    downlink_method: str | None = setting(None, one_of(*METHODS))  # None: as `method`
    # lloyd, ecsq: least squares, norm-keeping, or auto (norm at 1 bit); see block_scales
    scale: str = setting("auto", one_of(*SCALE_CHOICES))
    downlink_scale: str | None = setting(None, one_of(*SCALE_CHOICES))  # None: as `scale`
    block_size: int = setting(256, between(1, MAX_BLOCK))
    stochastic: bool = False  # the method's unbiased variant (uniform: stochastic rounding)
    resync_bits: int = setting(8, one_of(*ALLOWED_BITS))  # full model for a node out of step
    downlink_history: int = setting(4, at_least(0))  # past broadcasts kept for stale nodes
    error_feedback: bool = True  # clients keep the uplink residual across rounds
    float_bits: int = setting(16, one_of(*FLOAT_BITS))  # tensors not quantized at the uplink width
    min_quantize_size: int = setting(1024, at_least(0))  # smaller tensors travel as floats
    node_uplink_bits: bool = False  # nodes may pick their own uplink bits (node config)


@dataclass
class FederationSection:
    """Rounds, sampling and local work of a federated run."""

    rounds: int = setting(10, at_least(1))
    local_epochs: int = setting(1, at_least(1))
    local_batches: int | None = setting(None, at_least(1))  # cap per round (None: whole epochs)
    lr_milestones: list[int] = setting([], at_least(1))  # rounds after which lr decays
    fraction_train: float = setting(1.0, FRACTION)
    min_train_nodes: int = setting(2, at_least(1))
    min_available_nodes: int = setting(2, at_least(1))
    round_timeout: float = setting(3600.0, POSITIVE)  # seconds the server waits for replies
    node_wait_timeout: float = setting(600.0, POSITIVE)  # seconds to wait for enough nodes
    client_cpus: float = setting(1.0, POSITIVE)  # Simulation Engine resources per client
    client_gpus: float = setting(0.0, at_least(0))
    out: str = "runs/simulate"
    resume: bool = False  # continue the run in `out` from its last checkpointed round
    # Hostile nodes (see fedland.federation.aggregation): how replies are combined.
    aggregator: str = setting("fedavg", one_of(*AGGREGATORS))
    max_update_norm: str = setting("auto", NORM_BOUND)  # auto: twice the round's median norm
    weighting: str = setting("capped", one_of(*WEIGHTINGS))  # capped: num-examples <= 2x median
    trim_fraction: float = setting(0.25, between(0, 0.49))  # trimmed_mean: cut at each end
    num_malicious: int = setting(2, at_least(0))  # krum, multi_krum, bulyan: nodes assumed hostile
    # multi_krum: leave out only nodes whose Krum score is above this multiple of the round's
    # median score (at most num_malicious of them); 0 always leaves out num_malicious
    krum_threshold: float = setting(0.0, at_least(0))
    max_idle_rounds: int = setting(3, at_least(1))  # rounds in a row without an update: stop

    def norm_bound(self) -> float | None:
        """An absolute bound on each update's norm; None for `auto` and `none`."""
        if self.max_update_norm in ("auto", "none"):
            return None
        return _positive_number(self.max_update_norm)


@dataclass
class AttackSection:
    """Hostile nodes in a simulation (see fedland.federation.attack): off by default."""

    kind: str = setting("none", one_of(*ATTACKS))
    num_nodes: int = setting(0, at_least(0))  # partitions chosen at random (seeded)
    nodes: list[int] = setting([], at_least(0))  # or these partition ids
    scale: float | None = None  # None: the kind's own default (sign_flip 4, scale 30, ...)
    seed: int = 0


@dataclass
class ExperimentConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    partition: PartitionSection = field(default_factory=PartitionSection)
    codec: CodecSection = field(default_factory=CodecSection)
    federation: FederationSection = field(default_factory=FederationSection)
    attack: AttackSection = field(default_factory=AttackSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def validate(config: ExperimentConfig) -> ExperimentConfig:
    """Every setting against what it may be, then the rules that tie settings together
    (the DU-Net's shape, the codec at both widths); the error names the key."""
    _check_fields(config, "")
    try:
        config.model.build(num_landmarks=1)
    except ModelConfigError as error:
        raise ConfigError(f"model.{error.key}: {error}", f"model.{error.key}") from None
    section = config.codec
    codec_config(section, section.uplink_bits, uplink_choice(section), section.error_feedback,
                 "uplink_bits")  # fmt: skip
    codec_config(section, section.downlink_bits, downlink_choice(section), True, "downlink_bits")
    resync_config(section)
    _check_hostile_settings(config)
    return config


# Replies a selection rule needs for `f` assumed hostile nodes (Krum: n > 2f + 2; Bulyan:
# n >= 4f + 3, Guerraoui et al. 2018).
def least_replies(aggregator: str, num_malicious: int) -> int:
    return {"krum": 2 * num_malicious + 3, "multi_krum": 2 * num_malicious + 3,
            "bulyan": 4 * num_malicious + 3}.get(aggregator, 1)  # fmt: skip


def _check_hostile_settings(config: ExperimentConfig) -> None:
    """A selection rule that the round's sample cannot support, and attacks that name no
    node or a node that does not exist, are refused before anything starts."""
    federation, attack = config.federation, config.attack
    partitions = config.partition.num_partitions
    for key in ("min_train_nodes", "min_available_nodes"):
        if getattr(federation, key) > partitions:
            raise ConfigError(
                f"federation.{key}: {getattr(federation, key)} nodes can never be reached with "
                f"{partitions} partitions (partition.num_partitions); the run would wait forever",
                f"federation.{key}",
            )
    sampled = max(int(partitions * federation.fraction_train), federation.min_train_nodes)
    needed = least_replies(federation.aggregator, federation.num_malicious)
    if sampled < needed:
        raise ConfigError(
            f"federation.num_malicious: {federation.aggregator} with {federation.num_malicious} "
            f"hostile nodes needs at least {needed} replies a round; about {sampled} nodes "
            "are sampled (lower num_malicious or sample more nodes)",
            "federation.num_malicious",
        )
    if attack.kind == "none":
        return
    if attack.nodes and attack.num_nodes:
        raise ConfigError("attack.nodes: give attack.nodes or attack.num_nodes, not both",
                          "attack.nodes")  # fmt: skip
    if not attack.nodes and not attack.num_nodes:
        raise ConfigError(f"attack.num_nodes: attack.kind={attack.kind} needs attacking nodes "
                          "(attack.num_nodes or attack.nodes)", "attack.num_nodes")  # fmt: skip
    outside = [node for node in attack.nodes if node >= partitions]
    if attack.num_nodes > partitions or outside:
        raise ConfigError(
            f"attack.{'nodes' if outside else 'num_nodes'}: only {partitions} partitions "
            f"(partition.num_partitions), got {outside or attack.num_nodes}",
            f"attack.{'nodes' if outside else 'num_nodes'}",
        )


def uplink_choice(section: CodecSection) -> tuple[str, str]:
    """The uplink's method and block scale."""
    return section.method, section.scale


def downlink_choice(section: CodecSection) -> tuple[str, str]:
    """The broadcast's method and block scale: the uplink's unless set apart."""
    return section.downlink_method or section.method, section.downlink_scale or section.scale


def resync_config(section: CodecSection) -> CodecConfig:
    """Full models for nodes out of step: the deterministic default codec at resync_bits,
    least-squares scaled (a full model is no step that error feedback repays)."""
    deterministic = dataclasses.replace(section, stochastic=False)
    choice = (DEFAULT_METHOD, "ls")
    return codec_config(deterministic, section.resync_bits, choice, True, "resync_bits")


def codec_config(
    section: CodecSection, bits: int, choice: tuple[str, str], feedback: bool, key: str
) -> CodecConfig:
    """The codec of one direction. With error feedback the uniform grid rounds to nearest
    at 1 and 2 bits (1 bit: sign x mean|x| per block): stochastic rounding at these widths
    is unbiased but not contractive, so the residual grows (measured: 2-bit stochastic
    residuals reach 6x an update, nearest 1.3x) and training stalls."""
    method, asked = choice
    scale = resolve_scale(asked, method, bits)
    stochastic = section.stochastic and not (method == "uniform" and bits <= 2 and feedback)
    try:
        return CodecConfig(
            bits=bits,
            method=method,
            scale=scale,
            block_size=section.block_size,
            stochastic=stochastic,
            float_bits=section.float_bits,
            min_quantize_size=section.min_quantize_size,
        )
    except ValueError as error:
        raise ConfigError(f"codec.{key} = {bits}: {error}", f"codec.{key}") from error


def _check_fields(section: Any, prefix: str) -> None:
    for item in dataclasses.fields(section):
        key, value = f"{prefix}{item.name}", getattr(section, item.name)
        if dataclasses.is_dataclass(value):
            _check_fields(value, f"{key}.")
            continue
        broken = first_broken(item.metadata.get("allowed", ()), value)
        if broken is not None:
            raise ConfigError(f"{key}: must be {broken.says}, got {value!r}", key)


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
    return _resolve(data, source, overrides or [])


def load_config_dict(data: dict[str, Any], overrides: list[str] | None = None) -> ExperimentConfig:
    """A config saved with a run (for example inside a checkpoint), plus overrides."""
    merged = copy.deepcopy(data)
    for override in overrides or []:
        _apply_override(merged, override)
    return _resolve(merged, "saved config", overrides or [])


def _resolve(data: dict[str, Any], source: str, overrides: list[str]) -> ExperimentConfig:
    """Typed and validated; an error is blamed on the `--set` that gave the key, else on
    `source`."""
    try:
        return validate(_build(ExperimentConfig, data, ""))
    except ConfigError as error:
        given = [o for o in overrides if error.key and _names(o.partition("=")[0], error.key)]
        where = f"--set {given[-1]}" if given else source
        raise ConfigError(f"{where}: {error}", error.key) from None


def _names(override_key: str, key: str) -> bool:
    """Whether `--set override_key=...` gave `key` (itself or a section above it)."""
    override_key = override_key.strip()
    return key == override_key or key.startswith(override_key + ".")


_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


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
        where = prefix.rstrip(".") or "config"
        raise ConfigError(f"{where}: expected a mapping, got {data!r}", prefix.rstrip(".") or None)
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        where = f"{prefix}{unknown[0]}"
        known_keys = ", ".join(sorted(known))
        raise ConfigError(f"{where}: unknown key; known keys here: {known_keys}", where)
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
            raise ConfigError(f"{key}: expected a list, got {value!r}", key)
        return [_convert(inner, item, f"{key}[{i}]") for i, item in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}", key)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}", key)
        return value
    if hint is float:
        if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}", key)
        return float(value)
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a string, got {value!r}", key)
        return str(value)
    raise ConfigError(f"{key}: unsupported setting type {hint}", key)


def dump_config(config: ExperimentConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
