"""Wire format of an encoded model update: settings, per-tensor encodings and exact sizes.

One Flower `Array` per tensor, keyed by the tensor name. Flower's own fields carry the
original dtype (numpy name) and shape, and `stype` says how the bytes encode the values, so
a receiver checks all three against its model before it reads any bytes. The stype is
`STYPE_PREFIX` (the format version) followed by `;key=value` fields in this fixed order:

- `fedland.codec/2;bits=B;block=N;rounding=R`: a float tensor quantized blockwise to B = 8,
  4, 2 or 1 bits, N = 1..65535 values per block, R = `stochastic` or `nearest`; the data is
  the bfloat16 scales (2 bytes per block), then the `pack_bits` codes of
  `fedland.quant.quantize_blockwise`.
- `fedland.codec/2;bits=16` or `fedland.codec/2;bits=32`: a float tensor as float16 or
  float32 values.
- `fedland.codec/2;raw`: an integer tensor, the values in the Array's own dtype.

Integers in the stype are plain ASCII decimals without sign or leading zeros. The data holds
the values alone, little-endian, no header: metadata stays out of the payload, as Flower's
dtype and shape do. Sizes follow from stype and shape alone, so a truncated or padded
payload is caught before decoding.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from flwr.app import ArrayRecord

from fedland.quant import packed_size

if sys.byteorder != "little":
    raise ImportError("fedland.codec reads and writes little-endian bytes in place")

STYPE_PREFIX = "fedland.codec/2"
ALLOWED_BITS = (32, 16, 8, 4, 2, 1)
QUANTIZED_BITS = (8, 4, 2, 1)
FLOAT_WIDTHS = (32, 16)  # float tensors sent as float values rather than quantized
FLOAT_BITS = (32, 16, 8)  # allowed `CodecConfig.float_bits`
MAX_BLOCK = 2**16 - 1
ROUNDINGS = ("stochastic", "nearest")

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

    bits None: raw values in the Array's own (integer) dtype. bits 16 or 32: float16 or
    float32 values. bits 8..1: quantized blockwise, `block` values per bfloat16 scale.
    """

    bits: int | None
    block: int = 0
    stochastic: bool = False

    @property
    def quantized(self) -> bool:
        return self.bits in QUANTIZED_BITS

    @property
    def stype(self) -> str:
        if self.bits is None:
            return f"{STYPE_PREFIX};raw"
        if not self.quantized:
            return f"{STYPE_PREFIX};bits={self.bits}"
        rounding = "stochastic" if self.stochastic else "nearest"
        return f"{STYPE_PREFIX};bits={self.bits};block={self.block};rounding={rounding}"


def parse_stype(stype: object) -> Encoding:
    """The encoding an Array's stype states; ValueError (the caller names the tensor) for
    anything that is not exactly the grammar of this format version."""
    if not isinstance(stype, str):
        raise ValueError(f"serialization type {type(stype).__name__} is not a string")
    shown = repr(stype[:_SHOWN]) + ("..." if len(stype) > _SHOWN else "")
    head, *fields = stype.split(";")
    if head != STYPE_PREFIX:
        if head.startswith("fedland.codec/"):
            raise ValueError(
                f"unsupported codec version in serialization type {shown}: "
                f"this receiver reads {STYPE_PREFIX!r}"
            )
        raise ValueError(f"serialization type {shown} is not {STYPE_PREFIX!r}")
    if fields == ["raw"]:
        return Encoding(None)
    values: dict[str, str] = {}
    for field in fields:
        key, equals, value = field.partition("=")
        if not equals:
            raise ValueError(
                f"field {field[:_SHOWN]!r} of serialization type {shown} is not key=value"
            )
        if key not in ("bits", "block", "rounding"):
            raise ValueError(f"unknown key {key[:_SHOWN]!r} in serialization type {shown}")
        if key in values:
            raise ValueError(f"key {key!r} repeated in serialization type {shown}")
        values[key] = value
    if "bits" not in values:
        raise ValueError(f"serialization type {shown} lacks bits (or raw)")
    bits = _integer("bits", values["bits"], shown)
    if bits not in ALLOWED_BITS:
        raise ValueError(f"bits={bits} in serialization type {shown} is not one of {ALLOWED_BITS}")
    keys = ["bits", "block", "rounding"] if bits in QUANTIZED_BITS else ["bits"]
    for key in keys:
        if key not in values:
            raise ValueError(f"serialization type {shown} lacks {key}, needed at {bits} bits")
    for key in values:
        if key not in keys:
            raise ValueError(
                f"key {key!r} in serialization type {shown} is not used at {bits} bits"
            )
    if list(values) != keys:
        raise ValueError(f"serialization type {shown}: keys must come in the order {keys}")
    if bits not in QUANTIZED_BITS:
        return Encoding(bits)
    block = _integer("block", values["block"], shown)
    if block > MAX_BLOCK:
        raise ValueError(f"block={block} in serialization type {shown} is above {MAX_BLOCK}")
    if values["rounding"] not in ROUNDINGS:
        raise ValueError(
            f"rounding {values['rounding'][:_SHOWN]!r} in serialization type {shown} "
            f"is not one of {ROUNDINGS}"
        )
    return Encoding(bits, block, values["rounding"] == "stochastic")


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
    bits 8/4/2/1 quantizes every float tensor with dim >= 2 and at least `min_quantize_size`
    elements blockwise to that width (one bfloat16 scale per `block_size` values, rounding
    stochastic or nearest as `stochastic` says) and sends the other float tensors
    (BatchNorm vectors, small tensors) at `float_bits`: 32 or 16 as float32 or float16
    values, 8 quantized blockwise to 8 bits with nearest rounding (deterministic error on
    BatchNorm statistics; error feedback carries it to the next round). So a tensor's width
    is `bits` at 32 or 16 bits and for the large tensors, `float_bits` for the others.
    Integer tensors always travel raw.
    """

    bits: int
    block_size: int = 256
    stochastic: bool = True
    float_bits: int = 16
    min_quantize_size: int = 1024

    def __post_init__(self) -> None:
        if self.bits not in ALLOWED_BITS:
            raise ValueError(f"bits must be one of {ALLOWED_BITS}, got {self.bits!r}")
        if not 1 <= self.block_size <= MAX_BLOCK:
            raise ValueError(f"block_size must be from 1 to {MAX_BLOCK}, got {self.block_size!r}")
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
        if not dtype.is_floating_point:
            return Encoding(None)
        if self.bits in FLOAT_WIDTHS:
            return Encoding(self.bits)
        if len(shape) >= 2 and math.prod(shape) >= self.min_quantize_size:
            return Encoding(self.bits, self.block_size, self.stochastic)
        if self.float_bits in QUANTIZED_BITS:
            return Encoding(self.float_bits, self.block_size, stochastic=False)
        return Encoding(self.float_bits)

    def width(self, shape: Shape, dtype: torch.dtype) -> int:
        """Bits per value of a tensor of this shape and dtype (before block scales)."""
        bits = self.encoding(shape, dtype).bits
        return 8 * dtype.itemsize if bits is None else bits


def dtype_name(name: str, dtype: torch.dtype) -> str:
    """The numpy name of the dtype of tensor `name`, if the codec carries that dtype."""
    if dtype not in _NAMES:
        raise ValueError(f"{name!r}: dtype {dtype} is not supported; allowed: {', '.join(DTYPES)}")
    return _NAMES[dtype]


def data_size(shape: Shape, dtype: torch.dtype, encoding: Encoding) -> int:
    """Exact length of an Array's data: scales and codes, or raw values."""
    count = math.prod(shape)
    if encoding.bits is None:
        return count * dtype.itemsize
    if encoding.quantized:
        return 2 * -(-count // encoding.block) + packed_size(count, encoding.bits)
    return count * encoding.bits // 8


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
