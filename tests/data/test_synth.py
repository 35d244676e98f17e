"""Synthetic data: the real on-disk formats, determinism per seed, landmarks on drawn features."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fedland.data.readers import read_dataset
from fedland.data.readers.pts import read_pts
from fedland.data.synth import SynthSummary, synthesize_faces, synthesize_poses

SIZE = 128
FACE_SUBSETS = ("afw", "helen/trainset", "lfpw/trainset", "helen/testset", "lfpw/testset", "ibug")
FACE_KEYS = {"site", "yaw", "pitch", "roll", "yaw_bucket", "expression", "occluded", "style"}
POSE_KEYS = {
    "dataset", "isValidation", "img_paths", "img_width", "img_height", "objpos",
    "scale_provided", "joint_self", "joint_others", "people_index", "annolist_index",
    "head_box", "attributes",
}  # fmt: skip


def digests(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSummary]:
    root = tmp_path_factory.mktemp("faces")
    return root, synthesize_faces(root, 40, seed=1, image_size=SIZE)


@pytest.fixture(scope="module")
def poses(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSummary]:
    root = tmp_path_factory.mktemp("poses")
    return root, synthesize_poses(root, 100, seed=1, image_size=SIZE)


@pytest.mark.parametrize("generate", [synthesize_faces, synthesize_poses])
def test_same_seed_same_bytes_other_seed_other_bytes(generate, tmp_path: Path) -> None:
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate(tmp_path / name, 8, seed=seed, image_size=64)
    first, again, other = (digests(tmp_path / name) for name in "abc")
    assert first == again
    by_file = {Path(path).name: digest for path, digest in other.items()}  # faces move subsets
    assert len(by_file) == len(first)
    assert all(by_file[Path(path).name] != digest for path, digest in first.items())


def test_a_person_depends_on_seed_and_index_only(tmp_path: Path) -> None:
    synthesize_poses(tmp_path / "few", 3, seed=5, image_size=64)
    synthesize_poses(tmp_path / "more", 7, seed=5, image_size=64)
    few, more = digests(tmp_path / "few" / "images"), digests(tmp_path / "more" / "images")
    assert len(few) == 3 and len(more) == 7
    assert all(more[name] == digest for name, digest in few.items())


@pytest.mark.parametrize("generate", [synthesize_faces, synthesize_poses])
def test_no_images_is_an_error(generate, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num"):
        generate(tmp_path, 0)


@pytest.mark.parametrize("generate", [synthesize_faces, synthesize_poses])
def test_progress_counts_up_to_num(generate, tmp_path: Path) -> None:
    seen: list[int] = []
    generate(tmp_path, 120, seed=0, image_size=32, progress=seen.append)
    assert seen == [50, 100, 120]


def test_face_tree_has_every_subset_and_split(faces: tuple[Path, SynthSummary]) -> None:
    root, summary = faces
    counts = {subset: len(list((root / subset).glob("face_*.jpg"))) for subset in FACE_SUBSETS}
    assert min(counts.values()) > 0, counts
    assert summary.count == 40
    assert summary.per_split == {
        "train": counts["afw"] + counts["helen/trainset"] + counts["lfpw/trainset"],
        "common": counts["helen/testset"] + counts["lfpw/testset"],
        "challenging": counts["ibug"],
    }
    assert summary.per_split == {"train": 32, "common": 6, "challenging": 2}
    assert summary.per_site == {
        site: sum(n for subset, n in counts.items() if subset.split("/")[0] == site)
        for site in ("afw", "helen", "lfpw", "ibug")
    }


def test_small_face_sets_keep_train_and_common(tmp_path: Path) -> None:
    summary = synthesize_faces(tmp_path, 4, image_size=32)
    assert summary.per_split["train"] > 0 and summary.per_split["common"] > 0


def test_every_face_has_68_points_inside_its_image(faces: tuple[Path, SynthSummary]) -> None:
    root, _ = faces
    images = sorted(root.rglob("*.jpg"))
    assert len(images) == 40
    for image in images:
        pixels = cv2.imread(str(image))
        assert pixels is not None and pixels.shape == (SIZE, SIZE, 3)
        points = read_pts(image.with_suffix(".pts"), expected_points=68)
        assert points.min() >= 0 and points.max() <= SIZE - 1


def test_face_attributes_describe_every_image(faces: tuple[Path, SynthSummary]) -> None:
    root, _ = faces
    attributes = json.loads((root / "fedland_attributes.json").read_text())
    images = {path.relative_to(root).as_posix() for path in root.rglob("*.jpg")}
    assert set(attributes) == images
    for name, entry in attributes.items():
        assert set(entry) == FACE_KEYS
        assert entry["site"] == name.split("/")[0]
        assert entry["yaw_bucket"] == min(int((entry["yaw"] + 90) // 36), 4)
        assert isinstance(entry["occluded"], bool) and isinstance(entry["style"], str)
        assert entry["expression"] in ("neutral", "smile", "open", "surprise")


def test_face_landmarks_sit_on_drawn_features(faces: tuple[Path, SynthSummary]) -> None:
    """The nose tip is on skin, not background; edges are stronger at the landmarks than a
    few pixels beside them."""
    root, _ = faces
    nose_contrast, on_points, beside = [], [], []
    for image in sorted(root.rglob("*.jpg")):
        pixels = cv2.imread(str(image)).astype(np.float32)
        points = read_pts(image.with_suffix(".pts"))
        x, y = np.round(points[30]).astype(int)
        nose = pixels[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3].reshape(-1, 3).mean(0)
        border = np.concatenate([pixels[:2], pixels[-2:]], axis=0).reshape(-1, 3).mean(0)
        nose_contrast.append(np.abs(nose - border).max())
        grey = pixels.mean(axis=2)
        edges = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
        shift = 0.05 * np.ptp(points, axis=0).max()

        def edge_at(where: np.ndarray, edges: np.ndarray = edges) -> float:
            index = np.clip(np.round(where).astype(int), 0, SIZE - 1)
            return float(edges[index[:, 1], index[:, 0]].mean())

        on_points.append(edge_at(points))
        beside.append(np.mean([edge_at(points + d * shift) for d in np.eye(2)]))
    assert np.median(nose_contrast) > 30
    assert np.mean(on_points) > 1.15 * np.mean(beside)


def test_poses_follow_the_mpii_json_list(poses: tuple[Path, SynthSummary]) -> None:
    root, summary = poses
    records = json.loads((root / "mpii_annotations.json").read_text())
    assert isinstance(records, list) and len(records) == 100
    assert 10 <= sum(record["isValidation"] for record in records) <= 20
    assert summary.per_split["val"] == sum(record["isValidation"] for record in records)
    for index, record in enumerate(records):
        assert set(record) >= POSE_KEYS
        assert record["dataset"] == "MPI" and record["isValidation"] in (0.0, 1.0)
        assert record["annolist_index"] == index and record["people_index"] == 0
        assert record["joint_others"] == [] and record["scale_provided"] > 0
        assert (record["img_width"], record["img_height"]) == (SIZE, SIZE)
        assert cv2.imread(str(root / "images" / record["img_paths"])).shape == (SIZE, SIZE, 3)
        joints = np.asarray(record["joint_self"], dtype=np.float64)
        assert joints.shape == (16, 3)
        missing = (joints[:, :2] == 0).all(axis=1)
        assert (joints[missing] == 0).all()
        annotated = joints[~missing]
        assert set(annotated[:, 2]) <= {0.0, 1.0}
        assert annotated[:, :2].min() >= 1 and annotated[:, :2].max() <= SIZE
        x1, y1, x2, y2 = record["head_box"]
        for joint in (8, 9):
            if not missing[joint]:
                x, y = joints[joint, :2]
                assert x1 <= x <= x2 and y1 <= y <= y2
        attributes = record["attributes"]
        assert set(attributes) == {"activity", "pose_cluster", "site", "style"}
        assert attributes["site"] in ("gym", "street", "park", "studio")


def test_poses_vary_in_activity_site_and_visibility(poses: tuple[Path, SynthSummary]) -> None:
    root, summary = poses
    records = json.loads((root / "mpii_annotations.json").read_text())
    activities = {record["attributes"]["activity"] for record in records}
    assert len(activities) >= 6
    assert len({record["attributes"]["site"] for record in records}) == 4
    flags = np.array([[joint[2] for joint in record["joint_self"]] for record in records])
    assert 0.02 < (flags == 0).mean() < 0.4
    assert sum(summary.per_site.values()) == 100


def test_readers_load_the_synthetic_faces_with_their_attributes(faces) -> None:
    """The embedded default goes through the real readers: nothing may be rejected."""
    root, _ = faces
    result = read_dataset("300w", root)
    assert not result.bad and len(result.records) == 40
    attributes = json.loads((root / "fedland_attributes.json").read_text())
    for record in result.records:
        assert record.attributes == attributes[record.image.relative_to(root).as_posix()]
        points = read_pts(record.image.with_suffix(".pts"), expected_points=68)
        np.testing.assert_array_equal(record.landmarks, points)


def test_readers_load_the_synthetic_poses_with_their_joints(poses) -> None:
    root, _ = poses
    result = read_dataset("mpii", root)
    assert not result.bad and len(result.records) == 100
    annotations = json.loads((root / "mpii_annotations.json").read_text())
    for record, annotation in zip(result.records, annotations, strict=True):
        assert record.image == root / "images" / annotation["img_paths"]
        joints = np.asarray(annotation["joint_self"], np.float32)
        annotated = ~(joints[:, :2] == 0).all(axis=1)
        np.testing.assert_array_equal(record.visible, annotated.astype(np.float32))
        np.testing.assert_allclose(record.landmarks[annotated], joints[annotated, :2] - 1)
        assert record.split == ("val" if annotation["isValidation"] else "train")


def test_regenerating_overwrites_own_files_only(tmp_path: Path) -> None:
    synthesize_faces(tmp_path, 30, seed=0, image_size=32)
    keep = tmp_path / "helen" / "trainset" / "notes.txt"
    keep.write_text("mine")
    synthesize_faces(tmp_path, 10, seed=1, image_size=32)
    attributes = json.loads((tmp_path / "fedland_attributes.json").read_text())
    images = {path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*.jpg")}
    assert set(attributes) == images and len(images) == 10
    assert len(list(tmp_path.rglob("*.pts"))) == 10
    assert keep.read_text() == "mine"
