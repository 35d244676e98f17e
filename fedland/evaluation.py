"""The task metric of each dataset, computed from predictions and their records."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedland.data.meta import DatasetMeta
from fedland.data.records import Record
from fedland.metrics import face_metrics, oks_ap, pck, pckh

# Each primary metric by name: (name, higher_is_better). PCKh from head boxes estimated on the
# neck-head segment is not MPII's PCKh, so it has its own name.
PRIMARY = {
    "nme": ("nme", False),
    "pckh": ("pckh", True),
    "pckh_estimated": ("pckh_estimated", True),
    "pck": ("pck", True),
}
ESTIMATED = "_estimated"  # ends every PCKh key of a set with an estimated head box


def primary_metric(meta: DatasetMeta, records: Sequence[Record]) -> tuple[str, bool]:
    """(name, higher_is_better) of the number a run evaluated on `records` is judged by:
    `pckh` only when every record has an annotated head box, else `pckh_estimated`."""
    if meta.metric == "pckh" and not _all_head_boxes(records):
        return PRIMARY["pckh_estimated"]
    return PRIMARY[meta.metric]


def is_better(meta: DatasetMeta, value: float, best: float | None) -> bool:
    if best is None or np.isnan(best):
        return not np.isnan(value)
    higher = PRIMARY[meta.metric][1]
    return value > best if higher else value < best


def evaluate_predictions(
    meta: DatasetMeta,
    records: Sequence[Record],
    predictions: np.ndarray,
    indices: np.ndarray,
    scores: np.ndarray | None = None,
) -> dict:
    """Metrics in %, with the variant in the key (`nme` is inter-ocular, `pckh` @0.5).
    `scores` [N, J], per predicted landmark, rank COCO's detections (all 1 when None)."""
    chosen = [records[i] for i in indices]
    gt = np.stack([r.landmarks for r in chosen])
    visible = np.stack([r.visible for r in chosen])
    if meta.metric == "nme":
        return face_metrics(predictions, gt, visible, meta, subsets=_subsets(meta, chosen))
    if meta.metric == "pckh":
        return _pckh(meta, chosen, predictions, gt, visible)
    result = {"pck": pck(predictions, gt, visible, meta.normaliser)}
    if meta.oks_sigmas:
        ones = np.ones(predictions.shape[:2])
        result.update(_oks(meta, chosen, predictions, ones if scores is None else scores))
    return result


def _all_head_boxes(records: Sequence[Record]) -> bool:
    return all(r.head_box is not None for r in records)


def _pckh(
    meta: DatasetMeta,
    chosen: list[Record],
    predictions: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
) -> dict:
    """PCKh; with any head box estimated, every key carries ESTIMATED (`pckh_estimated`,
    `head_estimated`, ...), so it is never mistaken for MPII's PCKh."""
    boxes = np.stack([_head_box(r) for r in chosen])
    result = pckh(predictions, gt, visible, boxes, meta)
    if _all_head_boxes(chosen):
        return result
    return {key + ESTIMATED: value for key, value in result.items()}


def _head_box(record: Record) -> np.ndarray:
    """The annotated head box, or (without one) a square on the upper-neck-to-head-top
    segment, side = its length."""
    if record.head_box is not None:
        return record.head_box
    neck, top = record.landmarks[8], record.landmarks[9]
    middle = (neck + top) / 2.0
    half = np.linalg.norm(top - neck) / 2.0
    return np.array([*(middle - half), *(middle + half)], dtype=np.float32)


def _subsets(meta: DatasetMeta, chosen: list[Record]) -> dict[str, np.ndarray]:
    """Membership [N] of each of the dataset's NME subsets (WFLW's six attributes) that every
    record carries a flag for."""
    return {
        name: np.array([bool(r.attributes[name]) for r in chosen])
        for name in meta.nme_subsets
        if all(name in r.attributes for r in chosen)
    }


def _oks(
    meta: DatasetMeta, chosen: list[Record], predictions: np.ndarray, scores: np.ndarray
) -> dict:
    """COCO's OKS AP/AR on records from the COCO reader; the OKS scale is the annotation's
    area, or the box area where a record has none."""
    labels = np.array([r.attributes["v"] for r in chosen], np.float64)
    gt = np.concatenate([np.stack([r.landmarks for r in chosen]), labels[..., None]], axis=-1)
    boxes = np.array([r.attributes["bbox"] for r in chosen], np.float64)
    areas = [r.attributes.get("area", w * h) for r, (_, _, w, h) in zip(chosen, boxes, strict=True)]
    image_ids = [r.attributes["image_id"] for r in chosen]
    return oks_ap(predictions, scores, gt, boxes, np.array(areas), image_ids, meta.oks_sigmas)
