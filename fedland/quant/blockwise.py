"""Blockwise k-bit quantization of flat float vectors, for weight updates on the wire.

One scale per tensor spends most levels of a low-bit grid on a few outliers; one scale per
block of a few hundred values keeps the grid fitted to local magnitudes for 2 bytes a block.
Scales are stored as bfloat16 rounded up: bfloat16 has float32's exponent range, so the scales
of tiny deltas never underflow to zero as float16 ones would, and rounding up keeps every code
in range and stochastic rounding unbiased.
"""

from __future__ import annotations

import torch

_BF16_DROPPED_BITS = 0xFFFF  # the low half of a float32 that bfloat16 does not keep


def max_level(bits: int) -> int:
    """Largest |q| of the signed grid: 1 bit is {-1, +1}, k >= 2 bits the integers -L..L."""
    _check_bits(bits)
    return 1 if bits == 1 else 2 ** (bits - 1) - 1


def max_code(bits: int) -> int:
    """Largest code `quantize_blockwise` emits (2 * L for k >= 2 bits: one code is unused)."""
    return 1 if bits == 1 else 2 * max_level(bits)


def round_up_bfloat16(values: torch.Tensor) -> torch.Tensor:
    """Non-negative float32 values as the nearest bfloat16 at or above each of them (values
    past the largest bfloat16 become inf; NaN stays NaN)."""
    exact = values.to(torch.float32).contiguous()
    raw = exact.view(torch.int32)
    rounded = ((raw + _BF16_DROPPED_BITS) & ~_BF16_DROPPED_BITS).view(torch.float32)
    return torch.where(exact.isnan(), exact, rounded).to(torch.bfloat16)


def quantize_blockwise(
    values: torch.Tensor,
    bits: int,
    block: int,
    stochastic: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes (uint8, one per value) and bfloat16 scales (one per block of `block` values).

    bits >= 2: code = q + L with q in -L..L and scale = max|x| / L over the block; q is
    round(x / scale), or floor(x / scale + u), u ~ U[0, 1), when `stochastic` (unbiased).
    bits == 1: code 1 is +scale, code 0 is -scale; scale = mean|x| and the code is x >= 0,
    or scale = max|x| and P(code 1) = (1 + x / scale) / 2 when `stochastic` (unbiased).
    """
    _check_block(block)
    level = max_level(bits)
    flat = values.detach().reshape(-1).to(torch.float32)
    count = flat.numel()
    rows = _pad(flat, -count % block).view(-1, block)
    magnitude = rows.abs()
    if bits == 1 and not stochastic:
        exact = magnitude.sum(dim=1) / _block_counts(count, block, rows)
    else:
        exact = magnitude.amax(dim=1) / level
    scales = round_up_bfloat16(exact)
    stored = scales.to(torch.float32)
    inverse = torch.where(stored > 0, stored.reciprocal(), 0.0).unsqueeze(1)
    if bits == 1:
        if stochastic:
            threshold = torch.empty_like(rows).uniform_(-1.0, 1.0, generator=generator)
            codes = torch.lt(threshold, rows * inverse)
        else:
            codes = rows >= 0
        return codes.view(torch.uint8).reshape(-1)[:count], scales
    shifted = rows * inverse
    if stochastic:
        # floor(x / s + u) + L == trunc(x / s + u + L): the sum is >= 0 and uint8 truncates.
        shifted += torch.empty_like(rows).uniform_(level, level + 1.0, generator=generator)
    else:
        shifted += level + 0.5
    codes = shifted.clamp_(0, 2 * level).to(torch.uint8)
    return codes.reshape(-1)[:count], scales


def dequantize_blockwise(
    codes: torch.Tensor, scales: torch.Tensor, bits: int, block: int, count: int
) -> torch.Tensor:
    """Float32 values of the first `count` codes: (code - offset) * step, per block."""
    _check_block(block)
    level = max_level(bits)
    # 1 bit: (code - 0.5) * 2 * scale = ±scale; k bits: (code - L) * scale. One rounding
    # each, so every device reconstructs bit-for-bit the same values.
    offset, step = (0.5, 2.0) if bits == 1 else (float(level), 1.0)
    flat = codes.reshape(-1)[:count]
    rows = _pad(flat, -count % block).view(-1, block).to(torch.float32, copy=True)
    rows -= offset
    rows *= scales.to(torch.float32).mul(step).unsqueeze(1)
    return rows.reshape(-1)[:count]


def _block_counts(count: int, block: int, rows: torch.Tensor) -> torch.Tensor:
    """How many real (not padding) values each block holds."""
    counts = torch.full((rows.shape[0],), float(block), device=rows.device)
    if count % block:
        counts[-1] = count % block
    return counts


def _pad(flat: torch.Tensor, extra: int) -> torch.Tensor:
    if extra == 0:
        return flat
    return torch.cat([flat, flat.new_zeros(extra)])


def _check_bits(bits: int) -> None:
    if bits not in range(1, 9):
        raise ValueError(f"bit-width must be an integer from 1 to 8, got {bits}")


def _check_block(block: int) -> None:
    if block < 1:
        raise ValueError(f"block size must be a positive integer, got {block}")
