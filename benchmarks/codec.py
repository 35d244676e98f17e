"""Update codec: payload size, single-core speed and error at each bit-width.

Encodes a stand-in update for an L-U-Net order-1 DU-Net (default L=8, J=16, C=128): every
float tensor of the state dict (what a client sends) replaced by normal noise of standard
deviation 1e-3. For each bit-width and rounding mode it reports the payload against
float32, the goal b/32 + 2% of the float32 payload, encode and decode throughput of the
float32 input on one thread (median of several runs) and the relative L2 error of the
decoded floats. A second table sets the payload beside what NVIDIA FLARE's quantizer reports
for the same widths (its metadata, like ours, outside the payload): float16 50% and
blockwise 8-bit 25.03% of float32.

    python benchmarks/codec.py [--unets 8] [--landmarks 16] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from fedland.codec import (
    CodecConfig,
    decode_update,
    encode_update,
    expected_payload_bytes,
    fp32_bytes,
    payload_bytes,
)
from fedland.federation.weights import float_state
from fedland.model import DUNetConfig, build_model
from fedland.table import format_table

GOAL_SLACK = 0.02  # payload <= (bits / 32 + 2%) x float32 payload
SETTINGS = [(32, False), (16, False)] + [
    (bits, stochastic) for bits in (8, 4, 2, 1) for stochastic in (True, False)
]
FLARE = [  # NVIDIA FLARE's reported payload (percent of float32) and our codec at that width
    ("fp16", CodecConfig(bits=16), 50.0),
    ("blockwise 8-bit", CodecConfig(bits=8, float_bits=8, block_size=4096), 25.03),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unets", type=int, default=8)
    parser.add_argument("--landmarks", type=int, default=16)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = DUNetConfig(
        num_unets=args.unets, order=1, num_landmarks=args.landmarks, width=args.width
    )
    delta = {  # what a client sends: the model's float tensors (see fedland.federation)
        name: torch.randn_like(value) * 1e-3
        for name, value in float_state(build_model(config)).items()
    }
    expected = {name: (tuple(value.shape), value.dtype) for name, value in delta.items()}
    reference = fp32_bytes(delta)
    megabytes = reference / 1e6
    rows = []
    for bits, stochastic in SETTINGS:
        codec = CodecConfig(bits=bits, stochastic=stochastic)
        generator = torch.Generator().manual_seed(0)
        record = encode_update(delta, codec, generator)
        decoded = decode_update(record, expected, bits)
        encode_s = _median_seconds(
            lambda c=codec, g=generator: encode_update(delta, c, g), args.runs
        )
        decode_s = _median_seconds(
            lambda r=record, b=bits: decode_update(r, expected, b), args.runs
        )
        size = payload_bytes(record)
        assert size == expected_payload_bytes(expected, codec)
        ratio = size / reference
        goal = bits / 32 + GOAL_SLACK
        rows.append(
            [
                bits,
                ("stochastic" if stochastic else "nearest") if bits <= 8 else "-",
                f"{size:,}",
                f"{100 * ratio:.2f}%",
                f"{100 * goal:.2f}%",
                "yes" if ratio <= goal else "NO",
                f"{megabytes / encode_s:.0f}",
                f"{megabytes / decode_s:.0f}",
                f"{megabytes / (encode_s + decode_s):.0f}",
                f"{_relative_error(delta, decoded):.2e}",
            ]
        )
    floats = sum(value.numel() for value in delta.values() if value.is_floating_point())
    print(
        f"L{args.unets}-K1-C{args.width}-J{args.landmarks} update: {len(delta)} tensors, "
        f"{floats:,} floats, float32 payload {reference:,} bytes; "
        f"1 thread, median of {args.runs} runs, MB/s of float32 input"
    )
    header = [
        "bits",
        "rounding",
        "payload bytes",
        "vs fp32",
        "goal",
        "meets goal",
        "encode MB/s",
        "decode MB/s",
        "enc+dec MB/s",
        "rel. L2 error",
    ]
    print(format_table(header, rows, text_columns=2))
    print()
    print("vs NVIDIA FLARE (reported)")
    rows = []
    for name, codec, theirs in FLARE:
        record = encode_update(delta, codec, torch.Generator().manual_seed(0))
        size = payload_bytes(record)
        assert size == expected_payload_bytes(expected, codec)
        ours = 100 * size / reference
        settings = f"bits={codec.bits}"
        if codec.bits <= 8:
            settings += f", float_bits={codec.float_bits}, block {codec.block_size}"
        rows.append(
            [
                name,
                settings,
                f"{size:,}",
                f"{ours:.4f}%",
                f"{theirs:.2f}%",
                "yes" if ours <= theirs else "NO",
            ]
        )
    header = ["quantizer", "ours", "payload bytes", "ours %", "theirs %", "no larger"]
    print(format_table(header, rows, text_columns=2))


def _median_seconds(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _relative_error(delta: dict[str, torch.Tensor], decoded: dict[str, torch.Tensor]) -> float:
    floats = [name for name, value in delta.items() if value.is_floating_point()]
    error = sum(float((decoded[name] - delta[name]).square().sum()) for name in floats)
    norm = sum(float(delta[name].square().sum()) for name in floats)
    return (error / norm) ** 0.5


if __name__ == "__main__":
    main()
