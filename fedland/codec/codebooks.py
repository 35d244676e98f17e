"""Codebooks of the non-uniform quantizers, derived from their definitions at first use.

- Lloyd-Max levels of N(0, 1): the quantizer with the least mean squared error for a
  Gaussian source (Max 1960), found by Lloyd's iteration: thresholds are the midpoints of the
  levels, levels the conditional means between thresholds. A block normalized by its RMS is
  close to N(0, 1), after a random rotation almost exactly (EDEN, Vargaftik et al. 2022).
- NF4 (Dettmers et al., QLoRA 2023): 16 values at quantiles of N(0, 1), an exact zero,
  scaled to [-1, 1]; the 4-bit format of bitsandbytes and NVIDIA FLARE.
- FP4 as bitsandbytes encodes it: the E2M1 magnitudes 1, 1.5, 2, 3, 4, 6 over 6, zero, and
  its smallest value 1/192, with both signs.
- The dynamic 8-bit map of bitsandbytes' blockwise quantization (Dettmers 2016, "8-bit
  approximations"): per decade 10^-6 .. 10^0 a linear fraction of 2^i levels (the midpoints
  of 2^i equal steps over [0.1, 1]), both signs, plus 0 and 1.

Each codebook comes as sorted float32 values and the thresholds between neighbours, so a
value's code is `torch.bucketize(value, thresholds)`: the nearest level. `cells` finds the
same codes in a few table lookups, without bucketize's binary search per value, and
`byte_levels` turns packed codes back into levels a byte at a time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
from scipy.special import ndtr, ndtri

Codebook = tuple[torch.Tensor, torch.Tensor]  # sorted levels, thresholds between them

_NF4_OFFSET = (1 - 1 / 30 + 1 - 1 / 32) / 2  # QLoRA: between the 15- and 16-level ends


@functools.cache
def lloyd_max(bits: int) -> Codebook:
    """2**bits Lloyd-Max levels of N(0, 1) and the thresholds between them."""
    count = 2**bits
    # Start at the high-resolution optimum (level density ~ pdf^(1/3): quantiles of N(0, 3)).
    levels = np.sqrt(3.0) * ndtri((np.arange(count) + 0.5) / count)
    # Stop when no level moves by 1e-6: the MSE is then within 1e-4 of the fixed point's.
    for _ in range(100_000):
        edges = np.concatenate(([-np.inf], (levels[:-1] + levels[1:]) / 2, [np.inf]))
        density = np.exp(-0.5 * np.square(edges)) / np.sqrt(2 * np.pi)
        mass = np.diff(ndtr(edges))
        updated = (density[:-1] - density[1:]) / mass
        updated = (updated - updated[::-1]) / 2  # exactly symmetric
        if np.max(np.abs(updated - levels)) < 1e-6:
            break
        levels = updated
    return _codebook(levels)


@functools.cache
def nf4() -> Codebook:
    positive = ndtri(np.linspace(_NF4_OFFSET, 0.5, 9)[:-1])
    negative = -ndtri(np.linspace(_NF4_OFFSET, 0.5, 8)[:-1])
    values = np.concatenate((positive, [0.0], negative))
    return _codebook(values / np.max(np.abs(values)))


@functools.cache
def fp4() -> Codebook:
    magnitudes = np.array([0.0, 1 / 192, 1 / 6, 1.5 / 6, 2 / 6, 3 / 6, 4 / 6, 1.0])
    return _codebook(np.concatenate((magnitudes, -magnitudes[1:])), pad_to=16)


@functools.cache
def dynamic8() -> Codebook:
    values = [0.0, 1.0]
    for decade in range(7):
        edges = np.linspace(0.1, 1.0, 2**decade + 1)
        fractions = (edges[:-1] + edges[1:]) / 2 * 10.0 ** (decade - 6)
        values.extend(fractions)
        values.extend(-fractions)
    return _codebook(np.array(values))


def _codebook(values: np.ndarray, pad_to: int | None = None) -> Codebook:
    """Sorted float32 levels (with `pad_to`, repeated zeros fill the unused codes, so every
    code of the width decodes) and the float32 midpoints between distinct neighbours."""
    levels = np.sort(values.astype(np.float32))
    if pad_to is not None and len(levels) < pad_to:
        levels = np.sort(np.concatenate((levels, np.zeros(pad_to - len(levels), np.float32))))
    thresholds = (levels[:-1] + levels[1:]) / 2
    return torch.from_numpy(levels), torch.from_numpy(thresholds.astype(np.float32))


@functools.cache
def entropy_step(entropy: float, limit: int) -> float:
    """The step of the uniform grid round(z / step), clamped to +-`limit`, whose codes have
    `entropy` bits for z ~ N(0, 1) (found by bisection: the entropy falls as the step grows)."""
    low, high = 1e-4, 64.0
    for _ in range(80):
        step = (low + high) / 2
        if gaussian_grid_entropy(step, limit) > entropy:
            low = step
        else:
            high = step
    return high


def gaussian_grid_entropy(step: float, limit: int) -> float:
    """Bits per code of round(z / step) clamped to +-`limit`, for z ~ N(0, 1)."""
    edges = (np.arange(-limit, limit) + 0.5) * step
    cumulative = np.concatenate(([0.0], ndtr(edges), [1.0]))
    mass = np.diff(cumulative)
    mass = mass[mass > 0]
    return float(-(mass * np.log2(mass)).sum())


class Cells:
    """The number of thresholds below each float32 value, from its bit pattern.

    The top bits of a pattern (sign, exponent and the leading `23 - shift` mantissa bits)
    name a cell: an interval of values. With cells fine enough that none holds two
    thresholds, a value's count is its cell's count of thresholds below the cell, plus one
    if the value is above the threshold inside the cell (+inf when there is none). A quiet
    NaN, the NaN arithmetic makes, counts none, as with comparisons.
    """

    def __init__(self, thresholds: np.ndarray, device: torch.device) -> None:
        thresholds = thresholds.astype(np.float32) + np.float32(0)  # -0 as +0
        keys = thresholds.view(np.uint32)
        self.shift = next(s for s in range(22, -1, -1) if len(np.unique(keys >> s)) == len(keys))
        cells = np.arange(1 << (32 - self.shift), dtype=np.uint64)
        first = (cells << self.shift).astype(np.uint32).view(np.float32)
        last = (((cells + 1) << self.shift) - 1).astype(np.uint32).view(np.float32)
        lowest = np.fmin(first, last)  # NaN only for cells of NaNs alone
        below = np.searchsorted(thresholds, lowest, side="left")
        below[np.isnan(lowest)] = 0
        inside = np.full(len(cells), np.inf, np.float32)
        inside[keys >> self.shift] = thresholds
        self.mask = (1 << (32 - self.shift)) - 1
        self.below = torch.from_numpy(below.astype(np.uint8)).to(device)
        self.inside = torch.from_numpy(inside).to(device)

    def codes(self, values: torch.Tensor) -> torch.Tensor:
        """uint8 counts for contiguous float32 values (each below 256)."""
        flat = values.reshape(-1)
        index = (flat.view(torch.int32) >> self.shift).long().bitwise_and_(self.mask)
        codes = self.below.index_select(0, index)
        return codes.add_(torch.gt(flat, self.inside.index_select(0, index))).view(values.shape)


@functools.cache
def cells(codebook: Callable[..., Codebook], *args: int, device: torch.device) -> Cells:
    """The cells of `codebook(*args)`'s thresholds, on `device`."""
    return Cells(codebook(*args)[1].numpy(), device)


@functools.cache
def byte_levels(
    codebook: Callable[..., Codebook], *args: int, bits: int, device: torch.device
) -> torch.Tensor:
    """For each byte value, the levels of `codebook(*args)` named by the 8 / `bits` codes
    packed in it, lowest bits first: a (256, 8 / bits) table."""
    shifts = torch.arange(0, 8, bits)
    codes = (torch.arange(256).unsqueeze(1) >> shifts) & (2**bits - 1)
    return codebook(*args)[0][codes].to(device)
