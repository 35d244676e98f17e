"""Hostile nodes: final NME for every attack x aggregator x uplink bit-width.

Runs the quickstart (8 nodes, the same data, partitions and seeds for every run) with 2 of the
8 nodes attacking, through the sweep machinery (finished runs are reused, so an interrupted
benchmark resumes), then prints one table per bit-width: the final NME of each aggregator
under each attack and its change against the clean run of plain FedAvg at that width, and
what the server bounded (updates clipped, claims capped, updates left out).

    python benchmarks/robustness.py [--bits 4,2] [--rounds 8] [--out runs/bench-robustness]
    python benchmarks/robustness.py --kinds none,sign_flip --aggregators fedavg,trimmed_mean

Attacks at their default strength: sign_flip x4, scale x30, gaussian (3x the update's RMS),
examples (claims 10^6), mirror (poisoned data). Aggregators: `fedavg` (plain: claimed
weights, no bound), `default` (fedavg with the auto norm bound and capped claims), `median`,
`trimmed_mean`, `multi_krum` and `krum_outliers` (Multi-Krum leaving out only Krum scores
above 3x the round's median: `federation.krum_threshold: 3`), each with the default bound
and claims; `krum_outliers_no_ef` is `krum_outliers` without the uplink's error feedback.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fedland.config import load_config
from fedland.simulations.configs import QUICKSTART
from fedland.simulations.sweep import RunResult, SweepPoint, run_sweep
from fedland.table import format_table

KINDS = ["none", "sign_flip", "scale", "gaussian", "examples", "mirror"]
AGGREGATORS = {
    "fedavg": (("federation.aggregator", "fedavg"), ("federation.max_update_norm", "none"),
               ("federation.weighting", "claimed")),
    "default": (("federation.aggregator", "fedavg"),),
    "median": (("federation.aggregator", "median"),),
    "trimmed_mean": (("federation.aggregator", "trimmed_mean"),),
    "multi_krum": (("federation.aggregator", "multi_krum"),),
    # Multi-Krum that leaves out only scores above 3x the round's median
    "krum_outliers": (("federation.aggregator", "multi_krum"), ("federation.krum_threshold", "3")),
    # the same without the uplink's error feedback: what the residual does under attack
    "krum_outliers_no_ef": (("federation.aggregator", "multi_krum"),
                            ("federation.krum_threshold", "3"), ("codec.error_feedback", "false")),
}  # fmt: skip
ATTACKERS = 2


def _point(bits: int, kind: str, aggregator: str) -> SweepPoint:
    attack = (("attack.kind", kind), ("attack.num_nodes", str(ATTACKERS if kind != "none" else 0)))
    return SweepPoint(bits, 8, 0, (*attack, *AGGREGATORS[aggregator]))


def _names(text: str, known: list[str]) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise SystemExit(f"unknown {', '.join(unknown)}; known: {', '.join(known)}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-robustness"))
    parser.add_argument("--bits", default="4,2", help="uplink widths (4,2)")
    parser.add_argument("--rounds", type=int, default=8, help="rounds per run (8)")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--aggregators", default=",".join(AGGREGATORS))
    args = parser.parse_args()
    kinds = _names(args.kinds, KINDS)
    aggregators = _names(args.aggregators, list(AGGREGATORS))
    widths = [int(bits) for bits in args.bits.split(",")]
    base = load_config(QUICKSTART, [f"federation.rounds={args.rounds}"])
    points = [_point(b, k, a) for b in widths for k in kinds for a in aggregators]
    results = {
        (r.point.bits, _kind(r), _aggregator(r)): r for r in run_sweep(base, points, args.out)
    }
    metric = next(iter(results.values())).summary["metric"]
    for bits in widths:
        clean = results.get((bits, "none", "fedavg"))
        reference = clean.summary[metric] if clean else None
        initial = next(r for r in results.values()).summary[f"initial_{metric}"]
        against = f"clean plain fedavg {reference:.2f}%" if reference else "no clean run"
        print(
            f"\nquickstart, {args.rounds} rounds, {bits}-bit uplink, {ATTACKERS} of 8 nodes "
            f"attacking; {metric} % (change against {against}); initial {initial:.2f}%"
        )
        rows = [[kind, *(_cell(results.get((bits, kind, a)), metric, reference)
                         for a in aggregators)] for kind in kinds]  # fmt: skip
        print(format_table(["attack", *aggregators], rows))
        bounded = [[kind, *(_bounded(results.get((bits, kind, a))) for a in aggregators)]
                   for kind in kinds]  # fmt: skip
        print("clipped / capped / left out, summed over the rounds")
        print(format_table(["attack", *aggregators], bounded))


def _kind(result: RunResult) -> str:
    return dict(result.point.variant)["attack.kind"]


def _aggregator(result: RunResult) -> str:
    variant = tuple(item for item in result.point.variant if not item[0].startswith("attack."))
    return next(name for name, settings in AGGREGATORS.items() if settings == variant)


def _cell(result: RunResult | None, metric: str, reference: float | None) -> str:
    if result is None:
        return "-"
    value = result.summary[metric]
    change = f" ({100 * (value / reference - 1):+.0f}%)" if reference else ""
    return f"{value:.2f}{change}"


def _bounded(result: RunResult | None) -> str:
    if result is None:
        return "-"
    summary = result.summary
    return f"{summary['clipped']} / {summary['capped']} / {summary['excluded']}"


if __name__ == "__main__":
    main()
