"""Vectorized packing of k-bit integer codes (k = 1..8) into bytes.

The same functions store bit-packed weights in model files, low-bit activations saved for
the backward pass, and quantized weight updates on the wire. Bit order is little-endian:
code i occupies bits [i*k, (i+1)*k) of the packed stream, bit 0 being the least significant
bit of byte 0. Everything runs on the tensor's own device.
"""

from __future__ import annotations

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
    if bits == 8:
        return flat.clone()
    count = flat.numel()
    if 8 % bits == 0:
        per_byte = 8 // bits
        padded = _pad(flat, -count % per_byte).view(-1, per_byte)
        shifts = torch.arange(0, 8, bits, dtype=torch.uint8, device=flat.device)
        return _or_reduce(padded << shifts)
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
    if bits == 8:
        return flat.clone()
    mask = (1 << bits) - 1
    if 8 % bits == 0:
        shifts = torch.arange(0, 8, bits, dtype=torch.uint8, device=flat.device)
        return ((flat.unsqueeze(1) >> shifts) & mask).reshape(-1)[:count]
    groups = _pad(flat, -needed % bits).view(-1, bits).to(torch.int64)
    byte_shifts = torch.arange(0, 8 * bits, 8, dtype=torch.int64, device=flat.device)
    words = (groups << byte_shifts).sum(dim=1, keepdim=True)
    shifts = torch.arange(0, 8 * bits, bits, dtype=torch.int64, device=flat.device)
    return ((words >> shifts) & mask).to(torch.uint8).reshape(-1)[:count]


def _or_reduce(shifted: torch.Tensor) -> torch.Tensor:
    """Sum along the last axis; the shifted fields never overlap, so the sum is a bitwise OR."""
    return shifted.sum(dim=1, dtype=torch.uint8)


def _pad(flat: torch.Tensor, extra: int) -> torch.Tensor:
    if extra == 0:
        return flat
    return torch.cat([flat, flat.new_zeros(extra)])


def _check_bits(bits: int) -> None:
    if bits not in _SUPPORTED:
        raise ValueError(f"bit-width must be an integer from 1 to 8, got {bits}")
