"""Drawing with fractional coordinates: OpenCV with `SHIFT` fractional bits, so a landmark
lands within 1/16 pixel of the feature drawn for it. Images are RGB uint8."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

SHIFT = 4
ONE = 1 << SHIFT
AA = cv2.LINE_AA
Color = tuple[int, int, int]

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
