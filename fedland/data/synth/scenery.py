"""Backgrounds, clutter and occluders: shapes around the subject that are not landmarks."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fedland.data.synth.drawing import (
    AA,
    ONE,
    SHIFT,
    Color,
    disc,
    ellipse,
    fill,
    outline,
    point,
    segment,
)
from fedland.data.synth.sampling import jitter_color, random_color, scaled, skin_color

# -- scenery -------------------------------------------------------------------------------


def _smooth_field(
    rng: np.random.Generator, size: tuple[int, int], base: Color, spread: float, cells: int
) -> np.ndarray:
    """A smooth colour field (width, height): random colours around `base`, interpolated."""
    grid = np.clip(np.asarray(base) + rng.normal(0, spread, (cells, cells, 3)), 0, 255)
    return cv2.resize(grid.astype(np.uint8), size, interpolation=cv2.INTER_LINEAR)


def draw_background(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """A background of one of four kinds, with shapes on it that are not landmarks."""
    if kind == "studio":
        return _smooth_field(rng, (size, size), random_color(rng, 40, 220), 30, 2)
    if kind == "texture":
        cells = int(rng.integers(4, 9))
        return _smooth_field(rng, (size, size), random_color(rng, 30, 200), 55, cells)
    horizon = int(size * rng.uniform(0.35, 0.75))
    if kind == "indoor":
        upper, lower = random_color(rng, 90, 230), random_color(rng, 40, 170)
    else:  # outdoor: sky over ground
        upper = jitter_color(rng, (135, 180, 225), 25)
        lower = jitter_color(rng, (90, 130, 70) if rng.random() < 0.6 else (120, 120, 120), 20)
    img = np.empty((size, size, 3), np.uint8)
    img[:horizon] = _smooth_field(rng, (size, horizon), upper, 12, 3)
    img[horizon:] = _smooth_field(rng, (size, size - horizon), lower, 15, 3)
    if kind == "indoor":
        vanish = (rng.uniform(0.2, 0.8) * size, horizon - size * rng.uniform(0.1, 0.5))
        line_color = scaled(lower, rng.uniform(0.6, 0.85))
        for x in np.linspace(-size, 2 * size, int(rng.integers(4, 9))):
            direction = np.array([x - vanish[0], size - vanish[1]])
            start = vanish + direction * (horizon - vanish[1]) / direction[1]
            segment(img, start, (x, size), line_color, 1)
        for _ in range(int(rng.integers(1, 4))):  # frames, windows, doors
            x0, y0 = rng.uniform(0, size, 2) * (1, horizon / size)
            w, h = rng.uniform(0.1, 0.35, 2) * size
            box = np.array([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]])
            fill(img, box, random_color(rng, 30, 240))
            outline(img, box, scaled(upper, 0.5), int(rng.integers(1, 4)))
    else:
        for _ in range(int(rng.integers(2, 7))):  # trees, bushes, buildings
            x = rng.uniform(0, size)
            if rng.random() < 0.5:
                r = rng.uniform(0.05, 0.2) * size
                disc(
                    img,
                    (x, horizon - r * rng.uniform(0.2, 1.2)),
                    r,
                    jitter_color(rng, (50, 90, 45), 20),
                )
            else:
                w, h = rng.uniform(0.08, 0.3) * size, rng.uniform(0.1, 0.5) * size
                box = np.array(
                    [[x, horizon - h], [x + w, horizon - h], [x + w, horizon], [x, horizon]]
                )
                fill(img, box, random_color(rng, 60, 200))
    return img


def draw_clutter(
    img: np.ndarray, rng: np.random.Generator, count: int, palette: Sequence[Color] = ()
) -> None:
    """Shapes that are not landmarks: rectangles, circles, ellipses, lines, scribbles, and
    blobs in `palette` colours (skin, clothing) as hard negatives."""
    size = img.shape[0]
    for _ in range(count):
        kind = int(rng.integers(6))
        color = palette[rng.integers(len(palette))] if palette and kind == 5 else None
        color = color or random_color(rng)
        center = rng.uniform(-0.05, 1.05, 2) * size
        extent = rng.uniform(0.03, 0.25, 2) * size
        thickness = -1 if rng.random() < 0.6 else int(rng.integers(1, 4))
        if kind == 0:
            corners = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)])
            box = center + corners * extent
            if thickness < 0:
                fill(img, box, color)
            else:
                outline(img, box, color, thickness)
        elif kind == 1:
            cv2.circle(img, point(center), round(extent[0] * ONE), color, thickness, AA, SHIFT)
        elif kind in (2, 5):
            ellipse(img, center, extent, rng.uniform(0, 180), color, thickness)
        elif kind == 3:
            segment(img, center, center + rng.normal(0, 0.3, 2) * size, color, rng.uniform(1, 6))
        else:
            points = center + np.cumsum(rng.normal(0, 0.06 * size, (int(rng.integers(3, 7)), 2)), 0)
            outline(img, points, color, int(rng.integers(1, 4)), closed=False)


def draw_occluder(
    img: np.ndarray,
    rng: np.random.Generator,
    center: np.ndarray,
    size: float,
    labels: np.ndarray | None = None,
    label: int = 255,
) -> None:
    """An object over part of the subject (a block, a round thing or a hand); drawn also into
    `labels` as `label` so callers can tell which landmarks it hides."""
    kind = ("block", "round", "hand")[int(rng.integers(3))]
    targets = [(img, None)] + ([(labels, label)] if labels is not None else [])
    if kind == "hand":
        skin = skin_color(rng)
        angle = rng.uniform(0, 2 * np.pi)
        along = np.array([np.cos(angle), np.sin(angle)])
        across = np.array([-along[1], along[0]])
        palm = center - along * size * 0.15
        for canvas, value in targets:
            color = skin if value is None else value
            ellipse(canvas, palm, (size * 0.3, size * 0.26), np.degrees(angle), color)
            for k in range(4):
                base = palm + along * size * 0.15 + across * size * (k - 1.5) * 0.13
                tip = base + along * size * rng.uniform(0.3, 0.45)
                segment(canvas, base, tip, color, size * 0.11)
            thumb = palm + across * size * 0.25
            segment(canvas, thumb, thumb + (across + along) * size * 0.2, color, size * 0.11)
        outline(img, np.array([palm, palm + along * size * 0.15]), scaled(skin, 0.75), 1, False)
        return
    color = random_color(rng)
    extent = size * rng.uniform(0.3, 0.6, 2)
    angle = rng.uniform(-30, 30)
    for canvas, value in targets:
        paint = color if value is None else value
        if kind == "round":
            ellipse(canvas, center, extent, angle, paint)
        else:
            box = cv2.boxPoints(((float(center[0]), float(center[1])), tuple(2 * extent), angle))
            fill(canvas, box, paint)
