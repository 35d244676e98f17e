"""COCO keypoints (17) from `root/annotations/person_keypoints_*.json`.

Split: "train" when the file's stem contains "train", else "val". Images are under
`root/<part>/<file_name>` where <part> follows "person_keypoints_" (e.g. "val2017").
One record per annotation with `num_keypoints > 0` and `iscrowd == 0` (missing `iscrowd` counts
as 0, missing `num_keypoints` as the number of labelled points). Coordinates are used as they
are; `v` 0 (unlabelled) -> visible 0 with coordinates (0, 0), 1 or 2 -> visible 1, and
`attributes["v"]` keeps the raw v; for OKS evaluation also "image_id", "annotation_id",
"bbox" ([x, y, w, h]) and "area" (the annotation's segment area, OKS's scale; absent when the
annotation has none, and evaluation then uses the box area w * h).
Crop: `crop_from_box` of bbox [x, y, w, h] (x2 = x + w), margin 1.25.
`Record.source` is "file:record N" and `BadSample.line` is N, the 0-based index in
"annotations".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fedland.data.meta import COCO
from fedland.data.records import AnnotationError, BadSample, ReadResult, Record, crop_from_box

SPLITS = ("train", "val")
PREFIX = "person_keypoints_"
NUM_KEYPOINTS = COCO.num_landmarks


def read_coco(root: str | Path, split: str | None = None) -> ReadResult:
    """Person records of one split (all when None) from the COCO keypoint files under `root`."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown COCO split {split!r}; allowed: {', '.join(SPLITS)}")
    root = Path(root).absolute()
    files = sorted((root / "annotations").glob(f"{PREFIX}*.json"))
    if not files:
        raise AnnotationError(root, f"no annotations/{PREFIX}*.json")
    result = ReadResult()
    for path in files:
        file_split = "train" if "train" in path.stem else "val"
        if split in (None, file_split):
            result.extend(_read_file(path, root / path.stem[len(PREFIX) :], file_split))
    return result


def _read_file(path: Path, images: Path, split: str) -> ReadResult:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        file_names = {image["id"]: image["file_name"] for image in data["images"]}
        annotations = data["annotations"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AnnotationError(path, f"unreadable JSON ({error})") from error
    except (TypeError, KeyError) as error:
        raise AnnotationError(path, f"not a COCO file: images/annotations ({error})") from error
    if not isinstance(annotations, list):
        raise AnnotationError(path, "'annotations' is not a list")
    result = ReadResult()
    exists: dict[str, bool] = {}
    for index, annotation in enumerate(annotations):
        try:
            record = _parse(annotation, file_names, images, exists, split)
        except (TypeError, ValueError, KeyError) as error:
            reason = f"missing key {error}" if isinstance(error, KeyError) else str(error)
            result.bad.append(BadSample(str(path), reason, index))
            continue
        if record is not None:
            record.source = f"{path}:record {index}"
            result.records.append(record)
    return result


def _parse(
    annotation: dict[str, Any],
    file_names: dict[Any, str],
    images: Path,
    exists: dict[str, bool],
    split: str,
) -> Record | None:
    """The record of one annotation, or None for crowds and people without keypoints."""
    keypoints = np.asarray(annotation["keypoints"], dtype=np.float64)
    if keypoints.shape != (3 * NUM_KEYPOINTS,):
        raise ValueError(f"{keypoints.size} keypoint values, expected {3 * NUM_KEYPOINTS}")
    keypoints = keypoints.reshape(NUM_KEYPOINTS, 3)
    labelled = keypoints[:, 2] > 0
    count = annotation.get("num_keypoints", int(labelled.sum()))
    if annotation.get("iscrowd", 0) != 0 or count <= 0:
        return None
    if not np.isfinite(keypoints).all():
        raise ValueError("non-finite keypoint")
    x, y, w, h = (float(value) for value in annotation["bbox"])
    if not (np.isfinite([x, y, w, h]).all() and w > 0 and h > 0):
        raise ValueError(f"bad bbox {[x, y, w, h]}")
    image_id = annotation["image_id"]
    if image_id not in file_names:
        raise ValueError(f"image_id {image_id!r} is not in 'images'")
    name = file_names[image_id]
    if name not in exists:
        exists[name] = (images / name).is_file()
    if not exists[name]:
        raise ValueError(f"missing image {images / name}")
    attributes = {
        "v": keypoints[:, 2].astype(int).tolist(),
        "image_id": image_id,
        "annotation_id": annotation.get("id"),
        "bbox": [x, y, w, h],
    }
    if "area" in annotation:
        area = float(annotation["area"])
        if not (np.isfinite(area) and area > 0):
            raise ValueError(f"bad area {area}")
        attributes["area"] = area
    center, scale = crop_from_box(x, y, x + w, y + h, margin=1.25)
    return Record(
        image=images / name,
        landmarks=np.where(labelled[:, None], keypoints[:, :2], 0.0),
        visible=labelled,
        center=center,
        scale=scale,
        split=split,
        attributes=attributes,
    )
