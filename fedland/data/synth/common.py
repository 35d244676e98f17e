"""Pieces both synthetic generators share: per-sample randomness, camera styles, scenery.

Everything here is a pure function of a numpy Generator, so sample i depends only on
(seed, i) and a dataset is byte-identical across runs. Drawing uses OpenCV with fractional
coordinates (`SHIFT` bits), so a landmark lands within 1/16 pixel of the feature drawn for it.
Images are RGB uint8 until `encode_jpeg` converts them for OpenCV's BGR writer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

SHIFT = 4
ONE = 1 << SHIFT
AA = cv2.LINE_AA
PROGRESS_EVERY = 50
Color = tuple[int, int, int]


@dataclass
class SynthSummary:
    """What a generator wrote: where, how much, how long, and how it is partitioned."""

    task: str
    root: Path
    count: int
    seconds: float
    per_split: dict[str, int]
    per_site: dict[str, int]


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


# -- randomness ------------------------------------------------------------------------------


def check_request(num: int, seed: int, image_size: int) -> None:
    if num < 1:
        raise ValueError(f"num must be at least 1, got {num}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if image_size < 32:
        raise ValueError(f"image_size must be at least 32, got {image_size}")


def single_threaded_opencv() -> None:
    """Draw with one OpenCV thread. OpenCV's thread pool, once started, is inherited
    half-dead by forked processes, so a data loader forking workers after generation in the
    same process would hang; per-image drawing gains little from threads anyway."""
    cv2.setNumThreads(1)


def sample_rng(seed: int, task_tag: int, index: int) -> np.random.Generator:
    """The generator of sample `index`: independent of how many samples are made."""
    return np.random.default_rng([seed, task_tag, index])


def rank_uniforms(seed: int, task_tag: int, num: int) -> np.ndarray:
    """One uniform per sample from one stream; its first k values do not depend on num."""
    return np.random.default_rng([seed, task_tag + 1000]).random(num)


def allocate(total: int, weights: Sequence[float], minimum: int = 0) -> list[int]:
    """Split `total` in proportion to `weights` (largest remainder), each part >= minimum
    when `total` allows it, so small datasets keep every subset."""
    share = np.asarray(weights, dtype=np.float64)
    raw = share / share.sum() * total
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    if total >= minimum * len(counts):
        while (counts < minimum).any():
            counts[np.argmin(counts)] += 1
            counts[np.argmax(counts)] -= 1
    return [int(c) for c in counts]


def assign_by_rank(uniforms: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """Label each sample with a group so group g gets exactly counts[g] samples."""
    labels = np.empty(len(uniforms), dtype=np.int64)
    order = np.argsort(uniforms, kind="stable")
    start = 0
    for group, count in enumerate(counts):
        labels[order[start : start + count]] = group
        start += count
    return labels


def _channel(value: float) -> int:
    return int(min(max(value, 0.0), 255.0))


def jitter_color(rng: np.random.Generator, base: Sequence[float], spread: float) -> Color:
    r, g, b = rng.normal(0, spread, 3)
    return _channel(base[0] + r), _channel(base[1] + g), _channel(base[2] + b)


def random_color(rng: np.random.Generator, low: int = 0, high: int = 256) -> Color:
    r, g, b = rng.integers(low, high, 3)
    return int(r), int(g), int(b)


def scaled(color: Sequence[float], factor: float) -> Color:
    return _channel(color[0] * factor), _channel(color[1] * factor), _channel(color[2] * factor)


def mix(a: Sequence[float], b: Sequence[float], t: float) -> Color:
    return (
        _channel((1 - t) * a[0] + t * b[0]),
        _channel((1 - t) * a[1] + t * b[1]),
        _channel((1 - t) * a[2] + t * b[2]),
    )


SKIN_TONES = ((255, 224, 196), (241, 194, 150), (224, 172, 125), (198, 134, 90), (141, 85, 54))
HAIR_COLORS = ((25, 20, 18), (70, 45, 30), (120, 80, 45), (190, 150, 90), (150, 150, 150))


def skin_color(rng: np.random.Generator) -> Color:
    return jitter_color(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 8)


def hair_color(rng: np.random.Generator) -> Color:
    return jitter_color(rng, HAIR_COLORS[rng.integers(len(HAIR_COLORS))], 10)


# -- drawing with fractional coordinates -------------------------------------------------------
# A colour given as an int is a label (a mask value or a part id): it is drawn without
# antialiasing, so every pixel of a label image holds exactly one label.


def _line_type(color: Color | int) -> int:
    return cv2.LINE_8 if isinstance(color, int | np.integer) else AA


def fixed(points: np.ndarray | Sequence[float]) -> np.ndarray:
    """Coordinates in OpenCV's fixed point (`SHIFT` fractional bits)."""
    return np.round(np.asarray(points, dtype=np.float64) * ONE).astype(np.int32)


def point(p: Sequence[float]) -> tuple[int, int]:
    return round(float(p[0]) * ONE), round(float(p[1]) * ONE)


def fill(img: np.ndarray, polygon: np.ndarray, color: Color | int) -> None:
    cv2.fillPoly(img, [fixed(polygon)], color, _line_type(color), SHIFT)


def outline(
    img: np.ndarray, polygon: np.ndarray, color: Color, thickness: int, closed: bool = True
) -> None:
    cv2.polylines(img, [fixed(polygon)], closed, color, max(1, thickness), AA, SHIFT)


def segment(
    img: np.ndarray, a: Sequence[float], b: Sequence[float], color: Color | int, width: float
) -> None:
    """A thick line with round caps (a capsule); `width` in pixels."""
    cv2.line(img, point(a), point(b), color, max(1, round(width)), _line_type(color), SHIFT)


def disc(img: np.ndarray, center: Sequence[float], radius: float, color: Color | int) -> None:
    cv2.circle(img, point(center), max(1, round(radius * ONE)), color, -1, _line_type(color), SHIFT)


def ellipse(
    img: np.ndarray,
    center: Sequence[float],
    axes: Sequence[float],
    angle: float,
    color: Color | int,
    thickness: int = -1,
) -> None:
    size = (max(1, round(axes[0] * ONE)), max(1, round(axes[1] * ONE)))
    cv2.ellipse(img, point(center), size, angle, 0, 360, color, thickness, _line_type(color), SHIFT)


def blend_polygon(img: np.ndarray, polygon: np.ndarray, color: Color, alpha: float) -> None:
    """Fill a polygon at opacity `alpha`, touching only its bounding box (cheap shadows)."""
    x0, y0 = np.maximum(np.floor(polygon.min(axis=0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(polygon.max(axis=0)).astype(int) + 2, img.shape[1::-1])
    if x1 <= x0 or y1 <= y0:
        return
    roi = img[y0:y1, x0:x1]
    layer = roi.copy()
    fill(layer, polygon - (x0, y0), color)
    cv2.addWeighted(layer, alpha, roi, 1 - alpha, 0, dst=roi)


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


# -- output ---------------------------------------------------------------------------------


def remove_stale(folder: Path, pattern: str, keep: Iterable[str]) -> None:
    """Delete files of an earlier synthetic run (names matching `pattern`) that this run did
    not write, so the tree agrees with the new annotations; other files are left alone."""
    if not folder.is_dir():
        return
    name = re.compile(pattern)
    kept = set(keep)
    for path in folder.iterdir():
        if path.is_file() and name.fullmatch(path.name) and path.name not in kept:
            path.unlink()


def report_progress(progress: Callable[[int], None] | None, done: int, total: int) -> None:
    if progress is not None and (done % PROGRESS_EVERY == 0 or done == total):
        progress(done)
