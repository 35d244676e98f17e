"""300-W (68 points): `.pts` files beside their images in the published folder tree.

Subset folders and splits: afw, helen/trainset, lfpw/trainset -> "train"; helen/testset,
lfpw/testset -> "common"; ibug -> "challenging"; 300W/01_Indoor, 300W/02_Outdoor -> "test";
"full" selects common + challenging (records keep their own split). Any folder may be absent.
`.pts` points are 1-based and shifted by -1 (by `read_pts`); all 68 are annotated.
Crop: `crop_from_landmarks(..., margin=1.25)`, the box of the 68 points with a 25 % margin.
`Record.subset` is the subset folder, `attributes["site"]` the top folder; an optional
`root/fedland_attributes.json` (image path relative to root, POSIX style -> object) is merged
into the attributes and may override "site". Records are sorted by `.pts` path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fedland.data.meta import FACE_300W
from fedland.data.readers.pts import read_pts
from fedland.data.records import (
    AnnotationError,
    BadSample,
    ReadResult,
    Record,
    crop_from_landmarks,
)

SPLITS = ("train", "common", "challenging", "full", "test")
SUBSETS = {
    "afw": "train",
    "helen/trainset": "train",
    "lfpw/trainset": "train",
    "helen/testset": "common",
    "lfpw/testset": "common",
    "ibug": "challenging",
    "300W/01_Indoor": "test",
    "300W/02_Outdoor": "test",
}
FULL = ("common", "challenging")
IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg", ".JPG", ".PNG", ".JPEG")
ATTRIBUTES_FILE = "fedland_attributes.json"
NUM_POINTS = FACE_300W.num_landmarks


def read_300w(root: str | Path, split: str | None = None) -> ReadResult:
    """Records of one split (all when None) from the 300-W folder tree under `root`."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown 300-W split {split!r}; allowed: {', '.join(SPLITS)}")
    root = Path(root).absolute()
    found = {subset: sorted((root / subset).glob("*.pts")) for subset in SUBSETS}
    if not any(found.values()):
        raise AnnotationError(root, f"no .pts file in any 300-W folder ({', '.join(SUBSETS)})")
    extra = _extra_attributes(root / ATTRIBUTES_FILE)
    result = ReadResult()
    for subset, pts_files in found.items():
        subset_split = SUBSETS[subset]
        if split not in (None, subset_split) and not (split == "full" and subset_split in FULL):
            continue
        for pts in pts_files:
            image = _image_beside(pts)
            if image is None:
                result.bad.append(BadSample(str(pts), "missing image (.jpg, .png or .jpeg)"))
                continue
            try:
                landmarks = read_pts(pts, expected_points=NUM_POINTS)
            except AnnotationError as error:
                result.bad.append(BadSample.from_error(error))
                continue
            visible = np.ones(NUM_POINTS, dtype=np.float32)
            center, scale = crop_from_landmarks(landmarks, visible, margin=1.25)
            attributes = {"site": subset.split("/")[0]}
            attributes.update(extra.get(image.relative_to(root).as_posix(), {}))
            result.records.append(
                Record(
                    image=image,
                    landmarks=landmarks,
                    visible=visible,
                    center=center,
                    scale=scale,
                    split=subset_split,
                    subset=subset,
                    attributes=attributes,
                    source=str(pts),
                )
            )
    result.records.sort(key=lambda record: record.source)
    return result


def _image_beside(pts: Path) -> Path | None:
    """The image with the `.pts` file's stem, if there is one."""
    for suffix in IMAGE_SUFFIXES:
        if (image := pts.with_suffix(suffix)).is_file():
            return image
    return None


def _extra_attributes(path: Path) -> dict[str, dict[str, Any]]:
    """The optional per-image attributes file: {relative image path: {key: value}}."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AnnotationError(path, f"unreadable JSON ({error})") from error
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise AnnotationError(path, "expected an object mapping image paths to objects")
    return data
