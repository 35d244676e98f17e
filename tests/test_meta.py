import numpy as np
import pytest

from fedland.data.meta import COCO, DATASETS, FACE_300W, LSP, MPII, WFLW, dataset_meta

# The 300-W flip permutation exactly as DATA.md gives it.
PERM_300W = [
    *range(16, -1, -1),
    *range(26, 16, -1),
    27,
    28,
    29,
    30,
    35,
    34,
    33,
    32,
    31,
    45,
    44,
    43,
    42,
    47,
    46,
    39,
    38,
    37,
    36,
    41,
    40,
    54,
    53,
    52,
    51,
    50,
    49,
    48,
    59,
    58,
    57,
    56,
    55,
    64,
    63,
    62,
    61,
    60,
    67,
    66,
    65,
]


# The WFLW flip permutation of the published WFLW flip pairs (HRNet facial landmarks).
PERM_WFLW = [
    *range(32, -1, -1),  # face contour 0-32
    *(46, 45, 44, 43, 42, 50, 49, 48, 47),  # brow 33-41 <- the other brow
    *(37, 36, 35, 34, 33, 41, 40, 39, 38),  # brow 42-50
    *(51, 52, 53, 54),  # nose bridge
    *(59, 58, 57, 56, 55),  # nose bottom 55-59
    *(72, 71, 70, 69, 68, 75, 74, 73),  # eye 60-67 <- the other eye
    *(64, 63, 62, 61, 60, 67, 66, 65),  # eye 68-75
    *(82, 81, 80, 79, 78, 77, 76),  # outer upper lip 76-82
    *(87, 86, 85, 84, 83),  # outer lower lip 83-87
    *(92, 91, 90, 89, 88),  # inner upper lip 88-92
    *(95, 94, 93),  # inner lower lip 93-95
    *(97, 96),  # pupils
]

# Joint order as DATA.md (MPII, LSP) and the COCO keypoint definition give it.
POSE_ORDER = {
    "mpii": (
        "r_ankle r_knee r_hip l_hip l_knee l_ankle pelvis thorax upper_neck head_top "
        "r_wrist r_elbow r_shoulder l_shoulder l_elbow l_wrist"
    ),
    "lsp": (
        "r_ankle r_knee r_hip l_hip l_knee l_ankle r_wrist r_elbow r_shoulder l_shoulder "
        "l_elbow l_wrist neck head_top"
    ),
    "coco": (
        "nose l_eye r_eye l_ear r_ear l_shoulder r_shoulder l_elbow r_elbow l_wrist r_wrist "
        "l_hip r_hip l_knee r_knee l_ankle r_ankle"
    ),
}
POSE_MIDLINE = {
    "mpii": {"pelvis", "thorax", "upper_neck", "head_top"},
    "lsp": {"neck", "head_top"},
    "coco": {"nose"},
}


@pytest.mark.parametrize("meta", DATASETS.values(), ids=DATASETS.keys())
def test_flip_tables_are_symmetric_and_involutive(meta):
    perm = meta.flip_permutation
    assert sorted(perm) == list(range(meta.num_landmarks))
    assert np.array_equal(perm[perm], np.arange(meta.num_landmarks))
    partners = dict(meta.flip_pairs)
    assert len({i for pair in meta.flip_pairs for i in pair}) == 2 * len(partners)


@pytest.mark.parametrize("meta", DATASETS.values(), ids=DATASETS.keys())
def test_skeleton_joins_two_different_real_landmarks(meta):
    for a, b in meta.skeleton:
        assert 0 <= a < meta.num_landmarks and 0 <= b < meta.num_landmarks and a != b


@pytest.mark.parametrize("name", POSE_ORDER)
def test_pose_joint_order_matches_the_published_order(name):
    assert dataset_meta(name).landmark_names == tuple(POSE_ORDER[name].split())


@pytest.mark.parametrize("name", POSE_MIDLINE)
def test_pose_flip_swaps_left_and_right_of_the_same_joint(name):
    meta = dataset_meta(name)
    names, perm = meta.landmark_names, meta.flip_permutation
    swapped = {(names[i], names[perm[i]]) for i in range(meta.num_landmarks) if perm[i] != i}
    other_side = {"l_": "r_", "r_": "l_"}
    sided = [n for n in names if n[:2] in other_side]
    assert swapped == {(n, other_side[n[:2]] + n[2:]) for n in sided}


@pytest.mark.parametrize("name", POSE_MIDLINE)
def test_pose_flip_keeps_exactly_the_midline_joints(name):
    meta = dataset_meta(name)
    kept = np.flatnonzero(meta.flip_permutation == np.arange(meta.num_landmarks))
    assert {meta.landmark_names[i] for i in kept} == POSE_MIDLINE[name]


def test_300w_flip_permutation_matches_the_published_table():
    assert FACE_300W.flip_permutation.tolist() == PERM_300W


def test_wflw_flip_permutation_matches_the_published_table():
    assert len(PERM_WFLW) == 98
    assert WFLW.flip_permutation.tolist() == PERM_WFLW


def test_pck_normalisers_are_left_shoulder_and_right_hip():
    for meta in (LSP, COCO):
        assert [meta.landmark_names[i] for i in meta.normaliser] == ["l_shoulder", "r_hip"]


def test_mpii_mean_excludes_pelvis_and_thorax():
    assert [MPII.landmark_names[i] for i in MPII.excluded_from_mean] == ["pelvis", "thorax"]


@pytest.mark.parametrize("meta", [MPII, LSP], ids=["mpii", "lsp"])
def test_joint_groups_hold_both_sides_of_their_joint(meta):
    head = {n for n in meta.landmark_names if n in ("neck", "upper_neck", "head_top")}
    limbs = ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")
    groups = {
        group: {meta.landmark_names[j] for j in joints}
        for group, joints in meta.joint_groups.items()
    }
    assert groups == {"head": head, **{limb: {f"l_{limb}", f"r_{limb}"} for limb in limbs}}


def test_face_normalisers_are_the_outer_eye_corners_and_eye_contours():
    assert FACE_300W.normaliser == (36, 45)
    assert FACE_300W.eye_groups == (tuple(range(36, 42)), tuple(range(42, 48)))
    assert WFLW.normaliser == (60, 72)
    assert WFLW.eye_groups == (tuple(range(60, 68)), tuple(range(68, 76)))


def test_landmark_counts():
    counts = {name: meta.num_landmarks for name, meta in DATASETS.items()}
    assert counts == {"mpii": 16, "lsp": 14, "300w": 68, "wflw": 98, "coco": 17}


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="known: 300w, coco, lsp, mpii, wflw"):
        dataset_meta("afw")
