"""Per-sample randomness: sample i depends only on (seed, i), so a dataset is byte-identical
across runs; balanced allocation of samples to sites and splits; random colours."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedland.data.synth.drawing import Color


def sample_rng(seed: int, task_tag: int, index: int) -> np.random.Generator:
    """The generator of sample `index`: independent of how many samples are made."""
    return np.random.default_rng([seed, task_tag, index])


def rank_uniforms(seed: int, task_tag: int, num: int) -> np.ndarray:
    """One uniform per sample from one stream; its first k values do not depend on num."""
    return np.random.default_rng([seed, task_tag + 1000]).random(num)


def allocate(total: int, weights: Sequence[float], minimum: int = 0) -> list[int]:
    """Split `total` in proportion to `weights` (largest remainder), each part >= minimum
    when `total` allows it, so small datasets keep every subset."""
    share = np.asarray(weights, dtype=np.float64)
    raw = share / share.sum() * total
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    if total >= minimum * len(counts):
        while (counts < minimum).any():
            counts[np.argmin(counts)] += 1
            counts[np.argmax(counts)] -= 1
    return [int(c) for c in counts]


def assign_by_rank(uniforms: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """Label each sample with a group so group g gets exactly counts[g] samples."""
    labels = np.empty(len(uniforms), dtype=np.int64)
    order = np.argsort(uniforms, kind="stable")
    start = 0
    for group, count in enumerate(counts):
        labels[order[start : start + count]] = group
        start += count
    return labels


def _channel(value: float) -> int:
    return int(min(max(value, 0.0), 255.0))


def jitter_color(rng: np.random.Generator, base: Sequence[float], spread: float) -> Color:
    r, g, b = rng.normal(0, spread, 3)
    return _channel(base[0] + r), _channel(base[1] + g), _channel(base[2] + b)


def random_color(rng: np.random.Generator, low: int = 0, high: int = 256) -> Color:
    r, g, b = rng.integers(low, high, 3)
    return int(r), int(g), int(b)


def scaled(color: Sequence[float], factor: float) -> Color:
    return _channel(color[0] * factor), _channel(color[1] * factor), _channel(color[2] * factor)


def mix(a: Sequence[float], b: Sequence[float], t: float) -> Color:
    return (
        _channel((1 - t) * a[0] + t * b[0]),
        _channel((1 - t) * a[1] + t * b[1]),
        _channel((1 - t) * a[2] + t * b[2]),
    )


SKIN_TONES = ((255, 224, 196), (241, 194, 150), (224, 172, 125), (198, 134, 90), (141, 85, 54))
HAIR_COLORS = ((25, 20, 18), (70, 45, 30), (120, 80, 45), (190, 150, 90), (150, 150, 150))


def skin_color(rng: np.random.Generator) -> Color:
    return jitter_color(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 8)


def hair_color(rng: np.random.Generator) -> Color:
    return jitter_color(rng, HAIR_COLORS[rng.integers(len(HAIR_COLORS))], 10)
