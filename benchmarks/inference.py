"""Inference speed and file size of each model format on this machine.

For the quickstart model (L=2, C=32, 64 px, w8a8g8) and the paper's DU-Net (L=8, K=1, C=128,
256 px, w1a8g8): images/s and median latency at batch 1 and 16 for PyTorch eager (the
training model in eval mode), PyTorch from the packed `.fldp` file (BatchNorm folded,
weights dequantized once) and ONNX Runtime on the `.onnx` export; the size of the
checkpoint, packed and ONNX files. All variants are measured in one run, medians of the
timed passes after warm-up. Weights are random (speed does not depend on them).

    python benchmarks/inference.py [--models quickstart,paper] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from fedland.model import build_model
from fedland.model.checkpoint import save_checkpoint
from fedland.model.onnx_export import OnnxModel, export_onnx
from fedland.model.packed import read_packed, write_packed
from fedland.table import format_table

MODELS = {
    "quickstart": dict(num_unets=2, order=1, width=32, growth=16, neck=4, input_size=64,
                       num_landmarks=68, bits="w8a8g8"),
    "paper": dict(num_unets=8, order=1, width=128, growth=32, neck=4, input_size=256,
                  num_landmarks=16, bits="w1a8g8"),
}  # fmt: skip
BATCHES = (1, 16)


def median_seconds(run: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    times = []
    for index in range(warmup + repeats):
        start = time.perf_counter()
        run()
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, settings: dict, folder: Path, repeats: int) -> list[list[str]]:
    model = build_model(**settings)
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        model.train()
        model(torch.rand(4, 3, settings["input_size"], settings["input_size"]))
    model.eval()
    files = {
        "checkpoint": save_checkpoint(folder / f"{name}.pt", model),
        "packed": folder / f"{name}.fldp",
        "onnx": folder / f"{name}.onnx",
    }
    write_packed(model, files["packed"])
    export_onnx(model, files["onnx"])
    packed = read_packed(files["packed"])
    runners = {
        "PyTorch eager": lambda x: model(x)[-1],
        "PyTorch from .fldp": lambda x: packed(x)[-1],
        "ONNX Runtime": OnnxModel(files["onnx"], device="cpu"),
    }
    sizes = {"PyTorch eager": "checkpoint", "PyTorch from .fldp": "packed", "ONNX Runtime": "onnx"}
    rows = []
    for runner_name, runner in runners.items():
        for batch in BATCHES:
            images = torch.rand(batch, 3, settings["input_size"], settings["input_size"])
            with torch.inference_mode():
                seconds = median_seconds(lambda r=runner, x=images: r(x), repeats)
            size = files[sizes[runner_name]].stat().st_size
            rows.append([name, runner_name, batch, f"{1000 * seconds:.1f}",
                         f"{batch / seconds:.1f}", f"{size:,}"])  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="quickstart,paper")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per cell (5)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            rows += measure(name, MODELS[name], Path(folder), args.repeats)
    header = ["model", "runtime", "batch", "latency ms", "images/s", "file bytes"]
    print(format_table(header, rows, text_columns=2))
    print(f"\n{torch.get_num_threads()} torch threads; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
