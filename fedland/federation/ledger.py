"""Per-round accounting of bytes, clients and losses, and the run's result files.

`metrics.jsonl` gets one line per round (round 0 is the initial model, before any traffic);
`summary.json` sums the byte counters and records the final metric and the config.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedland.federation.run_folder import RunFolderError, write_atomically

if TYPE_CHECKING:
    from fedland.federation.aggregation import Aggregate

BYTE_KEYS = ("uplink_bytes", "downlink_bytes", "fp32_uplink_bytes", "fp32_downlink_bytes")
BOUND_KEYS = ("clipped", "capped", "excluded")


@dataclass
class RoundLedger:
    """What crossed the wire in one round and what came of it."""

    uplink_bytes: int = 0
    downlink_bytes: int = 0
    fp32_uplink_bytes: int = 0
    fp32_downlink_bytes: int = 0
    sent: int = 0  # train messages sent
    accepted: int = 0
    rejected: int = 0  # replies that failed validation
    failed: int = 0  # nodes that replied with an error or not at all
    full_downloads: int = 0  # nodes that had to download the whole model
    loss: float = math.nan
    client_seconds: float = math.nan  # mean local seconds
    peak_memory_mb: float = math.nan  # largest client peak
    rejections: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # why each failed node failed
    clipped: int = 0  # updates scaled down to the norm bound
    capped: int = 0  # num-examples claims capped
    excluded: int = 0  # updates a selection rule (Krum, Bulyan) left out
    median_norm: float = math.nan  # the median accepted update's norm (before any bound)
    bounded: list[str] = field(default_factory=list)  # each clip, cap and exclusion, by node

    def record_aggregation(self, result: Aggregate) -> None:
        self.clipped, self.capped = len(result.clipped), len(result.capped)
        self.excluded = len(result.excluded)
        self.median_norm = result.median_norm
        self.bounded = list(result.events)

    def row(self) -> dict[str, Any]:
        return asdict(self)


class RunWriter:
    """Appends a line per round to `metrics.jsonl` and rewrites `summary.json`."""

    def __init__(
        self,
        out: Path,
        metric: str,
        config: dict[str, Any],
        run_id: int | None = None,
        attack: dict[str, Any] | None = None,
    ) -> None:
        """`attack`: the simulated attack, as `fedland.federation.attack.attack_summary`."""
        self.run_id = run_id
        self.attack = attack
        self.out = out
        self.metric = metric
        self.config = config
        self.started = time.perf_counter()
        self.rows: list[dict[str, Any]] = []
        self.metrics_path = out / "metrics.jsonl"

    def resume(self, rows: list[dict[str, Any]], elapsed: float) -> None:
        """Continue after the rounds recorded before; they must carry this run's metric, or
        the summary could not be written when the run ends."""
        missing = [row["round"] for row in rows if self.metric not in row]
        if missing:
            raise RunFolderError(
                f"{self.metrics_path}: round(s) {missing} have no {self.metric!r} (recorded "
                f"under another metric name); start the run afresh"
            )
        self.rows = list(rows)
        self.started -= elapsed

    def add(self, row: dict[str, Any]) -> None:
        row = {**row, "elapsed": time.perf_counter() - self.started}
        self.rows.append(row)
        with self.metrics_path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")

    def summary(self) -> dict[str, Any]:
        trained = [row for row in self.rows if row["round"] > 0]
        totals = {key: sum(row[key] for row in trained) for key in BYTE_KEYS}
        summary = {
            **totals,
            "uplink_ratio": _ratio(totals["fp32_uplink_bytes"], totals["uplink_bytes"]),
            "downlink_ratio": _ratio(totals["fp32_downlink_bytes"], totals["downlink_bytes"]),
            "total_ratio": _ratio(
                totals["fp32_uplink_bytes"] + totals["fp32_downlink_bytes"],
                totals["uplink_bytes"] + totals["downlink_bytes"],
            ),
            "rounds": len(trained),
            "metric": self.metric,
            self.metric: self.rows[-1][self.metric] if self.rows else None,
            f"initial_{self.metric}": self.rows[0][self.metric] if self.rows else None,
            "rejected": sum(row["rejected"] for row in trained),
            **{key: sum(row.get(key, 0) for row in trained) for key in BOUND_KEYS},
            "failed": sum(row["failed"] for row in trained),
            "wall_seconds": time.perf_counter() - self.started,
            "run_id": self.run_id,
            "attack": self.attack,
            "config": self.config,
        }
        write_atomically(self.out / "summary.json", json.dumps(summary, indent=2))
        return summary


def _ratio(reference: int, actual: int) -> float | None:
    return reference / actual if actual else None


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
