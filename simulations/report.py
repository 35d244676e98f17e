"""What a sweep shows: a CSV row per run, a Markdown table per setting, and two plots.

The target is a metric value a run must reach: by default the float32 run's final value
relaxed by 5% (NME times 1.05, PCKh times 0.95), so "rounds to target" and "bytes to target"
say what each bit-width pays to get as good as float32, give or take 5%.
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from fedland.evaluation import PRIMARY
from fedland.simulations.sweep import RunResult

RELAX = 0.05


def higher_is_better(metric: str) -> bool:
    return PRIMARY[metric][1]


def default_target(results: Sequence[RunResult]) -> float:
    metric = results[0].summary["metric"]
    reference = [r.summary[metric] for r in results if r.point.bits == 32]
    best = max if higher_is_better(metric) else min
    value = statistics.mean(reference) if reference else best(r.summary[metric] for r in results)
    return value * (1 - RELAX) if higher_is_better(metric) else value * (1 + RELAX)


def reached(metric: str, value: float, target: float) -> bool:
    return value >= target if higher_is_better(metric) else value <= target


def csv_rows(results: Sequence[RunResult], target: float) -> list[dict]:
    metric = results[0].summary["metric"]
    baseline = {  # float32 run of the same seed (and variant, where there is one)
        (r.point.seed, r.point.variant): r.summary[metric] for r in results if r.point.bits == 32
    }
    by_seed = {seed: value for (seed, _), value in baseline.items()}
    rows = []
    for result in results:
        summary, point = result.summary, result.point
        rounds_to = bytes_to = None
        spent = 0
        for row in result.rows:
            spent += row["uplink_bytes"] + row["downlink_bytes"]
            if row["round"] > 0 and reached(metric, row[metric], target):
                rounds_to, bytes_to = row["round"], spent
                break
        reference = baseline.get((point.seed, point.variant), by_seed.get(point.seed))
        relative = None if reference is None else 100 * (summary[metric] - reference) / reference
        rows.append(
            {
                "bits": point.bits,
                "downlink_bits": point.downlink_bits,
                "seed": point.seed,
                **dict(point.variant),
                "rounds": summary["rounds"],
                metric: round(summary[metric], 4),
                f"{metric}_vs_float32_%": None if relative is None else round(relative, 2),
                "uplink_bytes": summary["uplink_bytes"],
                "downlink_bytes": summary["downlink_bytes"],
                "total_bytes": summary["uplink_bytes"] + summary["downlink_bytes"],
                "uplink_ratio": round(summary["uplink_ratio"], 3),
                "downlink_ratio": round(summary["downlink_ratio"], 3),
                "total_ratio": round(summary["total_ratio"], 3),
                "target": round(target, 4),
                "rounds_to_target": rounds_to,
                "bytes_to_target": bytes_to,
                "seconds": round(summary["wall_seconds"], 1),
                "run": str(result.folder),
            }
        )
    return rows


def write_csv(rows: Sequence[dict], path: Path) -> None:
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def variant_keys(results: Sequence[RunResult]) -> list[str]:
    return list(dict.fromkeys(key for r in results for key, _ in r.point.variant))


def markdown(
    rows: Sequence[dict], keys: Sequence[str], metric: str, target: float, command: str
) -> str:
    """One line per setting (bits, downlink bits, varied keys), averaged over seeds."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["bits"], row["downlink_bits"], *(row.get(k) for k in keys))].append(row)
    relation = ">=" if higher_is_better(metric) else "<="
    header = [
        "uplink bits", "downlink bits", *keys, f"{metric} %", "vs float32", "uplink x less",
        "total x less", "rounds to target", "MB to target", "seeds",
    ]  # fmt: skip
    lines = [
        f"Sweep: `{command}`",
        "",
        f"Target: {metric} {relation} {target:.2f}% (float32's final value relaxed by "
        f"{100 * RELAX:.0f}%); each line is the mean over its seeds.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
    ]
    for setting, members in groups.items():
        values = [m[metric] for m in members]
        spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
        versus = [m[f"{metric}_vs_float32_%"] for m in members]
        versus = [v for v in versus if v is not None]
        rounds = [m["rounds_to_target"] for m in members if m["rounds_to_target"]]
        spent = [m["bytes_to_target"] / 1e6 for m in members if m["bytes_to_target"]]
        cells = [
            *(str(value) for value in setting),
            f"{statistics.mean(values):.2f}{spread}",
            f"{statistics.mean(versus):+.1f}%" if versus else "",
            f"{statistics.mean(m['uplink_ratio'] for m in members):.1f}",
            f"{statistics.mean(m['total_ratio'] for m in members):.1f}",
            _reached(rounds, len(members)),
            _reached(spent, len(members)),
            str(len(members)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _reached(values: list[float], count: int) -> str:
    if not values:
        return "not reached"
    text = f"{statistics.mean(values):.1f}"
    return text if len(values) == count else f"{text} ({len(values)}/{count})"


def plot(results: Sequence[RunResult], target: float, out: Path) -> list[Path]:
    """Metric against cumulative bytes (up + down) and against rounds, one curve per
    setting (the mean over seeds); round 0 has no traffic, so the byte plot starts at 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = results[0].summary["metric"]
    curves: dict[str, list[RunResult]] = defaultdict(list)
    for result in results:
        label = f"up {result.point.bits} / down {result.point.downlink_bits} bits"
        if result.point.variant:
            label += ", " + ", ".join(f"{k.split('.')[-1]}={v}" for k, v in result.point.variant)
        curves[label].append(result)
    paths = []
    for name, x_label in (
        ("comm_vs_accuracy", "cumulative bytes, up + down"),
        ("accuracy_by_round", "round"),
    ):
        figure, axes = plt.subplots(figsize=(7, 4.5))
        for label, members in curves.items():
            rounds = min(len(m.rows) for m in members)
            y = [statistics.mean(m.rows[i][metric] for m in members) for i in range(rounds)]
            if name == "comm_vs_accuracy":
                totals = [
                    statistics.mean(
                        sum(r["uplink_bytes"] + r["downlink_bytes"] for r in m.rows[: i + 1])
                        for m in members
                    )
                    for i in range(rounds)
                ]
                axes.plot(totals[1:], y[1:], marker="o", markersize=3, label=label)
                axes.set_xscale("log")
            else:
                axes.plot(range(rounds), y, marker="o", markersize=3, label=label)
        axes.set_xlabel(x_label)
        axes.set_ylabel(f"{metric} (%)")
        if not higher_is_better(metric):  # early rounds (NME near 100%) would flatten the rest
            top = max(max(line.get_ydata()) for line in axes.get_lines())
            axes.set_ylim(0, min(top * 1.05, max(4 * target, 1)))
        axes.axhline(target, color="grey", linestyle="--", linewidth=1, label="target")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        path = out / f"{name}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        paths.append(path)
    return paths
