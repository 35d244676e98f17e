"""The quantizers of an update's float tensors, one object per method.

Every method turns a flat float32 tensor into byte parts (scales or norms, then packed
codes, or indices and values), computes what the receiver will decode, and decodes its own
parts back with every field checked: a `ValueError` states the problem, the caller names
the tensor. `size` gives the exact payload for a tensor (for `ecsq` its bound, and the zstd
frame states its exact content), so a truncated or padded payload is caught before
decoding. The receiver derives the same per-tensor `Seeds` as the sender (see
`fedland.seeds`); they drive the rotation's signs and stochastic rounding.

Ours: `lloyd` (the Lloyd-Max levels of N(0, 1) for each block normalized by its RMS, and a
least-squares or norm-keeping scale per block: the default), `ecsq` (a finer uniform grid
whose codes a zstd frame entropy-codes: less error for the same bytes at 2 to 4 bits) and
`eden` (the `lloyd` codes after a seeded randomized Hadamard rotation of each block, with
EDEN's least-squares or unbiased scale; at 1 bit it is DRIVE). The grid of earlier
versions: `uniform`. The anchors' codecs from their published definitions: `qsgd` (Alistarh et al.
2017: s = 2^(b-1) - 1 levels of |x| / |bucket|_2, stochastic), `sign` (EF-signSGD,
Karimireddy et al. 2019: sign x mean |x| per tensor), `topk` (the b/64 largest magnitudes as
int32 indices and float32 values, b bits per coordinate), and NVIDIA FLARE's bitsandbytes
formats `blockwise8` (dynamic 8-bit map, block 4096), `nf4` and `fp4` (block 64), each with
a float32 absmax per block.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from fedland.codec import codebooks, zstd_stage
from fedland.codec.rotation import is_power_of_two, random_signs, rotate, unrotate
from fedland.quant import (
    dequantize_blockwise,
    max_code,
    max_level,
    pack_bits,
    packed_size,
    quantize_blockwise,
    unpack_bits,
)
from fedland.seeds import derive_seed

Parts = list[torch.Tensor]  # each part's bytes, in order, make the Array's data
SCALES = ("ls", "norm")  # see `block_scales`
SCALE_CHOICES = ("auto", *SCALES)  # what a user may ask for; see `resolve_scale`
NORM_SCALE_BITS = (1,)  # the widths `auto` scales by norm
Codebook = Callable[..., codebooks.Codebook]
_FLOAT32_MAX = torch.finfo(torch.float32).max


class Seeds:
    """The seeds of one tensor's random streams, by purpose: derived from the message's seed
    and the tensor's name (see `fedland.seeds`) on first use, as most methods draw none."""

    def __init__(self, message: int, name: str) -> None:
        self._message, self._name, self._tensor = message, name, None

    def __call__(self, purpose: str) -> int:
        if self._tensor is None:
            self._tensor = derive_seed(self._message, self._name)
        return derive_seed(self._tensor, purpose)


class Method:
    """One quantizer. `widths`: the bits it encodes at; `blockwise`: one scale per `block`
    values (`fixed_block`: the block its definition fixes); `variant`: (stype key, value
    when off, value when on) of its unbiased variant, if it has one."""

    name: str
    widths: tuple[int, ...] = (1, 2, 3, 4, 8)
    blockwise: bool = True
    fixed_block: int | None = None
    variant: tuple[str, str, str] | None = None
    exact_size: bool = True  # False: `size` is the most a payload may hold (entropy-coded)
    scales: tuple[str, ...] = ()  # the choices of `block_scales` it offers, if any

    def check_block(self, block: int) -> str | None:
        """Why `block` does not suit this method, or None."""
        return None

    def size(self, count: int, bits: int, block: int) -> int:
        """The payload's length, or its longest allowed length without `exact_size`."""
        raise NotImplementedError

    def encode(
        self,
        flat: torch.Tensor,
        bits: int,
        block: int,
        unbiased: bool,
        seeds: Seeds,
        reconstruct: bool,
        scale: str,
    ) -> tuple[Parts, torch.Tensor | None]:
        """Byte parts and, with `reconstruct`, the float32 values the receiver decodes from
        them (else None: computing them costs as much as decoding). `scale`: how a method
        that lists it in `scales` scales its blocks (see `block_scales`)."""
        raise NotImplementedError

    def decode(
        self, data: memoryview, count: int, bits: int, block: int, unbiased: bool, seeds: Seeds
    ) -> torch.Tensor:
        raise NotImplementedError


class Uniform(Method):
    """The blockwise integer grid of `fedland.quant.quantize_blockwise` (bfloat16 absmax
    scales; at 1 bit sign x mean |x|): stochastic (unbiased) or nearest rounding."""

    name = "uniform"
    variant = ("rounding", "nearest", "stochastic")

    def size(self, count: int, bits: int, block: int) -> int:
        return 2 * _blocks(count, block) + packed_size(count, bits)

    def encode(self, flat, bits, block, unbiased, seeds, reconstruct, scale):
        generator = _generator(seeds, flat.device) if unbiased else None
        codes, scales = quantize_blockwise(flat, bits, block, unbiased, generator)
        if not all_finite(scales):
            raise ValueError("values must be finite and within bfloat16 range")
        decoded = None
        if reconstruct:
            decoded = dequantize_blockwise(codes, scales, bits, block, flat.numel())
        return [scales.view(torch.uint8), pack_bits(codes, bits)], decoded

    def decode(self, data, count, bits, block, unbiased, seeds):
        blocks = _blocks(count, block)
        scales, largest = _scales(data[: 2 * blocks], torch.bfloat16)
        codes = _codes(data[2 * blocks :], bits, count, max_code(bits))
        # (code - L) x scale, or (code - 0.5) x (2 x scale) at 1 bit
        bound = largest * (2 if bits == 1 else max_level(bits))
        return _finite(dequantize_blockwise(codes, scales, bits, block, count), bound)


class LloydMax(Method):
    """Codes of the nearest Lloyd-Max level of N(0, 1) for each value over its block's RMS;
    the block's scale is the least-squares one for those codes, <x, c> / |c|^2 (or the
    `norm` one, see `block_scales`), as bfloat16. Deterministic: pair it with error feedback."""

    name = "lloyd"
    scales = SCALES

    def size(self, count: int, bits: int, block: int) -> int:
        return 2 * _blocks(count, block) + packed_size(count, bits)

    def encode(self, flat, bits, block, unbiased, seeds, reconstruct, scale):
        levels = codebooks.lloyd_max(bits)[0].to(flat.device)
        count = flat.numel()
        rows = _rows(flat, block)
        rms = _mean_per_block(rows.square().sum(1), count, block).sqrt_().unsqueeze(1)
        codes = _nearest(rows / torch.where(rms > 0, rms, 1.0), codebooks.lloyd_max, bits)
        chosen = _lookup(levels, codes)
        if count % block:  # padding takes no part in the block's scale
            chosen[-1, count % block :] = 0.0
        scales = block_scales(rows, chosen, scale).to(torch.bfloat16)
        if not all_finite(scales):
            raise ValueError("values must be finite and within bfloat16 range")
        decoded = None
        if reconstruct:
            decoded = (chosen * scales.to(torch.float32).unsqueeze(1)).reshape(-1)[:count]
        return [scales.view(torch.uint8), pack_bits(codes.reshape(-1)[:count], bits)], decoded

    def decode(self, data, count, bits, block, unbiased, seeds):
        levels, _ = codebooks.lloyd_max(bits)
        blocks = _blocks(count, block)
        scales, largest = _scales(data[: 2 * blocks], torch.bfloat16)
        rows = _rows(_levels(data[2 * blocks :], bits, count, codebooks.lloyd_max, bits), block)
        values = (rows * scales.unsqueeze(1)).reshape(-1)[:count]
        return _finite(values, largest * _peak(levels))


class EntropyCoded(Method):
    """Entropy-constrained scalar quantization: each value over its block's RMS rounded to
    a uniform grid whose step gives codes of `bits` - `rate_margin` bits of entropy for
    Gaussian values, the block's least-squares scale <x, q> / |q|^2 (or `norm`, see
    `block_scales`) as bfloat16, and the integer codes (4-bit at 2 and 3 bits, clamped to
    +-7; bytes at 4, +-127) coded by one zstd frame. More levels than `lloyd` for no more
    bytes: 12-31% less error at 2-4 bits. Deterministic: pair it with error feedback. The
    payload's length varies with the codes' entropy; `size` is its bound."""

    name = "ecsq"
    widths = (2, 3, 4)
    exact_size = False
    scales = SCALES
    rate_margin = 0.05  # bits per value left for the scales and the entropy coder's overhead

    @staticmethod
    def code_bits(bits: int) -> int:
        return 4 if bits < 4 else 8

    def grid(self, bits: int) -> tuple[int, float]:
        """The codes' limit and the step of the grid on RMS-normalized values."""
        limit = 2 ** (self.code_bits(bits) - 1) - 1
        return limit, codebooks.entropy_step(bits - self.rate_margin, limit)

    def size(self, count: int, bits: int, block: int) -> int:
        packed = packed_size(count, self.code_bits(bits))
        return 2 * _blocks(count, block) + zstd_stage.bound(packed)

    def encode(self, flat, bits, block, unbiased, seeds, reconstruct, scale):
        limit, step = self.grid(bits)
        count = flat.numel()
        rows = _rows(flat, block)
        rms = _mean_per_block(rows.square().sum(1), count, block).sqrt_().unsqueeze(1)
        grid = torch.where(rms > 0, rms * step, 1.0)
        chosen = torch.round(rows / grid).clamp_(-limit, limit)
        if count % block:  # padding takes no part in the block's scale
            chosen[-1, count % block :] = 0.0
        scales = block_scales(rows, chosen, scale).to(torch.bfloat16)
        if not all_finite(scales):
            raise ValueError("values must be finite and within bfloat16 range")
        decoded = None
        if reconstruct:
            decoded = (chosen * scales.to(torch.float32).unsqueeze(1)).reshape(-1)[:count]
        codes = (chosen.reshape(-1)[:count] + limit).to(torch.uint8)
        packed = pack_bits(codes, self.code_bits(bits)).cpu().numpy().tobytes()
        frame = torch.frombuffer(bytearray(zstd_stage.compress(packed)), dtype=torch.uint8)
        return [scales.view(torch.uint8), frame], decoded

    def decode(self, data, count, bits, block, unbiased, seeds):
        limit, _ = self.grid(bits)
        code_bits = self.code_bits(bits)
        blocks = _blocks(count, block)
        scales, largest = _scales(data[: 2 * blocks], torch.bfloat16)
        packed = zstd_stage.decompress(bytes(data[2 * blocks :]), packed_size(count, code_bits))
        codes = _codes(memoryview(packed), code_bits, count, 2 * limit)
        rows = _rows(codes.to(torch.float32) - limit, block)
        values = (rows * scales.unsqueeze(1)).reshape(-1)[:count]
        return _finite(values, largest * limit)


class Eden(Method):
    """EDEN: each block (a power of two; the last one padded with zeros, padding sent too)
    is rotated by seeded random signs and the Hadamard transform, quantized to Lloyd-Max
    levels over its RMS and scaled by S: least squares <y, c> / |c|^2, or unbiased
    |y|^2 / <y, c> (the mean over rotations is the update itself: for averaging many nodes
    without error feedback). The receiver rotates back with the same signs."""

    name = "eden"
    variant = ("scale", "ls", "unbiased")

    def check_block(self, block: int) -> str | None:
        if not is_power_of_two(block):
            return f"eden rotates blocks whose size is a power of two, got {block}"
        return None

    def size(self, count: int, bits: int, block: int) -> int:
        blocks = _blocks(count, block)
        return 2 * blocks + packed_size(blocks * block, bits)

    def encode(self, flat, bits, block, unbiased, seeds, reconstruct, scale):
        levels = codebooks.lloyd_max(bits)[0].to(flat.device)
        count = flat.numel()
        rows = _rows(flat, block)
        signs = random_signs(rows.numel(), seeds("rotation"), flat.device)
        rotated = rotate(rows, signs)
        energy = rotated.square().sum(1)
        rms = (energy / block).sqrt_().unsqueeze(1)
        codes = _nearest(rotated / torch.where(rms > 0, rms, 1.0), codebooks.lloyd_max, bits)
        chosen = _lookup(levels, codes)
        overlap = (rotated * chosen).sum(1)
        if unbiased:
            exact = torch.where(overlap > 0, energy / overlap, 0.0)
        else:
            exact = overlap / chosen.square().sum(1)
        scales = exact.to(torch.bfloat16)
        if not all_finite(scales):
            raise ValueError("values must be finite and within bfloat16 range")
        decoded = None
        if reconstruct:
            rows = chosen * scales.to(torch.float32).unsqueeze(1)
            decoded = unrotate(rows, signs).reshape(-1)[:count]
        return [scales.view(torch.uint8), pack_bits(codes, bits)], decoded

    def decode(self, data, count, bits, block, unbiased, seeds):
        levels, _ = codebooks.lloyd_max(bits)
        blocks = _blocks(count, block)
        scales, largest = _scales(data[: 2 * blocks], torch.bfloat16)
        chosen = _levels(data[2 * blocks :], bits, blocks * block, codebooks.lloyd_max, bits)
        rows = chosen.view(blocks, block) * scales.unsqueeze(1)
        signs = random_signs(rows.numel(), seeds("rotation"), rows.device)
        # The butterflies' sums stay within block x the largest input (twice, for rounding).
        bound = largest * _peak(levels) * 2 * block
        return _finite(unrotate(rows, signs).reshape(-1)[:count], bound)


class Qsgd(Method):
    """QSGD: per bucket of `block` values its L2 norm (float32) and, for each value, the
    sign and stochastic level round(|x| / norm x s) of s = 2^(b-1) - 1 levels (unbiased)."""

    name = "qsgd"
    widths = (2, 3, 4, 8)

    def size(self, count: int, bits: int, block: int) -> int:
        return 4 * _blocks(count, block) + packed_size(count, bits)

    def encode(self, flat, bits, block, unbiased, seeds, reconstruct, scale):
        levels = 2 ** (bits - 1) - 1
        count = flat.numel()
        rows = _rows(flat, block)
        norms = rows.norm(dim=1)
        if not all_finite(norms):
            raise ValueError("values must be finite and their bucket norms within float32")
        scaled = rows.abs() * (levels / torch.where(norms > 0, norms, 1.0)).unsqueeze(1)
        generator = _generator(seeds, flat.device)
        noise = torch.rand(rows.shape, generator=generator, device=flat.device)
        magnitude = (scaled + noise).floor_().clamp_(max=levels)
        signed = magnitude * torch.where(rows < 0, -1.0, 1.0)
        codes = (signed + levels).to(torch.uint8).reshape(-1)[:count]
        decoded = None
        if reconstruct:
            decoded = (signed * (norms / levels).unsqueeze(1)).reshape(-1)[:count]
        return [norms.view(torch.uint8), pack_bits(codes, bits)], decoded

    def decode(self, data, count, bits, block, unbiased, seeds):
        levels = 2 ** (bits - 1) - 1
        blocks = _blocks(count, block)
        norms, largest = _scales(data[: 4 * blocks], torch.float32)
        codes = _codes(data[4 * blocks :], bits, count, 2 * levels)
        rows = _rows(codes.to(torch.float32) - levels, block)
        # |code - L| x (norm / L) is within the norm, twice that for rounding
        values = (rows * (norms / levels).unsqueeze(1)).reshape(-1)[:count]
        return _finite(values, 2 * largest)


class ScaledSign(Method):
    """EF-signSGD's compressor: one bit per value and mean |x| over the tensor (float32)."""

    name = "sign"
    widths = (1,)
    blockwise = False

    def size(self, count: int, bits: int, block: int) -> int:
        return 4 + packed_size(count, 1)

    def encode(self, flat, bits, block, unbiased, seeds, reconstruct, scale):
        scale = flat.abs().mean() if flat.numel() else flat.new_zeros(())
        if not torch.isfinite(scale):
            raise ValueError("values must be finite")
        positive = flat >= 0
        decoded = torch.where(positive, scale, -scale) if reconstruct else None
        return [
            scale.reshape(1).view(torch.uint8),
            pack_bits(positive.view(torch.uint8), 1),
        ], decoded

    def decode(self, data, count, bits, block, unbiased, seeds):
        scale = _scales(data[:4], torch.float32)[0][0]
        positive = _codes(data[4:], 1, count, 1).bool()
        return torch.where(positive, scale, -scale)


class TopK(Method):
    """Top-k sparsification: the k = count x b / 64 largest magnitudes (at least one) as
    int32 indices in increasing order, then their float32 values: b bits per coordinate."""

    name = "topk"
    blockwise = False

    @staticmethod
    def kept(count: int, bits: int) -> int:
        return min(count, max(1, count * bits // 64))

    def size(self, count: int, bits: int, block: int) -> int:
        return 8 * self.kept(count, bits)

    def encode(self, flat, bits, block, unbiased, seeds, reconstruct, scale):
        if not all_finite(flat):
            raise ValueError("values must be finite")
        kept = self.kept(flat.numel(), bits)
        indices = flat.abs().topk(kept, sorted=False).indices.sort().values
        values = flat[indices]
        decoded = torch.zeros_like(flat).index_put_((indices,), values) if reconstruct else None
        return [indices.to(torch.int32).view(torch.uint8), values.view(torch.uint8)], decoded

    def decode(self, data, count, bits, block, unbiased, seeds):
        kept = self.kept(count, bits)
        indices = from_bytes(data[: 4 * kept], torch.int32).long()
        values = from_bytes(data[4 * kept :], torch.float32)
        if kept and not (int(indices[0]) >= 0 and int(indices[-1]) < count):
            raise ValueError(f"indices outside 0..{count - 1}")
        if kept > 1 and not bool((indices[1:] > indices[:-1]).all()):
            raise ValueError("indices not in strictly increasing order")
        if not all_finite(values):
            raise ValueError("non-finite values")
        return torch.zeros(count).index_put_((indices,), values)


class AbsmaxCodebook(Method):
    """A bitsandbytes blockwise format: per block its absmax (float32) and, for each value,
    the code of the nearest codebook entry of x / absmax (codes in sorted-codebook order)."""

    def __init__(self, name: str, bits: int, block: int, codebook: Codebook) -> None:
        self.name, self.widths, self.fixed_block, self.codebook = name, (bits,), block, codebook

    def size(self, count: int, bits: int, block: int) -> int:
        return 4 * _blocks(count, block) + packed_size(count, bits)

    def encode(self, flat, bits, block, unbiased, seeds, reconstruct, scale):
        count = flat.numel()
        rows = _rows(flat, block)
        absmax = rows.abs().amax(1)
        if not all_finite(absmax):
            raise ValueError("values must be finite")
        unit = rows / torch.where(absmax > 0, absmax, 1.0).unsqueeze(1)
        codes = _nearest(unit, self.codebook)
        decoded = None
        if reconstruct:
            levels = self.codebook()[0].to(flat.device)
            decoded = (_lookup(levels, codes) * absmax.unsqueeze(1)).reshape(-1)[:count]
        return [absmax.view(torch.uint8), pack_bits(codes.reshape(-1)[:count], bits)], decoded

    def decode(self, data, count, bits, block, unbiased, seeds):
        levels, _ = self.codebook()
        blocks = _blocks(count, block)
        absmax, largest = _scales(data[: 4 * blocks], torch.float32)
        rows = _rows(_levels(data[4 * blocks :], bits, count, self.codebook), block)
        values = (rows * absmax.unsqueeze(1)).reshape(-1)[:count]
        return _finite(values, largest * _peak(levels))


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        LloydMax(),
        EntropyCoded(),
        Eden(),
        Uniform(),
        Qsgd(),
        ScaledSign(),
        TopK(),
        AbsmaxCodebook("nf4", 4, 64, codebooks.nf4),
        AbsmaxCodebook("fp4", 4, 64, codebooks.fp4),
        AbsmaxCodebook("blockwise8", 8, 4096, codebooks.dynamic8),
    )
}


def block_scales(rows: torch.Tensor, chosen: torch.Tensor, scale: str) -> torch.Tensor:
    """Each block's scale S for its chosen levels c. `ls`: the least-squares <x, c> / |c|^2,
    the least error. `norm`: |x|^2 / <x, c>, so that the decoded block's projection on the
    block is the block's own energy, <S c, x> = |x|^2 (EDEN's unbiased scale, here without
    the rotation that makes it unbiased): the least-squares scale shrinks every step by
    1 - vNMSE (by 29-36% at 1 bit), which error feedback repays only rounds later. A block whose
    levels are all zero gets 0."""
    overlap = (rows * chosen).sum(1)
    if scale == "norm":
        return torch.where(overlap > 0, rows.square().sum(1) / overlap, 0.0)
    energy = chosen.square().sum(1)
    return overlap / torch.where(energy > 0, energy, 1.0)


def resolve_scale(scale: str, method: str, bits: int) -> str:
    """`auto`: the norm-keeping scale at the widths of `NORM_SCALE_BITS` for a method that
    offers it, least squares otherwise. At 1 bit least squares shrinks each step by a third
    and the quickstart ends 5.9% behind float32; with the norm scale, level with it (mean
    of three seeds, README)."""
    if scale != "auto":
        return scale
    offered = method in METHODS and "norm" in METHODS[method].scales
    return "norm" if offered and bits in NORM_SCALE_BITS else "ls"


def _blocks(count: int, block: int) -> int:
    return -(-count // block)


def _rows(flat: torch.Tensor, block: int) -> torch.Tensor:
    """The values as rows of `block`, the last padded with zeros."""
    extra = -flat.numel() % block
    if extra:
        flat = torch.cat([flat, flat.new_zeros(extra)])
    return flat.view(-1, block)


def _mean_per_block(sums: torch.Tensor, count: int, block: int) -> torch.Tensor:
    """Each block's mean from its sum, over the values it holds (the last may hold fewer
    than `block`)."""
    means = sums / block
    if count % block:
        means[-1] = sums[-1] / (count % block)
    return means


def _lookup(levels: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """The levels the codes name (index_select with int64 indices: the fastest lookup)."""
    return levels.index_select(0, codes.reshape(-1).long()).view(codes.shape)


def _nearest(values: torch.Tensor, codebook: Codebook, *args: int) -> torch.Tensor:
    """uint8 index of the nearest level of `codebook(*args)` for each contiguous float32
    value: the number of thresholds below it, as `torch.bucketize` counts them. A single
    threshold is one comparison; more take `codebooks.cells`' table lookups, several times
    faster than a comparison per threshold or bucketize's binary search."""
    thresholds = codebook(*args)[1]
    if len(thresholds) == 1:
        return torch.gt(values, float(thresholds[0])).view(torch.uint8)
    return codebooks.cells(codebook, *args, device=values.device).codes(values)


def _peak(levels: torch.Tensor) -> float:
    """The largest magnitude of sorted levels."""
    return max(-float(levels[0]), float(levels[-1]))


def _generator(seeds: Seeds, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seeds("rounding"))


def all_finite(values: torch.Tensor) -> bool:
    """Whether no value is infinite or NaN: one pass of aminmax (NaN propagates) rather
    than isfinite's tensor of booleans and its reduction."""
    if not values.numel():
        return True
    return all(math.isfinite(float(value)) for value in torch.aminmax(values))


def _scales(data: memoryview, dtype: torch.dtype) -> tuple[torch.Tensor, float]:
    """Non-negative finite scales as float32, and the largest of them (0 for none)."""
    scales = from_bytes(data, dtype)
    if not scales.numel():
        return scales.to(torch.float32), 0.0
    low, high = (float(value) for value in torch.aminmax(scales))
    if not (low >= 0 and high < math.inf):  # NaN fails both
        raise ValueError("scales that are negative or not finite")
    return scales.to(torch.float32), high


def _levels(
    data: memoryview, bits: int, count: int, codebook: Codebook, *args: int
) -> torch.Tensor:
    """The levels of `codebook(*args)` that `count` packed codes name (every code of the
    width is a level, so none is refused). Widths that divide a byte are looked up a byte
    at a time, all of its codes at once, without unpacking."""
    packed = from_bytes(data, torch.uint8)
    if 8 % bits:
        return _lookup(codebook(*args)[0], unpack_bits(packed, bits, count))
    table = codebooks.byte_levels(codebook, *args, bits=bits, device=packed.device)
    return table.index_select(0, packed.long()).view(-1)[:count]


def _codes(data: memoryview, bits: int, count: int, largest: int) -> torch.Tensor:
    codes = unpack_bits(from_bytes(data, torch.uint8), bits, count)
    if largest < 2**bits - 1 and count and int(codes.max()) > largest:
        raise ValueError(f"codes above {largest}, the largest this {bits}-bit format uses")
    return codes


def _finite(values: torch.Tensor, bound: float) -> torch.Tensor:
    """`values`, refused if any is not finite. `bound` (exact, in float64) is at least the
    magnitude of every value and every intermediate result that made them from finite
    inputs: within float32 range nothing can have overflowed and the pass over the values
    is skipped."""
    if bound > _FLOAT32_MAX and not all_finite(values):
        raise ValueError("scales too large: decoded values are not finite")
    return values


def from_bytes(payload: memoryview, dtype: torch.dtype) -> torch.Tensor:
    """A writable 1-D tensor holding a copy of the bytes (torch rejects empty buffers)."""
    if not payload.nbytes:
        return torch.empty(0, dtype=dtype)
    return torch.frombuffer(bytearray(payload), dtype=dtype)
