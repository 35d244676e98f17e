"""Wire format of an encoded model update: settings, per-tensor widths and exact sizes.

One Flower `Array` per tensor, keyed by the tensor name. Flower's own fields carry the
original dtype (numpy name) and shape, so a receiver checks them against its model before it
reads any bytes; `stype` is `STYPE`, the format version. The bytes are a header
`struct.pack("<BBH", bits, flags, block)` followed by the values:

- float dtype, bits 1..8: bfloat16 scales (2 bytes per block of `block` values), then the
  `pack_bits` codes of `fedland.quant.quantize_blockwise`; flags bit 0 = stochastic rounding.
- float dtype, bits 16 or 32: float16 or float32 values; flags 0, block 0.
- integer dtype: the raw values in that dtype, bits = 8 x itemsize; flags 0, block 0.

Everything is little-endian. Sizes follow from header and shape alone, so a truncated or
padded payload is caught before decoding.
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from flwr.app import ArrayRecord

from fedland.quant import packed_size

if sys.byteorder != "little":
    raise ImportError("fedland.codec reads and writes little-endian bytes in place")

STYPE = "fedland.codec/1"
HEADER = struct.Struct("<BBH")
STOCHASTIC_FLAG = 0x01
ALLOWED_BITS = (32, 16, 8, 4, 2, 1)
QUANTIZED_BITS = (8, 4, 2, 1)
FLOAT_WIDTHS = (32, 16)
MAX_BLOCK = 2**16 - 1

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

Shape = tuple[int, ...]


class CodecError(ValueError):
    """An encoded update that does not match the format or what the receiver expects."""


@dataclass(frozen=True)
class CodecConfig:
    """How an update is encoded.

    bits: 32 sends float32, 16 float16, 8/4/2/1 quantizes every float tensor with dim >= 2
    and at least `min_quantize_size` elements blockwise to that width (one bfloat16 scale per
    `block_size` values) and sends the other float tensors at `float_bits`. Integer tensors
    always travel raw. bits 32 and 16 send every float tensor at that width.
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
        if self.float_bits not in FLOAT_WIDTHS:
            raise ValueError(f"float_bits must be one of {FLOAT_WIDTHS}, got {self.float_bits!r}")
        if self.min_quantize_size < 0:
            raise ValueError(
                f"min_quantize_size must be a non-negative integer, got {self.min_quantize_size!r}"
            )
        if not isinstance(self.stochastic, bool):
            raise ValueError(f"stochastic must be True or False, got {self.stochastic!r}")

    def width(self, shape: Shape, dtype: torch.dtype) -> int:
        """The `bits` header field of a tensor of this shape and dtype."""
        if not dtype.is_floating_point:
            return 8 * dtype.itemsize
        if self.bits in FLOAT_WIDTHS:
            return self.bits
        if len(shape) >= 2 and math.prod(shape) >= self.min_quantize_size:
            return self.bits
        return self.float_bits


def dtype_name(name: str, dtype: torch.dtype) -> str:
    """The numpy name of the dtype of tensor `name`, if the codec carries that dtype."""
    if dtype not in _NAMES:
        raise ValueError(f"{name!r}: dtype {dtype} is not supported; allowed: {', '.join(DTYPES)}")
    return _NAMES[dtype]


def is_quantized(width: int, dtype: torch.dtype) -> bool:
    return dtype.is_floating_point and width in QUANTIZED_BITS


def data_size(shape: Shape, dtype: torch.dtype, width: int, block: int) -> int:
    """Exact length of an Array's data: header plus scales and codes, or raw values."""
    count = math.prod(shape)
    if is_quantized(width, dtype):
        return HEADER.size + 2 * -(-count // block) + packed_size(count, width)
    return HEADER.size + count * width // 8


def expected_payload_bytes(
    shapes_and_dtypes: Mapping[str, tuple[Shape, torch.dtype]], config: CodecConfig
) -> int:
    """Bytes `encode_update` produces for tensors of these shapes and dtypes."""
    total = 0
    for shape, dtype in shapes_and_dtypes.values():
        shape = tuple(shape)
        total += data_size(shape, dtype, config.width(shape, dtype), config.block_size)
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
