"""The same federation once per uplink bit-width (and seed, and variant), resumable.

Every run of a sweep shares the experiment, so partitions, seeds and rounds agree and only
what is swept differs. Each run lives in `OUT/runs/<name>/`; a run whose folder already
holds a `summary.json` for the same settings is not run again, so an interrupted sweep picks
up where it stopped. Runs can go in parallel: each has its own SuperLink and Ray instance.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fedland.config import ConfigError, ExperimentConfig, load_config_dict
from fedland.federation.ledger import read_rows
from fedland.simulations.harness import simulate

RUNS = "runs"


@dataclass(frozen=True)
class SweepPoint:
    """One run: uplink and downlink bits, a seed offset and the values of varied keys."""

    bits: int
    downlink_bits: int
    seed: int
    variant: tuple[tuple[str, str], ...] = field(default=())

    @property
    def name(self) -> str:
        parts = [f"up{self.bits}", f"down{self.downlink_bits}", f"seed{self.seed}"]
        parts += [f"{key.split('.')[-1]}={value}" for key, value in self.variant]
        return re.sub(r"[^A-Za-z0-9_.=+-]", "_", "-".join(parts))

    def overrides(self, base: ExperimentConfig) -> list[str]:
        return [
            f"codec.uplink_bits={self.bits}",
            f"codec.downlink_bits={self.downlink_bits}",
            f"train.seed={base.train.seed + self.seed}",
            f"partition.seed={base.partition.seed + self.seed}",
            *(f"{key}={value}" for key, value in self.variant),
        ]


def default_downlink(bits: int) -> int:
    """The broadcast at the uplink's width, but never below 4 bits: a 1- or 2-bit downlink
    would slow every client's start, and the sweep is about what the uplink costs."""
    return bits if bits >= 4 else 4


def plan(
    bits: Sequence[int],
    downlink_bits: Sequence[int] | None,
    seeds: int,
    variants: Sequence[tuple[str, Sequence[str]]] = (),
) -> list[SweepPoint]:
    """Every (bits, seed, variant) combination; `downlink_bits` is one value for all or one
    per uplink width."""
    if downlink_bits is None:
        downlinks = [default_downlink(b) for b in bits]
    elif len(downlink_bits) == 1:
        downlinks = list(downlink_bits) * len(bits)
    elif len(downlink_bits) == len(bits):
        downlinks = list(downlink_bits)
    else:
        raise ValueError(
            f"--downlink-bits needs one value or one per --bits value ({len(bits)}), "
            f"got {len(downlink_bits)}"
        )
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    combos = itertools.product(*[[(key, v) for v in values] for key, values in variants])
    return [
        SweepPoint(b, d, s, tuple(combo))
        for combo in combos
        for s in range(seeds)
        for b, d in zip(bits, downlinks, strict=True)
    ]


def point_config(base: ExperimentConfig, point: SweepPoint) -> ExperimentConfig:
    return load_config_dict(dataclasses.asdict(base), point.overrides(base))


@dataclass
class RunResult:
    point: SweepPoint
    folder: Path
    summary: dict
    rows: list[dict]
    reused: bool


def run_sweep(
    base: ExperimentConfig,
    points: Sequence[SweepPoint],
    out: Path,
    parallel: int = 1,
    echo: Callable[[str], None] = print,
) -> list[RunResult]:
    """Run (or reuse) every point; results in the order of `points`."""
    configs = [point_config(base, point) for point in points]  # all errors before any run
    lock = threading.Lock()
    done = [0]

    def one(index: int) -> RunResult:
        point, config = points[index], configs[index]
        folder = out / RUNS / point.name
        reused = _finished(folder, config)
        if not reused:

            def show(line: str) -> None:
                if parallel == 1 or line.startswith("round "):
                    echo(f"[{point.name}] {line}")

            # an interrupted run goes on
            simulate(_resuming(config), folder, echo=show, cpus=_cpu_share(config, parallel))
        summary = json.loads((folder / "summary.json").read_text())
        with lock:
            done[0] += 1
            metric = summary["metric"]
            how = "reused" if reused else f"{summary['wall_seconds']:.0f} s"
            echo(
                f"[{done[0]}/{len(points)}] {point.name}: {metric} {summary[metric]:.2f}%, "
                f"uplink {summary['uplink_ratio']:.1f}x less ({how})"
            )
        return RunResult(point, folder, summary, read_rows(folder / "metrics.jsonl"), reused)

    if parallel < 1:
        raise ValueError(f"--parallel must be at least 1, got {parallel}")
    if parallel == 1:  # in the main thread, where SIGTERM stops a run as Ctrl-C does
        return [one(index) for index in range(len(points))]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(one, range(len(points))))


def _cpu_share(config: ExperimentConfig, parallel: int) -> int | None:
    """The CPUs each of `parallel` runs at once may use: without a share each run's Ray
    takes every core and the runs' clients together oversubscribe the machine."""
    if parallel == 1:
        return None
    share = (os.cpu_count() or 1) // parallel
    return max(share, math.ceil(config.federation.client_cpus))


def _resuming(config: ExperimentConfig, **federation: object) -> ExperimentConfig:
    """Sweep runs resume their folder's checkpoint, so an interrupted sweep loses no round."""
    changed = dataclasses.replace(config.federation, resume=True, **federation)
    return dataclasses.replace(config, federation=changed)


def _finished(folder: Path, config: ExperimentConfig) -> bool:
    """A complete run of exactly these settings is already there (settings added to fedland
    since that run count with their defaults)."""
    summary, saved = folder / "summary.json", folder / "config.yaml"
    if not summary.is_file() or not saved.is_file():
        return False
    planned = _resuming(config, out=str(folder.resolve()))
    try:
        existing = _resuming(load_config_dict(yaml.safe_load(saved.read_text()) or {}))
    except ConfigError:
        existing = None
    if existing != planned:
        raise ConfigError(
            f"{folder} holds a run with other settings; choose another --out or remove it"
        )
    return True
