"""Training throughput (images per second) of float32 and quantized modes on this machine.

Simulated quantization costs time on hardware without low-bit kernels: this prints how much.
Median of the timed steps after warm-up, all variants measured in one run.

    python benchmarks/throughput.py [--unets 4] [--width 128] [--input-size 128] [--batch 8]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fedland.model import build_model, heatmap_loss
from fedland.quant import SavedTensorStore
from fedland.table import format_table

VARIANTS = [
    ("naive", "w32a32g32", None, False),
    ("memory-efficient", "w32a32g32", None, True),
    ("memory-efficient", "w8a8g8", None, True),
    ("memory-efficient", "w2a8g8", None, True),
    ("memory-efficient", "w1a8g8", None, True),
    ("memory-efficient + low-bit saved", "w1a8g8", 8, True),
    ("memory-efficient + low-bit saved", "w1a4g8", 4, True),
]


def step_seconds(model, images, target, store_bits, steps: int, warmup: int) -> list[float]:
    optimizer = torch.optim.RMSprop(model.parameters(), lr=2.5e-4)
    times = []
    for index in range(warmup + steps):
        start = time.perf_counter()
        optimizer.zero_grad()
        with SavedTensorStore.for_model(model, store_bits):
            outputs = model(images)
        heatmap_loss(outputs, target).backward()
        optimizer.step()
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unets", type=int, default=4)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()

    torch.manual_seed(0)
    size = args.input_size
    images = torch.rand(args.batch, 3, size, size)
    target = torch.rand(args.batch, 16, size // 4, size // 4)
    rows = []
    baseline = None
    for mode, bits, store_bits, efficient in VARIANTS:
        model = build_model(
            num_unets=args.unets,
            order=1,
            width=args.width,
            input_size=size,
            bits=bits,
            memory_efficient=efficient,
        )
        median = statistics.median(
            step_seconds(model, images, target, store_bits, args.steps, args.warmup)
        )
        rate = args.batch / median
        baseline = baseline or rate
        rows.append([mode, bits, f"{median:.2f}", f"{rate:.1f}", f"{rate / baseline:.2f}"])
    print(
        f"L{args.unets}-K1-C{args.width}, {size}x{size}, batch {args.batch}, "
        f"{torch.get_num_threads()} threads, median of {args.steps} steps"
    )
    print(format_table(["mode", "bits", "step s", "images/s", "x float32 naive"], rows, 2))


if __name__ == "__main__":
    main()
