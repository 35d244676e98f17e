"""Packed model files: quantized weights stored at their bit-width, the rest in float32.

Layout: the 8-byte magic `FEDLANDP`, a little-endian uint32 format version, a uint32 header
length, from version 2 the 32-byte SHA-256 of everything after it, a zlib-compressed UTF-8
JSON header (model config and a table of tensors with offsets), then the raw data.
Nothing is unpickled on load, so a file from elsewhere cannot run code; a damaged file (a
byte changed anywhere, offsets swapped, a header claiming a model larger than the file can
hold, NaN or Inf values) is refused before a model is built from it. BatchNorm is stored
folded as a per-channel (scale, shift) pair, the form its eval mode computes, so a loaded
model reproduces the quantized model's outputs bit for bit.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from fedland.model.config import DUNetConfig, ModelConfigError
from fedland.model.dunet import DUNet
from fedland.model.integrity import first_not_finite, parameter_count
from fedland.model.norm import BatchNorm2d, ChannelAffine
from fedland.quant.bitspec import FULL_PRECISION
from fedland.quant.conv import QuantConv2d
from fedland.quant.packing import pack_bits, packed_size, unpack_bits
from fedland.quant.quantizers import dequantize, quantize_weight

MAGIC = b"FEDLANDP"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1: the same layout without the checksum
_PREAMBLE = struct.Struct("<8sII")
DIGEST_BYTES = 32  # version 2: SHA-256 of the header and data, before the header


class PackedFileError(ValueError):
    """A packed model file that cannot be read; the message names the file."""


def write_packed(
    model: DUNet, target: str | Path | BinaryIO, task: dict[str, Any] | None = None
) -> int:
    """Write `model` as a packed file; returns the number of bytes written. `task` (the
    task card: dataset, heatmap decoding, flip test) lets `fedland predict` use the file
    without the experiment that trained it."""
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    offset = 0

    def add(entry: dict[str, Any], *parts: tuple[str, bytes]) -> None:
        nonlocal offset
        for key, blob in parts:
            entry[key] = [offset, len(blob)]
            blobs.append(blob)
            offset += len(blob)
        entries.append(entry)

    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, BatchNorm2d):
            scale, shift = (t.detach().float().contiguous() for t in module.folded())
            add({"name": name, "kind": "affine"}, ("scale", _raw(scale)), ("shift", _raw(shift)))
            continue
        for param_name, tensor in module.named_parameters(recurse=False):
            full_name = prefix + param_name
            if _is_packable(module, param_name):
                bits = module.bits.weights
                quantized = quantize_weight(tensor, bits, module.per_filter)
                packed = pack_bits(quantized.codes.reshape(-1).cpu(), bits)
                shape = list(tensor.shape)
                add(
                    {"name": full_name, "kind": "packed", "bits": bits, "shape": shape},
                    ("codes", packed.numpy().tobytes()),
                    ("scale", _raw(quantized.scale)),
                )
            else:
                add(
                    {"name": full_name, "kind": "float32", "shape": list(tensor.shape)},
                    ("data", _raw(tensor)),
                )
    data = b"".join(blobs)
    fields = {"model": model.config.to_dict(), "tensors": entries, "data_bytes": offset}
    if task is not None:
        fields["task"] = task
    header = zlib.compress(json.dumps(fields, separators=(",", ":")).encode(), 9)
    digest = hashlib.sha256(header + data).digest()
    payload = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(header)) + digest + header + data
    if isinstance(target, (str, Path)):
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(payload)
        tmp.replace(path)
    else:
        target.write(payload)
    return len(payload)


def packed_model_bytes(model: DUNet) -> int:
    """Size of the packed file `write_packed` would produce."""
    return write_packed(model, io.BytesIO())


def read_packed(source: str | Path | bytes) -> DUNet:
    """An inference-mode DU-Net from a packed file (BatchNorm replaced by its folded form)."""
    label = "<bytes>" if isinstance(source, bytes) else str(source)
    data = source if isinstance(source, bytes) else _read_file(Path(source))
    header, blob = _split(data, label)
    try:
        config = DUNetConfig.from_dict(header["model"])
        count = parameter_count(config)
    except (KeyError, TypeError, ModelConfigError) as error:
        raise PackedFileError(f"{label}: bad model config in header ({error})") from error
    if count > 8 * len(blob):  # every value takes at least one bit
        raise PackedFileError(
            f"{label}: the header describes a model of {count:,} values; the file holds "
            f"{len(blob):,} bytes of data"
        )
    with torch.device("cpu"):
        model = DUNet(config)
    model.eval()
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    loaded: set[str] = set()
    for entry in header.get("tensors", []):
        try:
            _load_entry(entry, blob, modules, params, model)
        except (KeyError, TypeError, ValueError) as error:
            raise PackedFileError(f"{label}: tensor {entry.get('name')!r}: {error}") from error
        loaded.add(entry["name"])
    expected = {n for n, m in modules.items() if isinstance(m, BatchNorm2d)}
    expected |= {n for n in params if n.rsplit(".", 1)[0] not in expected}
    missing = sorted(expected - loaded)
    if missing:
        raise PackedFileError(f"{label}: missing tensors {', '.join(missing[:5])}")
    if (name := first_not_finite(model.state_dict().items())) is not None:
        raise PackedFileError(f"{label}: tensor {name!r} holds NaN or Inf")
    return model


def read_packed_task(source: str | Path | bytes) -> dict[str, Any] | None:
    """The task card a packed file was written with, or None (files written without one)."""
    label = "<bytes>" if isinstance(source, bytes) else str(source)
    data = source if isinstance(source, bytes) else _read_file(Path(source))
    task = _split(data, label)[0].get("task")
    if task is not None and not isinstance(task, dict):
        raise PackedFileError(f"{label}: the task card in the header is not a JSON object")
    return task


def _load_entry(
    entry: dict[str, Any],
    blob: memoryview,
    modules: dict[str, nn.Module],
    params: dict[str, nn.Parameter],
    model: DUNet,
) -> None:
    kind, name = entry["kind"], entry["name"]
    if kind == "affine":
        norm = modules[name]
        if not isinstance(norm, BatchNorm2d):
            raise ValueError("not a BatchNorm layer")
        affine = ChannelAffine(norm.num_features)
        affine.scale.copy_(_tensor(blob, entry["scale"], [norm.num_features]))
        affine.shift.copy_(_tensor(blob, entry["shift"], [norm.num_features]))
        parent_name, _, child = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else model, child, affine)
        return
    param = params[name]
    shape = list(entry["shape"])
    if shape != list(param.shape):
        raise ValueError(f"shape {shape} does not match the model's {list(param.shape)}")
    with torch.no_grad():
        if kind == "float32":
            param.copy_(_tensor(blob, entry["data"], shape))
        elif kind == "packed":
            module = modules[name.rsplit(".", 1)[0]]
            bits = int(entry["bits"])
            if not isinstance(module, QuantConv2d) or module.bits.weights != bits:
                raise ValueError(f"{bits}-bit weights do not fit this layer")
            start, length = entry["codes"]
            count = param.numel()
            if length != packed_size(count, bits):
                raise ValueError(f"{length} code bytes for {count} weights of {bits} bits")
            packed = torch.frombuffer(bytearray(_slice(blob, start, length)), dtype=torch.uint8)
            codes = unpack_bits(packed, bits, count).view(shape)
            filters = shape[0] if module.per_filter else 1
            scale = _tensor(blob, entry["scale"], [filters])
            param.copy_(dequantize(codes, scale, bits))
            module.weight_is_quantized = True
        else:
            raise ValueError(f"unknown tensor kind {kind!r}")


def _is_packable(module: nn.Module, param_name: str) -> bool:
    return (
        isinstance(module, QuantConv2d)
        and param_name == "weight"
        and module.bits.weights < FULL_PRECISION
    )


def _raw(tensor: torch.Tensor) -> bytes:
    return tensor.detach().to(torch.float32).contiguous().cpu().numpy().tobytes()


def _read_file(path: Path) -> bytes:
    if not path.is_file():
        raise PackedFileError(f"{path}: no such packed model file")
    return path.read_bytes()


def _split(data: bytes, label: str) -> tuple[dict[str, Any], memoryview]:
    if len(data) < _PREAMBLE.size:
        raise PackedFileError(f"{label}: too short to be a packed model file")
    magic, version, header_length = _PREAMBLE.unpack_from(data)
    if magic != MAGIC:
        raise PackedFileError(f"{label}: not a fedland packed model file (bad magic)")
    if version not in READABLE_VERSIONS:
        raise PackedFileError(
            f"{label}: packed format version {version} is not supported "
            f"(this fedland reads versions {', '.join(map(str, READABLE_VERSIONS))})"
        )
    start = _PREAMBLE.size + (DIGEST_BYTES if version >= 2 else 0)
    end = start + header_length
    if end > len(data):
        raise PackedFileError(f"{label}: truncated header")
    try:
        header = json.loads(zlib.decompress(data[start:end]))
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PackedFileError(f"{label}: header is not readable ({error})") from error
    blob = memoryview(data)[end:]
    if not isinstance(header, dict) or header.get("data_bytes") != len(blob):
        raise PackedFileError(
            f"{label}: data section is {len(blob)} bytes, header says {header.get('data_bytes')}"
            if isinstance(header, dict)
            else f"{label}: header is not a JSON object"
        )
    if version >= 2 and hashlib.sha256(data[start:]).digest() != data[_PREAMBLE.size : start]:
        raise PackedFileError(f"{label}: contents do not match the checksum (damaged file)")
    return header, blob


def _slice(blob: memoryview, start: int, length: int) -> memoryview:
    if start < 0 or length < 0 or start + length > len(blob):
        raise ValueError(f"bytes [{start}, {start + length}) lie outside the data section")
    return blob[start : start + length]


def _tensor(blob: memoryview, location: list[int], shape: list[int]) -> torch.Tensor:
    start, length = location
    count = 1
    for size in shape:
        count *= size
    if length != 4 * count:
        raise ValueError(f"{length} bytes cannot hold float32 shape {shape}")
    raw = bytearray(_slice(blob, start, length))
    return torch.frombuffer(raw, dtype=torch.float32).view(shape).clone()
