"""Training memory of one step of the DU-Net: naive, memory-efficient, and low-bit.

Each variant runs in its own process so that peak resident memory is its own. Two figures per
variant: bytes of tensors saved for the backward pass (counted by a saved_tensors_hooks store,
deterministic) and the process's peak resident set size.

    python benchmarks/training_memory.py [--unets 4 8] [--batch 4] [--input-size 256]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

VARIANTS = {
    "naive-fp32": {"memory_efficient": False, "bits": "w32a32g32", "store_bits": None},
    "efficient-fp32": {"memory_efficient": True, "bits": "w32a32g32", "store_bits": None},
    "efficient-w1a8g8-lowbit": {"memory_efficient": True, "bits": "w1a8g8", "store_bits": 8},
}


def measure(variant: str, unets: int, batch: int, input_size: int, width: int) -> dict:
    """One forward/backward/update step in this process."""
    import torch

    from fedland.model import build_model, heatmap_loss
    from fedland.quant import SavedTensorStore

    settings = VARIANTS[variant]
    torch.manual_seed(0)
    model = build_model(
        num_unets=unets,
        order=1,
        width=width,
        input_size=input_size,
        memory_efficient=settings["memory_efficient"],
        bits=settings["bits"],
    )
    optimizer = torch.optim.RMSprop(model.parameters(), lr=2.5e-4)
    images = torch.rand(batch, 3, input_size, input_size)
    target = torch.rand(batch, 16, input_size // 4, input_size // 4)
    rss_before = _peak_rss()
    start = time.perf_counter()
    with SavedTensorStore.for_model(model, settings["store_bits"]) as store:
        outputs = model(images)
    heatmap_loss(outputs, target).backward()
    optimizer.step()
    return {
        "variant": variant,
        "unets": unets,
        "saved_bytes": store.stored_bytes,
        "peak_rss": _peak_rss(),
        "rss_before_step": rss_before,
        "seconds": time.perf_counter() - start,
    }


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unets", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--worker", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = measure(args.worker, args.unets[0], args.batch, args.input_size, args.width)
        print(json.dumps(result))
        return

    from fedland.table import format_table

    rows = []
    for unets in args.unets:
        naive = None
        for variant in VARIANTS:
            command = [
                sys.executable,
                __file__,
                "--worker",
                variant,
                "--unets",
                str(unets),
                "--batch",
                str(args.batch),
                "--input-size",
                str(args.input_size),
                "--width",
                str(args.width),
            ]
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            result = json.loads(output.strip().splitlines()[-1])
            naive = naive or result
            rows.append(
                [
                    f"L{unets}-K1-C{args.width}",
                    variant,
                    f"{result['saved_bytes'] / 2**20:,.1f}",
                    f"{result['saved_bytes'] / naive['saved_bytes']:.3f}",
                    f"{result['peak_rss'] / 2**20:,.0f}",
                    f"{(result['peak_rss'] - result['rss_before_step']) / 2**20:,.0f}",
                    f"{result['peak_rss'] / naive['peak_rss']:.3f}",
                    f"{result['seconds']:.1f}",
                ]
            )
            print(f"  measured {variant} L={unets}", file=sys.stderr)
    header = [
        "model",
        "variant",
        "saved MiB",
        "x naive",
        "peak RSS MiB",
        "step RSS MiB",
        "x naive",
        "step s",
    ]
    print(f"one training step, batch {args.batch}, {args.input_size}x{args.input_size} input")
    print(format_table(header, rows, text_columns=2))


if __name__ == "__main__":
    main()
