"""Crops and augmentation: one affine transform from centre, scale, rotation and flip.

Pixel centres sit at integer coordinates. A crop of side 200 * scale pixels around `center`
maps onto an output of `size` pixels so that the crop's edges land on the output's outer
pixel edges (-0.5 and size - 0.5); the same function with size / 4 maps onto the heatmap, so
image and heatmap coordinates relate by x_heatmap = (x_input + 0.5) / 4 - 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def crop_matrix(
    center: np.ndarray, scale: float, size: int, rotation: float = 0.0, flip: bool = False
) -> np.ndarray:
    """2x3 affine matrix from image pixels to the pixels of a size x size crop.

    `rotation` is in degrees (counter-clockwise as seen in the image); `flip` mirrors the crop
    horizontally after rotation.
    """
    zoom = size / (200.0 * scale)
    angle = np.deg2rad(rotation)
    cos, sin = np.cos(angle) * zoom, np.sin(angle) * zoom
    linear = np.array([[cos, sin], [-sin, cos]])
    if flip:
        linear[0] = -linear[0]
    middle = (size - 1) / 2.0
    shift = np.array([middle, middle]) - linear @ np.asarray(center, dtype=np.float64)
    return np.hstack([linear, shift[:, None]]).astype(np.float64)


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map points [..., 2] through a 2x3 affine matrix."""
    points = np.asarray(points, dtype=np.float64)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


def warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The size x size crop of `image` (H x W x C uint8) under `matrix`, black outside."""
    return cv2.warpAffine(
        image,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


@dataclass(frozen=True)
class Augmentation:
    """Training augmentation of the DU-Net recipe (MODEL.md section 5)."""

    scale_sigma: float = 0.25  # scale *= 2 ** clip(N(0, sigma^2), -limit, limit)
    scale_limit: float = 0.5
    rotation_sigma: float = 30.0  # degrees, N(0, sigma^2) clipped at +-limit
    rotation_limit: float = 60.0
    rotation_off_probability: float = 0.6
    flip_probability: float = 0.5
    colour_gain: tuple[float, float] = (0.6, 1.4)

    def sample(self, rng: np.random.Generator) -> tuple[float, float, bool, np.ndarray]:
        """(scale factor, rotation degrees, flip, per-channel gain [3])."""
        exponent = rng.normal(0.0, self.scale_sigma)
        exponent = float(np.clip(exponent, -self.scale_limit, self.scale_limit))
        rotation = rng.normal(0.0, self.rotation_sigma)
        rotation = float(np.clip(rotation, -self.rotation_limit, self.rotation_limit))
        if rng.random() < self.rotation_off_probability:
            rotation = 0.0
        flip = bool(rng.random() < self.flip_probability)
        gain = rng.uniform(*self.colour_gain, size=3).astype(np.float32)
        return 2.0**exponent, rotation, flip, gain


NO_AUGMENTATION = Augmentation(
    scale_sigma=0.0,
    rotation_sigma=0.0,
    rotation_off_probability=1.0,
    flip_probability=0.0,
    colour_gain=(1.0, 1.0),
)


def flip_landmarks(
    points: np.ndarray, visible: np.ndarray, permutation: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Swap left and right partners after a horizontal flip of the coordinates."""
    return points[permutation], visible[permutation]
