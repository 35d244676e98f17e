"""300-W: `.pts` beside images in the published folders, splits, sites and bad files."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fedland.data.readers import read_dataset
from fedland.data.records import AnnotationError, crop_from_landmarks


def _points(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(2, 30, size=(68, 2)).round(2).astype(np.float32)


def _face(root: Path, relative: str, seed: int = 0, image: bool = True) -> np.ndarray:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if image:
        cv2.imwrite(str(path), np.zeros((32, 32, 3), np.uint8))
    points = _points(seed)  # 1-based, as on disk
    body = "".join(f"{x:.2f} {y:.2f}\n" for x, y in points)
    path.with_suffix(".pts").write_text(f"version: 1\nn_points:  68\n{{\n{body}}}")
    return points


def _tree(root: Path) -> dict[str, np.ndarray]:
    faces = {
        "afw/a1.jpg": 1,
        "helen/trainset/h1.jpg": 2,
        "helen/testset/h2.png": 3,
        "lfpw/testset/l1.jpeg": 4,
        "ibug/i1.jpg": 5,
        "300W/01_Indoor/indoor_001.png": 6,
    }
    points = {name: _face(root, name, seed) for name, seed in faces.items()}
    _face(root, "afw/noimage.jpg", image=False)
    sixty_seven = root / "helen/trainset/bad67.pts"
    sixty_seven.write_text("version: 1\nn_points:  67\n{\n" + "1 2\n" * 67 + "}\n")
    cv2.imwrite(str(sixty_seven.with_suffix(".jpg")), np.zeros((32, 32, 3), np.uint8))
    _face(root, "lfpw/trainset/nobrace.png")
    nobrace = root / "lfpw/trainset/nobrace.pts"
    nobrace.write_text(nobrace.read_text().rstrip("}"))
    (root / "fedland_attributes.json").write_text(
        json.dumps({"helen/trainset/h1.jpg": {"site": "clinic", "age": 30}})
    )
    return points


def test_train_split(tmp_path: Path) -> None:
    points = _tree(tmp_path)
    result = read_dataset("300w", tmp_path, "train")
    assert [r.image.relative_to(tmp_path).as_posix() for r in result.records] == [
        "afw/a1.jpg",
        "helen/trainset/h1.jpg",
    ]
    afw, helen = result.records
    np.testing.assert_allclose(afw.landmarks, points["afw/a1.jpg"] - 1, atol=1e-3)
    np.testing.assert_array_equal(afw.visible, np.ones(68))
    center, scale = crop_from_landmarks(afw.landmarks, afw.visible, margin=1.25)
    np.testing.assert_allclose(afw.center, center)
    assert afw.scale == pytest.approx(scale)
    assert (afw.split, afw.subset, afw.attributes) == ("train", "afw", {"site": "afw"})
    assert helen.subset == "helen/trainset"
    assert helen.attributes == {"site": "clinic", "age": 30}
    assert helen.source.endswith("h1.pts")

    bad = {Path(b.path).name: b for b in result.bad}
    assert set(bad) == {"noimage.pts", "bad67.pts", "nobrace.pts"}
    assert bad["noimage.pts"].reason == "missing image (.jpg, .png or .jpeg)"
    assert bad["bad67.pts"].reason == "expected 68 points, file has 67"
    assert bad["nobrace.pts"].reason == "no closing '}'" and bad["nobrace.pts"].line == 3 + 68


def test_test_and_full_splits(tmp_path: Path) -> None:
    _tree(tmp_path)
    full = read_dataset("300w", tmp_path, "full")
    assert [(r.subset, r.split) for r in full.records] == [
        ("helen/testset", "common"),
        ("ibug", "challenging"),
        ("lfpw/testset", "common"),
    ]
    assert full.bad == []
    assert [r.attributes["site"] for r in full.records] == ["helen", "ibug", "lfpw"]
    (test,) = read_dataset("300w", tmp_path, "test").records
    assert (test.subset, test.attributes["site"]) == ("300W/01_Indoor", "300W")
    everything = read_dataset("300w", tmp_path)
    assert len(everything.records) == 6 and len(everything.bad) == 3
    sources = [r.source for r in everything.records]
    assert sources == sorted(sources)


def test_errors(tmp_path: Path) -> None:
    (tmp_path / "afw").mkdir()
    with pytest.raises(AnnotationError, match="no .pts file"):
        read_dataset("300w", tmp_path)
    with pytest.raises(ValueError, match="train, common, challenging, full, test"):
        read_dataset("300w", tmp_path, "val")
    _face(tmp_path, "afw/a1.jpg")
    (tmp_path / "fedland_attributes.json").write_text("[1, 2]")
    with pytest.raises(AnnotationError, match="fedland_attributes.json"):
        read_dataset("300w", tmp_path)
