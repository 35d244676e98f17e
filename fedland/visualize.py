"""Pictures of landmarks: ground truth and predictions drawn on crops, tiled into a grid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from fedland.data.meta import DatasetMeta

GROUND_TRUTH = (40, 200, 60)  # RGB
PREDICTION = (230, 40, 40)


def draw_landmarks(
    image: np.ndarray,
    points: np.ndarray,
    meta: DatasetMeta,
    colour: tuple[int, int, int],
    visible: np.ndarray | None = None,
) -> np.ndarray:
    """Skeleton lines and dots on a copy of an RGB uint8 image."""
    canvas = np.ascontiguousarray(image).copy()
    shown = np.ones(len(points), bool) if visible is None else np.asarray(visible) > 0
    radius = max(1, canvas.shape[0] // 128)
    for a, b in meta.skeleton:
        if shown[a] and shown[b]:
            cv2.line(canvas, _pixel(points[a]), _pixel(points[b]), colour, 1, cv2.LINE_AA)
    for index, point in enumerate(points):
        if shown[index]:
            cv2.circle(canvas, _pixel(point), radius, colour, -1, cv2.LINE_AA)
    return canvas


def _pixel(point: np.ndarray) -> tuple[int, int]:
    x, y = np.rint(np.asarray(point, np.float64)).astype(int)
    return int(x), int(y)


def tile(images: Sequence[np.ndarray], columns: int = 4) -> np.ndarray:
    """Equal-sized RGB images in a grid with a thin border."""
    if not images:
        raise ValueError("nothing to tile")
    height, width = images[0].shape[:2]
    rows = -(-len(images) // columns)
    grid = np.full((rows * (height + 2), columns * (width + 2), 3), 255, np.uint8)
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        top, left = r * (height + 2) + 1, c * (width + 2) + 1
        grid[top : top + height, left : left + width] = image
    return grid


def save_png(path: str | Path, image: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write PNG")
    return path
