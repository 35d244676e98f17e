"""Vectorized packing of k-bit integer codes (k = 1..8) into bytes.

The same functions store bit-packed weights in model files, low-bit activations saved for
the backward pass, and quantized weight updates on the wire. Bit order is little-endian:
code i occupies bits [i*k, (i+1)*k) of the packed stream, bit 0 being the least significant
bit of byte 0. Everything runs on the tensor's own device.
"""

from __future__ import annotations

import functools

import torch

_SUPPORTED = range(1, 9)


def packed_size(count: int, bits: int) -> int:
    """Bytes needed to hold `count` codes of `bits` bits each."""
    _check_bits(bits)
    return (count * bits + 7) // 8


def pack_bits(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack a uint8 tensor of codes in [0, 2**bits) into a 1-D uint8 tensor."""
    _check_bits(bits)
    if codes.dtype != torch.uint8:
        raise TypeError(f"codes must be uint8, got {codes.dtype}")
    flat = codes.reshape(-1)
    count = flat.numel()
    if bits == 8 or not count:
        return flat.clone()
    if bits <= 4:
        return _pack_lanes(flat, bits)
    # 8 codes of k bits fill k bytes exactly: gather each group into one 64-bit word, then
    # cut the word into its k low bytes.
    groups = _pad(flat, -count % 8).view(-1, 8).to(torch.int64)
    shifts = torch.arange(0, 8 * bits, bits, dtype=torch.int64, device=flat.device)
    words = (groups << shifts).sum(dim=1, keepdim=True)
    byte_shifts = torch.arange(0, 8 * bits, 8, dtype=torch.int64, device=flat.device)
    packed = ((words >> byte_shifts) & 0xFF).to(torch.uint8).reshape(-1)
    return packed[: packed_size(count, bits)]


def unpack_bits(packed: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """Inverse of `pack_bits`: the first `count` codes as a 1-D uint8 tensor."""
    _check_bits(bits)
    if packed.dtype != torch.uint8:
        raise TypeError(f"packed data must be uint8, got {packed.dtype}")
    flat = packed.reshape(-1)
    needed = packed_size(count, bits)
    if flat.numel() < needed:
        raise ValueError(
            f"packed data holds {flat.numel()} bytes; {count} codes of {bits} bits need {needed}"
        )
    flat = flat[:needed]
    if bits == 8 or not count:
        return flat.clone()
    if bits <= 4:
        return _unpack_lanes(flat, bits, count)
    mask = (1 << bits) - 1
    groups = _pad(flat, -needed % bits).view(-1, bits).to(torch.int64)
    byte_shifts = torch.arange(0, 8 * bits, 8, dtype=torch.int64, device=flat.device)
    words = (groups << byte_shifts).sum(dim=1, keepdim=True)
    shifts = torch.arange(0, 8 * bits, bits, dtype=torch.int64, device=flat.device)
    return ((words >> shifts) & mask).to(torch.uint8).reshape(-1)[:count]


def _pack_lanes(flat: torch.Tensor, bits: int) -> torch.Tensor:
    """Codes of 1 to 4 bits: eight fill `bits` bytes, so each group of eight is one
    little-endian 64-bit word whose byte lanes merge pairwise in three shift-or-mask steps
    until the packed bits sit at the bottom of the word (wider fields would overlap)."""
    count = flat.numel()
    words = _aligned(_pad(flat, -count % 8)).view(torch.int64)
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


def _unpack_lanes(flat: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """The inverse of `_pack_lanes`: the lanes split back the same way."""
    groups = -(-count // 8)
    data = _aligned(_pad(flat, groups * bits - flat.numel()))
    lane = _LANES.get(bits)
    if lane is None:
        lanes = flat.new_zeros(groups, 8)
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


def _aligned(flat: torch.Tensor) -> torch.Tensor:
    """`flat`, copied if its storage offset does not allow viewing it as 64-bit words."""
    return flat.clone() if flat.storage_offset() % 8 else flat


def _pad(flat: torch.Tensor, extra: int) -> torch.Tensor:
    if extra == 0:
        return flat
    return torch.cat([flat, flat.new_zeros(extra)])


def _check_bits(bits: int) -> None:
    if bits not in _SUPPORTED:
        raise ValueError(f"bit-width must be an integer from 1 to 8, got {bits}")
