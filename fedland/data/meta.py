"""Per-dataset metadata: landmark names, flip partners, skeleton, normaliser indices.

One record per dataset drives flipping, drawing and evaluation, so a flip table lives in
exactly one place (and is tested: symmetric and involutive).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class DatasetMeta:
    name: str
    task: str  # "pose" or "face"
    landmark_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    metric: str  # "pckh", "pck" or "nme"
    normaliser: tuple[int, int] = (0, 0)  # PCK: (left shoulder, right hip); NME: outer eyes
    eye_groups: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())  # NME inter-pupil
    excluded_from_mean: tuple[int, ...] = ()  # PCKh: pelvis and thorax
    joint_groups: dict[str, tuple[int, ...]] = field(default_factory=dict)
    failure_threshold: float = 0.08  # NME: AUC and failure rate up to this per-image NME
    nme_subsets: tuple[str, ...] = ()  # NME: 0/1 record attributes scored as their own subset
    oks_sigmas: tuple[float, ...] = ()  # COCO OKS: per-landmark sigmas; empty = no OKS AP

    @property
    def num_landmarks(self) -> int:
        return len(self.landmark_names)

    @property
    def flip_permutation(self) -> np.ndarray:
        """Index i of a flipped sample takes landmark perm[i] of the original."""
        perm = np.arange(self.num_landmarks)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


def _chain(start: int, stop: int, closed: bool = False) -> tuple[tuple[int, int], ...]:
    edges = tuple((i, i + 1) for i in range(start, stop))
    return (*edges, (stop, start)) if closed else edges


MPII = DatasetMeta(
    name="mpii",
    task="pose",
    landmark_names=(
        "r_ankle",
        "r_knee",
        "r_hip",
        "l_hip",
        "l_knee",
        "l_ankle",
        "pelvis",
        "thorax",
        "upper_neck",
        "head_top",
        "r_wrist",
        "r_elbow",
        "r_shoulder",
        "l_shoulder",
        "l_elbow",
        "l_wrist",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    skeleton=(
        (0, 1),
        (1, 2),
        (2, 6),
        (6, 3),
        (3, 4),
        (4, 5),
        (6, 7),
        (7, 8),
        (8, 9),
        (10, 11),
        (11, 12),
        (12, 7),
        (7, 13),
        (13, 14),
        (14, 15),
    ),
    metric="pckh",
    excluded_from_mean=(6, 7),
    joint_groups={
        "head": (8, 9),
        "shoulder": (12, 13),
        "elbow": (11, 14),
        "wrist": (10, 15),
        "hip": (2, 3),
        "knee": (1, 4),
        "ankle": (0, 5),
    },
)

LSP = DatasetMeta(
    name="lsp",
    task="pose",
    landmark_names=(
        "r_ankle",
        "r_knee",
        "r_hip",
        "l_hip",
        "l_knee",
        "l_ankle",
        "r_wrist",
        "r_elbow",
        "r_shoulder",
        "l_shoulder",
        "l_elbow",
        "l_wrist",
        "neck",
        "head_top",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)),
    skeleton=(
        (0, 1),
        (1, 2),
        (2, 3),
        (3, 4),
        (4, 5),
        (6, 7),
        (7, 8),
        (8, 12),
        (12, 9),
        (9, 10),
        (10, 11),
        (12, 13),
        (2, 8),
        (3, 9),
    ),
    metric="pck",
    normaliser=(9, 2),  # left shoulder, right hip
    joint_groups={
        "head": (12, 13),
        "shoulder": (8, 9),
        "elbow": (7, 10),
        "wrist": (6, 11),
        "hip": (2, 3),
        "knee": (1, 4),
        "ankle": (0, 5),
    },
)

FACE_300W = DatasetMeta(
    name="300w",
    task="face",
    landmark_names=tuple(
        [f"jaw_{i}" for i in range(17)]
        + [f"brow_r_{i}" for i in range(5)]
        + [f"brow_l_{i}" for i in range(5)]
        + [f"nose_{i}" for i in range(9)]
        + [f"eye_r_{i}" for i in range(6)]
        + [f"eye_l_{i}" for i in range(6)]
        + [f"mouth_{i}" for i in range(20)]
    ),
    flip_pairs=(
        *((i, 16 - i) for i in range(8)),
        *((17 + i, 26 - i) for i in range(5)),
        (31, 35),
        (32, 34),
        (36, 45),
        (37, 44),
        (38, 43),
        (39, 42),
        (40, 47),
        (41, 46),
        (48, 54),
        (49, 53),
        (50, 52),
        (55, 59),
        (56, 58),
        (60, 64),
        (61, 63),
        (65, 67),
    ),
    skeleton=(
        *_chain(0, 16),
        *_chain(17, 21),
        *_chain(22, 26),
        *_chain(27, 30),
        *_chain(31, 35),
        *_chain(36, 41, True),
        *_chain(42, 47, True),
        *_chain(48, 59, True),
        *_chain(60, 67, True),
    ),
    metric="nme",
    normaliser=(36, 45),
    eye_groups=(tuple(range(36, 42)), tuple(range(42, 48))),
)

WFLW = DatasetMeta(
    name="wflw",
    task="face",
    landmark_names=tuple(f"wflw_{i}" for i in range(98)),
    flip_pairs=(
        *((i, 32 - i) for i in range(16)),
        (33, 46),
        (34, 45),
        (35, 44),
        (36, 43),
        (37, 42),
        (38, 50),
        (39, 49),
        (40, 48),
        (41, 47),
        (55, 59),
        (56, 58),
        (60, 72),
        (61, 71),
        (62, 70),
        (63, 69),
        (64, 68),
        (65, 75),
        (66, 74),
        (67, 73),
        (76, 82),
        (77, 81),
        (78, 80),
        (83, 87),
        (84, 86),
        (88, 92),
        (89, 91),
        (93, 95),
        (96, 97),
    ),
    skeleton=(
        *_chain(0, 32),
        *_chain(33, 41, True),
        *_chain(42, 50, True),
        *_chain(51, 54),
        *_chain(55, 59),
        *_chain(60, 67, True),
        *_chain(68, 75, True),
        *_chain(76, 87, True),
        *_chain(88, 95, True),
    ),
    metric="nme",
    normaliser=(60, 72),
    eye_groups=(tuple(range(60, 68)), tuple(range(68, 76))),
    failure_threshold=0.10,
    nme_subsets=("pose", "expression", "illumination", "make_up", "occlusion", "blur"),
)

# COCO evaluation's per-keypoint OKS sigmas.
COCO_SIGMAS = (
    np.array(
        [
            0.26,
            0.25,
            0.25,
            0.35,
            0.35,
            0.79,
            0.79,
            0.72,
            0.72,
            0.62,
            0.62,
            1.07,
            1.07,
            0.87,
            0.87,
            0.89,
            0.89,
        ]
    )
    / 10.0
)

COCO = DatasetMeta(
    name="coco",
    task="pose",
    landmark_names=(
        "nose",
        "l_eye",
        "r_eye",
        "l_ear",
        "r_ear",
        "l_shoulder",
        "r_shoulder",
        "l_elbow",
        "r_elbow",
        "l_wrist",
        "r_wrist",
        "l_hip",
        "r_hip",
        "l_knee",
        "r_knee",
        "l_ankle",
        "r_ankle",
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    skeleton=(
        (15, 13),
        (13, 11),
        (16, 14),
        (14, 12),
        (11, 12),
        (5, 11),
        (6, 12),
        (5, 6),
        (5, 7),
        (6, 8),
        (7, 9),
        (8, 10),
        (1, 2),
        (0, 1),
        (0, 2),
        (1, 3),
        (2, 4),
        (3, 5),
        (4, 6),
    ),
    metric="pck",
    normaliser=(5, 12),  # left shoulder, right hip
    oks_sigmas=tuple(COCO_SIGMAS.tolist()),
)

DATASETS: dict[str, DatasetMeta] = {m.name: m for m in (MPII, LSP, FACE_300W, WFLW, COCO)}


def dataset_meta(name: str) -> DatasetMeta:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}"
        ) from None
