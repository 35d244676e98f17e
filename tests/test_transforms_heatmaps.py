import numpy as np
import pytest
import torch

from fedland.data.heatmaps import HeatmapCodec, flip_back
from fedland.data.meta import MPII
from fedland.data.transforms import (
    Augmentation,
    apply_affine,
    crop_matrix,
    flip_landmarks,
    invert_affine,
    warp,
)


def test_crop_edges_land_on_the_outer_pixel_edges():
    matrix = crop_matrix(np.array([100.0, 50.0]), scale=0.5, size=64)  # side 100 px
    corners = apply_affine(matrix, np.array([[50.0, 0.0], [150.0, 100.0], [100.0, 50.0]]))
    np.testing.assert_allclose(corners, [[-0.5, -0.5], [63.5, 63.5], [31.5, 31.5]], atol=1e-5)


@pytest.mark.parametrize("rotation", [0.0, 25.0, -60.0])
@pytest.mark.parametrize("flip", [False, True])
def test_encode_decode_inverse_transform_round_trip(rotation, flip):
    rng = np.random.default_rng(1)
    center = np.array([300.0, 220.0])
    points = center + rng.uniform(-60, 60, size=(16, 2))
    matrix = crop_matrix(center, scale=0.8, size=64, rotation=rotation, flip=flip)
    codec = HeatmapCodec(64, sigma=2.0, dark=True)
    heatmaps, weights = codec.encode(apply_affine(matrix, points), np.ones(16))
    assert weights.all()
    decoded, _ = codec.decode(torch.from_numpy(heatmaps)[None])
    back = apply_affine(invert_affine(matrix), decoded[0].numpy())
    pixel = 200 * 0.8 / 64  # one heatmap pixel in image pixels
    assert np.abs(back - points).max() < 0.2 * pixel


def test_quarter_pixel_decoding_error_is_below_a_quarter_pixel():
    codec = HeatmapCodec(32, sigma=1.5)
    rng = np.random.default_rng(0)
    points = rng.uniform(2, 29, size=(50, 2)).astype(np.float32)
    heatmaps, _ = codec.encode(points, np.ones(50))
    decoded, maxvals = codec.decode(torch.from_numpy(heatmaps)[None])
    assert np.abs(decoded[0].numpy() - points).max() <= 0.25 + 1e-6
    assert torch.all(maxvals > 0.5)


def test_targets_are_unnormalised_truncated_gaussians_with_zero_weight_when_unusable():
    codec = HeatmapCodec(16, sigma=1.0)
    points = np.array([[5.0, 7.0], [40.0, 3.0], [8.0, 8.0]], np.float32)
    heatmaps, weights = codec.encode(points, np.array([1, 1, 0]))
    assert heatmaps[0, 7, 5] == pytest.approx(1.0)
    assert heatmaps[0, 7, 9] == 0.0  # beyond 3 sigma
    assert heatmaps[0, 7, 7] == pytest.approx(np.exp(-2.0))
    assert weights.tolist() == [1.0, 0.0, 0.0]
    assert not heatmaps[1].any() and not heatmaps[2].any()


def test_flip_landmarks_swaps_points_and_flags_of_partners_and_keeps_the_midline():
    points = np.arange(32, dtype=np.float32).reshape(16, 2)
    visible = np.arange(16, dtype=np.float32)
    flipped_points, flipped_visible = flip_landmarks(points, visible, MPII.flip_permutation)
    np.testing.assert_array_equal(flipped_points[[0, 5]], points[[5, 0]])  # ankles
    np.testing.assert_array_equal(flipped_points[[12, 13]], points[[13, 12]])  # shoulders
    assert flipped_visible[[0, 5, 12, 13]].tolist() == [5, 0, 13, 12]
    midline = [6, 7, 8, 9]  # pelvis, thorax, upper neck, head top
    np.testing.assert_array_equal(flipped_points[midline], points[midline])
    np.testing.assert_array_equal(flipped_visible[midline], visible[midline])


def test_flipping_landmarks_twice_is_the_identity():
    points = np.arange(32, dtype=np.float32).reshape(16, 2)
    visible = np.arange(16, dtype=np.float32)
    perm = MPII.flip_permutation
    twice = flip_landmarks(*flip_landmarks(points, visible, perm), perm)
    np.testing.assert_array_equal(twice[0], points)
    np.testing.assert_array_equal(twice[1], visible)


def test_flipped_crop_mirrors_the_image_exactly():
    image = np.random.default_rng(0).integers(0, 255, (80, 80, 3), dtype=np.uint8)
    center = np.array([39.5, 39.5])
    plain = warp(image, crop_matrix(center, 0.4, 80), 80)
    mirrored = warp(image, crop_matrix(center, 0.4, 80, flip=True), 80)
    np.testing.assert_array_equal(mirrored, plain[:, ::-1])


def test_flip_back_aligns_heatmaps_of_a_flipped_image():
    codec = HeatmapCodec(16, sigma=1.0)
    points = np.random.default_rng(2).uniform(2, 13, (16, 2)).astype(np.float32)
    maps, _ = codec.encode(points, np.ones(16))
    mirrored_points = np.stack([15 - points[:, 0], points[:, 1]], 1)[MPII.flip_permutation]
    mirrored, _ = codec.encode(mirrored_points, np.ones(16))
    restored = flip_back(torch.from_numpy(mirrored)[None], MPII.flip_permutation)
    np.testing.assert_allclose(restored[0].numpy(), maps, atol=1e-6)


def test_augmentation_follows_the_recipe_limits():
    rng = np.random.default_rng(0)
    draws = [Augmentation().sample(rng) for _ in range(3000)]
    factors = np.array([d[0] for d in draws])
    rotations = np.array([d[1] for d in draws])
    assert factors.min() >= 2**-0.5 - 1e-9 and factors.max() <= 2**0.5 + 1e-9
    assert np.abs(rotations).max() <= 60
    assert 0.55 < np.mean(rotations == 0) < 0.7
    assert 0.45 < np.mean([d[2] for d in draws]) < 0.55
    gains = np.stack([d[3] for d in draws])
    assert gains.min() >= 0.6 and gains.max() <= 1.4


def test_bad_codec_settings_are_rejected():
    with pytest.raises(ValueError, match="sigma must be > 0"):
        HeatmapCodec(16, sigma=0)
    with pytest.raises(ValueError, match="heatmap size must be >= 2"):
        HeatmapCodec(1)


def test_the_codec_owns_the_stride_between_input_and_heatmap_pixels():
    codec = HeatmapCodec.for_input(256, sigma=1.5)
    assert (codec.size, codec.input_size) == (64, 256)
    # pixel centres at integers: heatmap pixel 0 covers input pixels 0..3, centre 1.5
    assert codec.to_input_pixels(np.array([[0.0, 63.0]])).tolist() == [[1.5, 253.5]]
    with pytest.raises(ValueError, match="input size 250 is not a multiple of 4"):
        HeatmapCodec.for_input(250)
