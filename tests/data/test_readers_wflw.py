"""WFLW: 207-field lines, 0-based coordinates, box crop, attributes and bad lines."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fedland.data.readers import read_dataset
from fedland.data.readers.wflw import LIST_FOLDER
from fedland.data.records import AnnotationError, crop_from_box

POINTS = np.random.default_rng(0).uniform(10, 60, size=(98, 2)).round(3)


def _line(image: str, attributes: str = "1 0 0 1 0 1", box: str = "8 9 62 70") -> str:
    return " ".join(f"{v:.3f}" for v in POINTS.ravel()) + f" {box} {attributes} {image}"


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((32, 32, 3), np.uint8))


def test_lists_in_annotation_folder(tmp_path: Path) -> None:
    folder = tmp_path / LIST_FOLDER
    folder.mkdir(parents=True)
    train = [
        _line("51--Dresses/a.jpg"),
        " ".join(["1"] * 199) + " 51--Dresses/a.jpg",  # 200 fields
        "",
        _line("0--Parade/gone.jpg"),
    ]
    (folder / "list_98pt_rect_attr_train.txt").write_text("\n".join(train) + "\n")
    (folder / "list_98pt_rect_attr_test.txt").write_text(_line("2--Demo/b.jpg", "0 1 1 0 1 0"))
    _image(tmp_path / "WFLW_images" / "51--Dresses" / "a.jpg")
    _image(tmp_path / "WFLW_images" / "2--Demo" / "b.jpg")

    result = read_dataset("wflw", tmp_path, "train")
    (record,) = result.records
    assert record.image == tmp_path / "WFLW_images" / "51--Dresses" / "a.jpg"
    np.testing.assert_allclose(record.landmarks, POINTS, atol=1e-4)
    np.testing.assert_array_equal(record.visible, np.ones(98))
    center, scale = crop_from_box(8, 9, 62, 70, margin=1.25)
    np.testing.assert_allclose(record.center, center)
    assert record.scale == pytest.approx(scale) == pytest.approx(1.25 * 61 / 200)
    assert (record.split, record.subset) == ("train", "51--Dresses")
    assert record.attributes == {
        "pose": 1,
        "expression": 0,
        "illumination": 0,
        "make_up": 1,
        "occlusion": 0,
        "blur": 1,
    }
    assert record.source.endswith("list_98pt_rect_attr_train.txt:1")
    assert [(Path(b.path).name, b.line) for b in result.bad] == [
        ("list_98pt_rect_attr_train.txt", 2),
        ("list_98pt_rect_attr_train.txt", 4),
    ]
    assert "200 fields" in result.bad[0].reason and "gone.jpg" in result.bad[1].reason

    (test,) = read_dataset("wflw", tmp_path, "test").records
    assert (test.split, test.subset, test.attributes["expression"]) == ("test", "2--Demo", 1)
    assert len(read_dataset("wflw", tmp_path).records) == 2


def test_list_in_root(tmp_path: Path) -> None:
    (tmp_path / "list_98pt_rect_attr_test.txt").write_text(_line("2--Demo/b.jpg") + "\n")
    _image(tmp_path / "WFLW_images" / "2--Demo" / "b.jpg")
    result = read_dataset("wflw", tmp_path)
    assert [r.split for r in result.records] == ["test"] and result.bad == []
    assert read_dataset("wflw", tmp_path, "train").records == []


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="list_98pt_rect_attr"):
        read_dataset("wflw", tmp_path)
    with pytest.raises(ValueError, match="train, test"):
        read_dataset("wflw", tmp_path, "val")
