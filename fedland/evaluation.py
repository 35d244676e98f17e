"""The task metric of each dataset, computed from predictions and their records."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedland.data.meta import DatasetMeta
from fedland.data.records import Record
from fedland.metrics import face_metrics, pck, pckh

# Primary metric per kind and whether larger is better.
PRIMARY = {"nme": ("nme", False), "pckh": ("pckh", True), "pck": ("pck", True)}


def primary_metric(meta: DatasetMeta) -> tuple[str, bool]:
    """(name, higher_is_better) of the number a run is judged by."""
    return PRIMARY[meta.metric]


def is_better(meta: DatasetMeta, value: float, best: float | None) -> bool:
    if best is None or np.isnan(best):
        return not np.isnan(value)
    higher = primary_metric(meta)[1]
    return value > best if higher else value < best


def evaluate_predictions(
    meta: DatasetMeta, records: Sequence[Record], predictions: np.ndarray, indices: np.ndarray
) -> dict:
    """Metrics in %, with the variant in the key (`nme` is inter-ocular, `pckh` @0.5)."""
    chosen = [records[i] for i in indices]
    gt = np.stack([r.landmarks for r in chosen])
    visible = np.stack([r.visible for r in chosen])
    if meta.metric == "nme":
        return face_metrics(predictions, gt, visible, meta)
    if meta.metric == "pckh":
        boxes = np.stack([_head_box(r, meta) for r in chosen])
        return pckh(predictions, gt, visible, boxes, meta)
    return {"pck": pck(predictions, gt, visible, meta.normaliser)}


def _head_box(record: Record, meta: DatasetMeta) -> np.ndarray:
    """The annotated head box, or (without one) a square on the upper-neck-to-head-top
    segment, side = its length."""
    if record.head_box is not None:
        return record.head_box
    neck, top = record.landmarks[8], record.landmarks[9]
    middle = (neck + top) / 2.0
    half = np.linalg.norm(top - neck) / 2.0
    return np.array([*(middle - half), *(middle + half)], dtype=np.float32)
