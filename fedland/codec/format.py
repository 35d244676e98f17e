"""Wire format of an encoded model update: settings, per-tensor encodings and exact sizes.

One Flower `Array` per tensor, keyed by the tensor name. Flower's own fields carry the
original dtype (numpy name) and shape, and `stype` says how the bytes encode the values, so
a receiver checks all three against its model before it reads any bytes. The stype is
`STYPE_PREFIX` (the format version) followed by `;key=value` fields in this fixed order:
`method`, then `bits`, then `block` for blockwise methods, then the method's variant key:

- `fedland.codec/3;method=raw`: an integer tensor, the values in the Array's own dtype.
- `fedland.codec/3;method=float;bits=32` (or 16): float32 (float16) values.
- `fedland.codec/3;method=lloyd;bits=2;block=256`: a quantized tensor, see
  `fedland.codec.methods` for each method's layout (`uniform` adds `rounding=nearest` or
  `stochastic`, `eden` adds `scale=ls` or `unbiased`, `sign` and `topk` have no block).

Integers in the stype are plain ASCII decimals without sign or leading zeros. The data holds
the values alone, little-endian, no header: metadata stays out of the payload, as Flower's
dtype and shape do. Sizes follow from stype and shape alone, so a truncated or padded
payload is caught before decoding.
"""

from __future__ import annotations

import functools
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from flwr.app import ArrayRecord

from fedland.codec.methods import METHODS, SCALES, Method

if sys.byteorder != "little":
    raise ImportError("fedland.codec reads and writes little-endian bytes in place")

STYPE_PREFIX = "fedland.codec/3"
ALLOWED_BITS = (32, 16, 8, 4, 3, 2, 1)
QUANTIZED_BITS = (8, 4, 3, 2, 1)
FLOAT_WIDTHS = (32, 16)  # float tensors sent as float values rather than quantized
FLOAT_BITS = (32, 16, 8)  # allowed `CodecConfig.float_bits`
MAX_BLOCK = 2**16 - 1
RAW, FLOAT = "raw", "float"
SMALL_TENSOR_METHOD = "uniform"  # float_bits = 8: nearest rounding, deterministic
DEFAULT_METHOD = "lloyd"

DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
}
_NAMES = {dtype: name for name, dtype in DTYPES.items()}
_DECIMAL = re.compile(r"[1-9][0-9]{0,5}")  # ASCII only; longer values are out of range anyway
_SHOWN = 80  # characters of a hostile stype quoted in an error

Shape = tuple[int, ...]


class CodecError(ValueError):
    """An encoded update that does not match the format or what the receiver expects."""


@dataclass(frozen=True)
class Encoding:
    """How one tensor's values are encoded: its stype, parsed.

    method `raw`: integer values in the Array's own dtype; `float`: float32 or float16
    values (bits 32 or 16); otherwise a quantizer of `fedland.codec.methods` at `bits`, with
    `block` values per scale and its unbiased `variant` on or off.
    """

    method: str
    bits: int | None = None
    block: int = 0
    variant: bool = False

    @property
    def quantizer(self) -> Method | None:
        return METHODS.get(self.method)

    @functools.cached_property
    def stype(self) -> str:
        values = {"method": self.method, "bits": self.bits, "block": self.block}
        quantizer = self.quantizer
        if quantizer is not None and quantizer.variant is not None:
            key, off, on = quantizer.variant
            values[key] = on if self.variant else off
        fields = [f"{key}={values[key]}" for key in _keys(self.method)]
        return ";".join([STYPE_PREFIX, *fields])


def _keys(method: str) -> list[str]:
    """The stype's keys, in order, for a method."""
    if method == RAW:
        return ["method"]
    quantizer = METHODS.get(method)
    if quantizer is None:
        return ["method", "bits"]
    keys = ["method", "bits"] + (["block"] if quantizer.blockwise else [])
    return keys + ([quantizer.variant[0]] if quantizer.variant else [])


def parse_stype(stype: object) -> Encoding:
    """The encoding an Array's stype states; ValueError (the caller names the tensor) for
    anything that is not exactly the grammar of this format version."""
    if not isinstance(stype, str):
        raise ValueError(f"serialization type {type(stype).__name__} is not a string")
    return _parse(stype)


@functools.lru_cache(maxsize=256)
def _parse(stype: str) -> Encoding:
    """`parse_stype` of a string: an update repeats a few stypes over hundreds of tensors
    (a refused one raises again, it is never cached)."""
    shown = repr(stype[:_SHOWN]) + ("..." if len(stype) > _SHOWN else "")
    head, *fields = stype.split(";")
    if head != STYPE_PREFIX:
        if head.startswith("fedland.codec/"):
            raise ValueError(
                f"unsupported codec version in serialization type {shown}: "
                f"this receiver reads {STYPE_PREFIX!r}"
            )
        raise ValueError(f"serialization type {shown} is not {STYPE_PREFIX!r}")
    values: dict[str, str] = {}
    for field in fields:
        key, equals, value = field.partition("=")
        if not equals:
            raise ValueError(
                f"field {field[:_SHOWN]!r} of serialization type {shown} is not key=value"
            )
        if key in values:
            raise ValueError(f"key {key[:_SHOWN]!r} repeated in serialization type {shown}")
        values[key] = value
    method = values.get("method")
    if method is None:
        raise ValueError(f"serialization type {shown} lacks method")
    known = (RAW, FLOAT, *METHODS)
    if method not in known:
        raise ValueError(
            f"method {method[:_SHOWN]!r} in serialization type {shown} is not one of {known}"
        )
    keys = _keys(method)
    if list(values) != keys:
        raise ValueError(
            f"serialization type {shown}: method {method} takes the keys {keys}, in order"
        )
    if method == RAW:
        return Encoding(RAW)
    bits = _integer("bits", values["bits"], shown)
    quantizer = METHODS.get(method)
    widths = FLOAT_WIDTHS if quantizer is None else quantizer.widths
    if bits not in widths:
        raise ValueError(f"bits={bits} in serialization type {shown} is not one of {widths}")
    if quantizer is None:
        return Encoding(FLOAT, bits)
    block = 0
    if quantizer.blockwise:
        block = _integer("block", values["block"], shown)
        problem = _block_problem(quantizer, block)
        if problem:
            raise ValueError(f"serialization type {shown}: {problem}")
    variant = False
    if quantizer.variant is not None:
        key, off, on = quantizer.variant
        if values[key] not in (off, on):
            raise ValueError(
                f"{key} {values[key][:_SHOWN]!r} in serialization type {shown} "
                f"is not {off!r} or {on!r}"
            )
        variant = values[key] == on
    return Encoding(method, bits, block, variant)


def _block_problem(quantizer: Method, block: int) -> str | None:
    if block > MAX_BLOCK:
        return f"block={block} is above {MAX_BLOCK}"
    if quantizer.fixed_block is not None and block != quantizer.fixed_block:
        return f"{quantizer.name} uses blocks of {quantizer.fixed_block}, got {block}"
    return quantizer.check_block(block)


def _integer(key: str, value: str, shown: str) -> int:
    if not _DECIMAL.fullmatch(value):
        raise ValueError(
            f"{key}={value[:_SHOWN]!r} in serialization type {shown} "
            "is not a positive decimal integer below 10**6"
        )
    return int(value)


@dataclass(frozen=True)
class CodecConfig:
    """How an update is encoded.

    bits: 32 sends float32, 16 float16, and both send every float tensor at that width.
    bits 8/4/3/2/1 quantizes every float tensor with dim >= 2 and at least
    `min_quantize_size` elements with `method` (see `fedland.codec.methods`; `block_size`
    values per scale unless the method fixes its block; `stochastic` turns on the method's
    unbiased variant where it has one: stochastic rounding for `uniform`, the unbiased scale
    for `eden`) and sends the other float tensors (BatchNorm vectors, small tensors) at
    `float_bits`: 32 or 16 as float values, 8 on the uniform 8-bit grid with nearest rounding
    (error feedback carries its error to the next round). Integer tensors always travel raw.
    `scale`: `ls` (least squares) or `norm` for the methods that offer both (`lloyd`, `ecsq`;
    see `fedland.codec.methods.block_scales`); the receiver decodes either the same way.
    """

    bits: int
    method: str = DEFAULT_METHOD
    block_size: int = 256
    stochastic: bool = False
    float_bits: int = 16
    min_quantize_size: int = 1024
    scale: str = "ls"

    def __post_init__(self) -> None:
        if self.bits not in ALLOWED_BITS:
            raise ValueError(f"bits must be one of {ALLOWED_BITS}, got {self.bits!r}")
        quantizer = METHODS.get(self.method)
        if quantizer is None:
            raise ValueError(f"method must be one of {tuple(METHODS)}, got {self.method!r}")
        if self.bits in QUANTIZED_BITS and self.bits not in quantizer.widths:
            raise ValueError(
                f"method {self.method} encodes at {quantizer.widths} bits, not {self.bits}"
            )
        if not 1 <= self.block_size <= MAX_BLOCK:
            raise ValueError(f"block_size must be from 1 to {MAX_BLOCK}, got {self.block_size!r}")
        quantized = self.bits in QUANTIZED_BITS
        problem = quantizer.check_block(self.block_size) if quantized else None
        if problem and quantizer.fixed_block is None:
            raise ValueError(f"block_size: {problem}")
        if quantized and self.stochastic and quantizer.variant is None:
            raise ValueError(
                f"stochastic: {self.method} has no unbiased variant (uniform: stochastic "
                "rounding, eden: the unbiased scale; qsgd is always stochastic)"
            )
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale!r}")
        if quantized and self.scale != "ls" and self.scale not in quantizer.scales:
            offered = [name for name, method in METHODS.items() if self.scale in method.scales]
            raise ValueError(
                f"scale: {self.method} has no {self.scale} scale (methods with one: "
                f"{', '.join(offered)}; eden: stochastic for its unbiased scale)"
            )
        if self.float_bits not in FLOAT_BITS:
            raise ValueError(f"float_bits must be one of {FLOAT_BITS}, got {self.float_bits!r}")
        if self.min_quantize_size < 0:
            raise ValueError(
                f"min_quantize_size must be a non-negative integer, got {self.min_quantize_size!r}"
            )
        if not isinstance(self.stochastic, bool):
            raise ValueError(f"stochastic must be True or False, got {self.stochastic!r}")

    def encoding(self, shape: Shape, dtype: torch.dtype) -> Encoding:
        """How a tensor of this shape and dtype is encoded."""
        return _encoding(self, tuple(shape), dtype)

    def width(self, shape: Shape, dtype: torch.dtype) -> int:
        """Bits per value of a tensor of this shape and dtype (before scales)."""
        bits = self.encoding(shape, dtype).bits
        return 8 * dtype.itemsize if bits is None else bits


@functools.lru_cache(maxsize=1024)
def _encoding(config: CodecConfig, shape: Shape, dtype: torch.dtype) -> Encoding:
    """`CodecConfig.encoding`, once per config, shape and dtype: a model has a few dozen
    shapes, and an update repeats them over hundreds of tensors."""
    if not dtype.is_floating_point:
        return Encoding(RAW)
    if config.bits in FLOAT_WIDTHS:
        return Encoding(FLOAT, config.bits)
    if len(shape) >= 2 and math.prod(shape) >= config.min_quantize_size:
        quantizer = METHODS[config.method]
        block = quantizer.fixed_block or (config.block_size if quantizer.blockwise else 0)
        return Encoding(config.method, config.bits, block, config.stochastic)
    if config.float_bits in QUANTIZED_BITS:
        return Encoding(SMALL_TENSOR_METHOD, config.float_bits, config.block_size)
    return Encoding(FLOAT, config.float_bits)


def dtype_name(name: str, dtype: torch.dtype) -> str:
    """The numpy name of the dtype of tensor `name`, if the codec carries that dtype."""
    if dtype not in _NAMES:
        raise ValueError(f"{name!r}: dtype {dtype} is not supported; allowed: {', '.join(DTYPES)}")
    return _NAMES[dtype]


def data_size(shape: Shape, dtype: torch.dtype, encoding: Encoding) -> int:
    """Exact length of an Array's data."""
    count = math.prod(shape)
    if encoding.method == RAW:
        return count * dtype.itemsize
    quantizer = encoding.quantizer
    if quantizer is None:
        return count * encoding.bits // 8
    return quantizer.size(count, encoding.bits, encoding.block)


def expected_payload_bytes(
    shapes_and_dtypes: Mapping[str, tuple[Shape, torch.dtype]], config: CodecConfig
) -> int:
    """Bytes `encode_update` produces for tensors of these shapes and dtypes."""
    total = 0
    for shape, dtype in shapes_and_dtypes.values():
        shape = tuple(shape)
        total += data_size(shape, dtype, config.encoding(shape, dtype))
    return total


def payload_bytes(record: ArrayRecord) -> int:
    """Bytes of tensor data in an encoded update (Flower's per-Array metadata not counted)."""
    return sum(len(array.data) for array in record.values())


def fp32_bytes(update: Mapping[str, torch.Tensor] | ArrayRecord) -> int:
    """What the update costs with every float tensor as float32 and integers raw."""
    if isinstance(update, ArrayRecord):
        sizes = [(tuple(a.shape), DTYPES.get(a.dtype, torch.float32)) for a in update.values()]
    else:
        sizes = [(tuple(t.shape), t.dtype) for t in update.values()]
    return sum(
        math.prod(shape) * (4 if dtype.is_floating_point else dtype.itemsize)
        for shape, dtype in sizes
    )
