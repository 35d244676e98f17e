"""A site's camera: uneven light, colour cast, contrast, gamma, blur, sensor noise and JPEG
quality; sites differ in all of these so partitions by site are non-IID. Images are RGB
uint8 until `encode_jpeg` converts them for OpenCV's BGR writer."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np


@dataclass(frozen=True)
class CameraStyle:
    """One site's look; sites differ in all of these so partitions by site are non-IID."""

    name: str
    background: str  # "studio", "indoor", "outdoor" or "texture"
    cast: tuple[float, float, float]  # RGB gains
    contrast: float
    brightness: float  # grey levels added after the contrast change
    gamma: float  # > 1 darkens shadows (low light)
    blur: tuple[float, float]  # Gaussian sigma range, pixels at 256 px
    motion_blur: float  # probability of a short motion streak
    noise: float  # sensor noise std, grey levels
    jpeg_quality: int
    clutter: tuple[int, int]  # number of background shapes


# -- camera ---------------------------------------------------------------------------------


NOISE_MARGIN = 64  # a frame's noise is a window of a bank this much larger than the frame


@cache
def _noise_bank(size: int, std: float) -> tuple[np.ndarray, np.ndarray]:
    """Fixed Gaussian noise, split into its positive and negative parts so it is added with
    saturating uint8 arithmetic; each frame uses a random window of it."""
    shape = (size + NOISE_MARGIN, size + NOISE_MARGIN, 3)
    noise = np.random.default_rng(20240611).standard_normal(shape) * std
    return np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8)


def apply_camera(img: np.ndarray, rng: np.random.Generator, style: CameraStyle) -> np.ndarray:
    """Uneven light, colour cast, contrast, gamma, blur and sensor noise of one site."""
    size = img.shape[0]
    light = np.repeat(rng.uniform(90, 147, (3, 3, 1)), 3, axis=2).astype(np.uint8)
    field = cv2.resize(light, (size, size), interpolation=cv2.INTER_LINEAR)
    img = cv2.multiply(img, field, scale=1 / 128)
    gains = np.asarray(style.cast) * rng.uniform(0.94, 1.06, 3) * style.contrast
    offset = style.brightness + rng.normal(0, 8) + 128 * (1 - style.contrast)
    matrix = np.hstack([np.diag(gains), np.full((3, 1), offset)])
    img = cv2.transform(img, matrix)
    if style.gamma != 1:
        gamma = style.gamma * rng.uniform(0.9, 1.1)
        lut = (255 * (np.arange(256) / 255) ** gamma).astype(np.uint8)
        img = cv2.LUT(img, lut)
    sigma = rng.uniform(*style.blur) * size / 256
    if sigma > 0.3:
        k = 2 * int(2 * sigma) + 1  # a kernel of +-2 sigma: cheaper than OpenCV's +-3 sigma
        img = cv2.GaussianBlur(img, (k, k), sigma)
    if rng.random() < style.motion_blur:  # a three-tap streak in a random direction
        reach = max(1, round(rng.uniform(1, 3) * size / 256))
        angle = rng.uniform(0, np.pi)
        dx, dy = round(reach * np.cos(angle)), round(reach * np.sin(angle))
        pad = cv2.copyMakeBorder(img, reach, reach, reach, reach, cv2.BORDER_REPLICATE)
        ahead = pad[reach + dy : reach + dy + size, reach + dx : reach + dx + size]
        behind = pad[reach - dy : reach - dy + size, reach - dx : reach - dx + size]
        img = cv2.addWeighted(cv2.addWeighted(ahead, 0.5, behind, 0.5, 0), 2 / 3, img, 1 / 3, 0)
    oy, ox = rng.integers(0, NOISE_MARGIN, 2)
    positive, negative = (b[oy : oy + size, ox : ox + size] for b in _noise_bank(size, style.noise))
    return cv2.subtract(cv2.add(img, positive), negative)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return data.tobytes()
