"""Landmark metrics: PCKh, PCK, NME, AUC, failure rate and COCO's OKS AP. Every number says
its variant.

All functions take predictions and ground truth as arrays [N, J, 2] in the same pixel
coordinates and a per-landmark annotation flag [N, J]; landmarks without ground truth are
ignored.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from fedland.data.meta import DatasetMeta


def _distances(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(gt, np.float64), axis=-1)


def head_sizes(head_boxes: np.ndarray) -> np.ndarray:
    """MPII head size: 0.6 x the diagonal of the head box [N, 4] (x1, y1, x2, y2)."""
    boxes = np.asarray(head_boxes, np.float64).reshape(-1, 4)
    return 0.6 * np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def pckh(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    head_boxes: np.ndarray,
    meta: DatasetMeta,
    threshold: float = 0.5,
) -> dict[str, float]:
    """PCKh@threshold in %: per joint group, and `pckh` = mean over the joints that MPII
    reports (pelvis and thorax excluded)."""
    correct = _distances(pred, gt) <= threshold * head_sizes(head_boxes)[:, None]
    annotated = np.asarray(visible) > 0
    per_joint = _rate(correct, annotated)
    result: dict = {
        group: _pooled(correct[:, list(joints)], annotated[:, list(joints)])
        for group, joints in meta.joint_groups.items()
    }
    kept = [j for j in range(meta.num_landmarks) if j not in meta.excluded_from_mean]
    result["pckh"] = _pooled(correct[:, kept], annotated[:, kept])
    result["pckh_all_joints"] = _pooled(correct, annotated)
    result["per_joint"] = [float(v) for v in per_joint]
    return result


def pck(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    normaliser: tuple[int, int],
    threshold: float = 0.2,
) -> float:
    """PCK@threshold in %, normalised per image by the distance of two landmarks (LSP: left
    shoulder and right hip); images without both normaliser landmarks are skipped."""
    gt = np.asarray(gt, np.float64)
    annotated = np.asarray(visible) > 0
    a, b = normaliser
    scale = np.linalg.norm(gt[:, a] - gt[:, b], axis=-1)
    usable = annotated[:, a] & annotated[:, b] & (scale > 0)
    correct = _distances(pred, gt) <= threshold * scale[:, None]
    return _pooled(correct[usable], annotated[usable])


def interocular(gt: np.ndarray, corners: tuple[int, int]) -> np.ndarray:
    """Outer-eye-corner distance per image."""
    gt = np.asarray(gt, np.float64)
    return np.linalg.norm(gt[:, corners[0]] - gt[:, corners[1]], axis=-1)


def interpupil(gt: np.ndarray, eyes: tuple[tuple[int, ...], tuple[int, ...]]) -> np.ndarray:
    """Distance of the eye centres (means of the eye contours) per image."""
    gt = np.asarray(gt, np.float64)
    return np.linalg.norm(gt[:, list(eyes[0])].mean(1) - gt[:, list(eyes[1])].mean(1), axis=-1)


def nme_per_image(
    pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, normaliser: np.ndarray
) -> np.ndarray:
    """Mean over annotated landmarks of ||p - g|| / d, per image (a fraction, not %)."""
    annotated = np.asarray(visible) > 0
    errors = _distances(pred, gt) * annotated
    counts = annotated.sum(axis=1).clip(min=1)
    return errors.sum(axis=1) / counts / np.asarray(normaliser, np.float64)


def auc_and_failure_rate(per_image_nme: np.ndarray, threshold: float = 0.08) -> tuple[float, float]:
    """Area under the cumulative error distribution up to `threshold` divided by it, and the
    fraction of images above it, both in %. The integral of the CED from 0 to t equals the
    mean of max(0, t - e)."""
    errors = np.asarray(per_image_nme, np.float64)
    if errors.size == 0:
        return float("nan"), float("nan")
    auc = np.mean(np.clip(threshold - errors, 0.0, None)) / threshold
    return 100.0 * float(auc), 100.0 * float(np.mean(errors > threshold))


def face_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    meta: DatasetMeta,
    threshold: float | None = None,
    subsets: Mapping[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """NME (inter-ocular, the default, and inter-pupil), AUC and FR at `threshold` (the
    dataset's protocol when None: 0.08 for 300-W, 0.10 for WFLW), in %; plus `nme_<name>`,
    the NME of the images each boolean mask [N] in `subsets` selects (NaN when none)."""
    threshold = meta.failure_threshold if threshold is None else threshold
    ocular = nme_per_image(pred, gt, visible, interocular(gt, meta.normaliser))
    pupil = nme_per_image(pred, gt, visible, interpupil(gt, meta.eye_groups))
    auc, failure = auc_and_failure_rate(ocular, threshold)
    tag = f"{threshold:g}"
    result = {
        "nme": 100.0 * float(ocular.mean()),
        "nme_interpupil": 100.0 * float(pupil.mean()),
        f"auc@{tag}": auc,
        f"fr@{tag}": failure,
    }
    for name, members in (subsets or {}).items():
        chosen = ocular[np.asarray(members, bool)]
        result[f"nme_{name}"] = 100.0 * float(chosen.mean()) if chosen.size else float("nan")
    return result


# COCOeval.stats positions of the numbers reported, by key.
OKS_STATS = {"oks_ap": 0, "oks_ap50": 1, "oks_ap75": 2, "oks_ap_m": 3, "oks_ap_l": 4, "oks_ar": 5}


def oks_ap(
    pred: np.ndarray,
    scores: np.ndarray,
    gt: np.ndarray,
    boxes: np.ndarray,
    areas: np.ndarray,
    image_ids: Sequence,
    sigmas: Sequence[float],
) -> dict[str, float]:
    """COCO keypoint AP and AR over OKS in % (NaN where no person falls in the area range),
    computed by pycocotools' COCOeval, the official implementation, with its output muted.
    `gt` [N, J, 3] holds x, y and COCO's v (0 unlabelled, 1 occluded, 2 visible); `boxes`
    [N, 4] are x, y, w, h; `areas` [N] the OKS scales; `scores` [N, J] per landmark: each
    prediction is one detection scored by their mean."""
    if len(gt) == 0:
        return dict.fromkeys(OKS_STATS, float("nan"))
    with contextlib.redirect_stdout(io.StringIO()):
        truth = _coco_truth(gt, boxes, areas, image_ids)
        detections = truth.loadRes(_coco_detections(pred, scores, image_ids))
        evaluator = COCOeval(truth, detections, iouType="keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {
        key: 100.0 * float(evaluator.stats[i]) if evaluator.stats[i] >= 0 else float("nan")
        for key, i in OKS_STATS.items()
    }


def _coco_truth(gt: np.ndarray, boxes: np.ndarray, areas: np.ndarray, image_ids: Sequence) -> COCO:
    """An in-memory COCO ground truth, one person annotation per row; ids start at 1
    because COCOeval reads a matched id of 0 as no match."""
    gt = np.asarray(gt, np.float64)
    truth = COCO()
    truth.dataset = {
        "images": [{"id": image_id} for image_id in sorted(set(image_ids))],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [
            {
                "id": k + 1,
                "image_id": image_ids[k],
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [float(v) for v in boxes[k]],
                "area": float(areas[k]),
                "keypoints": gt[k].ravel().tolist(),
                "num_keypoints": int((gt[k, :, 2] > 0).sum()),
            }
            for k in range(len(gt))
        ],
    }
    truth.createIndex()
    return truth


def _coco_detections(pred: np.ndarray, scores: np.ndarray, image_ids: Sequence) -> list[dict]:
    scores = np.asarray(scores, np.float64)
    keypoints = np.concatenate([np.asarray(pred, np.float64), scores[..., None]], axis=-1)
    return [
        {
            "image_id": image_ids[k],
            "category_id": 1,
            "keypoints": keypoints[k].ravel().tolist(),
            "score": float(scores[k].mean()),
        }
        for k in range(len(keypoints))
    ]


def _pooled(correct: np.ndarray, annotated: np.ndarray) -> float:
    total = annotated.sum()
    return 100.0 * float((correct & annotated).sum() / total) if total else float("nan")


def _rate(correct: np.ndarray, annotated: np.ndarray) -> np.ndarray:
    totals = annotated.sum(axis=0)
    hits = (correct & annotated).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, 100.0 * hits / np.maximum(totals, 1), np.nan)
