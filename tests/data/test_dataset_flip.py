"""A flipped dataset item is the mirrored unflipped item with left and right swapped."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from fedland.data.dataset import LandmarkDataset
from fedland.data.heatmaps import HeatmapCodec
from fedland.data.meta import MPII
from fedland.data.records import Record
from fedland.data.transforms import NO_AUGMENTATION, Augmentation

ALWAYS_FLIP = dataclasses.replace(NO_AUGMENTATION, flip_probability=1.0)  # and nothing else
MISSING = (0, 10)  # right ankle and right wrist; their left partners are annotated


@pytest.fixture
def record(tmp_path: Path) -> Record:
    rng = np.random.default_rng(3)
    path = tmp_path / "person.png"
    cv2.imwrite(str(path), rng.integers(0, 256, (120, 100, 3), dtype=np.uint8))
    center = np.array([50.3, 61.7], np.float32)
    visible = np.ones(16, np.float32)
    visible[list(MISSING)] = 0
    return Record(
        image=path,
        landmarks=center + rng.uniform(-30, 30, (16, 2)),
        visible=visible,
        center=center,
        scale=0.41,
        split="train",
    )


def _item(record: Record, augmentation: Augmentation) -> dict:
    dataset = LandmarkDataset([record], MPII, 64, HeatmapCodec(16, sigma=1.0), augmentation)
    return dataset[0]


def test_flipped_image_is_the_mirrored_crop(record: Record) -> None:
    plain, flipped = _item(record, NO_AUGMENTATION), _item(record, ALWAYS_FLIP)
    mirrored = plain["image"].flip(dims=[2])
    # OpenCV's fixed-point resampling may round a mirrored pixel one grey level apart.
    np.testing.assert_allclose(flipped["image"], mirrored, rtol=0, atol=1 / 255 + 1e-6)


def test_flipped_targets_are_mirrored_with_left_and_right_channels_swapped(
    record: Record,
) -> None:
    plain, flipped = _item(record, NO_AUGMENTATION), _item(record, ALWAYS_FLIP)
    perm = MPII.flip_permutation
    expected = plain["target"].numpy()[perm][:, :, ::-1]
    assert plain["target_weight"].sum() == 14  # every annotated joint lies in the crop
    np.testing.assert_allclose(flipped["target"].numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(flipped["target_weight"], plain["target_weight"][perm])
    assert flipped["target_weight"][[5, 15]].tolist() == [0.0, 0.0]  # now left ankle, wrist


def test_flipped_inverse_maps_flipped_targets_back_onto_the_annotations(
    record: Record,
) -> None:
    flipped = _item(record, ALWAYS_FLIP)
    inverse = flipped["inverse"].numpy().astype(np.float64)
    heatmap_points = np.stack(
        [np.unravel_index(m.argmax(), m.shape)[::-1] for m in flipped["target"].numpy()]
    )
    back = heatmap_points @ inverse[:, :2].T + inverse[:, 2]
    annotated = record.visible[MPII.flip_permutation] > 0
    pixel = 200 * 0.41 / 16  # one heatmap pixel in image pixels
    error = np.abs(back - record.landmarks[MPII.flip_permutation])[annotated]
    assert error.max() <= 0.5 * pixel + 1e-3
