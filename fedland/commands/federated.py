"""`fedland simulate`: a federated run on Flower's Simulation Engine."""

from __future__ import annotations

import argparse
from pathlib import Path

from fedland.commands.training import add_config_arguments
from fedland.table import format_table


def add_parsers(commands: argparse._SubParsersAction) -> None:
    simulate = commands.add_parser(
        "simulate",
        help="federated training on Flower's Simulation Engine (one virtual node per client)",
        description="Without CONFIG: the quickstart (synthetic faces, 8 non-IID clients, "
        "4-bit uplink with error feedback, 8-bit downlink, quantized local training).",
    )
    add_config_arguments(simulate)
    simulate.add_argument("--out", type=Path, help="run folder (default: federation.out)")
    simulate.set_defaults(handler=simulate_command)


def simulate_command(args: argparse.Namespace) -> int:
    from fedland.config import load_config
    from fedland.federation.settings import QUICKSTART
    from simulations.harness import simulate

    config = load_config(args.config or QUICKSTART, args.overrides)
    out = args.out or Path(config.federation.out)
    summary = simulate(config, out)
    metric = summary["metric"]
    rows = [
        [f"{metric} (%)", f"{summary[f'initial_{metric}']:.2f}", f"{summary[metric]:.2f}"],
        ["uplink bytes", f"{summary['fp32_uplink_bytes']:,}", f"{summary['uplink_bytes']:,}"],
        ["downlink bytes", f"{summary['fp32_downlink_bytes']:,}", f"{summary['downlink_bytes']:,}"],
    ]
    print(format_table(["", "start / float32", "end / sent"], rows, text_columns=1))
    print(
        f"{summary['rounds']} rounds in {summary['wall_seconds']:.0f} s; traffic "
        f"{summary['total_ratio']:.1f}x less than float32; results in {out}"
    )
    return 0
