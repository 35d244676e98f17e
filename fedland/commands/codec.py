"""`fedland codec`: encode a saved update as the uplink would, decode it, report size and error."""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
import warnings
from collections import OrderedDict
from pathlib import Path

import torch

from fedland.table import format_table


def add_parsers(commands: argparse._SubParsersAction) -> None:
    codec = commands.add_parser(
        "codec",
        help="encode a saved update (or state dict) with the update codec: size and error",
        description=(
            "Encode a dict of tensors saved with torch.save as a node's uplink would, decode "
            "it, and print the payload against float32, the bits per float coordinate "
            "(8 x payload / float coordinates: integer tensors count in the payload, not in "
            "the coordinates) and the vNMSE |Q(x) - x|^2 / |x|^2 over the float tensors."
        ),
    )
    codec.add_argument(
        "--in", dest="source", required=True, type=Path, help="tensors saved with torch.save"
    )
    codec.add_argument("--bits", required=True, type=int, help="32, 16, 8, 4, 3, 2 or 1")
    codec.add_argument(
        "--method",
        default="lloyd",
        help="quantizer below 16 bits: lloyd (default), ecsq, eden, uniform, qsgd, sign, topk, "
        "nf4, fp4, blockwise8",
    )
    codec.add_argument("--block-size", type=int, default=256, help="values per scale (256)")
    codec.add_argument(
        "--stochastic",
        action="store_true",
        help="the method's unbiased variant (uniform: stochastic rounding; eden: unbiased scale)",
    )
    codec.add_argument(
        "--scale",
        choices=("auto", "ls", "norm"),
        default="auto",
        help="block scale of lloyd and ecsq: ls, least squares; norm, which keeps each "
        "block's projection on itself (more error, full-length steps); auto (default), as "
        "the uplink: norm at 1 bit, ls above",
    )
    codec.add_argument(
        "--float-bits",
        type=int,
        default=16,
        help="width of BatchNorm and small tensors below 16 bits: 32, 16 or 8 (16)",
    )
    codec.add_argument(
        "--min-quantize-size",
        type=int,
        default=1024,
        help="smaller float tensors travel at --float-bits (1024)",
    )
    codec.add_argument("--seed", type=int, default=0, help="message seed (rotation, rounding)")
    codec.add_argument(
        "--out",
        type=Path,
        help="write the decoded tensors here (same keys; float tensors as float32, "
        "integer tensors as they were)",
    )
    codec.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    codec.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    codec.set_defaults(handler=codec_update)


def codec_update(args: argparse.Namespace) -> int:
    from fedland.codec import (
        CodecConfig,
        decode_update,
        encode_update,
        fp32_bytes,
        payload_bytes,
    )
    from fedland.codec.methods import resolve_scale

    config = CodecConfig(
        bits=args.bits,
        method=args.method,
        block_size=args.block_size,
        stochastic=args.stochastic,
        scale=resolve_scale(args.scale, args.method, args.bits),
        float_bits=args.float_bits,
        min_quantize_size=args.min_quantize_size,
    )
    if args.out is not None:
        _check_out(args.out, args.source, args.force)
    tensors = load_tensors(args.source)

    start = time.perf_counter()
    record = encode_update(tensors, config, seed=args.seed)
    encode_seconds = time.perf_counter() - start
    expected = {name: (tuple(value.shape), value.dtype) for name, value in tensors.items()}
    start = time.perf_counter()
    decoded = decode_update(record, expected, config.bits, config, seed=args.seed)
    decode_seconds = time.perf_counter() - start

    payload = payload_bytes(record)
    reference = fp32_bytes(tensors)
    floats = [name for name, value in tensors.items() if value.is_floating_point()]
    coordinates = sum(tensors[name].numel() for name in floats)
    report = {
        "file": str(args.source),
        "method": config.method,
        "bits": config.bits,
        "block_size": config.block_size,
        "stochastic": config.stochastic,
        "scale": config.scale,
        "float_bits": config.float_bits,
        "seed": args.seed,
        "tensors": len(tensors),
        "float_tensors": len(floats),
        "payload_bytes": payload,
        "fp32_bytes": reference,
        "ratio": reference / payload if payload else None,
        "coordinates": coordinates,
        "bits_per_coordinate": 8 * payload / coordinates if coordinates else None,
        "vnmse": vnmse(tensors, decoded),
        "encode_seconds": encode_seconds,
        "decode_seconds": decode_seconds,
    }
    if args.out is not None:
        write_atomically(decoded, args.out, args.force)
        report["out"] = str(args.out)

    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"{args.source}: {len(tensors)} tensors ({len(floats)} float), seed {args.seed}, "
        f"{_encoding(config)}"
    )
    header = [
        "method",
        "bits",
        "payload bytes",
        "fp32 bytes",
        "smaller",
        "coordinates",
        "bits/coord",
        "vNMSE",
        "encode s",
        "decode s",
    ]
    row = [
        config.method if config.bits <= 8 else f"float{config.bits}",
        config.bits,
        f"{payload:,}",
        f"{reference:,}",
        "-" if report["ratio"] is None else f"{report['ratio']:.1f}x",
        f"{coordinates:,}",
        _number(report["bits_per_coordinate"], "{:.3f}"),
        _number(report["vnmse"], "{:.3e}"),
        f"{encode_seconds:.3f}",
        f"{decode_seconds:.3f}",
    ]
    print(format_table(header, [row], text_columns=1))
    if args.out is not None:
        print(f"wrote the decoded tensors to {args.out}")
    return 0


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A dict of tensors saved with torch.save, on the CPU; ValueError naming the file (and
    the key) for anything else."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise ValueError(f"{path}: not a file")
    try:
        with warnings.catch_warnings():  # pickle-protocol notes: the error says enough
            warnings.simplefilter("ignore")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and weights-only errors all mean the same here
        raise ValueError(
            f"{path}: not a torch file of tensors (torch.load with weights_only failed: "
            f"{_first_sentence(error)})"
        ) from None
    if not isinstance(loaded, dict):
        raise ValueError(
            f"{path}: holds a {type(loaded).__name__}, not a dict of tensors "
            "(a state dict or an update)"
        )
    if not loaded:
        raise ValueError(f"{path}: the dict holds no tensors")
    for key, value in loaded.items():
        if not isinstance(key, str):
            raise ValueError(f"{path}: key {key!r} is a {type(key).__name__}, not a string")
        if not isinstance(value, torch.Tensor):
            plain = type(value) in (dict, OrderedDict)
            hint = " (a checkpoint? save its state dict alone)" if plain else ""
            raise ValueError(f"{path}: {key!r} is a {type(value).__name__}, not a tensor{hint}")
    return dict(loaded)


def vnmse(original: dict[str, torch.Tensor], decoded: dict[str, torch.Tensor]) -> float | None:
    """|Q(x) - x|^2 / |x|^2 over every float coordinate (None when x is zero and Q(x) not)."""
    error = norm = 0.0
    for name, value in original.items():
        if value.is_floating_point():
            exact = value.detach().to(torch.float64)
            error += float((decoded[name].to(torch.float64) - exact).square().sum())
            norm += float(exact.square().sum())
    if norm > 0:
        return error / norm
    return 0.0 if error == 0 else None


def write_atomically(tensors: dict[str, torch.Tensor], out: Path, force: bool) -> None:
    """torch.save into a temporary file beside `out`, then moved into place: a reader never
    sees a partial file, and without `force` an existing file is never replaced."""
    folder = out.parent if str(out.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(tensors, file)
            file.flush()
            os.fsync(file.fileno())
        if force:
            os.replace(temporary, out)
        else:
            try:
                os.link(temporary, out)  # fails if `out` appeared meanwhile
            except FileExistsError:
                raise FileExistsError(f"{out}: exists; pass --force to overwrite it") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _check_out(out: Path, source: Path, force: bool) -> None:
    """Refuse before any work: an existing file without --force, the input file itself, or a
    folder that is not there."""
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"{out}: folder {folder} does not exist")
    if out.is_dir():
        raise IsADirectoryError(f"{out}: is a folder; --out takes a file name")
    if out.exists():
        if source.exists() and out.resolve() == source.resolve():
            raise ValueError(f"{out}: is the --in file; write the decoded tensors elsewhere")
        if not force:
            raise FileExistsError(f"{out}: exists; pass --force to overwrite it")


def _encoding(config) -> str:
    if config.bits > 8:
        return f"every float tensor as float{config.bits}"
    text = f"{config.method} at {config.bits} bits"
    from fedland.codec.methods import METHODS

    method = METHODS[config.method]
    if method.blockwise:
        text += f", block {method.fixed_block or config.block_size}"
    if method.variant is not None:
        key, off, on = method.variant
        text += f", {key}={on if config.stochastic else off}"
    if method.scales:
        text += f", scale={config.scale}"
    small = "float32" if config.float_bits == 32 else "float16"
    if config.float_bits == 8:
        small = "8-bit uniform"
    return f"{text}; tensors below {config.min_quantize_size} values or 2 dims as {small}"


def _first_sentence(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = text.split(". ")[0][:120]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None or not math.isfinite(value) else spec.format(value)
