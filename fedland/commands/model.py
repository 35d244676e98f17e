"""`fedland model-info` and `fedland export` (packed `.fldp` or ONNX `.onnx`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fedland.model.config import DUNetConfig
from fedland.quant.bitspec import BitSpec
from fedland.table import format_table

EXPORT_SUFFIXES = (".fldp", ".onnx")


def add_parsers(commands: argparse._SubParsersAction) -> None:
    info = commands.add_parser(
        "model-info",
        help="parameters, float32 and packed size, multiply-accumulates of a DU-Net",
        description="Print the cost of a DU-Net; give several bit settings to compare them.",
    )
    info.add_argument("--unets", "-L", type=int, default=4, help="U-Net passes L (default 4)")
    info.add_argument("--order", "-K", type=int, default=1, help="coupling order K < L (1)")
    info.add_argument("--landmarks", "-J", type=int, default=16, help="landmarks J (16)")
    info.add_argument("--width", "-C", type=int, default=128, help="feature width C (128)")
    info.add_argument("--growth", type=int, default=32, help="growth rate k (32)")
    info.add_argument("--neck", type=int, default=4, help="bottleneck factor (4)")
    info.add_argument("--input-size", type=int, default=256, help="input side, multiple of 64")
    info.add_argument(
        "--bits",
        default="w32a32g32",
        help="wXaYgZ, or a comma-separated list to compare (default w32a32g32)",
    )
    info.add_argument("--scope", choices=["all", "3x3"], default="all", help="quantized convs")
    info.add_argument("--refine", action="store_true", help="iterative refinement (L/2 shared)")
    info.add_argument("--json", action="store_true", help="one JSON object per bit setting")
    info.set_defaults(handler=model_info)

    export = commands.add_parser(
        "export",
        help="write a checkpoint as a packed model file (.fldp) or an ONNX graph (.onnx)",
        description=(
            "Write a checkpoint's model for inference, in the format the --out suffix names: "
            ".fldp, a packed file with the weights at their bit-width; .onnx, a self-contained "
            "ONNX graph with a dynamic batch, its weights dequantized to float32 and its "
            "quantized activations as QuantizeLinear / DequantizeLinear pairs (needs "
            "fedland[onnx]). Both carry the task card that `fedland predict` reads."
        ),
    )
    export.add_argument("--checkpoint", required=True, type=Path, help="training checkpoint")
    export.add_argument(
        "--out", required=True, type=Path, help="file to write: MODEL.fldp or MODEL.onnx"
    )
    export.set_defaults(handler=export_model)


def model_info(args: argparse.Namespace) -> int:
    from fedland.model.complexity import model_cost

    settings = [BitSpec.parse(text) for text in args.bits.split(",") if text.strip()]
    costs = []
    for bits in settings:
        cfg = DUNetConfig(
            num_unets=args.unets,
            order=args.order,
            num_landmarks=args.landmarks,
            width=args.width,
            growth=args.growth,
            neck=args.neck,
            input_size=args.input_size,
            refine=args.refine,
            bits=bits,
            quant_scope=args.scope,
        )
        costs.append(model_cost(cfg))
    if args.json:
        for cost in costs:
            print(json.dumps(cost.to_dict()))
        return 0
    reference = costs[0].fp32_bytes
    rows = [
        [
            c.config,
            c.bits,
            f"{c.params:,}",
            f"{c.fp32_bytes:,}",
            f"{c.packed_bytes:,}",
            f"{reference / c.packed_bytes:.1f}x",
            f"{c.macs / 1e9:.2f}",
        ]
        for c in costs
    ]
    header = ["model", "bits", "params", "fp32 bytes", "packed bytes", "smaller", "GMACs"]
    print(format_table(header, rows, text_columns=2))
    return 0


def export_model(args: argparse.Namespace) -> int:
    from fedland.config import load_config_dict
    from fedland.model.checkpoint import load_checkpoint
    from fedland.task import task_card

    model, payload = load_checkpoint(args.checkpoint)
    suffix = args.out.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise ValueError(
            f"{args.out}: unknown export format {suffix or '(no suffix)'!r}; "
            f"use .fldp (packed model file) or .onnx (ONNX graph)"
        )
    task = task_card(load_config_dict(payload["config"])) if "config" in payload else None
    fp32 = 4 * sum(p.numel() for p in model.parameters())
    if suffix == ".onnx":
        from fedland.model.onnx_export import OPSET, export_onnx

        written = export_onnx(model.eval(), args.out, task, OPSET)
        print(
            f"wrote {args.out} ({written:,} bytes, ONNX opset {OPSET}, {model.config.bits}; "
            f"float32 weights {fp32:,} bytes, {written / fp32:.2f}x their size)"
        )
        return 0
    from fedland.model.packed import write_packed

    written = write_packed(model.eval(), args.out, task)
    print(
        f"wrote {args.out} ({written:,} bytes, {model.config.bits}; "
        f"float32 weights {fp32:,} bytes, {fp32 / written:.1f}x smaller)"
    )
    return 0
