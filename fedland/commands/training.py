"""`fedland train`, `fedland eval` and `fedland show`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fedland.table import format_table


def add_parsers(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="centralized training (the baseline for federated runs)",
        description="Train on one machine. Without CONFIG: synthetic faces.",
    )
    add_config_arguments(train)
    train.add_argument("--out", type=Path, help="run folder (default: train.out)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.set_defaults(handler=train_command)

    evaluate = commands.add_parser("eval", help="the task's metrics for a checkpoint")
    add_config_arguments(evaluate)
    evaluate.add_argument("--checkpoint", required=True, type=Path)
    evaluate.add_argument("--split", help="split to evaluate (default: the dataset's usual one)")
    evaluate.add_argument("--json", action="store_true", help="one JSON object")
    evaluate.set_defaults(handler=eval_command)

    show = commands.add_parser(
        "show", help="PNG grid of crops with ground truth (green) and predictions (red)"
    )
    add_config_arguments(show)
    show.add_argument("--checkpoint", type=Path, help="model whose predictions to draw")
    show.add_argument("--split", help="split to draw (default: the evaluation split)")
    show.add_argument("--num", type=int, default=16, help="number of images (16)")
    show.add_argument("--out", type=Path, default=Path("landmarks.png"), help="PNG to write")
    show.set_defaults(handler=show_command)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", type=Path, help="experiment YAML")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.epochs=5 (repeatable)",
    )


def _config(args: argparse.Namespace, checkpoint_payload: dict | None = None):
    from fedland.config import load_config, load_config_dict

    if args.config is None and checkpoint_payload and "config" in checkpoint_payload:
        return load_config_dict(checkpoint_payload["config"], args.overrides)
    return load_config(args.config, args.overrides)


def train_command(args: argparse.Namespace) -> int:
    from fedland.centralized import train

    config = _config(args)
    out = args.out or Path(config.train.out)
    summary = train(config, out, resume=args.resume)
    best = summary["best"]
    print(f"best {summary['metric']} {best:.2f}% after {summary['epochs']} epoch(s), in {out}")
    return 0


def _load(args: argparse.Namespace):
    from fedland.model.checkpoint import load_checkpoint
    from fedland.train import resolve_device

    model, payload = load_checkpoint(args.checkpoint)
    config = _config(args, payload)
    device = resolve_device(config.train.device)
    return model.to(device).eval(), config, device


def _dataset(config, split: str | None):
    """The evaluation dataset (no augmentation) of `split`, default the usual one."""
    from fedland.data.dataset import LandmarkDataset
    from fedland.data.sources import eval_split, load_split
    from fedland.task import heatmap_codec

    codec = heatmap_codec(config)
    records, _, meta = load_split(config.data, split or eval_split(config.data))
    return LandmarkDataset(records, meta, config.model.input_size, codec), codec


def eval_command(args: argparse.Namespace) -> int:
    from fedland.data.sources import eval_split
    from fedland.task import evaluate_model, flip_test_enabled

    model, config, device = _load(args)
    dataset, codec = _dataset(config, args.split)
    flip = flip_test_enabled(config, dataset.meta)
    batch, workers = config.train.batch_size, config.data.workers
    metrics = evaluate_model(model, dataset, codec, device, batch, workers, flip)
    report = {
        "dataset": config.data.dataset,
        "split": args.split or eval_split(config.data),
        "samples": len(dataset),
        "flip_test": flip,
        **metrics,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    rows = [[key, f"{value:.2f}"] for key, value in metrics.items() if isinstance(value, float)]
    print(f"{config.data.dataset}: {len(dataset)} samples, flip test {'on' if flip else 'off'}")
    print(format_table(["metric (%)", "value"], rows))
    return 0


def show_command(args: argparse.Namespace) -> int:
    import numpy as np

    from fedland.data.transforms import apply_affine, invert_affine
    from fedland.visualize import GROUND_TRUTH, PREDICTION, draw_landmarks, save_png, tile

    if args.checkpoint:
        model, config, device = _load(args)
    else:
        from fedland.config import load_config

        model, config, device = None, load_config(args.config, args.overrides), None
    dataset, codec = _dataset(config, args.split)
    count = min(args.num, len(dataset))
    items = [dataset[i] for i in range(count)]
    pictures = []
    for item in items:
        crop = (item["image"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        record = dataset.records[item["index"]]
        to_heatmap = invert_affine(item["inverse"].numpy().astype(np.float64))
        truth = codec.to_input_pixels(apply_affine(to_heatmap, record.landmarks))
        picture = draw_landmarks(crop, truth, dataset.meta, GROUND_TRUTH, record.visible)
        if model is not None:
            import torch

            with torch.no_grad():
                heatmaps = model(item["image"][None].to(device))[-1]
            points, _ = codec.decode(heatmaps.float().cpu())
            predicted = codec.to_input_pixels(points[0].numpy())
            picture = draw_landmarks(picture, predicted, dataset.meta, PREDICTION)
        pictures.append(picture)
    path = save_png(args.out, tile(pictures, columns=min(4, count)))
    print(f"wrote {path} ({count} images)")
    return 0
