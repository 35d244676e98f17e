"""The task that centralized training, the ClientApp and the ServerApp share: the model of
an experiment, its data (train and evaluation sets, augmentation), the heatmap codec, and the
evaluation of a model on a dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fedland.config import ExperimentConfig
from fedland.data.dataset import LandmarkDataset, make_loader
from fedland.data.heatmaps import HeatmapCodec
from fedland.data.meta import DatasetMeta, dataset_meta
from fedland.data.records import Record
from fedland.data.sources import eval_split, load_split
from fedland.data.transforms import Augmentation
from fedland.evaluation import evaluate_predictions
from fedland.model import DUNet
from fedland.train import predict


def task_model(config: ExperimentConfig, meta: DatasetMeta) -> DUNet:
    """The experiment's DU-Net for the dataset's landmarks."""
    return DUNet(config.model.build(meta.num_landmarks))


@dataclass
class TaskData:
    meta: DatasetMeta
    train: LandmarkDataset
    evaluation: LandmarkDataset
    codec: HeatmapCodec


def heatmap_codec(config: ExperimentConfig) -> HeatmapCodec:
    """The task's heatmap codec: the model's input size, the data's sigma and decoding."""
    return HeatmapCodec.for_input(config.model.input_size, config.data.sigma, config.data.dark)


def build_data(config: ExperimentConfig, progress: bool = False) -> TaskData:
    """Train (augmented) and evaluation datasets of the configured task."""
    data = config.data
    train_records, _, meta = load_split(data, data.train_split, progress)
    return TaskData(
        meta=meta,
        train=training_dataset(config, train_records, meta, config.train.seed),
        evaluation=evaluation_dataset(config, meta, progress),
        codec=heatmap_codec(config),
    )


def evaluation_dataset(
    config: ExperimentConfig, meta: DatasetMeta, progress: bool = False
) -> LandmarkDataset:
    """The evaluation split, unaugmented: what centralized training and the server score."""
    records, _, _ = load_split(config.data, eval_split(config.data), progress)
    return LandmarkDataset(records, meta, config.model.input_size, heatmap_codec(config))


def training_dataset(
    config: ExperimentConfig, records: list[Record], meta: DatasetMeta, seed: int
) -> LandmarkDataset:
    """Augmented training samples of `records` (all of a split, or one node's share)."""
    augmentation = make_augmentation(config, meta)
    return LandmarkDataset(
        records, meta, config.model.input_size, heatmap_codec(config), augmentation, seed
    )


def make_augmentation(config: ExperimentConfig, meta: DatasetMeta) -> Augmentation:
    """The configured training augmentation; flipping defaults to on for poses only."""
    augment = config.data.augment
    flip = augment.flip_probability
    if flip is None:
        flip = 0.5 if meta.task == "pose" else 0.0
    return Augmentation(
        scale_sigma=augment.scale_sigma,
        rotation_sigma=augment.rotation_sigma,
        rotation_off_probability=augment.rotation_off_probability,
        flip_probability=flip,
        colour_gain=(augment.colour_gain[0], augment.colour_gain[-1]),
    )


def flip_test_enabled(config: ExperimentConfig, meta: DatasetMeta) -> bool:
    flag = config.train.flip_test
    return meta.task == "pose" if flag is None else flag


def task_card(config: ExperimentConfig) -> dict:
    """What a model file needs to be used on images without its experiment: the dataset
    whose landmarks it predicts, how its heatmaps are decoded, whether it is flip-tested.
    Packed and ONNX files carry it; `fedland predict` reads it."""
    meta = dataset_meta(config.data.dataset)
    return {
        "dataset": config.data.dataset,
        "sigma": config.data.sigma,
        "dark": config.data.dark,
        "flip_test": flip_test_enabled(config, meta),
    }


def evaluate_model(
    model: DUNet,
    dataset: LandmarkDataset,
    codec: HeatmapCodec,
    device: torch.device,
    batch_size: int,
    workers: int,
    flip_test: bool,
) -> dict:
    loader = make_loader(dataset, batch_size, training=False, workers=workers)
    permutation = dataset.meta.flip_permutation if flip_test else None
    points, scores, indices = predict(model, loader, codec, device, permutation)
    return evaluate_predictions(dataset.meta, dataset.records, points, indices, scores)
