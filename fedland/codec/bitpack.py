"""The bit packing of `fedland.quant.pack_bits` (the same bytes), a few times faster.

Eight codes fill `bits` bytes, so each group of eight is one little-endian 64-bit word: its
byte lanes are merged pairwise in three shift-or-mask steps until the packed bits sit at the
bottom of the word, and unpacking spreads them back the same way (up to 4 bits per code;
8-bit codes are their own bytes). A handful of operations on an eighth as many elements
replace the per-code shifts and the reduction over a tiny axis.
"""

from __future__ import annotations

import functools

import torch

from fedland.quant import packed_size


def pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """uint8 codes below 2**bits as the bytes of `pack_bits`, for the codec's widths 1 to 4
    and 8 (wider fields would overlap in the merged lanes)."""
    flat = codes.reshape(-1)
    count = flat.numel()
    if bits == 8 or not count:
        return flat.clone()
    words = _padded(flat, -count % 8).view(torch.int64)
    for step in range(3):  # lanes of 1, 2, 4 bytes merge into lanes of 2, 4, 8 bytes
        words = words | (words >> ((8 - bits) << step))
        if step < 2:  # the last step's upper half is never read
            words.bitwise_and_(_fields(bits << (step + 1), 16 << step))
    lane = _LANES.get(bits)
    if lane is None:
        packed = words.view(torch.uint8).view(-1, 8)[:, :bits].reshape(-1)
    else:  # the low `bits` bytes of each word as one wider element: a faster copy
        packed = words.view(lane)[:: 8 // bits].clone(memory_format=torch.contiguous_format)
        packed = packed.view(torch.uint8)
    return packed[: packed_size(count, bits)]


def unpack(packed: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """The first `count` codes of `packed` (at least `packed_size(count, bits)` bytes)."""
    if bits == 8 or not count:
        return packed[:count].clone()
    groups = -(-count // 8)
    data = packed[: packed_size(count, bits)]
    data = _padded(data, groups * bits - data.numel())
    lane = _LANES.get(bits)
    if lane is None:
        lanes = packed.new_zeros(groups, 8)
        lanes[:, :bits] = data.view(groups, bits)
        words = lanes.view(torch.int64)
    else:  # widened without the sign extension
        words = data.view(lane).to(torch.int64).bitwise_and_((1 << (8 * bits)) - 1)
    for step in (2, 1, 0):  # lanes of 8, 4, 2 bytes split into lanes of 4, 2, 1 bytes
        words = words | (words << ((8 - bits) << step))
        words.bitwise_and_(_fields(bits << step, 8 << step))
    return words.view(torch.uint8).reshape(-1)[:count]


_LANES = {1: torch.uint8, 2: torch.int16, 4: torch.int32}  # elements of 1, 2, 4 bytes


@functools.cache
def _fields(width: int, lane: int) -> int:
    """The int64 mask of the low `width` bits of every `lane`-bit lane of a word."""
    word = sum(((1 << width) - 1) << shift for shift in range(0, 64, lane))
    return word - (1 << 64) if word >= 1 << 63 else word


def _padded(flat: torch.Tensor, extra: int) -> torch.Tensor:
    if extra == 0:
        return flat
    return torch.cat([flat, flat.new_zeros(extra)])
