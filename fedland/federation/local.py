"""A client's local work in one round: train the quantized DU-Net on its own partition."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass

import torch

from fedland.config import ExperimentConfig
from fedland.data.dataset import make_loader
from fedland.federation.client_data import node_dataset
from fedland.federation.settings import NodeSettings
from fedland.federation.weights import Weights, float_state, load_float_state
from fedland.seeds import derive_seed
from fedland.task import task_model
from fedland.train import make_optimizer, resolve_device, train_epoch


@dataclass
class LocalResult:
    weights: Weights
    num_examples: int  # the partition size: FedAvg's weight
    images: int  # images actually trained on this round
    loss: float
    seconds: float
    peak_memory_mb: float
    device: str


def train_locally(
    config: ExperimentConfig, node: NodeSettings, weights: Weights, server_round: int
) -> LocalResult:
    """`federation.local_epochs` passes over the node's data (at most `local_batches`
    batches each), starting from `weights`; a fresh RMSprop state every round, its learning
    rate multiplied by `train.lr_factor` after each of `federation.lr_milestones`."""
    started = time.perf_counter()
    # As many threads as the client has CPUs: more would oversubscribe the cores that the
    # Simulation Engine shares among clients running at once.
    torch.set_num_threads(max(1, round(config.federation.client_cpus)))
    dataset = node_dataset(config, node)
    device = resolve_device(config.train.device)
    seed = derive_seed(config.train.seed, "local-training", server_round, node.partition_id)
    torch.manual_seed(seed)
    model = task_model(config, dataset.meta)
    load_float_state(model, weights)
    model.to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    settings = config.train
    federation = config.federation
    decays = sum(milestone < server_round for milestone in federation.lr_milestones)
    lr = settings.lr * settings.lr_factor**decays
    optimizer = make_optimizer(
        model, lr, settings.rmsprop_alpha, settings.rmsprop_eps, settings.weight_decay
    )
    batch = min(settings.batch_size, len(dataset))
    loader = make_loader(dataset, batch, True, config.data.workers, seed)
    loss_sum, images = 0.0, 0
    for epoch in range(federation.local_epochs):
        dataset.set_epoch(server_round * federation.local_epochs + epoch)
        stats = train_epoch(model, loader, optimizer, device, max_batches=federation.local_batches)
        loss_sum += stats.loss * stats.images
        images += stats.images
    return LocalResult(
        weights=float_state(model),
        num_examples=len(dataset),
        images=images,
        loss=loss_sum / max(images, 1),
        seconds=time.perf_counter() - started,
        peak_memory_mb=_peak_memory_mb(device),
        device=str(device),
    )


def _peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory of this round on a GPU; the process's peak resident memory on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
