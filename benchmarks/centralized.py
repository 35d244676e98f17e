"""Centralized training on the synthetic defaults: accuracy within a time budget.

Trains a small DU-Net on synthetic faces (inter-ocular NME on held-out faces) and synthetic
poses (PCKh@0.5 on held-out poses), each within `--minutes` of wall time on this machine,
and measures how fast the data loader delivers images against how fast training consumes
them (loading must not be the bottleneck).

    python benchmarks/centralized.py [--minutes 10] [--tasks face pose] [--out runs/bench]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from fedland.centralized import train
from fedland.config import load_config
from fedland.data.dataset import make_loader
from fedland.table import format_table
from fedland.task import build_data

TASKS = {"face": "300w", "pose": "mpii"}


def loader_rate(config, batches: int = 20) -> float:
    """Images per second the training loader produces on its own."""
    task = build_data(config)
    loader = make_loader(task.train, config.train.batch_size, True, config.data.workers)
    start, images = time.perf_counter(), 0
    for number, batch in enumerate(loader):
        images += len(batch["image"])
        if number + 1 >= batches:
            break
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["face", "pose"])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-centralized"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    rows = []
    for task in args.tasks:
        overrides = [
            f"data.dataset={TASKS[task]}",
            f"train.time_limit_minutes={args.minutes}",
            "train.epochs=200",
            *args.overrides,
        ]
        config = load_config(None, overrides)
        out = args.out / task
        shutil.rmtree(out, ignore_errors=True)
        summary = train(config, out)
        history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        train_rate = sum(h["train_images_per_second"] for h in history) / len(history)
        rows.append(
            [
                task,
                summary["metric"],
                f"{summary['best']:.2f}",
                f"{summary['final']:.2f}",
                summary["epochs"],
                f"{summary['wall_seconds'] / 60:.1f}",
                f"{loader_rate(config):.0f}",
                f"{train_rate:.1f}",
            ]
        )
    header = [
        "task",
        "metric",
        "best %",
        "final %",
        "epochs",
        "minutes",
        "loader img/s",
        "train img/s",
    ]
    print(format_table(header, rows))


if __name__ == "__main__":
    main()
