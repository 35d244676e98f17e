"""Encode a model update into a Flower `ArrayRecord` and decode it back, validating everything.

The server decodes bytes sent by clients it does not control, so every field is checked
against the format and, when given, against the model it expects before values are built:
a bad update fails with a `CodecError` that names the tensor, never with an obscure error
from deep inside numpy or torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from flwr.app import Array, ArrayRecord

from fedland.codec.format import (
    ALLOWED_BITS,
    DTYPES,
    FLOAT,
    FLOAT_WIDTHS,
    QUANTIZED_BITS,
    RAW,
    CodecConfig,
    CodecError,
    Encoding,
    Shape,
    data_size,
    dtype_name,
    parse_stype,
)
from fedland.codec.methods import Seeds, all_finite, from_bytes


def encode_update(
    tensors: Mapping[str, torch.Tensor], config: CodecConfig, seed: int = 0
) -> ArrayRecord:
    """One Array per tensor (any device). `seed` names the message (see `fedland.seeds`):
    with the tensor's name it drives rotation and stochastic rounding, and the receiver
    needs the same `seed` to decode."""
    return _encode_all(tensors, config, seed, reconstruct=False)[0]


def encode_and_reconstruct(
    tensors: Mapping[str, torch.Tensor], config: CodecConfig, seed: int = 0
) -> tuple[ArrayRecord, dict[str, torch.Tensor]]:
    """`encode_update` plus, for every float tensor, the float32 values the receiver will
    decode (on the tensor's device), computed without decoding the bytes."""
    return _encode_all(tensors, config, seed, reconstruct=True)


def decode_update(
    record: ArrayRecord,
    expected: Mapping[str, tuple[Shape, torch.dtype]] | None = None,
    bits: int | None = None,
    config: CodecConfig | None = None,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Tensors of an encoded update on the CPU: float32 for float entries, integers as sent.

    `expected` maps every tensor name to its (shape, dtype); `bits` is the width the sender
    was told to quantize to (when bits <= 8, float tensors may also come at the float widths
    32, 16 and 8: see `CodecConfig.float_bits`). With `config` (the sender's settings, as the
    receiver knows them) every tensor must be encoded exactly as that config encodes it.
    """
    if bits is not None and bits not in ALLOWED_BITS:
        raise ValueError(f"bits must be one of {ALLOWED_BITS}, got {bits!r}")
    if expected is not None:
        for name in expected:
            if name not in record:
                raise CodecError(f"{name!r}: missing from the update")
        for name in record:
            if name not in expected:
                raise CodecError(f"{name!r}: not a tensor of the expected model")
    arrays = dict(record.items())
    expect = {name: None if expected is None else expected[name] for name in arrays}
    try:
        floats = _decode_floats(arrays, expect, bits, config)
    except CodecError:
        floats = {}  # decoded one by one below, where the first bad tensor is named
    for name, array in arrays.items():
        if name not in floats:
            floats[name] = _decode(name, array, expect[name], bits, config, seed)
    return {name: floats[name] for name in arrays}


def _encode_all(
    tensors: Mapping[str, torch.Tensor], config: CodecConfig, seed: int, reconstruct: bool
) -> tuple[ArrayRecord, dict[str, torch.Tensor]]:
    try:
        floats = _encode_floats(tensors, config, reconstruct)
    except ValueError:
        floats = {}  # encoded one by one below, where the first bad tensor is named
    record = ArrayRecord()
    decoded = {}
    for name, tensor in tensors.items():
        if name in floats:
            record[name], values = floats[name]
        else:
            record[name], values = _encode(name, tensor, config, seed, reconstruct)
        if values is not None:
            decoded[name] = values
    return record, decoded


def _encode_floats(
    tensors: Mapping[str, torch.Tensor], config: CodecConfig, reconstruct: bool
) -> dict[str, tuple[Array, torch.Tensor | None]]:
    """The tensors sent as float values (the many small ones of a quantized update), each
    as `_encode` encodes it, converted and checked in one pass per width and device rather
    than a few small operations each; ValueError if any fails."""
    groups: dict[tuple[int, torch.device], list[tuple[str, torch.Tensor, Encoding, str]]] = {}
    for name, tensor in tensors.items():
        encoding = config.encoding(tuple(tensor.shape), tensor.dtype)
        if encoding.method == FLOAT:
            member = name, tensor, encoding, dtype_name(name, tensor.dtype)
            groups.setdefault((encoding.bits, tensor.device), []).append(member)
    encoded = {}
    for (width, _), members in groups.items():
        # cat widens to a type holding every value exactly: one rounding, as in `_encode`
        values = torch.cat([tensor.detach().reshape(-1) for _, tensor, *_ in members])
        wire = values.to(_wire(width))
        if not all_finite(wire):
            raise ValueError("values must be finite")
        data = wire.cpu().numpy().tobytes()
        decoded = wire.to(torch.float32) if reconstruct else None
        start = 0
        for name, tensor, encoding, dtype in members:
            shape, end = tuple(tensor.shape), start + tensor.numel()
            array = Array(
                dtype=dtype, shape=shape, stype=encoding.stype,
                data=data[start * wire.itemsize : end * wire.itemsize],
            )  # fmt: skip
            values = None if decoded is None else decoded[start:end].view(shape).clone()
            encoded[name] = array, values
            start = end
    return encoded


def _decode_floats(
    arrays: Mapping[str, Array],
    expected: Mapping[str, tuple[Shape, torch.dtype] | None],
    bits: int | None,
    config: CodecConfig | None,
) -> dict[str, torch.Tensor]:
    """The entries sent as float values, each checked as `_decode` checks it, their values
    converted and checked in one pass per width; CodecError if any fails."""
    groups: dict[int, list[tuple[str, Shape, bytes]]] = {}
    for name, array in arrays.items():
        if _parse_float(array.stype):
            encoding, _, shape = _validated(name, array, expected[name], bits, config)
            groups.setdefault(encoding.bits, []).append((name, shape, array.data))
    decoded = {}
    for width, members in groups.items():
        wire = from_bytes(memoryview(b"".join(data for *_, data in members)), _wire(width))
        if not all_finite(wire):
            raise CodecError("non-finite values")
        values = wire.to(torch.float32)
        start = 0
        for name, shape, _ in members:
            end = start + math.prod(shape)
            decoded[name] = values[start:end].view(shape).clone()
            start = end
    return decoded


def _parse_float(stype: object) -> bool:
    """Whether `stype` parses as float values (a stype that does not parse is no float)."""
    try:
        return parse_stype(stype).method == FLOAT
    except ValueError:
        return False


def _wire(width: int) -> torch.dtype:
    return torch.float16 if width == 16 else torch.float32


def _encode(
    name: str, tensor: torch.Tensor, config: CodecConfig, seed: int, reconstruct: bool
) -> tuple[Array, torch.Tensor | None]:
    dtype = tensor.dtype
    wire_dtype = dtype_name(name, dtype)
    shape = tuple(tensor.shape)
    encoding = config.encoding(shape, dtype)
    values = tensor.detach()
    quantizer = encoding.quantizer
    if quantizer is not None:
        flat = values.reshape(-1).to(torch.float32)
        try:
            parts, decoded = quantizer.encode(
                flat, encoding.bits, encoding.block, encoding.variant, Seeds(seed, name),
                reconstruct, config.scale,
            )  # fmt: skip
        except ValueError as error:
            raise ValueError(f"{name!r}: {error}") from None
        if decoded is not None:
            decoded = decoded.view(shape)
    elif encoding.method == FLOAT:
        width = encoding.bits
        wire = values.to(_wire(width)).contiguous()
        if not all_finite(wire):
            raise ValueError(f"{name!r}: values must be finite and within float{width} range")
        parts = [wire]
        # never the caller's own tensor
        decoded = wire.to(torch.float32, copy=True) if reconstruct else None
    else:
        parts = [values.contiguous()]
        decoded = None
    data = b"".join(part.cpu().numpy().tobytes() for part in parts)
    return Array(dtype=wire_dtype, shape=shape, stype=encoding.stype, data=data), decoded


def _decode(
    name: str,
    array: Array,
    expected: tuple[Shape, torch.dtype] | None,
    bits: int | None,
    config: CodecConfig | None,
    seed: int,
) -> torch.Tensor:
    encoding, dtype, shape = _validated(name, array, expected, bits, config)
    width = encoding.bits
    payload = memoryview(array.data)
    if encoding.method == RAW:
        return from_bytes(payload, dtype).view(shape)
    if encoding.method == FLOAT:
        values = from_bytes(payload, _wire(width))
        if not all_finite(values):
            raise CodecError(f"{name!r}: non-finite values")
        return values.to(torch.float32).view(shape)
    try:
        decoded = encoding.quantizer.decode(
            payload, math.prod(shape), width, encoding.block, encoding.variant,
            Seeds(seed, name),
        )  # fmt: skip
    except ValueError as error:
        raise CodecError(f"{name!r}: {error}") from None
    return decoded.view(shape)


def _validated(
    name: str,
    array: Array,
    expected: tuple[Shape, torch.dtype] | None,
    bits: int | None,
    config: CodecConfig | None,
) -> tuple[Encoding, torch.dtype, Shape]:
    """The encoding, dtype and shape of an entry whose every field matches the format,
    `expected`, `bits` and `config`, and whose data has the size they imply."""

    def fail(problem: str) -> CodecError:
        return CodecError(f"{name!r}: {problem}")

    try:
        encoding = parse_stype(array.stype)
    except ValueError as error:
        raise fail(str(error)) from None
    dtype = DTYPES.get(array.dtype)
    if dtype is None:
        raise fail(f"dtype {array.dtype!r} is not one of {', '.join(DTYPES)}")
    shape = tuple(array.shape)
    if not all(isinstance(size, int) and size >= 0 for size in shape):
        raise fail(f"shape {shape} is not a tuple of non-negative integers")
    if expected is not None:
        expected_shape, expected_dtype = tuple(expected[0]), expected[1]
        if shape != expected_shape:
            raise fail(f"shape {shape} differs from the expected {expected_shape}")
        if dtype != expected_dtype:
            raise fail(f"dtype {array.dtype} differs from the expected {expected_dtype}")
    if config is not None and encoding != (wanted := config.encoding(shape, dtype)):
        raise fail(f"sent as {array.stype!r} where this run sends {wanted.stype!r}")
    width = encoding.bits
    # bits <= 8 quantizes only the larger tensors; the others travel at float_bits.
    float_sized = bits in QUANTIZED_BITS and (width in FLOAT_WIDTHS or width == 8)
    if not dtype.is_floating_point:
        if encoding.method != RAW:
            raise fail(f"{array.dtype} values encoded as {encoding.method}; integers travel raw")
    elif encoding.method == RAW:
        raise fail(f"raw encoding for {array.dtype} values; floats state their bits")
    elif bits is not None and width != bits and not float_sized:
        raise fail(f"bit-width {width} where the update was to be sent at {bits} bits")
    data = array.data
    size = data_size(shape, dtype, encoding)
    if encoding.quantizer is not None and not encoding.quantizer.exact_size:
        if len(data) > size:
            raise fail(f"{len(data)} bytes where stype and shape allow at most {size}")
    elif len(data) != size:
        raise fail(f"{len(data)} bytes where stype and shape imply {size} (truncated or padded)")
    return encoding, dtype, shape
