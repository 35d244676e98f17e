"""Synthetic people written as MPII's per-person JSON list (`mpii_annotations.json`).

A 3D stick-and-volume figure (torso box, capsule limbs, ellipse head) takes a pose from one of
nine activity clusters, is turned (facing the camera, away from it or sideways), projected
orthographically and drawn far to near, so limbs occlude each other. The same parts are drawn
into a label image: a joint is visible (vis 1) unless a part other than its own, or an object
in front, covers its pixel. Left and right can be told apart: a face and a chest logo show
when the figure faces the camera, only hair when it faces away, a nose in profile.
Person frame: x = the person's left, y down, z = the person's front. Camera frame: x right,
y down, z towards the camera; a figure at yaw 0 faces the camera, so its right side is on the
image's left, as MPII annotates "right".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fedland.data.synth.camera import CameraStyle, apply_camera, encode_jpeg
from fedland.data.synth.drawing import Color, blend_polygon, disc, ellipse, fill, outline, segment
from fedland.data.synth.output import (
    SynthSummary,
    check_request,
    remove_stale,
    report_progress,
    single_threaded_opencv,
)
from fedland.data.synth.sampling import (
    assign_by_rank,
    hair_color,
    mix,
    random_color,
    rank_uniforms,
    sample_rng,
    scaled,
    skin_color,
)
from fedland.data.synth.scenery import draw_background, draw_clutter, draw_occluder

POSE_TAG = 2
ANNOTATIONS_FILE = "mpii_annotations.json"
VALIDATION_SHARE = 0.15
STALE_FILES = r"pose_\d{6}\.jpg"
ACTIVITIES = (
    "standing",
    "walking",
    "running",
    "sitting",
    "arms_raised",
    "bending",
    "kicking",
    "lying",
    "squatting",
)
RIGHT, LEFT = -1.0, 1.0  # sign of the person-frame x axis on each side


@dataclass(frozen=True)
class PoseSite:
    """How one site differs: camera, mixture of activities, objects in front, its share."""

    style: CameraStyle
    activities: tuple[float, ...]  # weights of ACTIVITIES
    occlusion: float  # probability of an object in front of the person
    share: float  # fraction of all images


SITES = {
    "gym": PoseSite(
        CameraStyle(
            name="fluorescent-indoor", background="indoor", cast=(0.95, 1.05, 0.95),
            contrast=1.0, brightness=5, gamma=1.0, blur=(0.3, 0.8), motion_blur=0.1, noise=3,
            jpeg_quality=90, clutter=(3, 8),
        ),
        activities=(0.05, 0.05, 0.15, 0.05, 0.2, 0.15, 0.15, 0.1, 0.1),
        occlusion=0.1, share=0.25,
    ),
    "street": PoseSite(
        CameraStyle(
            name="overcast-street", background="outdoor", cast=(0.97, 1.0, 1.04),
            contrast=0.85, brightness=0, gamma=1.0, blur=(0.4, 1.0), motion_blur=0.15, noise=4,
            jpeg_quality=85, clutter=(5, 12),
        ),
        activities=(0.3, 0.35, 0.1, 0.1, 0.04, 0.05, 0.02, 0.01, 0.03),
        occlusion=0.2, share=0.3,
    ),
    "park": PoseSite(
        CameraStyle(
            name="sunny-outdoor", background="outdoor", cast=(1.08, 1.02, 0.88), contrast=1.15,
            brightness=8, gamma=1.0, blur=(0.2, 0.7), motion_blur=0.05, noise=2,
            jpeg_quality=90, clutter=(2, 7),
        ),
        activities=(0.1, 0.2, 0.25, 0.12, 0.05, 0.05, 0.08, 0.1, 0.05),
        occlusion=0.15, share=0.25,
    ),
    "studio": PoseSite(
        CameraStyle(
            name="studio-clean", background="studio", cast=(1.0, 1.0, 1.0), contrast=1.0,
            brightness=0, gamma=1.0, blur=(0.0, 0.4), motion_blur=0.0, noise=1.5,
            jpeg_quality=95, clutter=(0, 3),
        ),
        activities=(0.25, 0.05, 0.05, 0.2, 0.2, 0.05, 0.1, 0.05, 0.05),
        occlusion=0.05, share=0.2,
    ),
}  # fmt: skip
SITE_NAMES = tuple(SITES)


# -- the figure --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    """Segment lengths and half thicknesses in units of a typical standing height."""

    head: float  # upper neck -> head top
    neck: float  # thorax -> upper neck
    torso: float  # pelvis -> thorax
    shoulder: float  # half width
    hip: float  # half width
    upper_arm: float
    forearm: float
    thigh: float
    shin: float
    arm_w: float
    forearm_w: float
    thigh_w: float
    shin_w: float
    torso_depth: float

    @property
    def height(self) -> float:
        return self.head + self.neck + self.torso + self.thigh + self.shin + 0.06


def _body(rng: np.random.Generator) -> Body:
    u = rng.uniform
    return Body(
        head=u(0.12, 0.14),
        neck=u(0.04, 0.06),
        torso=u(0.27, 0.31),
        shoulder=u(0.1, 0.13),
        hip=u(0.07, 0.09),
        upper_arm=u(0.15, 0.18),
        forearm=u(0.14, 0.16),
        thigh=u(0.23, 0.26),
        shin=u(0.23, 0.26),
        arm_w=u(0.022, 0.03),
        forearm_w=u(0.018, 0.025),
        thigh_w=u(0.032, 0.042),
        shin_w=u(0.024, 0.032),
        torso_depth=u(0.06, 0.09),
    )


Limb = tuple[float, float, float, float]


@dataclass
class Pose:
    """Joint angles in degrees. A limb is (flex, abduction) of its upper then lower segment:
    flex turns a segment from hanging down towards the front, abduction towards the side."""

    r_arm: Limb
    l_arm: Limb
    r_leg: Limb
    l_leg: Limb
    bend: float  # torso forwards
    lean: float  # torso towards the person's left
    head_tilt: float
    head_turn: float
    roll: float = 0.0  # the whole figure in the image plane
    seated: bool = False


def _arm_down(rng: np.random.Generator) -> Limb:
    flex, abd = rng.normal(0, 10), rng.uniform(5, 20)
    return flex, abd, flex + rng.uniform(0, 30), abd + rng.normal(0, 5)


def _leg_straight(rng: np.random.Generator) -> Limb:
    flex, abd = rng.normal(0, 5), rng.uniform(0, 8)
    return flex, abd, flex - rng.uniform(0, 8), abd


def _pose(rng: np.random.Generator, activity: str) -> Pose:
    """Joint angles of one activity cluster, with per-sample variation."""
    u, n = rng.uniform, rng.normal
    pose = Pose(
        r_arm=_arm_down(rng), l_arm=_arm_down(rng), r_leg=_leg_straight(rng),
        l_leg=_leg_straight(rng), bend=n(0, 4), lean=n(0, 3), head_tilt=n(0, 8),
        head_turn=n(0, 15), roll=n(0, 3),
    )  # fmt: skip
    lead = bool(rng.random() < 0.5)  # which leg is in front
    if activity == "walking":
        swing = u(15, 30)
        front = (swing, u(0, 5), swing - u(0, 10), 0.0)
        back = (-swing, u(0, 5), -swing - u(10, 40), 0.0)
        arm_front, arm_back = u(10, 30), -u(10, 30)
        arms = (
            (arm_front, u(5, 12), arm_front + u(10, 40), 8.0),
            (arm_back, u(5, 12), arm_back + u(10, 30), 8.0),
        )
        pose.r_leg, pose.l_leg = (front, back) if lead else (back, front)
        pose.l_arm, pose.r_arm = arms if lead else arms[::-1]
        pose.bend = u(0, 8)
    elif activity == "running":
        thigh_f, thigh_b = u(40, 70), -u(15, 35)
        front = (thigh_f, u(0, 8), thigh_f - u(30, 70), 0.0)
        back = (thigh_b, u(0, 8), thigh_b - u(60, 100), 0.0)
        arm_f, arm_b = u(30, 60), -u(25, 50)
        arms = (
            (arm_f, u(5, 15), arm_f + u(70, 100), 10.0),
            (arm_b, u(5, 15), arm_b + u(70, 100), 10.0),
        )
        pose.r_leg, pose.l_leg = (front, back) if lead else (back, front)
        pose.l_arm, pose.r_arm = arms if lead else arms[::-1]
        pose.bend = u(8, 20)
    elif activity == "sitting":
        for side in ("r", "l"):
            thigh = u(75, 100)
            setattr(pose, f"{side}_leg", (thigh, u(0, 20), u(-10, 25), u(0, 10)))
            arm = u(10, 40)
            setattr(pose, f"{side}_arm", (arm, u(5, 20), arm + u(40, 80), u(0, 15)))
        pose.bend, pose.seated = n(0, 8), True
    elif activity == "arms_raised":
        variant = int(rng.integers(3))
        for side in ("r", "l"):
            abd = (u(140, 175), u(80, 100), u(120, 170))[variant]
            arm = (n(0, 15), abd, n(0, 15), abd + n(0, 15))
            if variant == 2 and (side == "r") == lead:
                arm = _arm_down(rng)
            setattr(pose, f"{side}_arm", arm)
            setattr(pose, f"{side}_leg", (n(0, 5), u(0, 15), n(0, 5), u(0, 15)))
    elif activity == "bending":
        pose.bend = u(45, 95)
        pose.head_tilt = -u(0, 30)
        for side in ("r", "l"):
            arm = pose.bend + n(0, 15)
            setattr(pose, f"{side}_arm", (arm, u(0, 15), arm + u(0, 40), u(0, 15)))
    elif activity == "kicking":
        thigh = u(50, 100)
        kick = (thigh, u(0, 15), thigh - u(0, 60), u(0, 10))
        if lead:
            pose.r_leg = kick
        else:
            pose.l_leg = kick
        for side in ("r", "l"):
            arm = n(0, 20)
            setattr(pose, f"{side}_arm", (arm, u(30, 80), arm + u(0, 40), u(30, 80)))
        pose.bend = -u(0, 15)
    elif activity == "lying":
        for side in ("r", "l"):
            arm = n(0, 20)
            setattr(pose, f"{side}_arm", (arm, u(0, 45), arm + u(0, 60), u(0, 45)))
            thigh = u(0, 40)
            setattr(pose, f"{side}_leg", (thigh, u(0, 15), thigh - u(0, 50), u(0, 10)))
        pose.roll = rng.choice((-1, 1)) * u(75, 105)
    elif activity == "squatting":
        for side in ("r", "l"):
            setattr(pose, f"{side}_leg", (u(90, 125), u(5, 25), -u(5, 35), u(0, 15)))
            arm = u(40, 90)
            setattr(pose, f"{side}_arm", (arm, u(0, 20), arm + u(0, 40), u(0, 20)))
        pose.bend = u(15, 45)
    return pose


def _rot_x(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _direction(flex: float, abd: float, side: float) -> np.ndarray:
    f, a = np.radians(flex), np.radians(abd)
    return np.array([side * np.sin(a), np.cos(a) * np.cos(f), np.cos(a) * np.sin(f)])


@dataclass
class Skeleton:
    """The 16 MPII joints in the person frame and the frames of the torso and head."""

    joints: np.ndarray  # [16, 3]
    torso: np.ndarray  # rotation of torso-frame vectors
    head: np.ndarray  # rotation of head-frame vectors


def _skeleton(body: Body, pose: Pose) -> Skeleton:
    joints = np.zeros((16, 3))
    torso = _rot_x(-pose.bend) @ _rot_z(pose.lean)
    head = torso @ _rot_x(-pose.head_tilt) @ _rot_y(pose.head_turn)
    joints[2], joints[3] = (RIGHT * body.hip, 0.03, 0), (LEFT * body.hip, 0.03, 0)
    joints[7] = torso @ (0, -body.torso, 0)
    joints[12] = joints[7] + torso @ (RIGHT * body.shoulder, 0.02, 0)
    joints[13] = joints[7] + torso @ (LEFT * body.shoulder, 0.02, 0)
    joints[8] = joints[7] + head @ (0, -body.neck, 0)
    joints[9] = joints[8] + head @ (0, -body.head, 0)
    limbs = (
        (RIGHT, pose.r_arm, (12, 11, 10), torso, (body.upper_arm, body.forearm)),
        (LEFT, pose.l_arm, (13, 14, 15), torso, (body.upper_arm, body.forearm)),
        (RIGHT, pose.r_leg, (2, 1, 0), np.eye(3), (body.thigh, body.shin)),
        (LEFT, pose.l_leg, (3, 4, 5), np.eye(3), (body.thigh, body.shin)),
    )
    for side, (f1, a1, f2, a2), (root, middle, end), frame, (upper, lower) in limbs:
        joints[middle] = joints[root] + frame @ _direction(f1, a1, side) * upper
        joints[end] = joints[middle] + frame @ _direction(f2, a2, side) * lower
    return Skeleton(joints, torso, head)


# -- drawing -----------------------------------------------------------------------------------

# Parts in label order (label = index + 1) and the parts each joint belongs to.
PARTS = (
    "torso", "neck", "head", "r_upper_arm", "r_forearm", "l_upper_arm", "l_forearm",
    "r_thigh", "r_shin", "l_thigh", "l_shin",
)  # fmt: skip
OWNERS = (  # per MPII joint, in MPII order
    ("r_shin",), ("r_thigh", "r_shin"), ("r_thigh", "torso"), ("l_thigh", "torso"),
    ("l_thigh", "l_shin"), ("l_shin",), ("torso",), ("torso", "neck"), ("neck", "head"),
    ("head",), ("r_forearm",), ("r_upper_arm", "r_forearm"), ("r_upper_arm", "torso"),
    ("l_upper_arm", "torso"), ("l_upper_arm", "l_forearm"), ("l_forearm",),
)  # fmt: skip
OWNER_LABELS = tuple(frozenset(PARTS.index(p) + 1 for p in owners) for owners in OWNERS)
OCCLUDER_LABEL = 255


@dataclass
class Outfit:
    skin: Color
    hair: Color
    shirt: Color
    sleeve: Color  # forearms: the shirt (long sleeves) or skin
    trousers: Color
    shin: Color  # trousers or skin (shorts)
    shoes: Color
    logo: Color


def _outfit(rng: np.random.Generator) -> Outfit:
    skin, shirt = skin_color(rng), random_color(rng, 20, 236)
    trousers = random_color(rng, 10, 200)
    return Outfit(
        skin=skin,
        hair=hair_color(rng),
        shirt=shirt,
        sleeve=scaled(shirt, 0.88) if rng.random() < 0.5 else skin,
        trousers=trousers,
        shin=scaled(trousers, 0.88) if rng.random() < 0.7 else skin,
        shoes=tuple(int(v) for v in rng.integers(0, 80, 3)),
        logo=mix(shirt, random_color(rng), 0.8),
    )


@dataclass
class Figure:
    """A posed, projected figure: everything needed to draw it and annotate it."""

    body: Body
    pose: Pose
    skeleton: Skeleton
    rotation: np.ndarray  # person frame -> camera frame
    scale: float  # pixels per unit
    offset: np.ndarray  # [2]

    def project(self, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        return points @ self.rotation[:2].T * self.scale + self.offset

    @cached_property
    def joints2d(self) -> np.ndarray:
        return self.project(self.skeleton.joints)

    def facing(self, frame: np.ndarray) -> np.ndarray:
        """Camera-frame direction of the front (+z) of a body-frame."""
        return self.rotation @ frame @ np.array([0.0, 0.0, 1.0])


def _head_ellipse(fig: Figure) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Centre, unit axis towards the head top, half length and half width of the head."""
    p8, p9 = fig.joints2d[8], fig.joints2d[9]
    length = np.linalg.norm(p9 - p8)
    axis = (p9 - p8) / length if length > 1e-6 else np.array([0.0, -1.0])
    size = fig.body.head * fig.scale
    return (p8 + p9) / 2, axis, max(length / 2, 0.35 * size), 0.38 * size


def head_box(fig: Figure) -> np.ndarray:
    """Tight box [x1, y1, x2, y2] of the drawn head ellipse."""
    center, axis, a, b = _head_ellipse(fig)
    across = np.array([-axis[1], axis[0]])
    half = np.hypot(a * axis, b * across)
    return np.concatenate([center - half, center + half])


def _draw_head(canvas: np.ndarray, fig: Figure, outfit: Outfit, label: int | None) -> None:
    center, axis, a, b = _head_ellipse(fig)
    angle = float(np.degrees(np.arctan2(axis[1], axis[0])))
    if label is not None:
        ellipse(canvas, center, (a, b), angle, label)
        return
    ellipse(canvas, center, (a, b), angle, outfit.hair)
    across = np.array([-axis[1], axis[0]])
    front = fig.facing(fig.skeleton.head)
    side, toward = float(front[0]), float(front[2])
    if toward < -0.2:
        return
    face_center = center - axis * 0.12 * a + across * 0.35 * b * side
    width = 0.85 * b * (0.55 + 0.45 * max(toward, 0.0))
    ellipse(canvas, face_center, (0.8 * a, width), angle, outfit.skin)
    if abs(side) > 0.6:
        disc(
            canvas,
            center + across * 0.85 * b * np.sign(side) - axis * 0.1 * a,
            0.15 * b,
            outfit.skin,
        )
    if toward > 0.25:
        eye_center = center + axis * 0.05 * a + across * 0.55 * b * side
        for k in (-1, 1):
            disc(
                canvas,
                eye_center + across * k * 0.33 * b * toward,
                max(0.09 * b, 0.6),
                (25, 20, 20),
            )
    if toward > 0.3:
        mouth = center - axis * 0.45 * a + across * 0.55 * b * side
        half = across * 0.17 * b * toward
        segment(canvas, mouth - half, mouth + half, scaled(outfit.skin, 0.55), max(0.08 * b, 1))


def _capsule(canvas, a, b, width, color, label, edge: Color) -> None:
    """A limb segment with a darker rim; the rim makes bent and crossing joints visible."""
    if label is not None:
        segment(canvas, a, b, label, width + 2)
    else:
        segment(canvas, a, b, edge, width + 2)
        segment(canvas, a, b, color, width)


def _draw_part(
    canvas: np.ndarray, name: str, fig: Figure, outfit: Outfit, label: int | None
) -> None:
    """Draw one part, in colour (label None) or as its label into a label image."""
    j, s, body = fig.joints2d, fig.scale, fig.body
    if name == "head":
        _draw_head(canvas, fig, outfit, label)
        return
    if name == "torso":
        _draw_torso(canvas, fig, outfit, label)
        return
    if name == "neck":
        _capsule(canvas, j[7], j[8], 0.045 * s, outfit.skin, label, scaled(outfit.skin, 0.7))
        return
    side, segment_name = name.split("_", 1)
    limb = {
        "upper_arm": ((12, 11), (13, 14), body.arm_w, outfit.shirt),
        "forearm": ((11, 10), (14, 15), body.forearm_w, outfit.sleeve),
        "thigh": ((2, 1), (3, 4), body.thigh_w, outfit.trousers),
        "shin": ((1, 0), (4, 5), body.shin_w, outfit.shin),
    }[segment_name]
    start, end = limb[0] if side == "r" else limb[1]
    width, color = 2 * limb[2] * s, limb[3]
    edge = scaled(color, 0.6)
    _capsule(canvas, j[start], j[end], width, color, label, edge)
    if segment_name == "forearm":
        direction = (j[end] - j[start]) / max(np.linalg.norm(j[end] - j[start]), 1e-6)
        hand = j[end] + direction * 0.025 * s
        disc(canvas, hand, 0.03 * s, outfit.skin if label is None else label)
    elif segment_name == "shin":
        toe = j[end] + fig.project(np.array([0.0, 0.03, 0.09]))[0] - fig.offset
        _capsule(canvas, j[end], toe, 0.05 * s, outfit.shoes, label, (10, 10, 10))


def _draw_torso(canvas: np.ndarray, fig: Figure, outfit: Outfit, label: int | None) -> None:
    """Shirt (a box from the shoulders to the hips), trousers over the pelvis, chest logo."""
    skel, body = fig.skeleton, fig.body
    j3 = skel.joints
    chest_depth = skel.torso @ np.array([0, 0, body.torso_depth])
    hip_depth = np.array([0, 0, body.torso_depth])
    widen = skel.torso @ np.array([body.arm_w, 0, 0])
    shoulders = [j3[12] - widen, j3[13] + widen]
    hips = [j3[6] + (j3[k] - j3[6]) * 1.35 + (0, 0.02, 0) for k in (2, 3)]
    corners = [p + sign * chest_depth for p in shoulders for sign in (-1, 1)]
    corners += [p + sign * hip_depth for p in hips for sign in (-1, 1)]
    shirt = cv2.convexHull(fig.project(np.array(corners)).astype(np.float32))[:, 0]
    waist = [
        j3[6] + (p - j3[6]) * 1.35 + (0, dy, 0) + sign * hip_depth
        for p in (j3[2], j3[3])
        for dy in (-0.05, 0.06)
        for sign in (-1, 1)
    ]
    pelvis = cv2.convexHull(fig.project(np.array(waist)).astype(np.float32))[:, 0]
    if label is not None:
        fill(canvas, shirt, label)
        fill(canvas, pelvis, label)
        return
    fill(canvas, shirt, outfit.shirt)
    outline(canvas, shirt, scaled(outfit.shirt, 0.6), 1)
    fill(canvas, pelvis, scaled(outfit.trousers, 0.9))
    outline(canvas, pelvis, scaled(outfit.trousers, 0.6), 1)
    belt = fig.project([j3[6] + (j3[k] - j3[6]) * 1.35 + (0, -0.04, 0) for k in (2, 3)])
    segment(canvas, belt[0], belt[1], scaled(outfit.trousers, 0.45), 0.02 * fig.scale)
    if fig.facing(skel.torso)[2] > 0.3:
        chest = j3[7] + skel.torso @ np.array([0, 0.3 * body.torso, body.torso_depth])
        disc(canvas, fig.project(chest)[0], 0.03 * fig.scale, outfit.logo)


def _draw_seat(img: np.ndarray, rng: np.random.Generator, fig: Figure) -> None:
    j = fig.joints2d
    x0, x1 = j[[1, 2, 3, 4, 6]][:, 0].min(), j[[1, 2, 3, 4, 6]][:, 0].max()
    pad = 0.06 * fig.scale
    y0, y1 = j[6, 1] + 0.03 * fig.scale, max(j[0, 1], j[5, 1])
    box = np.array([[x0 - pad, y0], [x1 + pad, y0], [x1 + pad, y1], [x0 - pad, y1]])
    fill(img, box, random_color(rng, 30, 180))


def _draw_shadow(img: np.ndarray, fig: Figure) -> None:
    if abs(fig.pose.roll) > 45:
        return
    feet = fig.joints2d[[0, 5]].mean(0) + np.array([0, 0.02 * fig.scale])
    axes = (round(0.22 * fig.scale), max(round(0.04 * fig.scale), 1))
    poly = cv2.ellipse2Poly((round(feet[0]), round(feet[1])), axes, 0, 0, 360, 20)
    blend_polygon(img, poly.astype(np.float64), (20, 20, 20), 0.35)


# -- one image ---------------------------------------------------------------------------------


def _yaw(rng: np.random.Generator, activity: str) -> float:
    """Facing the camera, away from it, or sideways (more often for walking and running)."""
    profile = 0.25 if activity in ("walking", "running") else 0.1
    draw = rng.random()
    if draw < profile:
        return float(rng.choice((-90.0, 90.0)) + rng.normal(0, 15))
    if draw < profile + 0.12:
        return float(180 + rng.normal(0, 25))
    return float(rng.normal(0, 25))


def _place(
    rng: np.random.Generator,
    body: Body,
    pose: Pose,
    skeleton: Skeleton,
    rotation: np.ndarray,
    size: int,
) -> Figure:
    """Scale to a standing height of 45-85 % of the image; usually wholly inside the image,
    sometimes cut by the border (joints outside become missing)."""
    scale = rng.uniform(0.45, 0.85) * size / body.height
    fig = Figure(body, pose, skeleton, rotation, scale, np.zeros(2))
    points = fig.joints2d
    box = head_box(fig)
    pad = 0.06 * scale
    low = np.minimum(points.min(0), box[:2]) - pad
    high = np.maximum(points.max(0), box[2:]) + pad
    extent = high - low
    cut = 0.0 if rng.random() < 0.85 else 0.3
    start = -low - cut * extent
    stop = size - 1 - high + cut * extent
    offset = np.where(
        stop >= start, rng.uniform(start, np.maximum(start, stop)), (start + stop) / 2
    )
    return replace(fig, offset=offset)


def _render(
    rng: np.random.Generator, site: PoseSite, size: int
) -> tuple[np.ndarray, Figure, np.ndarray, str]:
    """One person: image (RGB), the figure, visibility flags [16] and the activity."""
    activity = ACTIVITIES[rng.choice(len(ACTIVITIES), p=np.asarray(site.activities))]
    body, pose = _body(rng), _pose(rng, activity)
    skeleton = _skeleton(body, pose)
    rotation = _rot_z(pose.roll) @ _rot_y(_yaw(rng, activity))
    fig = _place(rng, body, pose, skeleton, rotation, size)
    outfit = _outfit(rng)
    img = draw_background(rng, size, site.style.background)
    clutter = int(rng.integers(site.style.clutter[0], site.style.clutter[1] + 1))
    draw_clutter(img, rng, clutter, (skin_color(rng), outfit.shirt, outfit.trousers))
    _draw_shadow(img, fig)
    if pose.seated:
        _draw_seat(img, rng, fig)
    labels = np.zeros((size, size), np.uint8)
    for name in _depth_order(fig):
        _draw_part(img, name, fig, outfit, None)
        _draw_part(labels, name, fig, outfit, PARTS.index(name) + 1)
    if rng.random() < site.occlusion:
        joints = fig.joints2d
        center = joints[rng.integers(16)] + rng.normal(0, 0.05 * fig.scale, 2)
        draw_occluder(img, rng, center, rng.uniform(0.2, 0.4) * fig.scale, labels, OCCLUDER_LABEL)
    img = apply_camera(img, rng, site.style)
    return img, fig, _visibility(fig.joints2d, labels), activity


# The two joints that place each of PARTS in depth.
PART_ENDS = (
    (6, 7), (7, 8), (8, 9), (12, 11), (11, 10), (13, 14), (14, 15), (2, 1), (1, 0), (3, 4),
    (4, 5),
)  # fmt: skip
DEPTH_BIAS = np.array([-0.02, -0.01] + [0.0] * 9)  # limbs win ties with the torso


def _depth_order(fig: Figure) -> list[str]:
    """Parts from far to near."""
    z = fig.skeleton.joints @ fig.rotation[2]
    depth = z[np.array(PART_ENDS)].mean(1) + DEPTH_BIAS
    return [PARTS[k] for k in np.argsort(depth, kind="stable")]


def _visibility(joints: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1 where a joint's pixel shows background or one of its own parts, else 0."""
    size = labels.shape[0]
    pixels = np.clip(np.round(joints).astype(int), 0, size - 1)
    found = labels[pixels[:, 1], pixels[:, 0]]
    return np.array(
        [int(found[k] == 0 or found[k] in OWNER_LABELS[k]) for k in range(16)], dtype=np.int64
    )


# -- the dataset -------------------------------------------------------------------------------


def _record(
    index: int,
    name: str,
    size: int,
    fig: Figure,
    visible: np.ndarray,
    validation: bool,
    site: str,
    activity: str,
) -> dict[str, Any]:
    """One person in the widely used MPII JSON layout; coordinates are 1-based."""
    joints = fig.joints2d
    inside = ((joints >= 0) & (joints <= size - 1)).all(1)
    joint_self = [
        [round(float(x) + 1, 2), round(float(y) + 1, 2), float(v)] if ok else [0.0, 0.0, 0.0]
        for (x, y), v, ok in zip(joints, visible, inside, strict=True)
    ]
    box = head_box(fig)
    low = np.minimum(joints.min(0), box[:2])
    high = np.maximum(joints.max(0), box[2:])
    height = fig.body.height * fig.scale
    center = (low + high) / 2 - (0, 15 * height / 200)  # the usual crop adds 15 * scale
    head = np.concatenate([np.floor((box[:2] + 1) * 100), np.ceil((box[2:] + 1) * 100)]) / 100
    return {
        "dataset": "MPI",
        "isValidation": 1.0 if validation else 0.0,
        "img_paths": name,
        "img_width": size,
        "img_height": size,
        "objpos": [round(float(center[0]) + 1, 2), round(float(center[1]) + 1, 2)],
        "joint_self": joint_self,
        "scale_provided": round(height / 200, 4),
        "joint_others": [],
        "annolist_index": index,
        "people_index": 0,
        "numOtherPeople": 0.0,
        "head_box": [float(v) for v in head],
        "attributes": {
            "activity": activity,
            "pose_cluster": ACTIVITIES.index(activity),
            "site": site,
            "style": SITES[site].style.name,
        },
    }


def synthesize_poses(
    out: str | Path,
    num: int,
    seed: int = 0,
    image_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Write `num` synthetic people (one per image) as an MPII JSON list under `out`;
    person i depends only on (seed, i). Existing files of the same names are overwritten."""
    check_request(num, seed, image_size)
    single_threaded_opencv()
    start = time.perf_counter()
    root = Path(out)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    validation = VALIDATION_SHARE * num
    split = assign_by_rank(
        rank_uniforms(seed, POSE_TAG, num), [num - round(validation), round(validation)]
    )
    shares = np.array([site.share for site in SITES.values()])
    records, names = [], []
    per_site = dict.fromkeys(SITES, 0)
    for i in range(num):
        rng = sample_rng(seed, POSE_TAG, i)
        site = SITE_NAMES[rng.choice(len(SITE_NAMES), p=shares)]
        image, fig, visible, activity = _render(rng, SITES[site], image_size)
        name = f"pose_{i:06d}.jpg"
        (images / name).write_bytes(encode_jpeg(image, SITES[site].style.jpeg_quality))
        records.append(_record(i, name, image_size, fig, visible, bool(split[i]), site, activity))
        names.append(name)
        per_site[site] += 1
        report_progress(progress, i + 1, num)
    remove_stale(images, STALE_FILES, names)
    (root / ANNOTATIONS_FILE).write_text(json.dumps(records) + "\n")
    val = int(split.sum())
    return SynthSummary(
        task="pose",
        root=root,
        count=num,
        seconds=time.perf_counter() - start,
        per_split={"train": num - val, "val": val},
        per_site=per_site,
    )
