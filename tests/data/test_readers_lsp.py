"""LSP (3x14xN, inverted flag) and LSP-extended (14x3xN) from joints.mat."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.io import savemat

from fedland.data.readers import read_dataset
from fedland.data.records import AnnotationError, crop_from_landmarks


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((32, 32, 3), np.uint8))


def _xy(count: int) -> np.ndarray:
    """Distinct 1-based coordinates [count, 14, 2]."""
    grid = np.arange(count * 14 * 2, dtype=np.float64).reshape(count, 14, 2)
    return 1.0 + grid % 97


def test_lsp(tmp_path: Path) -> None:
    xy = _xy(1002)
    flag = np.zeros((1002, 14))
    flag[0, 3] = 1  # occluded, still annotated
    xy[1, 2, 0] = np.nan
    joints = np.concatenate([xy, flag[..., None]], axis=2).transpose(2, 1, 0)  # 3 x 14 x 1002
    savemat(tmp_path / "joints.mat", {"joints": joints})
    for number in (1, 2, 1001):
        _image(tmp_path / "images" / f"im{number:04d}.jpg")

    train = read_dataset("lsp", tmp_path, "train")
    (first,) = train.records
    assert first.image == tmp_path / "images" / "im0001.jpg" and first.subset == "lsp"
    np.testing.assert_array_equal(first.landmarks, xy[0] - 1)
    np.testing.assert_array_equal(first.visible, np.ones(14))
    assert first.attributes["visibility"][3] == 0 and sum(first.attributes["visibility"]) == 13
    center, scale = crop_from_landmarks(xy[0] - 1, np.ones(14), margin=1.25)
    np.testing.assert_allclose(first.center, center)
    assert first.scale == pytest.approx(scale)
    assert len(train.bad) == 999  # image 2 non-finite, 3..1000 missing
    assert "image 2: non-finite" in train.bad[0].reason and train.bad[0].path.endswith("joints.mat")
    assert "im0003.jpg" in train.bad[1].reason

    test = read_dataset("lsp", tmp_path, "test")
    assert [(r.image.name, r.split) for r in test.records] == [("im1001.jpg", "test")]
    assert len(test.bad) == 1 and "im1002.jpg" in test.bad[0].reason


def test_lsp_extended(tmp_path: Path) -> None:
    xy = _xy(3)
    visibility = np.ones((3, 14))
    visibility[1, 4] = 0  # invisible, positive coordinates: kept as annotated
    visibility[1, 5] = 0
    xy[1, 5] = 0  # invisible at (0, 0): not annotated
    joints = np.concatenate([xy, visibility[..., None]], axis=2).transpose(1, 2, 0)  # 14x3x3
    savemat(tmp_path / "joints.mat", {"joints": joints})
    _image(tmp_path / "images" / "im00001.jpg")
    _image(tmp_path / "images" / "im00002.jpg")

    result = read_dataset("lsp", tmp_path)
    assert [(r.image.name, r.split, r.subset) for r in result.records] == [
        ("im00001.jpg", "train", "lspet"),
        ("im00002.jpg", "train", "lspet"),
    ]
    second = result.records[1]
    assert second.visible[4] == 1 and second.visible[5] == 0 and second.visible.sum() == 13
    np.testing.assert_array_equal(second.landmarks[4], xy[1, 4] - 1)
    np.testing.assert_array_equal(second.landmarks[5], [0, 0])
    assert second.attributes["visibility"][4:6] == [0, 0]
    center, _ = crop_from_landmarks(xy[1] - 1, second.visible, margin=1.25)
    np.testing.assert_allclose(second.center, center)
    (bad,) = result.bad
    assert "im00003.jpg" in bad.reason
    assert read_dataset("lsp", tmp_path, "test").records == []


def test_wrong_shape_raises(tmp_path: Path) -> None:
    savemat(tmp_path / "joints.mat", {"joints": np.zeros((2, 14, 5))})
    with pytest.raises(AnnotationError, match=r"joints\.mat.*2x14x5.*3x14xN") as error:
        read_dataset("lsp", tmp_path)
    assert error.value.path.endswith("joints.mat")


def test_missing_annotation(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="no joints.mat"):
        read_dataset("lsp", tmp_path)
    with pytest.raises(ValueError, match="train, test"):
        read_dataset("lsp", tmp_path, "val")
