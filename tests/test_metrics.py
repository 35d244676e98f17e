import warnings

import numpy as np
import pytest

from fedland.data.meta import FACE_300W, MPII, WFLW
from fedland.metrics import (
    auc_and_failure_rate,
    face_metrics,
    head_sizes,
    interocular,
    interpupil,
    nme_per_image,
    pck,
    pckh,
)


def test_pckh_counts_joints_within_half_the_head_size_and_excludes_pelvis_and_thorax():
    gt = np.zeros((2, 16, 2))
    pred = gt.copy()
    boxes = np.array([[0, 0, 30, 40], [0, 0, 30, 40]], float)  # diagonal 50 -> head size 30
    assert head_sizes(boxes).tolist() == [30.0, 30.0]
    pred[0, 0] = [14.9, 0]  # within 15 px: correct
    pred[0, 1] = [15.1, 0]  # just outside
    pred[1, 6] = [100, 0]  # pelvis wrong, excluded from the mean
    visible = np.ones((2, 16))
    visible[1, 9] = 0  # head top missing in image 2: ignored
    result = pckh(pred, gt, visible, boxes, MPII)
    kept = 2 * 14 - 1  # 14 joints without pelvis/thorax, one missing
    assert result["pckh"] == pytest.approx(100 * (kept - 1) / kept)
    assert result["ankle"] == 100.0
    assert result["knee"] == pytest.approx(75.0)
    assert result["pckh_all_joints"] == pytest.approx(100 * (31 - 2) / 31)


def test_pckh_counts_a_joint_exactly_at_half_the_head_size_as_correct():
    gt = np.zeros((1, 16, 2))
    pred = gt.copy()
    pred[0, 0] = [9.0, 12.0]  # 15 px away: exactly 0.5 x head size 30
    boxes = np.array([[0, 0, 30, 40]], float)
    result = pckh(pred, gt, np.ones((1, 16)), boxes, MPII)
    assert result["ankle"] == 100.0
    assert result["per_joint"][0] == 100.0


def test_pckh_reports_each_joint_and_nan_for_joints_never_annotated():
    gt = np.zeros((2, 16, 2))
    pred = gt.copy()
    pred[0, 10] = [20.0, 0]  # wrist off by more than 15 px in one of two images
    visible = np.ones((2, 16))
    visible[:, 9] = 0  # head top never annotated
    result = pckh(pred, gt, visible, np.array([[0, 0, 30, 40]] * 2, float), MPII)
    per_joint = result["per_joint"]
    assert len(per_joint) == 16 and np.isnan(per_joint[9])
    assert per_joint[10] == 50.0
    assert [v for j, v in enumerate(per_joint) if j not in (9, 10)] == [100.0] * 14
    assert result["wrist"] == 75.0 and result["head"] == 100.0


def test_pck_counts_a_joint_exactly_at_the_threshold_as_correct():
    gt = np.zeros((1, 14, 2))
    gt[0, 2] = [0, 50]  # torso 50 px -> threshold 10 px
    pred = gt.copy()
    pred[0, 0] += [6.0, 8.0]  # 10 px away
    assert pck(pred, gt, np.ones((1, 14)), (9, 2)) == 100.0


def test_pck_skips_images_without_both_normaliser_joints():
    gt = np.zeros((2, 14, 2))
    gt[:, 2] = [0, 50]
    pred = gt.copy()
    pred[1] += 100.0  # all wrong, but its left shoulder is missing
    visible = np.ones((2, 14))
    visible[1, 9] = 0
    assert pck(pred, gt, visible, (9, 2)) == 100.0


def _face(meta):
    """Outer eye corners at x = 0 and 100, eye centres at x = 20 and 80: each eye contour runs
    from its corner at x = 0 (or 60) over the upper lid to its corner at x = 40 (or 100)."""
    eye, other_eye = (list(group) for group in meta.eye_groups)
    gt = np.zeros((1, meta.num_landmarks, 2))
    lid = np.linspace(0, 40, len(eye) // 2 + 1)[1:-1]
    gt[0, eye] = [[0, 0], *[[x, -5] for x in lid], [40, 0], *[[x, 5] for x in lid[::-1]]]
    gt[0, other_eye] = gt[0, eye] + np.array([60.0, 0.0])
    return gt


def _shifted(gt, dx, dy):
    return gt + np.array([dx, dy])


def test_face_metrics_in_percent_of_interocular_and_interpupil_distance():
    gt = _face(FACE_300W)
    assert interocular(gt, FACE_300W.normaliser).tolist() == [100.0]
    assert interpupil(gt, FACE_300W.eye_groups).tolist() == pytest.approx([60.0])
    pred = _shifted(gt, 6.0, 0.0)  # every point off by 6 px
    result = face_metrics(pred, gt, np.ones((1, 68)), FACE_300W)
    assert result == pytest.approx(
        {"nme": 6.0, "nme_interpupil": 10.0, "auc@0.08": 25.0, "fr@0.08": 0.0}
    )


def test_wflw_face_metrics_use_its_eye_corners_contours_and_threshold():
    gt = _face(WFLW)
    assert interocular(gt, WFLW.normaliser).tolist() == [100.0]
    result = face_metrics(_shifted(gt, 0.0, 8.0), gt, np.ones((1, 98)), WFLW, threshold=0.1)
    assert result == pytest.approx(
        {"nme": 8.0, "nme_interpupil": 100 * 8 / 60, "auc@0.1": 20.0, "fr@0.1": 0.0}
    )


def test_nme_ignores_landmarks_without_ground_truth():
    gt = _face(FACE_300W)
    pred = _shifted(gt, 5.0, 0.0)
    pred[0, 0] += 1000.0
    visible = np.ones((1, 68))
    visible[0, 0] = 0
    assert face_metrics(pred, gt, visible, FACE_300W)["nme"] == pytest.approx(5.0)


def test_auc_and_failure_rate_on_a_known_distribution():
    errors = np.array([0.0, 0.04, 0.1])
    auc, failure = auc_and_failure_rate(errors, 0.08)
    # CED: 1/3 jump at 0, 2/3 from 0.04 on -> area (1/3*0.08 + 1/3*0.04) / 0.08
    assert auc == pytest.approx(100 * (1 / 3 + 1 / 6))
    assert failure == pytest.approx(100 / 3)


def test_auc_and_failure_rate_default_to_a_threshold_of_0_08():
    auc, failure = auc_and_failure_rate(np.array([0.0, 0.04, 0.1]))
    assert auc == pytest.approx(100 * (1 / 3 + 1 / 6))
    assert failure == pytest.approx(100 / 3)


def test_face_metrics_default_to_auc_and_failure_rate_at_0_08():
    gt = _face(FACE_300W)
    pred = _shifted(gt, 10.0, 0.0)  # NME 10 % of the interocular distance: above 0.08
    result = face_metrics(pred, gt, np.ones((1, 68)), FACE_300W)
    assert result == pytest.approx(
        {"nme": 10.0, "nme_interpupil": 100 * 10 / 60, "auc@0.08": 0.0, "fr@0.08": 100.0}
    )


def test_auc_and_failure_rate_are_nan_without_images():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auc, failure = auc_and_failure_rate(np.array([]))
    assert np.isnan(auc) and np.isnan(failure)


def test_an_error_exactly_at_the_threshold_is_not_a_failure():
    auc, failure = auc_and_failure_rate(np.array([0.0625, 0.125, 0.25]), 0.125)
    assert failure == pytest.approx(100 / 3)
    assert auc == pytest.approx(100 * (0.0625 / 0.125) / 3)
    assert auc_and_failure_rate(np.array([0.125]), 0.125) == (0.0, 0.0)


def test_pckh_is_nan_for_a_joint_group_never_annotated():
    gt = np.zeros((2, 16, 2))
    visible = np.ones((2, 16))
    visible[:, [8, 9]] = 0  # upper neck and head top: the whole head group
    result = pckh(gt.copy(), gt, visible, np.array([[0, 0, 30, 40]] * 2, float), MPII)
    assert np.isnan(result["head"])
    assert result["wrist"] == 100.0 and result["pckh"] == 100.0


def test_pck_is_nan_when_no_image_has_both_normaliser_landmarks():
    gt = np.zeros((1, 14, 2))
    gt[0, 2] = [0, 50]
    visible = np.ones((1, 14))
    visible[0, 2] = 0
    assert np.isnan(pck(gt.copy(), gt, visible, (9, 2)))


def test_head_size_uses_box_width_and_height_for_boxes_away_from_the_origin():
    boxes = np.array([[10, 20, 40, 60], [5, 7, 17, 12]], float)  # 30 x 40 and 12 x 5
    assert head_sizes(boxes) == pytest.approx([0.6 * 50, 0.6 * 13])


def test_interocular_distance_of_a_face_away_from_the_origin():
    gt = _shifted(_face(FACE_300W), 50.0, 30.0)
    assert interocular(gt, FACE_300W.normaliser) == pytest.approx([100.0])


@pytest.mark.parametrize(
    ("shoulder", "hip", "inside", "outside"),
    [([20, 30], [50, 70], 9.0, 11.0), ([0, 0], [0, 0.5], 0.05, 0.2)],
    ids=["torso of 50 px away from the origin", "torso of half a pixel"],
)
def test_pck_normalises_by_left_shoulder_to_right_hip(shoulder, hip, inside, outside):
    gt = np.full((1, 14, 2), 40.0)
    gt[0, 9], gt[0, 2] = shoulder, hip  # threshold: 0.2 x the torso
    pred = gt.copy()
    pred[0, 0] += [inside, 0]
    pred[0, 1] += [outside, 0]
    assert pck(pred, gt, np.ones((1, 14)), (9, 2)) == pytest.approx(100 * 13 / 14)


def test_pck_skips_images_whose_normaliser_landmarks_coincide():
    gt = np.zeros((2, 14, 2))
    gt[0, 2] = [0, 50]
    gt[1] = 30.0  # left shoulder and right hip at the same point: torso 0
    pred = gt.copy()
    pred[1] += 1.0  # all wrong, but the image has no scale
    assert pck(pred, gt, np.ones((2, 14)), (9, 2)) == 100.0


def test_nme_per_image_averages_over_each_images_annotated_landmarks():
    gt = np.zeros((4, 4, 2))
    pred = gt.copy()
    pred[0, :, 0] = [3, 4, 5, 0]  # all annotated: mean 3
    pred[1, :, 0] = [2, 6, 99, 99]  # first two annotated: mean 4
    pred[2, :, 0] = 99  # none annotated
    pred[3, :, 0] = [5, 99, 99, 99]  # one annotated: mean 5
    visible = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]])
    normaliser = np.array([10.0, 8.0, 10.0, 10.0])
    nme = nme_per_image(pred, gt, visible, normaliser)
    assert nme == pytest.approx([0.3, 0.5, 0.0, 0.5])
