"""PyTorch dataset of landmark crops with heatmap targets, and its data loader."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fedland.data.heatmaps import HeatmapCodec
from fedland.data.meta import DatasetMeta
from fedland.data.records import AnnotationError, Record
from fedland.data.transforms import (
    Augmentation,
    apply_affine,
    crop_matrix,
    flip_landmarks,
    invert_affine,
    warp,
)


def load_image(path: Path) -> np.ndarray:
    """RGB uint8 image; an unreadable file is an error naming it."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise AnnotationError(path, "cannot read image (missing or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class LandmarkDataset(Dataset):
    """Crops around each record, optionally augmented, with Gaussian heatmap targets.

    Each item holds `image` [3, S, S] in [0, 1], `target` [J, S/4, S/4], `target_weight` [J],
    `index` (into `records`) and `inverse` [2, 3], the affine map from heatmap pixels back to
    original image pixels (so predictions can be evaluated where the annotations live).
    """

    def __init__(
        self,
        records: Sequence[Record],
        meta: DatasetMeta,
        input_size: int,
        codec: HeatmapCodec,
        augmentation: Augmentation | None = None,
        seed: int = 0,
    ) -> None:
        if codec.input_size != input_size:
            raise ValueError(
                f"heatmaps of {codec.size} px cover {codec.input_size} px, not {input_size}"
            )
        self.records = list(records)
        self.meta = meta
        self.input_size = input_size
        self.codec = codec
        self.augmentation = augmentation
        self.seed = seed
        self.epoch = 0
        self.flip_permutation = meta.flip_permutation  # partners swapped by a flip

    def set_epoch(self, epoch: int) -> None:
        """Draw different augmentations each epoch, reproducibly."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        record = self.records[index]
        image = load_image(record.image)
        scale, rotation, flip = record.scale, 0.0, False
        gain = np.ones(3, dtype=np.float32)
        if self.augmentation is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            factor, rotation, flip, gain = self.augmentation.sample(rng)
            scale *= factor
        size = self.input_size
        crop = warp(image, crop_matrix(record.center, scale, size, rotation, flip), size)
        to_heatmap = crop_matrix(record.center, scale, self.codec.size, rotation, flip)
        points = apply_affine(to_heatmap, record.landmarks)
        visible = record.visible
        if flip:
            points, visible = flip_landmarks(points, visible, self.flip_permutation)
        target, weight = self.codec.encode(points, visible)
        pixels = torch.from_numpy(crop).permute(2, 0, 1).float().div_(255.0)
        if not np.allclose(gain, 1.0):
            pixels = (pixels * torch.from_numpy(gain)[:, None, None]).clamp_(0.0, 1.0)
        return {
            "image": pixels,
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(weight),
            "index": index,
            "inverse": torch.from_numpy(invert_affine(to_heatmap).astype(np.float32)),
        }


def _init_worker(_: int) -> None:
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def make_loader(
    dataset: LandmarkDataset, batch_size: int, training: bool, workers: int, seed: int = 0
) -> DataLoader:
    """Batches with worker processes (0 = in the main process). Training batches are
    shuffled and the last incomplete one is dropped: BatchNorm cannot train on a single
    sample at the 1x1 neck of a small input."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=training,
        num_workers=workers,
        worker_init_fn=_init_worker if workers else None,
        generator=generator,
        drop_last=training and len(dataset) > batch_size,
        persistent_workers=False,
    )
