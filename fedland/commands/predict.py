"""`fedland predict`: landmarks on one's own images, as JSON and drawn on them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fedland.data.meta import DATASETS


def add_parsers(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser(
        "predict",
        help="landmarks on images (files or folders) from a checkpoint, .fldp or .onnx file",
        description="Run a trained model on images. Landmarks are in each image's pixels "
        "(0-based, pixel centres at integers), with one score per landmark (heatmap peak).",
    )
    predict.add_argument("--model", required=True, type=Path, help=".pt, .fldp or .onnx file")
    predict.add_argument("images", nargs="+", type=Path, help="image files or folders")
    where = predict.add_mutually_exclusive_group()
    where.add_argument("--box", help="x1,y1,x2,y2: the face or person, for every image")
    where.add_argument("--boxes", type=Path, help="JSON {image: [x1, y1, x2, y2]} per image")
    predict.add_argument("--out", type=Path, help="folder for predictions.json and overlays")
    predict.add_argument("--json", action="store_true", help="one JSON object per image")
    predict.add_argument(
        "--dataset", choices=sorted(DATASETS), help="whose landmarks (default: the file's)"
    )
    flip = predict.add_mutually_exclusive_group()
    flip.add_argument(
        "--flip-test",
        dest="flip_test",
        action="store_true",
        default=None,
        help="average with the mirrored image (default: the file's setting)",
    )
    flip.add_argument("--no-flip-test", dest="flip_test", action="store_false")
    predict.add_argument("--batch-size", type=int, default=16, help="crops per pass (16)")
    predict.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    predict.set_defaults(handler=predict_command)


def predict_command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from fedland.data.image_check import image_problems
    from fedland.federation.run_folder import write_atomically
    from fedland.predict import (
        collect_images,
        load_landmark_model,
        parse_box,
        predict_images,
        read_boxes,
    )
    from fedland.train import resolve_device

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    images = collect_images(args.images)
    if problems := image_problems(images):
        listed = "; ".join(f"{path}: {reason}" for path, reason in problems.items())
        raise ValueError(f"{len(problems)} image(s) cannot be used: {listed}")
    if args.box is not None:
        box = parse_box(args.box)
        boxes = dict.fromkeys(images, box)
    else:
        boxes = read_boxes(args.boxes, images) if args.boxes else {}
    results = args.out / "predictions.json" if args.out else None
    if results is not None and results.exists():
        raise FileExistsError(f"{results} exists (an earlier prediction); choose another --out")
    model = load_landmark_model(
        args.model, resolve_device(args.device), args.dataset, args.flip_test
    )
    predictions = []
    with tqdm(total=len(images), desc="predicting", unit="img", disable=len(images) <= 1,
              file=sys.stderr) as bar:  # fmt: skip
        for prediction in predict_images(model, images, boxes, args.batch_size, bar.update):
            predictions.append(prediction)
            if args.json:
                print(json.dumps(prediction.to_dict()), flush=True)
    if args.out is not None:
        _write_overlays(args.out, predictions, model.meta)
        write_atomically(results, json.dumps([p.to_dict() for p in predictions], indent=1))
    if not args.json:
        _print_summary(predictions, model, results)
    return 0


def _write_overlays(out: Path, predictions: list, meta) -> None:
    """One PNG per image, named after it (`-2`, `-3` where names repeat)."""
    import cv2

    from fedland.data.dataset import load_image
    from fedland.visualize import PREDICTION, draw_landmarks, save_png

    taken: set[str] = set()
    for prediction in predictions:
        name, number = prediction.image.stem, 1
        while name in taken:
            number += 1
            name = f"{prediction.image.stem}-{number}"
        taken.add(name)
        canvas = draw_landmarks(load_image(prediction.image), prediction.landmarks, meta,
                                PREDICTION)  # fmt: skip
        if prediction.box is not None:
            x1, y1, x2, y2 = (round(v) for v in prediction.box)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), (255, 200, 0), 1, cv2.LINE_AA)
        save_png(out / f"{name}.png", canvas)


def _print_summary(predictions: list, model, results: Path | None) -> None:
    from fedland.table import format_table

    rows = [
        [str(p.image), f"{p.scores.mean():.3f}", "whole image" if p.box is None else "box"]
        for p in predictions
    ]
    flip = "on" if model.flip_test else "off"
    print(f"{model.source}: {model.meta.num_landmarks} {model.meta.name} landmarks, "
          f"{model.input_size} px crops, flip test {flip}")  # fmt: skip
    print(format_table(["image", "mean score", "crop"], rows))
    if results is not None:
        print(f"wrote {results} and {len(predictions)} overlay(s) in {results.parent}")
