"""A node's share of the training data.

Every node reads the same training split and partitions it with the run's seed, so the
partitions agree across nodes and with the statistics the server saves, without any node
seeing another's indices. A node config with a `data-path` points the node at its own data
instead (deployment): then the node trains on all of it.
"""

from __future__ import annotations

import dataclasses
import functools

from fedland.config import ExperimentConfig, dump_config
from fedland.data.dataset import LandmarkDataset
from fedland.data.records import Record
from fedland.data.sources import load_split
from fedland.federation.attack import attacks, poison
from fedland.federation.partition import partition_records
from fedland.federation.settings import NodeSettings, experiment_from_text
from fedland.seeds import derive_seed
from fedland.task import training_dataset


def node_experiment(config: ExperimentConfig, node: NodeSettings) -> ExperimentConfig:
    """The run's experiment with this node's own settings applied."""
    data = config.data
    if node.data_path is not None:
        data = dataclasses.replace(data, root=node.data_path, dataset=node.dataset or data.dataset)
    train = config.train
    if node.device is not None:
        train = dataclasses.replace(train, device=node.device)
    if node.batch_size is not None:
        train = dataclasses.replace(train, batch_size=node.batch_size)
    model = config.model
    if node.memory_efficient is not None:
        model = dataclasses.replace(model, memory_efficient=node.memory_efficient)
    return dataclasses.replace(config, data=data, train=train, model=model)


def partitions(records: list[Record], config: ExperimentConfig, count: int) -> list[list[int]]:
    section = dataclasses.asdict(config.partition)
    section.pop("num_partitions")
    return partition_records(records, num_partitions=count, **section)


def node_dataset(config: ExperimentConfig, node: NodeSettings) -> LandmarkDataset:
    """The augmented training dataset of this node (cached per process: Simulation Engine
    actors serve many rounds and nodes)."""
    return _cached(dump_config(config), node)


@functools.lru_cache(maxsize=8)
def _cached(text: str, node: NodeSettings) -> LandmarkDataset:
    config = experiment_from_text(text)
    records, _, meta = load_split(config.data, config.data.train_split)
    if node.data_path is None:
        indices = partitions(records, config, node.num_partitions)[node.partition_id]
        records = [records[i] for i in indices]
    seed = derive_seed(config.train.seed, "augmentation", node.partition_id)
    dataset = training_dataset(config, records, meta, seed)
    if config.attack.kind == "mirror" and attacks(config, node.partition_id):
        poison(dataset)
    return dataset
