"""`fedland simulate` and `fedland sweep`: federated runs on Flower's Simulation Engine."""

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
    simulate.add_argument("--force", action="store_true",
                          help="start afresh in a folder that holds another run (it is moved "
                               "aside to OUT.replaced-DATE, not deleted)")  # fmt: skip
    simulate.set_defaults(handler=simulate_command)

    sweep = commands.add_parser(
        "sweep",
        help="the same federation once per uplink bit-width (and seed, and variant)",
        description="Runs the experiment (default: the quickstart) once per --bits value, "
        "seed and --vary combination; resumes an interrupted sweep; writes sweep.csv, "
        "sweep.md, comm_vs_accuracy.png and accuracy_by_round.png.",
    )
    add_config_arguments(sweep)
    sweep.add_argument("--bits", type=_bits_list, default=[32, 16, 8, 4, 2, 1],
                       help="uplink bit-widths (default 32,16,8,4,2,1)")  # fmt: skip
    sweep.add_argument(
        "--downlink-bits",
        type=_bits_list,
        help="one width for all, or one per --bits value (default: as the uplink, at least 4)",
    )
    sweep.add_argument("--seeds", type=int, default=1, help="seeds per setting (1)")
    sweep.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="also sweep a config key, e.g. --vary codec.error_feedback=true,false (repeatable)",
    )
    sweep.add_argument("--target", type=float, help="metric to reach (default: float32's +-5%%)")
    sweep.add_argument("--parallel", type=int, default=1, help="runs at once (1)")
    sweep.add_argument("--out", type=Path, required=True, help="sweep folder")
    sweep.set_defaults(handler=sweep_command)


def _bits_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _variant(text: str) -> tuple[str, list[str]]:
    key, sep, values = text.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise ValueError(f"--vary {text!r} is not of the form key.sub=value1,value2")
    return key.strip(), [value.strip() for value in values.split(",")]


def simulate_command(args: argparse.Namespace) -> int:
    from fedland.config import load_config
    from fedland.simulations.configs import QUICKSTART
    from fedland.simulations.harness import simulate

    config = load_config(args.config or QUICKSTART, args.overrides)
    out = args.out or Path(config.federation.out)
    summary = simulate(config, out, force=args.force)
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


def sweep_command(args: argparse.Namespace) -> int:
    import shlex

    from fedland.config import load_config
    from fedland.simulations import report
    from fedland.simulations.configs import QUICKSTART
    from fedland.simulations.sweep import plan, run_sweep

    config = load_config(args.config or QUICKSTART, args.overrides)
    points = plan(args.bits, args.downlink_bits, args.seeds, [_variant(v) for v in args.vary])
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{len(points)} run(s), {args.parallel} at a time, in {args.out}")
    results = run_sweep(config, points, args.out, args.parallel)
    metric = results[0].summary["metric"]
    target = args.target if args.target is not None else report.default_target(results)
    rows = report.csv_rows(results, target)
    report.write_csv(rows, args.out / "sweep.csv")
    command = "fedland " + " ".join(shlex.quote(a) for a in args.argv)
    keys = report.variant_keys(results)
    table = report.markdown(rows, keys, metric, target, command)
    (args.out / "sweep.md").write_text(table)
    plots = report.plot(results, target, args.out)
    print(table)
    print(f"wrote {args.out / 'sweep.csv'}, {args.out / 'sweep.md'}, " + ", ".join(map(str, plots)))
    return 0
