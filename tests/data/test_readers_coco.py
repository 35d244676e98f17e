"""COCO keypoints: one record per non-crowd person with keypoints, v flags, bbox crop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from fedland.data.readers import read_dataset
from fedland.data.records import AnnotationError, crop_from_box


def _annotation(index: int, image_id: int, **extra: Any) -> dict[str, Any]:
    keypoints = []
    for k in range(17):
        keypoints += [0, 0, 0] if k == 3 else [10.5 + k, 20.0 + k, 1 if k == 0 else 2]
    annotation = {
        "id": 100 + index,
        "image_id": image_id,
        "category_id": 1,
        "keypoints": keypoints,
        "num_keypoints": 16,
        "bbox": [4.0, 5.0, 20.0, 30.0],
        "iscrowd": 0,
        "area": 600.0,
    }
    return {**annotation, **extra}


def _write(root: Path, part: str, annotations: list[dict[str, Any]]) -> None:
    images = [{"id": 1, "file_name": "000001.jpg"}, {"id": 2, "file_name": "000002.jpg"}]
    (root / "annotations").mkdir(exist_ok=True)
    data = {"images": images, "annotations": annotations, "categories": []}
    (root / "annotations" / f"person_keypoints_{part}.json").write_text(json.dumps(data))
    (root / part).mkdir()
    cv2.imwrite(str(root / part / "000001.jpg"), np.zeros((32, 32, 3), np.uint8))


def test_coco(tmp_path: Path) -> None:
    missing_keypoints = _annotation(3, 1)
    del missing_keypoints["keypoints"]
    _write(
        tmp_path,
        "val2017",
        [
            _annotation(0, 1),
            _annotation(1, 1, iscrowd=1),
            _annotation(2, 1, num_keypoints=0),
            missing_keypoints,
            _annotation(4, 2),  # its image is not on disk
            _annotation(5, 7),  # no such image id
        ],
    )
    _write(tmp_path, "train2017", [_annotation(0, 1)])

    val = read_dataset("coco", tmp_path, "val")
    (record,) = val.records
    assert record.image == tmp_path / "val2017" / "000001.jpg" and record.split == "val"
    assert record.visible[3] == 0 and record.visible.sum() == 16
    np.testing.assert_array_equal(record.landmarks[3], [0, 0])
    np.testing.assert_array_equal(record.landmarks[[0, 16]], [[10.5, 20], [26.5, 36]])
    assert record.attributes["v"][:4] == [1, 2, 2, 0]
    assert record.attributes["annotation_id"] == 100 and record.attributes["image_id"] == 1
    center, scale = crop_from_box(4, 5, 24, 35, margin=1.25)
    np.testing.assert_allclose(record.center, center)
    assert record.scale == pytest.approx(scale) == pytest.approx(1.25 * 30 / 200)
    assert record.source.endswith("person_keypoints_val2017.json:record 0")
    assert [(Path(b.path).name, b.line) for b in val.bad] == [
        ("person_keypoints_val2017.json", 3),
        ("person_keypoints_val2017.json", 4),
        ("person_keypoints_val2017.json", 5),
    ]
    assert val.bad[0].reason == "missing key 'keypoints'"
    assert "000002.jpg" in val.bad[1].reason
    assert val.bad[2].reason == "image_id 7 is not in 'images'"

    (train,) = read_dataset("coco", tmp_path, "train").records
    assert train.split == "train" and train.image == tmp_path / "train2017" / "000001.jpg"
    assert len(read_dataset("coco", tmp_path).records) == 2


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="person_keypoints_"):
        read_dataset("coco", tmp_path)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "person_keypoints_val2017.json").write_text("{not json")
    with pytest.raises(AnnotationError, match="person_keypoints_val2017.json"):
        read_dataset("coco", tmp_path)
    with pytest.raises(ValueError, match="train, val"):
        read_dataset("coco", tmp_path, "test")
