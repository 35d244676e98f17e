"""Hostile nodes for simulations: what an attacking node sends instead of its honest reply.

Off by default (`attack.kind: none`). The attack runs inside the attacking node's ClientApp,
before the codec mod encodes the reply, so its payload is as well-formed as any other: the
server sees only what a real malicious node could send. Kinds (`attack.scale` None: the
kind's default in `DEFAULT_SCALE`):

- `sign_flip`: the update negated and scaled by `scale`;
- `scale`: the update scaled by `scale`;
- `gaussian`: Gaussian noise instead of the update, `scale` times its per-tensor RMS;
- `zero`: no change (a free rider that still claims its examples);
- `random`: a random model (each tensor uniform over the global tensor's range);
- `examples`: the honest update with `num-examples` claimed as `scale`;
- `mirror`: data poisoning: every training crop mirrored with its landmarks moved but not
  swapped with their left/right partners.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import torch

from fedland.config import ExperimentConfig
from fedland.data.dataset import LandmarkDataset
from fedland.federation.weights import Weights
from fedland.seeds import derive_seed

if TYPE_CHECKING:  # the local training imports the node's (maybe poisoned) data from here
    from fedland.federation.local import LocalResult

DEFAULT_SCALE = {"sign_flip": 4.0, "scale": 30.0, "gaussian": 3.0, "random": 1.0,
                 "examples": 1e6, "zero": 1.0, "mirror": 1.0}  # fmt: skip


def attacking_partitions(config: ExperimentConfig) -> list[int]:
    """The partition ids that attack: `attack.nodes`, or `attack.num_nodes` drawn at random
    (seeded by `attack.seed`), so server and nodes agree without talking about it."""
    attack = config.attack
    if attack.kind == "none":
        return []
    if attack.nodes:
        return sorted(set(attack.nodes))
    rng = np.random.default_rng(derive_seed(attack.seed, "attack"))
    chosen = rng.choice(config.partition.num_partitions, attack.num_nodes, replace=False)
    return sorted(int(node) for node in chosen)


def attack_scale(config: ExperimentConfig) -> float:
    attack = config.attack
    return DEFAULT_SCALE.get(attack.kind, 1.0) if attack.scale is None else attack.scale


def attack_summary(config: ExperimentConfig) -> dict | None:
    """What the run summary records of the attack (None without one)."""
    if config.attack.kind == "none":
        return None
    return {"kind": config.attack.kind, "scale": attack_scale(config),
            "partitions": attacking_partitions(config)}  # fmt: skip


def attacks(config: ExperimentConfig, partition_id: int) -> bool:
    return partition_id in attacking_partitions(config)


def poison(dataset: LandmarkDataset) -> None:
    """The `mirror` attack: every crop flipped, landmarks mirrored but not swapped."""
    if dataset.augmentation is None:
        raise ValueError("the mirror attack poisons a training dataset (with augmentation)")
    dataset.augmentation = dataclasses.replace(dataset.augmentation, flip_probability=1.0)
    dataset.flip_permutation = np.arange(len(dataset.flip_permutation))


def corrupt(
    config: ExperimentConfig, model: Weights, result: LocalResult, server_round: int,
    partition_id: int,
) -> LocalResult:  # fmt: skip
    """The reply an attacking node sends in place of `result` (trained from `model`)."""
    kind, scale = config.attack.kind, attack_scale(config)
    if kind == "examples":
        return dataclasses.replace(result, num_examples=int(scale))
    if kind == "mirror":  # the poisoned data did the harm already
        return result
    generator = torch.Generator().manual_seed(
        derive_seed(config.train.seed, "attack", server_round, partition_id)
    )
    sent = {}
    for name, start in model.items():
        delta = result.weights[name] - start
        sent[name] = start + _attacked(kind, scale, start, delta, generator)
    return dataclasses.replace(result, weights=sent)


def _attacked(
    kind: str, scale: float, start: torch.Tensor, delta: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    if kind == "sign_flip":
        return -scale * delta
    if kind == "scale":
        return scale * delta
    if kind == "zero":
        return torch.zeros_like(delta)
    if kind == "gaussian":
        rms = delta.square().mean().sqrt()
        return scale * rms * torch.randn(delta.shape, generator=generator)
    if kind == "random":
        low, high = start.min(), start.max()
        model = low + (high - low) * torch.rand(start.shape, generator=generator)
        return scale * (model - start)
    raise ValueError(f"attack.kind {kind!r} does not change updates")
