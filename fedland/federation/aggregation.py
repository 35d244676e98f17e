"""Combining decoded updates when some nodes may be hostile.

Three stages on the server, over the float deltas the codec decoded (so they work with any
bit-width, error feedback, the quantized downlink, sampling and resume alike):

1. **weights**: what a node's claimed `num-examples` may count (`federation.weighting`):
   `capped` (at the largest partition the server knows of, or twice the round's median
   claim where that is more: honest claims in a simulation are never capped), `claimed` (as
   sent) or `equal`;
2. **the norm bound** (`federation.max_update_norm`): `auto` scales each tensor of an update
   down to at most twice the round's median norm of that tensor (per tensor, because
   BatchNorm's running statistics carry 70-98% of a DU-Net update's energy: a bound on the
   whole update would bound them and leave the convolutions free); a number bounds the norm
   of the whole update; either way direction within a tensor is kept;
3. **the rule** (`federation.aggregator`): `fedavg`, coordinate-wise `median`,
   `trimmed_mean`, `krum`, `multi_krum` or `bulyan`, with Flower's own aggregation
   functions where it has them (trimmed mean, Multi-Krum selection, Bulyan's closest-to-the-
   median average).

Every clip, cap and exclusion becomes an event naming the node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from flwr.app import MetricRecord, RecordDict
from flwr.serverapp.strategy.bulyan import aggregate_n_closest_weights
from flwr.serverapp.strategy.fedtrimmedavg import trim_mean
from flwr.serverapp.strategy.multikrum import compute_distances, select_multikrum

from fedland.config import FederationSection
from fedland.federation.weights import Weights, to_record

AUTO_FACTOR = 2.0  # `auto` bounds: twice the round's median (update norm, claimed examples)


@dataclass
class Reply:
    """One accepted update: its node, the decoded delta and the claimed num-examples."""

    node: int
    delta: Weights
    claimed: float


@dataclass
class Aggregate:
    mean: Weights
    weights: list[float]  # what each reply counted for (by the weighting policy)
    median_norm: float  # the round's median update norm, before any bound
    clipped: list[int] = field(default_factory=list)  # nodes whose update was scaled down
    capped: list[int] = field(default_factory=list)  # nodes whose claim was capped
    excluded: list[int] = field(default_factory=list)  # nodes a selection rule left out
    events: list[str] = field(default_factory=list)


def aggregate(
    replies: list[Reply], settings: FederationSection, largest_partition: float = 0.0
) -> Aggregate:
    """The round's update from `replies` (at least one) under `settings`;
    `largest_partition` is the largest number of examples an honest node can claim, where the
    server knows it (the partitions it computed), else 0."""
    claims = [r.claimed for r in replies]
    weights, capped, events = _weights(claims, settings.weighting, largest_partition)
    events = [f"node {replies[i].node}: {text}" for i, text in zip(capped, events, strict=True)]
    norms = [update_norm(r.delta) for r in replies]
    deltas, clipped, notes = _bounded([r.delta for r in replies], norms, settings)
    events += [f"node {replies[i].node}: {text}" for i, text in zip(clipped, notes, strict=True)]
    mean, kept, note = combine(deltas, weights, settings)
    if note:
        events.append(note)
    excluded = [r.node for i, r in enumerate(replies) if i not in kept]
    events += [f"node {node}: left out by {settings.aggregator}" for node in excluded]
    return Aggregate(
        mean=mean,
        weights=weights,
        median_norm=float(np.median(norms)),
        clipped=[replies[i].node for i in clipped],
        capped=[replies[i].node for i in capped],
        excluded=excluded,
        events=events,
    )


def _weights(
    claims: list[float], policy: str, largest_partition: float
) -> tuple[list[float], list[int], list[str]]:
    if policy == "equal":
        return [1.0] * len(claims), [], []
    if policy == "claimed":
        return list(claims), [], []
    cap = max(largest_partition, AUTO_FACTOR * float(np.median(claims)))
    over = [i for i, claim in enumerate(claims) if claim > cap]
    texts = [f"num-examples {claims[i]:g} capped at {cap:g}" for i in over]
    return [min(claim, cap) for claim in claims], over, texts


def update_norm(delta: Weights) -> float:
    return math.sqrt(sum(float(value.double().square().sum()) for value in delta.values()))


def _bounded(
    deltas: list[Weights], norms: list[float], settings: FederationSection
) -> tuple[list[Weights], list[int], list[str]]:
    """The deltas under the bound (`norms`: their whole-update norms); who was clipped and
    how. Only the clipped tensors are copied."""
    if settings.max_update_norm == "none":
        return deltas, [], []
    limit = settings.norm_bound()
    if limit is None:
        factors, texts = _per_tensor_factors(deltas)
    else:
        factors = [
            dict.fromkeys(d, limit / n) if n > limit else {}
            for d, n in zip(deltas, norms, strict=True)
        ]
        texts = [f"update norm {n:.4g} clipped to {limit:.4g}" for n in norms]
    bounded, clipped, notes = list(deltas), [], []
    for i, factor in enumerate(factors):
        if factor:
            bounded[i] = {**deltas[i], **{name: deltas[i][name] * f for name, f in factor.items()}}
            clipped.append(i)
            notes.append(texts[i])
    return bounded, clipped, notes


def _per_tensor_factors(deltas: list[Weights]) -> tuple[list[dict[str, float]], list[str]]:
    """For each delta, the scale of each tensor longer than twice the round's median norm of
    that tensor (a tensor most nodes leave unchanged is bounded at zero)."""
    norms = {name: [float(d[name].double().norm()) for d in deltas] for name in deltas[0]}
    bounds = {name: AUTO_FACTOR * float(np.median(values)) for name, values in norms.items()}
    factors, texts = [], []
    for i, delta in enumerate(deltas):
        over = {
            name: bounds[name] / norms[name][i] for name in delta if norms[name][i] > bounds[name]
        }
        factors.append(over)
        ratios = [norms[name][i] / bounds[name] for name in over if bounds[name] > 0]
        zeroed = len(over) - len(ratios)
        texts.append(
            f"{len(over)} of {len(delta)} tensors clipped to twice the round's median norm"
            + (f" (up to {max(ratios):.3g}x over)" if ratios else "")
            + (f"; {zeroed} that most nodes left unchanged set to zero" if zeroed else "")
        )
    return factors, texts


def combine(
    deltas: list[Weights], weights: list[float], settings: FederationSection
) -> tuple[Weights, list[int], str]:
    """(the aggregate, the indices of the deltas it used, a note when the round had too few
    replies for the assumed number of hostile nodes)."""
    rule, names = settings.aggregator, list(deltas[0])
    everyone = list(range(len(deltas)))
    if rule == "fedavg":
        return weighted_mean(deltas, weights), everyone, ""
    if rule == "median":
        return _coordinatewise(deltas, lambda stack: np.median(stack, axis=0)), everyone, ""
    if rule == "trimmed_mean":
        cut = settings.trim_fraction
        return _coordinatewise(deltas, lambda stack: trim_mean(stack, cut)), everyone, ""
    hostile, note = _assumed_hostile(rule, len(deltas), settings.num_malicious)
    contents = [_content(delta, weight) for delta, weight in zip(deltas, weights, strict=True)]
    if rule == "multi_krum" and settings.krum_threshold > 0:
        kept = _below_krum_threshold(contents, hostile, settings.krum_threshold)
        return weighted_mean([deltas[i] for i in kept], [weights[i] for i in kept]), kept, note
    if rule in ("krum", "multi_krum"):
        count = 1 if rule == "krum" else len(deltas) - hostile
        kept = _indices(select_multikrum(contents, hostile, count), contents)
        chosen = [deltas[i] for i in kept]
        return weighted_mean(chosen, [weights[i] for i in kept]), kept, note
    theta = len(deltas) - 2 * hostile  # bulyan: Multi-Krum picks theta, then beta per coordinate
    kept = _indices(select_multikrum(contents, hostile, theta), contents)
    selected = [[deltas[i][name].numpy() for name in names] for i in kept]
    medians = [np.median(np.stack(layers), axis=0) for layers in zip(*selected, strict=True)]
    closest = aggregate_n_closest_weights(medians, selected, theta - 2 * hostile)
    mean = {
        name: _from_numpy(array, deltas[0][name])
        for name, array in zip(names, closest, strict=True)
    }
    return mean, kept, note


def krum_scores(contents: list[RecordDict], hostile: int) -> np.ndarray:
    """Each reply's Krum score as Flower's `select_multikrum` computes it: the sum of its
    squared distances to its n - f - 2 nearest other replies."""
    distances = compute_distances([content["arrays"] for content in contents])
    nearest = max(1, len(contents) - hostile - 2)
    return np.array([np.sort(row)[1 : nearest + 1].sum() for row in distances])


def _below_krum_threshold(contents: list[RecordDict], hostile: int, threshold: float) -> list[int]:
    """The replies Multi-Krum keeps when it leaves out only outliers: of the `hostile`
    worst scores, those above `threshold` x the round's median score. On non-IID data the
    honest nodes farthest from the rest are then kept unless they really stand out."""
    scores = krum_scores(contents, hostile)
    limit = threshold * float(np.median(scores))
    worst = np.argsort(scores)[::-1][:hostile]
    left_out = {int(i) for i in worst if scores[i] > limit}
    return [i for i in range(len(contents)) if i not in left_out]


def weighted_mean(deltas: list[Weights], weights: list[float]) -> Weights:
    total = sum(weights)
    return {
        name: sum(
            delta[name] * (weight / total) for delta, weight in zip(deltas, weights, strict=True)
        )
        for name in deltas[0]
    }


def _assumed_hostile(rule: str, replies: int, num_malicious: int) -> tuple[int, str]:
    """At most as many hostile nodes as the round's replies can outvote."""
    per = 4 if rule == "bulyan" else 2
    fits = max(0, (replies - 3) // per)
    if num_malicious <= fits:
        return num_malicious, ""
    return fits, (
        f"{rule}: {replies} replies cannot outvote {num_malicious} hostile nodes; "
        f"this round assumes {fits}"
    )


def _coordinatewise(deltas: list[Weights], reduce) -> Weights:
    """`reduce` over the nodes' axis of each tensor stacked across the deltas."""
    stacked = {name: np.stack([delta[name].numpy() for delta in deltas]) for name in deltas[0]}
    return {name: _from_numpy(reduce(stack), deltas[0][name]) for name, stack in stacked.items()}


def _from_numpy(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array, dtype=np.float32)).to(like.dtype).reshape(like.shape)


def _content(delta: Weights, weight: float) -> RecordDict:
    """A reply's content as Flower's selection rules read it."""
    return RecordDict(
        {"arrays": to_record(delta), "metrics": MetricRecord({"num-examples": weight})}
    )


def _indices(selected: list[RecordDict], contents: list[RecordDict]) -> list[int]:
    return sorted(next(i for i, c in enumerate(contents) if c is s) for s in selected)
