"""Seeded randomized Hadamard rotation of blocks: y = H D x / sqrt(n), D random signs.

After the rotation every coordinate of a block is a mix of all its values, so a block is
close to Gaussian whatever the update's distribution (heavy tails, outliers), which is what
the Lloyd-Max codebook is optimal for. The signs come from a seed both ends derive (see
`fedland.seeds`), so nothing extra travels. The transform is the fast Walsh-Hadamard
butterfly in radix-4 stages (additions and subtractions only, in a fixed order), so sender
and receiver compute bit-identical values on any device.
"""

from __future__ import annotations

import math

import torch

from fedland.quant import unpack_bits


def is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def random_signs(count: int, seed: int, device: torch.device) -> torch.Tensor:
    """±1.0 float32 values from random bytes drawn on the CPU (the same on every device)
    from `seed`, one sign per bit."""
    generator = torch.Generator().manual_seed(seed)
    random = torch.randint(0, 256, (-(-count // 8),), generator=generator, dtype=torch.uint8)
    bits = unpack_bits(random.to(device), 1, count)
    return 1.0 - 2.0 * bits.to(torch.float32)


def rotate(rows: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """Each row (length a power of two) times the signs, then the orthonormal transform."""
    return hadamard(rows * signs.view(rows.shape))


def unrotate(rows: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """The inverse of `rotate` (the orthonormal Hadamard matrix is its own inverse)."""
    return hadamard(rows) * signs.view(rows.shape)


def hadamard(rows: torch.Tensor) -> torch.Tensor:
    """The orthonormal Walsh-Hadamard transform of each row of a (n, d) float32 tensor."""
    count, size = rows.shape
    if not is_power_of_two(size):
        raise ValueError(f"the Hadamard transform needs a power-of-two length, got {size}")
    source = rows.contiguous().clone()
    target = torch.empty_like(source)
    span = 1
    while span * 4 <= size:  # two butterfly stages at once: half the passes over memory
        parts = source.view(count, size // (4 * span), 4, span)
        out = target.view(count, size // (4 * span), 4, span)
        a, b, c, d = parts.unbind(2)
        sum_ab, diff_ab, sum_cd, diff_cd = a + b, a - b, c + d, c - d
        torch.add(sum_ab, sum_cd, out=out[:, :, 0])
        torch.add(diff_ab, diff_cd, out=out[:, :, 1])
        torch.sub(sum_ab, sum_cd, out=out[:, :, 2])
        torch.sub(diff_ab, diff_cd, out=out[:, :, 3])
        source, target = target, source
        span *= 4
    if span < size:
        parts = source.view(count, size // (2 * span), 2, span)
        out = target.view(count, size // (2 * span), 2, span)
        a, b = parts.unbind(2)
        torch.add(a, b, out=out[:, :, 0])
        torch.sub(a, b, out=out[:, :, 1])
        source = target
    return source.mul_(1.0 / math.sqrt(size))
