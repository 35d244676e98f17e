import numpy as np
import pytest

from fedland.data.meta import FACE_300W, MPII
from fedland.metrics import auc_and_failure_rate, face_metrics, head_sizes, pck, pckh


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


def test_pck_normalises_by_left_shoulder_to_right_hip():
    gt = np.zeros((1, 14, 2))
    gt[0, 9] = [0, 0]
    gt[0, 2] = [0, 50]  # torso 50 px -> threshold 10 px
    pred = gt.copy()
    pred[0, 0] += [9, 0]
    pred[0, 1] += [11, 0]
    assert pck(pred, gt, np.ones((1, 14)), (9, 2)) == pytest.approx(100 * 13 / 14)


def _face(eye_distance=100.0):
    gt = np.zeros((1, 68, 2))
    gt[0, 36] = [0, 0]
    gt[0, 45] = [eye_distance, 0]
    return gt


def test_nme_is_mean_error_over_interocular_distance_in_percent():
    gt = _face()
    pred = gt.copy()
    pred[0, :, 0] += 5.0  # every point off by 5 px
    result = face_metrics(pred, gt, np.ones((1, 68)), FACE_300W)
    assert result["nme"] == pytest.approx(5.0)
    assert "nme_interpupil" in result and "auc@0.08" in result and "fr@0.08" in result


def test_auc_and_failure_rate_on_a_known_distribution():
    errors = np.array([0.0, 0.04, 0.1])
    auc, failure = auc_and_failure_rate(errors, 0.08)
    # CED: 1/3 jump at 0, 2/3 from 0.04 on -> area (1/3*0.08 + 1/3*0.04) / 0.08
    assert auc == pytest.approx(100 * (1 / 3 + 1 / 6))
    assert failure == pytest.approx(100 / 3)
