"""Seeded randomized Hadamard rotation of blocks: y = H D x / sqrt(n), D random signs.

After the rotation every coordinate of a block is a mix of all its values, so a block is
close to Gaussian whatever the update's distribution (heavy tails, outliers), which is what
the Lloyd-Max codebook is optimal for. The signs come from a seed both ends derive (see
`fedland.seeds`), so nothing extra travels. The transform is the fast Walsh-Hadamard
butterfly (additions and subtractions only, in a fixed order), so sender and receiver
compute bit-identical values on any device.
"""

from __future__ import annotations

import functools
import math

import torch


def is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def random_signs(count: int, seed: int, device: torch.device) -> torch.Tensor:
    """±1.0 float32 values from random bytes drawn on the CPU (the same on every device)
    from `seed`, one sign per bit, lowest bit first: -1 for a set bit."""
    generator = torch.Generator().manual_seed(seed)
    random = torch.randint(0, 256, (-(-count // 8),), generator=generator, dtype=torch.uint8)
    signs = _byte_signs(device).index_select(0, random.to(device).long())
    return signs.view(-1)[:count]


@functools.cache
def _byte_signs(device: torch.device) -> torch.Tensor:
    """The eight signs of every byte: one lookup per byte instead of unpacking its bits."""
    bits = (torch.arange(256).unsqueeze(1) >> torch.arange(8)) & 1
    return (1.0 - 2.0 * bits.to(torch.float32)).to(device)


def rotate(rows: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """Each row (length a power of two) times the signs, then the orthonormal transform."""
    return _transform(rows, before=signs.view(rows.shape))


def unrotate(rows: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """The inverse of `rotate` (the orthonormal Hadamard matrix is its own inverse)."""
    return _transform(rows, after=signs.view(rows.shape))


def hadamard(rows: torch.Tensor) -> torch.Tensor:
    """The orthonormal Walsh-Hadamard transform of each row of a (n, d) float32 tensor."""
    return _transform(rows)


def _transform(
    rows: torch.Tensor, before: torch.Tensor | None = None, after: torch.Tensor | None = None
) -> torch.Tensor:
    """The transform of `rows` times `before`, then times `after`: the butterflies, then
    the scale 1 / sqrt(d)."""
    count, size = rows.shape
    if not is_power_of_two(size):
        raise ValueError(f"the Hadamard transform needs a power-of-two length, got {size}")
    source = rows.contiguous() if before is None else rows * before
    result = rows.new_empty(count, size)
    if size > 1:
        _butterflies(source, result)
    else:
        result.copy_(source)
    result.mul_(1.0 / math.sqrt(size))
    return result if after is None else result.mul_(after)


def _butterflies(source: torch.Tensor, result: torch.Tensor) -> None:
    """Radix-2 butterflies over bit 0 of each row's index, then bit 1, and so on, from the
    rows of `source` into those of `result`.

    Each stage adds and subtracts the pairs of values whose index differs in the lowest
    bit and writes the sums before the differences: that bit moves to the top, the next one
    is now the lowest, and after the last stage the order is back. The stages between run
    on the transposed rows (one row per index), where the pairs of all rows are two
    adjacent rows and the sums and differences two halves, read and written as contiguous
    runs (within a row, every other value: several times slower); the first stage
    transposes as it reads, the last as it writes.
    """
    count, size = source.shape
    half = size // 2
    buffers = [source.new_empty(size, count), source.new_empty(size, count)]
    pairs = [buffer.view(half, 2, count).unbind(1) for buffer in buffers]
    halves = [(buffer[:half], buffer[half:]) for buffer in buffers]
    stages = size.bit_length() - 1
    for stage in range(stages):
        if stage == 0:
            first, second = (part.t() for part in source.view(count, half, 2).unbind(2))
        else:
            first, second = pairs[stage % 2]
        if stage == stages - 1:
            total, difference = result[:, :half].t(), result[:, half:].t()
        else:
            total, difference = halves[(stage + 1) % 2]
        torch.add(first, second, out=total)
        torch.sub(first, second, out=difference)
