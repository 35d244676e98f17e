"""Synthetic faces written as a 300-W folder tree (`.jpg` + 68-point `.pts` per face).

A parametric 3D face (identity: face width, jaw shape, eye spacing and size, nose length,
mouth width; expression: smile, open mouth, raised brows, eye opening) is rotated by yaw,
pitch and roll, scaled, translated and projected. The jaw and forehead contour are the
silhouette of the head's horizontal cross-sections, as 300-W annotates the visible outline of
a turned face. Every landmark lies on something drawn: the jaw on the skin outline (with a
jaw line), brows on brow strokes, eyes on eyelids, nose on the ridge highlight and nostril
line, lips on the lip polygons. Coordinates: x right, y down, z towards the camera; the face
is 2 units wide. Positive yaw turns the face towards the image's right, positive pitch up.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fedland.data.readers.pts import write_pts
from fedland.data.synth.camera import CameraStyle, apply_camera, encode_jpeg
from fedland.data.synth.drawing import Color, disc, ellipse, fill, outline
from fedland.data.synth.output import (
    SynthSummary,
    check_request,
    remove_stale,
    report_progress,
    single_threaded_opencv,
)
from fedland.data.synth.sampling import (
    allocate,
    assign_by_rank,
    hair_color,
    jitter_color,
    mix,
    rank_uniforms,
    sample_rng,
    scaled,
    skin_color,
)
from fedland.data.synth.scenery import draw_background, draw_clutter, draw_occluder

FACE_TAG = 1
ATTRIBUTES_FILE = "fedland_attributes.json"
EXPRESSIONS = ("neutral", "smile", "open", "surprise")
# (folder, split, size in the real 300-W): the proportions the synthetic tree copies.
TRAIN_SUBSETS = (("afw", 337), ("helen/trainset", 2000), ("lfpw/trainset", 811))
COMMON_SUBSETS = (("helen/testset", 330), ("lfpw/testset", 224))
CHALLENGING_SUBSETS = (("ibug", 135),)
STALE_FILES = r"face_\d{6}\.(jpg|pts)"


@dataclass(frozen=True)
class FaceSite:
    """How one 300-W source differs: camera, head poses, occlusion and expressions."""

    style: CameraStyle
    yaw_std: float
    yaw_limit: float
    roll_std: float
    occlusion: float  # probability of an occluder
    expressions: tuple[float, float, float, float]  # weights of EXPRESSIONS
    strength: float  # expression intensity


SITES = {
    "afw": FaceSite(
        CameraStyle(
            name="outdoor-snapshot", background="outdoor", cast=(1.08, 1.0, 0.9), contrast=1.1,
            brightness=4, gamma=1.0, blur=(0.3, 0.9), motion_blur=0.05, noise=3,
            jpeg_quality=88, clutter=(3, 8),
        ),
        yaw_std=25, yaw_limit=50, roll_std=10, occlusion=0.2,
        expressions=(0.4, 0.35, 0.15, 0.1), strength=1.0,
    ),
    "helen": FaceSite(
        CameraStyle(
            name="portrait-hq", background="studio", cast=(1.0, 1.0, 1.0), contrast=1.0,
            brightness=0, gamma=1.0, blur=(0.0, 0.5), motion_blur=0.0, noise=1.5,
            jpeg_quality=95, clutter=(0, 3),
        ),
        yaw_std=15, yaw_limit=45, roll_std=7, occlusion=0.2,
        expressions=(0.45, 0.4, 0.1, 0.05), strength=0.9,
    ),
    "lfpw": FaceSite(
        CameraStyle(
            name="web-compressed", background="indoor", cast=(0.92, 1.0, 1.1), contrast=0.9,
            brightness=6, gamma=1.0, blur=(0.5, 1.2), motion_blur=0.05, noise=4,
            jpeg_quality=80, clutter=(2, 8),
        ),
        yaw_std=20, yaw_limit=45, roll_std=9, occlusion=0.2,
        expressions=(0.5, 0.3, 0.1, 0.1), strength=1.0,
    ),
    "ibug": FaceSite(  # the hard one: low light, large poses, occluders, strong expressions
        CameraStyle(
            name="lowlight-handheld", background="texture", cast=(1.08, 1.0, 0.8),
            contrast=0.85, brightness=-30, gamma=1.3, blur=(0.7, 1.6), motion_blur=0.35,
            noise=8, jpeg_quality=75, clutter=(6, 14),
        ),
        yaw_std=40, yaw_limit=75, roll_std=15, occlusion=0.4,
        expressions=(0.15, 0.25, 0.3, 0.3), strength=1.35,
    ),
}  # fmt: skip


# -- geometry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """Per-person proportions (units: half the face width at the ears)."""

    width: float
    jaw_power: float  # < 1 squarer jaw, > 1 rounder
    jaw_top: float
    chin: float
    hairline: float
    eye_x: float
    eye_y: float
    eye_w: float
    eye_h: float
    brow_y: float
    brow_arch: float
    brow_thick: float
    nose_tip: float
    nose_w: float
    nose_depth: float
    mouth_y: float
    mouth_w: float
    lip_up: float
    lip_low: float


@dataclass(frozen=True)
class Expression:
    name: str
    smile: float
    open: float
    brow_raise: float
    eye_open: float
    round: float  # mouth width factor (< 1: an "o" mouth)
    teeth: bool


def _identity(rng: np.random.Generator) -> Identity:
    eye_y = rng.uniform(-0.24, -0.14)
    nose_tip = eye_y + rng.uniform(0.55, 0.72)
    mouth_y = nose_tip + rng.uniform(0.3, 0.4)
    brow_y = eye_y - rng.uniform(0.2, 0.28)
    return Identity(
        width=rng.uniform(0.92, 1.06),
        jaw_power=rng.uniform(0.75, 1.15),
        jaw_top=eye_y + rng.uniform(0.0, 0.1),
        chin=mouth_y + rng.uniform(0.42, 0.55),
        hairline=brow_y - rng.uniform(0.4, 0.6),
        eye_x=rng.uniform(0.41, 0.49),
        eye_w=rng.uniform(0.34, 0.42),
        eye_h=rng.uniform(0.12, 0.17),
        eye_y=eye_y,
        brow_y=brow_y,
        brow_arch=rng.uniform(0.03, 0.08),
        brow_thick=rng.uniform(0.05, 0.09),
        nose_tip=nose_tip,
        nose_w=rng.uniform(0.36, 0.48),
        nose_depth=rng.uniform(0.28, 0.42),
        mouth_y=mouth_y,
        mouth_w=rng.uniform(0.58, 0.76),
        lip_up=rng.uniform(0.08, 0.12),
        lip_low=rng.uniform(0.1, 0.15),
    )


def _expression(rng: np.random.Generator, site: FaceSite) -> Expression:
    name = EXPRESSIONS[rng.choice(len(EXPRESSIONS), p=np.asarray(site.expressions))]
    u, k = rng.uniform, site.strength
    if name == "smile":
        opening = u(0, 0.07) * k
        return Expression(
            name,
            smile=u(0.5, 1.0) * k,
            open=opening,
            brow_raise=0.0,
            eye_open=u(0.65, 0.95),
            round=1.0,
            teeth=opening > 0.025,
        )
    if name == "open":
        return Expression(
            name,
            smile=u(0, 0.2),
            open=u(0.1, 0.3) * k,
            brow_raise=u(0, 0.04),
            eye_open=u(0.8, 1.1),
            round=u(0.85, 1.0),
            teeth=rng.random() < 0.5,
        )
    if name == "surprise":
        return Expression(
            name,
            smile=0.0,
            open=u(0.14, 0.3) * k,
            brow_raise=u(0.05, 0.1) * k,
            eye_open=u(1.15, 1.4),
            round=u(0.65, 0.85),
            teeth=False,
        )
    return Expression(
        name, smile=0.0, open=0.0, brow_raise=0.0, eye_open=u(0.75, 1.1), round=1.0, teeth=False
    )  # fmt: skip


def _surface_z(x: np.ndarray, width: float) -> np.ndarray:
    """Depth of the face's front surface: an ellipse 0.75 deep, front at z = 0.3."""
    return -0.45 + 0.75 * np.sqrt(np.clip(1 - (x / (1.02 * width)) ** 2, 0, 1))


def _contour(face: Identity, expression: Expression) -> np.ndarray:
    """Frontal (x, y) of the 17 jaw points and 9 forehead points, chin lowered by the mouth."""
    phi = np.pi * np.arange(17) / 16
    cos = np.cos(phi)
    x = -face.width * np.sign(cos) * np.abs(cos) ** face.jaw_power
    y = face.jaw_top + (face.chin - face.jaw_top) * np.sin(phi) ** 0.9
    y += expression.open * 0.85 * np.sin(phi) ** 4
    t = np.pi * np.arange(9, 0, -1) / 10  # from the right temple over the top to the left
    fx = -0.97 * face.width * np.cos(t)
    fy = face.jaw_top - (face.jaw_top - face.hairline) * np.sin(t)
    return np.concatenate([np.stack([x, y], 1), np.stack([fx, fy], 1)])


def _features(face: Identity, expression: Expression) -> np.ndarray:
    """Frontal (x, y, z) of landmarks 17-67 (rows 0-16 unused), expression applied."""
    pts = np.zeros((68, 3))
    t = np.linspace(0, 1, 5)
    inner, outer = face.eye_x - face.eye_w / 2 - 0.03, face.eye_x + face.eye_w / 2 + 0.1
    brow_y = face.brow_y - face.brow_arch * np.sin(np.pi * (0.1 + 0.85 * t)) + 0.03 * (1 - t)
    brow_y -= expression.brow_raise * (1 + 0.3 * t)
    pts[17:22, 0] = -(outer - t * (outer - inner))
    pts[17:22, 1] = brow_y
    pts[22:27, 0] = -pts[21:16:-1, 0]
    pts[22:27, 1] = brow_y[::-1]
    pts[27:31, 0] = 0
    pts[27:31, 1] = np.linspace(face.eye_y - 0.05, face.nose_tip, 4)
    pts[27:31, 2] = 0.32 + np.linspace(0, 1, 4) ** 1.3 * face.nose_depth
    half = face.nose_w / 2
    nx = np.array([-half, -half / 2, 0, half / 2, half])
    pts[31:36, 0] = nx
    pts[31:36, 1] = face.nose_tip + 0.1 + 0.035 * (1 - (nx / half) ** 2)
    pts[31:36, 2] = 0.36 + 0.45 * face.nose_depth * (1 - np.abs(nx / half)) ** 1.5
    # eyes: outer corner, two upper lid points, inner corner, two lower lid points
    ex = np.array([-0.5, -1 / 6, 1 / 6, 0.5, 1 / 6, -1 / 6]) * face.eye_w
    ey = np.array([0, -0.55, -0.55, 0, 0.45, 0.45]) * face.eye_h * expression.eye_open
    ey += np.array([0, 0, 0, 0.01, 0, 0])
    pts[36:42, 0] = -face.eye_x + ex
    pts[42:48, 0] = face.eye_x - ex[[3, 2, 1, 0, 5, 4]]
    pts[36:42, 1] = face.eye_y + ey
    pts[42:48, 1] = face.eye_y + ey[[3, 2, 1, 0, 5, 4]]
    pts[36:48, 2] = _surface_z(pts[36:48, 0], face.width) - 0.04
    _mouth(pts, face, expression)
    pts[17:27, 2] = _surface_z(pts[17:27, 0], face.width) + 0.02
    return pts


# The mouth: outer lip 48-59 then inner lip 60-67. x in mouth widths; y of the outer points
# in upper / lower lip heights (inner points sit on the mouth line); how far each point drops
# when the mouth opens; the corners (48, 54, 60, 64) that a smile pulls out and up.
MOUTH_X = np.array([
    -0.5, -0.3, -0.1, 0, 0.1, 0.3, 0.5, 0.3, 0.12, 0, -0.12, -0.3,
    -0.42, -0.12, 0, 0.12, 0.42, 0.12, 0, -0.12,
])  # fmt: skip
MOUTH_UPPER = np.array([0, -0.8, -1, -0.85, -1, -0.8] + [0] * 14)
MOUTH_LOWER = np.array([0] * 7 + [0.85, 1, 1.02, 1, 0.85] + [0] * 8)
MOUTH_LINE = np.array([0] * 12 + [0, -0.01, -0.01, -0.01, 0, 0.01, 0.01, 0.01])
MOUTH_DROP = np.array(
    [0.25] + [0] * 5 + [0.25, 0.75, 1, 1, 1, 0.75, 0.25, -0.1, -0.1, -0.1, 0.25, 0.9, 1, 0.9]
)
MOUTH_CORNER = np.isin(np.arange(20), (0, 6, 12, 16))


def _mouth(pts: np.ndarray, face: Identity, e: Expression) -> None:
    w = face.mouth_w * e.round
    x = MOUTH_X * w
    y = MOUTH_UPPER * face.lip_up + MOUTH_LOWER * face.lip_low + MOUTH_LINE + e.open * MOUTH_DROP
    x += e.smile * np.sign(x) * np.where(MOUTH_CORNER, 0.06, 0.025)
    y -= e.smile * np.where(MOUTH_CORNER, 0.08, 0.035 * (np.abs(x) > 0.15 * w))
    pts[48:68, 0] = x
    pts[48:68, 1] = face.mouth_y + y
    pts[48:68, 2] = _surface_z(x, face.width) + 0.04 + 0.06 * (1 - np.abs(x) / w)


def _silhouette(contour: np.ndarray, yaw: float) -> np.ndarray:
    """3D contour points. On the side turning away (and at the chin) a point is the outermost
    point of its horizontal head section (an ellipse |x| wide) once the head is turned by
    `yaw` degrees: the cheek outline 300-W annotates. On the near side it stays on the jaw."""
    theta = np.radians(yaw)
    a = np.abs(contour[:, 0])
    depth = 0.3 + 0.45 * a
    center = 0.3 - depth
    side = np.where(contour[:, 0] != 0, np.sign(contour[:, 0]), np.sign(theta) or 1.0)
    alpha = np.arctan2(side * depth * np.sin(theta), side * a * np.cos(theta))
    alpha = np.where(side * theta > 0, alpha, np.where(side > 0, 0.0, np.pi))
    return np.stack([a * np.cos(alpha), contour[:, 1], center + depth * np.sin(alpha)], 1)


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


@dataclass
class Camera:
    """Weak perspective: rotate, scale by `scale` pixels per unit, translate."""

    rotation: np.ndarray
    scale: float
    offset: np.ndarray

    def __call__(self, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        return points @ self.rotation[:2].T * self.scale + self.offset


def _place(
    rng: np.random.Generator, rotation: np.ndarray, landmarks3d: np.ndarray, size: int
) -> Camera:
    """Scale the face to 30-70 % of the image width and move it so every landmark is inside."""
    scale = rng.uniform(0.3, 0.7) * size / 2
    margin = 0.02 * size + 1
    flat = landmarks3d @ rotation[:2].T
    extent = flat.max(0) - flat.min(0)
    scale = min(scale, (size - 1 - 2 * margin) / extent.max())
    low, high = margin - flat.min(0) * scale, size - 1 - margin - flat.max(0) * scale
    return Camera(rotation, scale, rng.uniform(low, high))


# -- drawing -----------------------------------------------------------------------------------


def _shade(img: np.ndarray, polygon: np.ndarray, light: np.ndarray, strength: float) -> None:
    """Darken the skin away from the light: a linear ramp inside the face polygon only."""
    x0, y0 = np.maximum(np.floor(polygon.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(polygon.max(0)).astype(int) + 1, img.shape[1::-1])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    roi = img[y0:y1, x0:x1]
    mask = np.zeros(roi.shape[:2], np.uint8)
    fill(mask, polygon - (x0, y0), 255)
    corners = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]]) @ light / np.sqrt(2)
    ramp = np.repeat(128 * (1 + strength * corners).reshape(2, 2, 1), 3, axis=2)
    ramp = cv2.resize(ramp.astype(np.uint8), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    cv2.copyTo(cv2.multiply(roi, ramp, scale=1 / 128), mask, roi)


def _axis_angle(camera: Camera) -> float:
    """The image angle (degrees) of the face's x axis, for OpenCV ellipses."""
    x_axis = camera.rotation[:2, 0]
    return float(np.degrees(np.arctan2(x_axis[1], x_axis[0])))


def _draw_head(
    img: np.ndarray,
    rng: np.random.Generator,
    cam: Camera,
    face: Identity,
    contour: np.ndarray,
    yaw: float,
    skin: Color,
    hair: Color,
) -> None:
    """Clothes, neck, hair, ears and the skin region bounded by the jaw and forehead contour."""
    s, w, angle = cam.scale, face.width, _axis_angle(cam)
    ellipse(
        img,
        cam([0, face.chin + 1.6, -0.5])[0],
        (2.4 * s, 0.9 * s),
        angle,
        jitter_color(rng, rng.integers(20, 230, 3), 5),
    )
    neck = [
        [-0.4 * w, face.jaw_top + 0.6, -0.45],
        [0.4 * w, face.jaw_top + 0.6, -0.45],
        [0.48 * w, face.chin + 1.3, -0.45],
        [-0.48 * w, face.chin + 1.3, -0.45],
    ]
    fill(img, cam(neck), scaled(skin, 0.72))
    kind = rng.choice(3, p=(0.12, 0.5, 0.38))  # bald, short, long
    theta = np.radians(yaw)
    if kind == 2:
        length = face.chin + rng.uniform(0.3, 0.9) - face.hairline
        drape = (s * np.hypot(1.3 * w * np.cos(theta), np.sin(theta)), s * length / 2)
        center = [0, face.hairline + length / 2, -0.7]
        ellipse(img, cam(center)[0], drape, angle, hair)
    skull = (s * np.hypot(1.12 * w * np.cos(theta), 1.05 * np.sin(theta)), 1.05 * s)
    head_color = scaled(skin, 0.93) if kind == 0 else hair
    ellipse(img, cam([0, face.hairline + 0.85, -0.5])[0], skull, angle, head_color)
    for side in (-1, 1):
        ear = cam([side * 0.95 * w, face.jaw_top + 0.25, -0.7])[0]
        ellipse(img, ear, (0.14 * s, 0.26 * s), angle, scaled(skin, 0.88))
    polygon = cam(contour)
    fill(img, polygon, skin)
    light = rng.normal(size=2)
    _shade(img, polygon, light / np.linalg.norm(light), rng.uniform(0.1, 0.3))
    outline(img, polygon[:17], scaled(skin, 0.7), round(0.012 * s), closed=False)
    if kind and rng.random() < 0.5:  # a fringe over the forehead, clear of the brows
        bottom = face.brow_y - rng.uniform(0.18, 0.35)
        temple = contour[[25, 17]]
        x = np.linspace(temple[0, 0], temple[1, 0], 9)
        edge_y = bottom + (temple[0, 1] - bottom) * np.abs(x / x[0]) ** 4
        edge_y += rng.normal(0, 0.015, 9)
        edge = np.stack([x, edge_y, _surface_z(x, w) + 0.02], 1)
        fill(img, cam(np.concatenate([contour[17:], edge])), hair)


def _draw_eye(
    img: np.ndarray,
    lids: np.ndarray,
    iris: np.ndarray,
    radius: float,
    colors: tuple[Color, Color, Color],
    lid_width: int,
) -> None:
    """Sclera and iris clipped to the lids, then the lid lines through the six landmarks."""
    iris_color, sclera, lid = colors
    x0, y0 = np.maximum(np.floor(lids.min(0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(lids.max(0)).astype(int) + 2, img.shape[1::-1])
    if lids[:, 1].max() - lids[:, 1].min() > 1 and x1 > x0 and y1 > y0:
        offset = np.array([x0, y0])
        roi = img[y0:y1, x0:x1]
        mask = np.zeros(roi.shape[:2], np.uint8)
        fill(mask, lids - offset, 255)
        layer = np.empty_like(roi)
        layer[:] = sclera
        disc(layer, iris - offset, radius, iris_color)
        disc(layer, iris - offset, radius * 0.45, (12, 10, 10))
        disc(layer, iris - offset - radius * 0.3, radius * 0.2, (250, 250, 250))
        cv2.copyTo(layer, mask, roi)
    outline(img, lids, lid, 1)
    outline(img, lids[:4], lid, lid_width, closed=False)


def _draw_features(
    img: np.ndarray,
    rng: np.random.Generator,
    cam: Camera,
    lm: np.ndarray,
    face: Identity,
    expression: Expression,
    skin: Color,
    hair: Color,
) -> None:
    """Brows, eyes, nose, lips (and sometimes glasses) on the 68 projected landmarks."""
    s = cam.scale
    brow = mix(hair, (30, 25, 20), 0.3)
    for part in (lm[17:22], lm[22:27]):
        outline(img, part, brow, round(face.brow_thick * s), closed=False)
    iris = jitter_color(
        rng, ((90, 60, 30), (60, 40, 25), (70, 110, 150), (80, 110, 70))[rng.integers(4)], 10
    )
    colors = (iris, jitter_color(rng, (235, 230, 222), 6), mix(hair, (20, 15, 15), 0.6))
    gaze = rng.normal(0, 0.03, 2)
    for sign, part in ((-1, lm[36:42]), (1, lm[42:48])):
        x = sign * face.eye_x + gaze[0]
        center = cam([x, face.eye_y + gaze[1], _surface_z(np.array(x), face.width) - 0.02])[0]
        _draw_eye(img, part, center, 0.22 * face.eye_w * s, colors, max(1, round(0.03 * s)))
    _draw_nose(img, lm, s, skin)
    _draw_mouth(img, rng, cam, lm, expression, skin)
    if rng.random() < 0.12:
        _draw_glasses(img, rng, cam, face)


def _draw_nose(img: np.ndarray, lm: np.ndarray, s: float, skin: Color) -> None:
    hull = cv2.convexHull(lm[27:36].astype(np.float32))[:, 0]
    fill(img, hull, scaled(skin, 0.97))
    outline(img, lm[27:31], mix(skin, (255, 255, 255), 0.25), round(0.025 * s), closed=False)
    disc(img, lm[30], 0.045 * s, mix(skin, (255, 255, 255), 0.2))
    outline(img, lm[31:36], scaled(skin, 0.55), round(0.018 * s), closed=False)
    for a, b in ((31, 32), (34, 35)):
        center = (lm[a] + lm[b]) / 2 + (lm[30] - lm[33]) * 0.25
        size = max(np.linalg.norm(lm[a] - lm[b]) * 0.45, 0.5)
        angle = np.degrees(np.arctan2(*(lm[b] - lm[a])[::-1]))
        ellipse(img, center, (size, size * 0.5), angle, scaled(skin, 0.3))


def _draw_mouth(
    img: np.ndarray,
    rng: np.random.Generator,
    cam: Camera,
    lm: np.ndarray,
    expression: Expression,
    skin: Color,
) -> None:
    lip = mix(skin, jitter_color(rng, (175, 60, 70), 15), rng.uniform(0.3, 0.6))
    gap = np.linalg.norm(lm[66] - lm[62])
    if gap > 1:
        fill(img, lm[60:68], (45, 15, 20))
        if expression.teeth:
            down = cam.rotation[:2, 1] / np.linalg.norm(cam.rotation[:2, 1])
            upper = lm[60:65]
            fill(img, np.concatenate([upper, upper[::-1] + down * gap * 0.45]), (232, 228, 212))
    fill(img, lm[[48, 49, 50, 51, 52, 53, 54, 64, 63, 62, 61, 60]], scaled(lip, 0.88))
    fill(img, lm[[54, 55, 56, 57, 58, 59, 48, 60, 67, 66, 65, 64]], lip)
    if gap <= 1:
        outline(img, lm[[48, 60, 61, 62, 63, 64, 54]], scaled(lip, 0.5), 1, closed=False)


def _draw_glasses(img: np.ndarray, rng: np.random.Generator, cam: Camera, face: Identity) -> None:
    frame = tuple(int(v) for v in rng.integers(0, 90, 3))
    thickness = max(1, round(0.025 * cam.scale))
    inner_ends = []
    for sign in (-1, 1):
        x = sign * face.eye_x
        z = float(_surface_z(np.array(x), face.width)) + 0.1
        ends = cam([[x - 0.3, face.eye_y + 0.02, z], [x + 0.3, face.eye_y + 0.02, z]])
        center = ends.mean(0)
        half = np.linalg.norm(ends[1] - ends[0]) / 2
        ellipse(img, center, (half, 0.2 * cam.scale), _axis_angle(cam), frame, thickness)
        inner_ends.append(ends[1 if sign < 0 else 0])
    outline(img, np.array(inner_ends), frame, thickness, closed=False)


def _occlude(img: np.ndarray, rng: np.random.Generator, lm: np.ndarray, s: float) -> None:
    """Cover part of the face; 300-W still annotates every point, so the .pts is unchanged."""
    region = (lm[48:68], lm[36:42], lm[42:48], lm[27:36], lm[0:6], lm[11:17], lm[5:12])[
        rng.integers(7)
    ]
    center = region.mean(0) + rng.normal(0, 0.1 * s, 2)
    draw_occluder(img, rng, center, rng.uniform(0.5, 1.1) * s)


def _render(
    rng: np.random.Generator, site: FaceSite, size: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One face: image (RGB), 68 landmarks (0-based pixels) and its attributes."""
    face = _identity(rng)
    expression = _expression(rng, site)
    yaw = float(np.clip(rng.normal(0, site.yaw_std), -site.yaw_limit, site.yaw_limit))
    pitch = float(np.clip(rng.normal(0, 8), -20, 20))
    roll = float(np.clip(rng.normal(0, site.roll_std), -30, 30))
    contour = _silhouette(_contour(face, expression), yaw)
    landmarks3d = np.concatenate([contour[:17], _features(face, expression)[17:]])
    cam = _place(rng, _rotation(yaw, pitch, roll), landmarks3d, size)
    landmarks = cam(landmarks3d)
    img = draw_background(rng, size, site.style.background)
    skin, hair = skin_color(rng), hair_color(rng)
    clutter = int(rng.integers(site.style.clutter[0], site.style.clutter[1] + 1))
    draw_clutter(img, rng, clutter, (skin_color(rng), hair))
    _draw_head(img, rng, cam, face, contour, yaw, skin, hair)
    _draw_features(img, rng, cam, landmarks, face, expression, skin, hair)
    occluded = bool(rng.random() < site.occlusion)
    if occluded:
        _occlude(img, rng, landmarks, cam.scale)
    img = apply_camera(img, rng, site.style)
    attributes = {
        "yaw": round(yaw, 2),
        "pitch": round(pitch, 2),
        "roll": round(roll, 2),
        "yaw_bucket": int(np.clip((yaw + 90) // 36, 0, 4)),
        "expression": expression.name,
        "occluded": occluded,
        "style": site.style.name,
    }
    return img, np.clip(landmarks, 0, size - 1), attributes


# -- the dataset -------------------------------------------------------------------------------


def _split_counts(num: int) -> tuple[int, int, int]:
    """About 80 % train, 16 % common, 4 % challenging; none empty from 20 faces on (train and
    common from 4)."""
    challenging = round(0.04 * num)
    common = round(0.16 * num)
    if num >= 20:
        challenging = max(challenging, 1)
    if num >= 4:
        common = max(common, 1)
    return num - common - challenging, common, challenging


def _subsets(seed: int, num: int) -> list[str]:
    """The subset folder of every face, with exact per-subset counts."""
    train, common, challenging = _split_counts(num)
    groups = (CHALLENGING_SUBSETS, challenging), (COMMON_SUBSETS, common), (TRAIN_SUBSETS, train)
    names, counts = [], []
    for subsets, total in groups:
        names += [name for name, _ in subsets]
        counts += allocate(total, [weight for _, weight in subsets], minimum=1)
    labels = assign_by_rank(rank_uniforms(seed, FACE_TAG, num), counts)
    return [names[label] for label in labels]


def synthesize_faces(
    out: str | Path,
    num: int,
    seed: int = 0,
    image_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Write `num` synthetic faces as a 300-W tree under `out`; face i depends only on
    (seed, i) and its subset. Existing files of the same names are overwritten."""
    check_request(num, seed, image_size)
    single_threaded_opencv()
    start = time.perf_counter()
    root = Path(out)
    subsets = _subsets(seed, num)
    written: dict[str, list[str]] = {
        name: [] for name, _ in TRAIN_SUBSETS + COMMON_SUBSETS + CHALLENGING_SUBSETS
    }
    for name in set(subsets):
        (root / name).mkdir(parents=True, exist_ok=True)
    attributes: dict[str, dict[str, Any]] = {}
    for i, subset in enumerate(subsets):
        site = subset.split("/")[0]
        image, landmarks, extra = _render(sample_rng(seed, FACE_TAG, i), SITES[site], image_size)
        stem = f"face_{i:06d}"
        (root / subset / f"{stem}.jpg").write_bytes(
            encode_jpeg(image, SITES[site].style.jpeg_quality)
        )
        write_pts(root / subset / f"{stem}.pts", landmarks)
        written[subset] += [f"{stem}.jpg", f"{stem}.pts"]
        attributes[f"{subset}/{stem}.jpg"] = {"site": site, **extra}
        report_progress(progress, i + 1, num)
    for subset, names in written.items():
        remove_stale(root / subset, STALE_FILES, names)
    (root / ATTRIBUTES_FILE).write_text(json.dumps(attributes, indent=1) + "\n")
    train, common, challenging = _split_counts(num)
    return SynthSummary(
        task="face",
        root=root,
        count=num,
        seconds=time.perf_counter() - start,
        per_split={"train": train, "common": common, "challenging": challenging},
        per_site={site: sum(s.split("/")[0] == site for s in subsets) for site in SITES},
    )
