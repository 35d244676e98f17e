"""`fedland data info` and `fedland data synth`."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from fedland.table import format_table

SYNTH_TASKS = ("face", "pose")


def add_parsers(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("data", help="inspect datasets, write synthetic data")
    actions = group.add_subparsers(dest="action", required=True)

    info = actions.add_parser(
        "info",
        help="samples per split and subset, and every file that could not be used",
    )
    info.add_argument("--dataset", required=True, choices=["mpii", "lsp", "300w", "wflw", "coco"])
    info.add_argument("--root", required=True, type=Path, help="the dataset folder")
    info.add_argument(
        "--quick",
        action="store_true",
        help="check each image's file markers only (default: decode every image)",
    )
    info.add_argument("--json", action="store_true", help="one JSON object")
    info.set_defaults(handler=data_info)

    synth = actions.add_parser(
        "synth",
        help="write synthetic faces (300-W tree) or poses (MPII JSON list)",
    )
    synth.add_argument("--task", required=True, choices=SYNTH_TASKS)
    synth.add_argument("--num", required=True, type=int, help="number of images")
    synth.add_argument("--out", required=True, type=Path, help="folder to write")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--image-size", type=int, default=256)
    synth.set_defaults(handler=data_synth)


def data_info(args: argparse.Namespace) -> int:
    from fedland.data.readers import read_dataset
    from fedland.data.sources import with_image_check

    found = read_dataset(args.dataset, args.root)
    result = with_image_check(found, decode=not args.quick, progress=not args.json)
    splits = Counter(r.split for r in result.records)
    subsets = Counter(r.subset for r in result.records if r.subset)
    report = {
        "dataset": args.dataset,
        "root": str(args.root),
        "samples": len(result.records),
        "splits": dict(sorted(splits.items())),
        "subsets": dict(sorted(subsets.items())),
        "bad": [bad.to_dict() for bad in result.bad],
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{args.dataset} at {args.root}: {len(result.records)} usable samples")
    print(format_table(["split", "samples"], [[k, v] for k, v in report["splits"].items()]))
    if subsets:
        print()
        print(format_table(["subset", "samples"], [[k, v] for k, v in report["subsets"].items()]))
    if result.bad:
        print(f"\n{len(result.bad)} sample(s) could not be used:")
        for bad in result.bad:
            print(f"  {bad}")
    return 0


def data_synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from fedland.data.synth import synthesize_faces, synthesize_poses

    generate = synthesize_faces if args.task == "face" else synthesize_poses
    with tqdm(total=args.num, desc=f"synthesizing {args.task}s", unit="img") as bar:
        summary = generate(
            args.out,
            args.num,
            args.seed,
            args.image_size,
            progress=lambda done: bar.update(done - bar.n),
        )
    rate = summary.count / summary.seconds if summary.seconds else float("nan")
    print(f"wrote {summary.count} {args.task} images to {summary.root} ({rate:.0f} images/s)")
    rows = [[split, count] for split, count in sorted(summary.per_split.items())]
    print(format_table(["split", "images"], rows))
    return 0
