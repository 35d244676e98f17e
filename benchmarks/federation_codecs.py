"""Federated accuracy against traffic for every codec: ours and the anchors' methods.

Runs the quickstart (same data, partitions, seeds and rounds for every run) once per codec
setting through the sweep machinery (`fedland sweep`; finished runs are reused, so an
interrupted benchmark resumes), then prints one table: final NME, its change against
float32, uplink / downlink / total traffic against float32, and the bytes spent until the
global model first reached float32's final NME relaxed by each `--relax` (2% and 5%).

    python benchmarks/federation_codecs.py [--out runs/bench-codecs] [--seeds 1]
    python benchmarks/federation_codecs.py --seeds 3 --parallel 2 --only float32,eden2/eden2
    python benchmarks/federation_codecs.py --sampling   # 100 nodes, 10 per round

`--only` keeps the settings named `METHODBITS/METHODBITS` (uplink/downlink; `+norm` after
the uplink's bits: its norm-keeping block scale) or `float32`;
with several seeds a second table gives each setting's mean and spread over its seeds.

`--sampling` runs the cross-device setting instead: 100 IID nodes, 10 sampled per round,
4-bit downlink, and reports how much less than float32 the downlink costs.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from fedland.config import load_config
from fedland.simulations import report
from fedland.simulations.configs import QUICKSTART
from fedland.simulations.sweep import SweepPoint, run_sweep
from fedland.table import format_table

# (uplink bits, downlink bits, uplink method, downlink method, uplink block scale)
SETTINGS = [
    (32, 32, "lloyd", "lloyd", "ls"),  # float32 whatever the method
    (2, 2, "lloyd", "lloyd", "ls"),
    (2, 2, "lloyd", "lloyd", "norm"),
    (1, 2, "lloyd", "lloyd", "ls"),
    (1, 2, "lloyd", "lloyd", "norm"),  # 1-bit steps at full length (see block_scales)
    (4, 4, "lloyd", "lloyd", "ls"),
    (2, 2, "eden", "eden", "ls"),
    (2, 2, "ecsq", "ecsq", "ls"),  # entropy-coded: a finer grid for the same bytes
    (4, 4, "ecsq", "ecsq", "ls"),
    (2, 2, "uniform", "uniform", "ls"),  # the grid of codec v2
    (4, 4, "qsgd", "qsgd", "ls"),
    (4, 4, "nf4", "nf4", "ls"),  # NVIDIA FLARE's 4-bit format
    (8, 8, "blockwise8", "blockwise8", "ls"),  # NVIDIA FLARE's 8-bit format
    (1, 2, "sign", "lloyd", "ls"),  # EF-signSGD uplink
    (1, 2, "topk", "lloyd", "ls"),  # top-k with error feedback, 1 bit per coordinate
    (4, 8, "lloyd", "lloyd", "ls"),  # the quickstart as it ships
]
SAMPLING = [
    "partition.num_partitions=100",
    "partition.scheme=iid",
    "federation.fraction_train=0.1",
    "federation.min_train_nodes=10",
    "federation.min_available_nodes=100",
    "federation.rounds=10",
    "federation.lr_milestones=[]",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-codecs"))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--relax", type=float, nargs="+", default=[0.02, 0.05])
    parser.add_argument("--sampling", action="store_true")
    parser.add_argument("--parallel", type=int, default=1, help="runs at once")
    parser.add_argument("--only", help="comma-separated settings, e.g. float32,lloyd2/lloyd2")
    args = parser.parse_args()
    if args.sampling:
        sampling(args.out.with_name(args.out.name + "-sampling"))
        return
    settings = SETTINGS
    if args.only:
        wanted = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = sorted(set(wanted) - {_label(*setting) for setting in SETTINGS})
        if unknown:
            known = ", ".join(_label(*setting) for setting in SETTINGS)
            raise SystemExit(f"unknown settings {', '.join(unknown)}; known: {known}")
        settings = [setting for setting in SETTINGS if _label(*setting) in wanted]
    base = load_config(QUICKSTART)
    points = [
        SweepPoint(up, down, seed, _variant(m, dm, scale))
        for seed in range(args.seeds)
        for up, down, m, dm, scale in settings
    ]
    results = run_sweep(base, points, args.out, parallel=args.parallel)
    metric = results[0].summary["metric"]
    reference = [r.summary[metric] for r in results if r.point.bits == 32]
    float32 = sum(reference) / len(reference)
    targets = [float32 * (1 + relax) for relax in args.relax]
    rows = report.csv_rows(results, targets[0])
    report.write_csv(rows, args.out / "codecs.csv")
    reach = {t: [row["bytes_to_target"] for row in report.csv_rows(results, t)] for t in targets}
    table = [
        [
            _uplink_name(row),
            row["codec.downlink_method"] if row["downlink_bits"] < 32 else "float32",
            row["bits"],
            row["downlink_bits"],
            row["seed"],
            f"{row[metric]:.2f}",
            f"{row[f'{metric}_vs_float32_%']:+.1f}%",
            f"{row['uplink_ratio']:.1f}",
            f"{row['downlink_ratio']:.1f}",
            f"{row['total_ratio']:.1f}",
            *(_megabytes(reach[t][index]) for t in targets),
        ]
        for index, row in enumerate(rows)
    ]
    header = [
        "uplink", "downlink", "up bits", "down bits", "seed", f"{metric} %", "vs float32",
        "uplink x less", "downlink x less", "total x less",
        *(f"MB to {t:.2f}%" for t in targets),
    ]  # fmt: skip
    relaxed = " / ".join(f"+{100 * relax:.0f}%" for relax in args.relax)
    print(f"quickstart, {base.federation.rounds} rounds; float32 ends at {metric} "
          f"{float32:.2f}%; MB to: traffic until {metric} first reaches float32's final "
          f"value {relaxed}")  # fmt: skip
    print(format_table(header, table, text_columns=2))
    if args.seeds > 1:
        print(f"\nover {args.seeds} seeds: mean {metric} and its sample standard deviation")
        marks = sorted({base.federation.rounds, *range(5, base.federation.rounds, 5)})
        print(format_table(
            ["setting", f"{metric} %", "sd", "vs float32", "paired change", "sd",
             *(f"round {mark}" for mark in marks)],
            _over_seeds(rows, results, metric, float32, marks), text_columns=1,
        ))  # fmt: skip


def _variant(method: str, downlink_method: str, scale: str) -> tuple[tuple[str, str], ...]:
    return (
        ("codec.method", method),
        ("codec.downlink_method", downlink_method),
        ("codec.scale", scale),
    )


def _uplink_name(row: dict) -> str:
    return "float32" if row["bits"] == 32 else row["codec.method"] + _mark(row["codec.scale"])


def _label(up: int, down: int, method: str, downlink_method: str, scale: str) -> str:
    return "float32" if up == 32 else f"{method}{up}{_mark(scale)}/{downlink_method}{down}"


def _mark(scale: str) -> str:
    """The block scale, marked where it is not least squares."""
    return "" if scale == "ls" else f"+{scale}"


def _over_seeds(
    rows: list[dict], results: list, metric: str, float32: float, marks: list[int]
) -> list[list[str]]:
    """Per setting: the mean final metric and its spread, the mean of each seed's change
    against float32 of the same seed (paired: the seed sets partitions and initial model),
    and the mean metric at a few rounds, to tell a lag from a gap that stays."""
    groups: dict[str, list[tuple[dict, dict]]] = {}
    for row, result in zip(rows, results, strict=True):
        setting = (row["bits"], row["downlink_bits"], row["codec.method"],
                   row["codec.downlink_method"], row["codec.scale"])  # fmt: skip
        by_round = {entry["round"]: entry[metric] for entry in result.rows}
        groups.setdefault(_label(*setting), []).append((row, by_round))
    table = []
    for name, members in groups.items():
        finals = [row[metric] for row, _ in members]
        changes = [row[f"{metric}_vs_float32_%"] for row, _ in members]
        table.append([
            name, f"{statistics.mean(finals):.2f}", _spread(finals, "{:.2f}"),
            f"{100 * (statistics.mean(finals) / float32 - 1):+.1f}%",
            f"{statistics.mean(changes):+.1f}%", _spread(changes, "{:.1f}"),
            *(f"{statistics.mean(by_round[mark] for _, by_round in members):.2f}"
              for mark in marks),
        ])  # fmt: skip
    return table


def _spread(values: list[float], form: str) -> str:
    """The sample standard deviation, or - for a single value."""
    return form.format(statistics.stdev(values)) if len(values) > 1 else "-"


def _megabytes(count: int | None) -> str:
    return "not reached" if count is None else f"{count / 1e6:.2f}"


def sampling(out: Path) -> None:
    base = load_config(QUICKSTART, SAMPLING)
    points = [SweepPoint(bits, 4, 0, (("codec.method", "lloyd"),)) for bits in (4,)]
    (result,) = run_sweep(base, points, out)
    rows = [
        [row["round"], row["sent"], row["full_downloads"], row["downlink_bytes"],
         f"{row['fp32_downlink_bytes'] / row['downlink_bytes']:.2f}"]
        for row in result.rows
        if row["round"] > 0
    ]  # fmt: skip
    summary = result.summary
    print("100 IID nodes, 10 per round, 4-bit uplink and downlink (full models at 8 bits)")
    print(format_table(["round", "sent", "full", "downlink bytes", "x less"], rows))
    print(json.dumps({k: summary[k] for k in ("downlink_bytes", "downlink_ratio", "nme")}))


if __name__ == "__main__":
    main()
