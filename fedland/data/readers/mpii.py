"""MPII Human Pose (16 joints) in the three formats people actually have on disk.

The format is detected inside `root`; the first one found wins:

1. `mpii_human_pose_v1_u12_1.mat` (the original `RELEASE` struct). Only annotated people of
   `img_train == 1` images are used, all in split "train" (the release has no validation
   split); test images and people without `annopoints` carry no joints and are skipped
   without being reported. `attributes["category"]` = act.cat_name (the activity category,
   e.g. "sports", the natural partition), `["activity"]` = act.act_name (each when non-empty).
2. A per-person JSON list (`mpii_annotations.json`: any `*.json` in `root` whose top level is
   a list of objects with "joint_self"); `isValidation` 1 -> "val", else "train". A joint is
   annotated when it is not exactly (0, 0); its third column is kept as information only.
3. HRNet/MMPose: `annot/train.json` -> "train", `annot/valid.json` -> "val", head boxes of
   valid.json's records from `annot/gt_valid.mat` (N-th column = N-th record).

Images are under `root/images/`. Every MPII coordinate is 1-based (MATLAB), so joints,
centres and head boxes are shifted by -1. Crop (the convention of every classic code base, so
limbs are not cut): annotated centre and scale, then centre.y += 15 * scale; scale *= 1.25.
Joints that are not annotated get visible 0 and coordinates (0, 0).
`attributes["visibility"]` keeps the raw per-joint visibility where the format has one
(.mat: is_visible, -1 where it or the joint is absent; JSON list: joint_self's third column).
`Record.source` is "file:annolist(i).annorect(r)" (MATLAB indices) for the .mat and
"file:record N" (0-based) for JSON lists; `BadSample.line` is N for JSON records.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy.io import loadmat
from scipy.io.matlab import MatReadError, mat_struct

from fedland.data.meta import MPII
from fedland.data.records import AnnotationError, BadSample, ReadResult, Record

SPLITS = ("train", "val")
MAT_NAME = "mpii_human_pose_v1_u12_1.mat"
NUM_JOINTS = MPII.num_landmarks
_LOAD_ERRORS = (OSError, ValueError, TypeError, KeyError, AttributeError, MatReadError)


def read_mpii(root: str | Path, split: str | None = None) -> ReadResult:
    """Records of one split (all when None) from whichever MPII format `root` holds."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown MPII split {split!r}; allowed: {', '.join(SPLITS)}")
    root = Path(root).absolute()
    images = root / "images"
    hrnet = [root / "annot" / name for name in ("train.json", "valid.json")]
    if (root / MAT_NAME).is_file():
        return _read_release(root / MAT_NAME, images, split)
    person_json = _find_person_json(root)
    if person_json is not None:
        return _read_person_json(*person_json, images, split)
    if any(path.is_file() for path in hrnet):
        return _read_hrnet(root / "annot", images, split)
    raise AnnotationError(
        root, f"no MPII annotation ({MAT_NAME}, a joint_self JSON list or annot/*.json)"
    )


def _crop(x: float, y: float, scale: float) -> tuple[np.ndarray, float]:
    """0-based centre and scale of the crop from a 1-based objpos and the annotated scale."""
    if not (np.isfinite([x, y, scale]).all() and scale > 0):
        raise ValueError(f"bad objpos ({x}, {y}) or scale {scale}")
    return np.array([x - 1.0, y - 1.0 + 15.0 * scale], dtype=np.float32), 1.25 * scale


def _image(images: Path, name: str, cache: dict[str, bool]) -> Path:
    path = images / name
    if name not in cache:
        cache[name] = path.is_file()
    if not cache[name]:
        raise ValueError(f"missing image {path}")
    return path


# -- the original .mat ---------------------------------------------------------------------


def _items(value: Any) -> list[Any]:
    """The structs of a field that loads as nothing, one struct or an array of them."""
    if isinstance(value, mat_struct):
        return [value]
    if isinstance(value, np.ndarray):
        return [item for item in value.flat if isinstance(item, mat_struct)]
    return []


def _number(value: Any) -> float | None:
    """A MATLAB scalar that may be a number, a numeric string or an empty array."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return None
        value = value.item()
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _read_release(path: Path, images: Path, split: str | None) -> ReadResult:
    try:
        release = loadmat(path, struct_as_record=False, squeeze_me=True)["RELEASE"]
        annolist = _items(release.annolist)
        img_train = np.atleast_1d(np.asarray(release.img_train, dtype=np.float64)).ravel()
    except _LOAD_ERRORS as error:
        raise AnnotationError(path, f"not an MPII RELEASE struct ({error})") from error
    if len(img_train) != len(annolist):
        raise AnnotationError(
            path, f"{len(annolist)} annolist entries but {len(img_train)} img_train flags"
        )
    acts = _items(getattr(release, "act", None))
    result = ReadResult()
    if split == "val":
        return result
    cache: dict[str, bool] = {}
    for i in np.flatnonzero(img_train == 1):
        anno = annolist[i]
        attributes = {}
        if len(acts) == len(annolist):
            for key, field in (("category", "cat_name"), ("activity", "act_name")):
                if text := _text(getattr(acts[i], field, None)):
                    attributes[key] = text
        for r, rect in enumerate(_items(getattr(anno, "annorect", None))):
            points = _items(getattr(getattr(rect, "annopoints", None), "point", None))
            if not points:
                continue
            where = f"annolist({i + 1}).annorect({r + 1})"
            try:
                name = _text(getattr(getattr(anno, "image", None), "name", None))
                record = _release_person(rect, points, _image(images, name, cache))
            except ValueError as error:
                result.bad.append(BadSample(str(path), f"{where}: {error}"))
                continue
            record.attributes.update(attributes)
            record.source = f"{path}:{where}"
            result.records.append(record)
    return result


def _release_person(rect: Any, points: list[Any], image: Path) -> Record:
    objpos = getattr(rect, "objpos", None)
    x, y = _number(getattr(objpos, "x", None)), _number(getattr(objpos, "y", None))
    scale = _number(getattr(rect, "scale", None))
    if x is None or y is None or scale is None:
        raise ValueError("annotated person without objpos or scale")
    center, scale = _crop(x, y, scale)
    landmarks = np.zeros((NUM_JOINTS, 2), dtype=np.float64)
    visible = np.zeros(NUM_JOINTS, dtype=np.float32)
    visibility = [-1] * NUM_JOINTS
    for point in points:
        joint = _number(getattr(point, "id", None))
        px, py = _number(getattr(point, "x", None)), _number(getattr(point, "y", None))
        if joint is None or not joint.is_integer() or not 0 <= joint < NUM_JOINTS:
            raise ValueError(f"bad joint id {getattr(point, 'id', None)!r}")
        if px is None or py is None or not np.isfinite([px, py]).all():
            raise ValueError(f"joint {int(joint)} has no finite x, y")
        landmarks[int(joint)] = (px - 1.0, py - 1.0)
        visible[int(joint)] = 1.0
        flag = _number(getattr(point, "is_visible", None))
        visibility[int(joint)] = -1 if flag is None else int(flag)
    box = [_number(getattr(rect, key, None)) for key in ("x1", "y1", "x2", "y2")]
    head_box = None if None in box else np.asarray(box, dtype=np.float64) - 1.0
    return Record(
        image=image,
        landmarks=landmarks,
        visible=visible,
        center=center,
        scale=scale,
        split="train",
        attributes={"visibility": visibility},
        head_box=head_box,
    )


# -- JSON lists ----------------------------------------------------------------------------


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AnnotationError(path, f"unreadable JSON ({error})") from error


def _json_list(path: Path) -> list[Any]:
    data = _load_json(path)
    if not isinstance(data, list):
        raise AnnotationError(path, f"expected a JSON list, got {type(data).__name__}")
    return data


def _find_person_json(root: Path) -> tuple[Path, list[Any]] | None:
    """The first `*.json` in root that is a list of per-person records with "joint_self"."""
    for path in sorted(root.glob("*.json")):
        data = _load_json(path)
        if isinstance(data, list) and any(
            isinstance(item, dict) and "joint_self" in item for item in data
        ):
            return path, data
    return None


def _joints(value: Any, columns: int) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != (NUM_JOINTS, columns):
        raise ValueError(f"joints of shape {array.shape}, expected ({NUM_JOINTS}, {columns})")
    if not np.isfinite(array).all():
        raise ValueError("non-finite joint coordinates")
    return array


def _read_json_records(
    path: Path,
    data: list[Any],
    required: tuple[str, ...],
    parse: Callable[[int, dict[str, Any]], Record | None],
) -> ReadResult:
    """Apply `parse` to each record of a JSON list (None: another split), collecting bad ones."""
    result = ReadResult()
    for index, item in enumerate(data):
        try:
            if not isinstance(item, dict):
                raise ValueError(f"record is a {type(item).__name__}, not an object")
            missing = [key for key in required if key not in item]
            if missing:
                raise ValueError(f"missing key(s) {', '.join(map(repr, missing))}")
            record = parse(index, item)
        except (TypeError, ValueError) as error:
            result.bad.append(BadSample(str(path), str(error), index))
            continue
        if record is not None:
            record.source = f"{path}:record {index}"
            result.records.append(record)
    return result


_PERSON_KEYS = ("img_paths", "joint_self", "objpos", "scale_provided", "isValidation")
_HRNET_KEYS = ("image", "center", "scale", "joints", "joints_vis")


def _read_person_json(path: Path, data: list[Any], images: Path, split: str | None) -> ReadResult:
    cache: dict[str, bool] = {}

    def parse(_: int, item: dict[str, Any]) -> Record | None:
        record_split = "val" if float(item["isValidation"]) == 1.0 else "train"
        if split not in (None, record_split):
            return None
        joints = _joints(item["joint_self"], 3)
        visible = (joints[:, :2] != 0).any(axis=1)
        if not visible.any():
            raise ValueError("no annotated joint")
        x, y = (float(v) for v in item["objpos"])
        center, scale = _crop(x, y, float(item["scale_provided"]))
        attributes: dict[str, Any] = {"visibility": joints[:, 2].astype(int).tolist()}
        extra = item.get("attributes", {})
        if not isinstance(extra, dict):
            raise ValueError("'attributes' is not an object")
        attributes.update(extra)
        head_box = item.get("head_box")
        return Record(
            image=_image(images, str(item["img_paths"]), cache),
            landmarks=np.where(visible[:, None], joints[:, :2] - 1.0, 0.0),
            visible=visible,
            center=center,
            scale=scale,
            split=record_split,
            attributes=attributes,
            head_box=None if head_box is None else np.asarray(head_box, np.float64) - 1.0,
        )

    return _read_json_records(path, data, _PERSON_KEYS, parse)


def _read_hrnet(annot: Path, images: Path, split: str | None) -> ReadResult:
    result = ReadResult()
    cache: dict[str, bool] = {}
    for name, file_split in (("train.json", "train"), ("valid.json", "val")):
        path = annot / name
        if not path.is_file() or split not in (None, file_split):
            continue
        data = _json_list(path)
        boxes = _head_boxes(annot / "gt_valid.mat") if file_split == "val" else None
        if boxes is not None and len(boxes) != len(data):
            raise AnnotationError(
                annot / "gt_valid.mat", f"{len(boxes)} head boxes for {len(data)} records"
            )
        parse = partial(_hrnet_record, split=file_split, boxes=boxes, images=images, cache=cache)
        result.extend(_read_json_records(path, data, _HRNET_KEYS, parse))
    return result


def _hrnet_record(
    index: int,
    item: dict[str, Any],
    *,
    split: str,
    boxes: np.ndarray | None,
    images: Path,
    cache: dict[str, bool],
) -> Record:
    joints = _joints(item["joints"], 2)
    flags = np.asarray(item["joints_vis"], dtype=np.float64).reshape(-1)
    if flags.shape != (NUM_JOINTS,):
        raise ValueError(f"{flags.size} joints_vis flags, expected {NUM_JOINTS}")
    visible = (flags > 0) & (joints != -1).any(axis=1)
    if not visible.any():
        raise ValueError("no annotated joint")
    x, y = (float(v) for v in item["center"])
    center, scale = _crop(x, y, float(item["scale"]))
    return Record(
        image=_image(images, str(item["image"]), cache),
        landmarks=np.where(visible[:, None], joints - 1.0, 0.0),
        visible=visible,
        center=center,
        scale=scale,
        split=split,
        head_box=None if boxes is None else boxes[index],
    )


def _head_boxes(path: Path) -> np.ndarray | None:
    """0-based head boxes [N, 4] (x1, y1, x2, y2) from `headboxes_src` (2x2xN), if present."""
    if not path.is_file():
        return None
    try:
        boxes = np.asarray(loadmat(path)["headboxes_src"], dtype=np.float64)
    except _LOAD_ERRORS as error:
        raise AnnotationError(path, f"no readable headboxes_src ({error})") from error
    if boxes.ndim != 3 or boxes.shape[:2] != (2, 2):
        raise AnnotationError(path, f"headboxes_src of shape {boxes.shape}, expected 2x2xN")
    return boxes.transpose(2, 0, 1).reshape(-1, 4) - 1.0
