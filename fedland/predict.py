"""Landmarks on a user's own images, from any model file fedland writes.

A checkpoint (`.pt`), a packed file (`.fldp`) or an ONNX file (`.onnx`) becomes one
`LandmarkModel`: a network from crops to heatmaps plus the task card that says how to read
them (dataset, heatmap decoding, flip test). Each image is cropped the way the dataset
readers crop (a square of 1.25x the box's longer side around its centre; without a box, the
whole image padded to a square), and the landmarks are mapped back to the image's pixels.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fedland.data.dataset import load_image
from fedland.data.heatmaps import HeatmapCodec, flip_back
from fedland.data.meta import DatasetMeta, dataset_meta
from fedland.data.records import crop_from_box
from fedland.data.transforms import apply_affine, crop_matrix, invert_affine, warp

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MODEL_SUFFIXES = (".pt", ".pth", ".fldp", ".onnx")
BOX_MARGIN = 1.25  # what every dataset reader puts around a box
Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels


@dataclass
class LandmarkModel:
    """A network from crops [N, 3, S, S] in [0, 1] to heatmaps [N, J, S/4, S/4], and how
    to turn its heatmaps into landmarks."""

    network: Callable[[torch.Tensor], torch.Tensor]
    meta: DatasetMeta
    codec: HeatmapCodec
    flip_test: bool
    device: torch.device
    source: Path

    @property
    def input_size(self) -> int:
        return self.codec.input_size


@dataclass
class Prediction:
    image: Path
    landmarks: np.ndarray  # [J, 2] in the image's pixels (0-based, centres at integers)
    scores: np.ndarray  # [J] heatmap peak values
    box: Box | None

    def to_dict(self) -> dict:
        return {
            "image": str(self.image),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
            "scores": [round(float(s), 4) for s in self.scores],
            "box": None if self.box is None else [float(v) for v in self.box],
        }


def load_landmark_model(
    path: Path,
    device: torch.device,
    dataset: str | None = None,
    flip_test: bool | None = None,
) -> LandmarkModel:
    """The model in `path`; `dataset` and `flip_test` replace what its task card says (a
    packed file written without a card needs `dataset`)."""
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise ValueError(
            f"{path}: unknown model file type {suffix or '(none)'!r}; expected a checkpoint "
            f"(.pt), a packed file (.fldp) or an ONNX file (.onnx)"
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    network, card, input_size = _open_network(path, suffix, device)
    card = dict(card or {})
    if dataset is not None:
        card["dataset"] = dataset
    if flip_test is not None:
        card["flip_test"] = flip_test
    if "dataset" not in card:
        raise ValueError(
            f"{path}: the file does not say which dataset's landmarks it predicts; give "
            f"--dataset (300w, wflw, mpii, lsp, coco)"
        )
    meta = dataset_meta(card["dataset"])
    codec = HeatmapCodec.for_input(input_size, card.get("sigma", 1.5), card.get("dark", False))
    flip = bool(card.get("flip_test", meta.task == "pose"))
    return LandmarkModel(network, meta, codec, flip, device, path)


def _open_network(
    path: Path, suffix: str, device: torch.device
) -> tuple[Callable[[torch.Tensor], torch.Tensor], dict | None, int]:
    if suffix == ".onnx":
        from fedland.model.onnx_export import OnnxModel

        onnx = OnnxModel(path, device=device)
        return onnx, onnx.task, onnx.input_size
    if suffix == ".fldp":
        from fedland.model.packed import read_packed, read_packed_task

        model, card = read_packed(path), read_packed_task(path)
    else:
        from fedland.config import load_config_dict
        from fedland.model.checkpoint import load_checkpoint
        from fedland.task import task_card

        model, payload = load_checkpoint(path)
        card = task_card(load_config_dict(payload["config"])) if "config" in payload else None
    model = model.to(device).eval()
    return (lambda images: model(images)[-1]), card, model.config.input_size


def collect_images(inputs: Sequence[Path]) -> list[Path]:
    """Image files given, and the images in folders given (recursively, sorted)."""
    images: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"{item}: no images ({', '.join(IMAGE_SUFFIXES)})")
            images += found
        elif item.is_file():
            images.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such image or folder")
    return images


def parse_box(text: str, source: str = "--box") -> Box:
    """`x1,y1,x2,y2` (pixels), with x2 > x1 and y2 > y1."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    return _checked_box(values, source, text)


def read_boxes(path: Path, images: Sequence[Path]) -> dict[Path, Box]:
    """Boxes from a JSON object {image: [x1, y1, x2, y2]}, keyed by the image's path as
    given or by its file name; each key must name one of `images`."""
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise FileNotFoundError(f"{path}: cannot read the boxes file ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object {{image: [x1, y1, x2, y2]}}")
    by_key = {str(image): image for image in images} | {image.name: image for image in images}
    boxes: dict[Path, Box] = {}
    for key, value in data.items():
        if key not in by_key:
            raise ValueError(f"{path}: key {key!r} names none of the images given")
        boxes[by_key[key]] = _checked_box(value, f"{path}: {key!r}", value)
    return boxes


def _checked_box(values: object, source: str, given: object) -> Box:
    if (
        not isinstance(values, list)
        or len(values) != 4
        or not all(isinstance(v, int | float) and math.isfinite(v) for v in values)
    ):
        raise ValueError(f"{source}: expected four numbers x1,y1,x2,y2, got {given!r}")
    x1, y1, x2, y2 = (float(v) for v in values)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"{source}: the box needs x2 > x1 and y2 > y1, got {given!r}")
    return x1, y1, x2, y2


def crop_of(height: int, width: int, box: Box | None) -> tuple[np.ndarray, float]:
    """Centre and scale of the crop: around the box as the readers crop, or the whole image
    (its longer side, centred)."""
    if box is not None:
        return crop_from_box(*box, margin=BOX_MARGIN)
    center = np.array([(width - 1) / 2.0, (height - 1) / 2.0], dtype=np.float32)
    return center, max(height, width) / 200.0


def predict_images(
    model: LandmarkModel,
    images: Sequence[Path],
    boxes: dict[Path, Box] | None = None,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Prediction]:
    """Predictions in the order of `images`, `batch_size` crops per forward pass;
    `progress(n)` after each batch."""
    boxes = boxes or {}
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        crops, inverses = [], []
        for image_path in chunk:
            image = load_image(image_path)
            center, scale = crop_of(*image.shape[:2], boxes.get(image_path))
            crop = warp(image, crop_matrix(center, scale, model.input_size), model.input_size)
            crops.append(torch.from_numpy(crop).permute(2, 0, 1).float().div_(255.0))
            inverses.append(invert_affine(crop_matrix(center, scale, model.codec.size)))
        points, scores = _landmarks(model, torch.stack(crops).to(model.device))
        for image_path, inverse, local, score in zip(chunk, inverses, points, scores, strict=True):
            yield Prediction(image_path, apply_affine(inverse, local), score, boxes.get(image_path))
        if progress is not None:
            progress(len(chunk))


@torch.inference_mode()
def _landmarks(model: LandmarkModel, crops: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks in heatmap pixels [N, J, 2] and peak values [N, J]."""
    heatmaps = model.network(crops)
    if model.flip_test:
        flipped = model.network(crops.flip(dims=[3]))
        heatmaps = 0.5 * (heatmaps + flip_back(flipped, model.meta.flip_permutation))
    coords, peaks = model.codec.decode(heatmaps.float())
    return coords.cpu().numpy(), peaks.cpu().numpy()
