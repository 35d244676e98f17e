"""MPII in its three formats: the original .mat, the per-person JSON list and HRNet's JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from scipy.io import savemat

from fedland.data.readers import read_dataset
from fedland.data.readers.mpii import MAT_NAME
from fedland.data.records import AnnotationError

EMPTY = np.zeros((0, 0))


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((32, 32, 3), np.uint8))


def _structs(rows: list[dict[str, Any]]) -> np.ndarray:
    """A MATLAB 1xN struct array; fields a row lacks are empty, as MATLAB stores them."""
    fields = sorted({key for row in rows for key in row})
    array = np.empty((1, len(rows)), dtype=[(field, object) for field in fields])
    for i, row in enumerate(rows):
        for field in fields:
            array[0, i][field] = row.get(field, EMPTY)
    return array


def _write_release(root: Path) -> None:
    person_a = {  # a single annorect: loads as a struct, not an array
        "x1": 11.0,
        "y1": 1.0,
        "x2": 21.0,
        "y2": 11.0,
        "scale": 0.5,
        "objpos": {"x": 16.0, "y": 20.0},
        "annopoints": {
            "point": _structs(
                [
                    {"x": 10.0, "y": 20.0, "id": 0, "is_visible": "1"},
                    {"x": 15.5, "y": 4.0, "id": 9, "is_visible": 0},
                    {"x": 30.0, "y": 40.0, "id": 12},  # is_visible empty
                ]
            )
        },
    }
    # one point: a struct; this point list has no is_visible field at all
    person_b = {
        "scale": 1.0,
        "objpos": {"x": 2.0, "y": 3.0},
        "annopoints": {"point": {"x": 5.0, "y": 6.0, "id": 15}},
    }
    unannotated = {"scale": 1.0, "objpos": {"x": 2.0, "y": 3.0}}
    annolist = _structs(
        [
            {"image": {"name": "a.jpg"}, "annorect": person_a},
            {"image": {"name": "b.jpg"}, "annorect": _structs([person_b, unannotated])},
            {"image": {"name": "gone.jpg"}, "annorect": person_a},
            {"image": {"name": "test.jpg"}, "annorect": unannotated},
        ]
    )
    act = _structs(
        [
            {"cat_name": "sports", "act_name": "curling", "act_id": 1},
            {"cat_name": EMPTY, "act_name": EMPTY, "act_id": -1},
            {"cat_name": "sports", "act_name": "curling", "act_id": 1},
            {"cat_name": EMPTY, "act_name": EMPTY, "act_id": -1},
        ]
    )
    release = {"annolist": annolist, "img_train": np.array([[1, 1, 1, 0]]), "act": act}
    savemat(root / MAT_NAME, {"RELEASE": release})
    for name in ("a.jpg", "b.jpg", "test.jpg"):
        _image(root / "images" / name)


def test_release_mat(tmp_path: Path) -> None:
    _write_release(tmp_path)
    result = read_dataset("mpii", tmp_path)
    assert len(result.records) == 2
    a, b = result.records
    assert a.image == tmp_path / "images" / "a.jpg" and a.split == "train"
    expected = np.zeros((16, 2), np.float32)
    expected[[0, 9, 12]] = [[9, 19], [14.5, 3], [29, 39]]
    np.testing.assert_array_equal(a.landmarks, expected)
    np.testing.assert_array_equal(np.flatnonzero(a.visible), [0, 9, 12])
    np.testing.assert_allclose(a.center, [15, 19 + 15 * 0.5])
    assert a.scale == pytest.approx(0.625)
    np.testing.assert_array_equal(a.head_box, [10, 0, 20, 10])
    assert a.attributes["category"] == "sports" and a.attributes["activity"] == "curling"
    assert a.attributes["visibility"][:1] == [1] and a.attributes["visibility"][9] == 0
    assert a.attributes["visibility"][12] == -1
    assert a.source.endswith(f"{MAT_NAME}:annolist(1).annorect(1)")

    np.testing.assert_array_equal(np.flatnonzero(b.visible), [15])
    np.testing.assert_array_equal(b.landmarks[15], [4, 5])
    np.testing.assert_allclose(b.center, [1, 2 + 15])
    assert b.scale == pytest.approx(1.25) and b.head_box is None
    assert "category" not in b.attributes and b.attributes["visibility"][15] == -1

    (bad,) = result.bad
    assert bad.path.endswith(MAT_NAME) and "gone.jpg" in bad.reason
    assert "annolist(3)" in bad.reason
    assert read_dataset("mpii", tmp_path, "val").records == []


def test_release_mat_without_release_struct(tmp_path: Path) -> None:
    savemat(tmp_path / MAT_NAME, {"other": np.zeros(3)})
    with pytest.raises(AnnotationError, match=MAT_NAME):
        read_dataset("mpii", tmp_path)


def _person(image: str, validation: float, **extra: Any) -> dict[str, Any]:
    joints = [[10.0 + j, 20.0 + j, 1.0] for j in range(16)]
    joints[6] = [0.0, 0.0, 0.0]
    return {
        "img_paths": image,
        "joint_self": joints,
        "objpos": [20.0, 30.0],
        "scale_provided": 2.0,
        "isValidation": validation,
        "img_width": 32,
        "img_height": 32,
        "joint_others": [],
        **extra,
    }


def test_person_json(tmp_path: Path) -> None:
    records = [
        _person("a.jpg", 0.0, attributes={"site": "gym"}, head_box=[5, 6, 15, 16]),
        _person("b.jpg", 1.0),
        {key: value for key, value in _person("a.jpg", 0.0).items() if key != "joint_self"},
        _person("gone.jpg", 1.0),
    ]
    (tmp_path / "mpii_annotations.json").write_text(json.dumps(records))
    (tmp_path / "other.json").write_text(json.dumps({"not": "mpii"}))
    _image(tmp_path / "images" / "a.jpg")
    _image(tmp_path / "images" / "b.jpg")

    result = read_dataset("mpii", tmp_path)
    assert [r.split for r in result.records] == ["train", "val"]
    a = result.records[0]
    assert a.visible[6] == 0 and a.visible.sum() == 15
    np.testing.assert_array_equal(a.landmarks[6], [0, 0])
    np.testing.assert_array_equal(a.landmarks[3], [12, 22])
    np.testing.assert_allclose(a.center, [19, 29 + 30])
    assert a.scale == pytest.approx(2.5)
    np.testing.assert_array_equal(a.head_box, [4, 5, 14, 15])
    assert a.attributes["site"] == "gym" and a.attributes["visibility"][6] == 0
    assert a.source.endswith("mpii_annotations.json:record 0")
    assert [(b.line, Path(b.path).name) for b in result.bad] == [
        (2, "mpii_annotations.json"),
        (3, "mpii_annotations.json"),
    ]
    assert "joint_self" in result.bad[0].reason and "gone.jpg" in result.bad[1].reason

    val = read_dataset("mpii", tmp_path, "val")
    assert [r.image.name for r in val.records] == ["b.jpg"]
    assert [b.line for b in val.bad] == [2, 3]  # the split of record 2 is unknown


def _hrnet(image: str, missing: int) -> dict[str, Any]:
    joints = [[5.0 + j, 6.0 + j] for j in range(16)]
    joints[missing] = [-1.0, -1.0]
    visible = [1] * 16
    visible[missing] = 0
    return {
        "image": image,
        "center": [11.0, 21.0],
        "scale": 1.0,
        "joints": joints,
        "joints_vis": visible,
    }


def _write_hrnet(root: Path, head_boxes: int = 2) -> None:
    (root / "annot").mkdir(parents=True)
    (root / "annot" / "train.json").write_text(json.dumps([_hrnet("a.jpg", 0)]))
    (root / "annot" / "valid.json").write_text(
        json.dumps([_hrnet("b.jpg", 1), _hrnet("gone.jpg", 2)])
    )
    boxes = np.zeros((2, 2, head_boxes))
    boxes[:, :, 0] = [[1, 2], [11, 12]]  # [[x1, y1], [x2, y2]] of valid record 0
    boxes[:, :, 1] = [[3, 4], [13, 14]]
    savemat(
        root / "annot" / "gt_valid.mat",
        {
            "headboxes_src": boxes,
            "jnt_missing": np.zeros((16, head_boxes)),
            "pos_gt_src": np.zeros((16, 2, head_boxes)),
        },
    )
    _image(root / "images" / "a.jpg")
    _image(root / "images" / "b.jpg")


def test_hrnet_json(tmp_path: Path) -> None:
    _write_hrnet(tmp_path)
    result = read_dataset("mpii", tmp_path)
    train, val = result.records
    assert (train.split, val.split) == ("train", "val")
    assert train.visible[0] == 0 and val.visible[1] == 0 and val.visible.sum() == 15
    np.testing.assert_array_equal(train.landmarks[:2], [[0, 0], [5, 6]])
    np.testing.assert_allclose(train.center, [10, 20 + 15])
    assert train.scale == pytest.approx(1.25) and train.head_box is None
    np.testing.assert_array_equal(val.head_box, [0, 1, 10, 11])
    (bad,) = result.bad
    assert Path(bad.path).name == "valid.json" and bad.line == 1 and "gone.jpg" in bad.reason
    assert [r.split for r in read_dataset("mpii", tmp_path, "train").records] == ["train"]


def test_hrnet_head_boxes_must_match_records(tmp_path: Path) -> None:
    _write_hrnet(tmp_path, head_boxes=3)
    with pytest.raises(AnnotationError, match="gt_valid.mat"):
        read_dataset("mpii", tmp_path)


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="no MPII annotation"):
        read_dataset("mpii", tmp_path)
    with pytest.raises(AnnotationError, match="does not exist"):
        read_dataset("mpii", tmp_path / "missing")
    with pytest.raises(ValueError, match="train, val"):
        read_dataset("mpii", tmp_path, "test")
    with pytest.raises(ValueError, match="mpii, lsp, 300w, wflw, coco"):
        read_dataset("h36m", tmp_path)
