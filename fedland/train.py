"""One local training and evaluation loop, shared by centralized and federated training."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from fedland.data.heatmaps import HeatmapCodec, flip_back
from fedland.model import DUNet, heatmap_loss


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when present; an unavailable device is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available here")
    return device


def make_optimizer(
    model: DUNet, lr: float, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """RMSprop, as in the DU-Net recipe (lr 2.5e-4, alpha 0.99, eps 1e-8)."""
    return torch.optim.RMSprop(
        model.parameters(), lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay
    )


@dataclass
class EpochStats:
    loss: float
    images: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


def train_epoch(
    model: DUNet,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    progress=None,
    max_batches: int | None = None,
) -> EpochStats:
    """One pass over `loader` (or its first `max_batches`); `progress(n)` after each batch."""
    model.train()
    start = time.perf_counter()
    total_loss, images = 0.0, 0
    for number, batch in enumerate(loader):
        if max_batches is not None and number >= max_batches:
            break
        inputs = batch["image"].to(device, non_blocking=True)
        target = batch["target"].to(device, non_blocking=True)
        weight = batch["target_weight"].to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with model.saved_tensor_store():
            outputs = model(inputs)
        loss = heatmap_loss(outputs, target, weight)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(inputs)
        images += len(inputs)
        if progress is not None:
            progress(len(inputs), loss.item())
    seconds = time.perf_counter() - start
    return EpochStats(total_loss / max(images, 1), images, seconds)


@torch.no_grad()
def predict(
    model: DUNet,
    loader: DataLoader,
    codec: HeatmapCodec,
    device: torch.device,
    flip_permutation: np.ndarray | None = None,
    progress=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Landmarks [N, J, 2] in original image pixels, peak values [N, J], and the dataset
    indices [N] they belong to. With `flip_permutation`, averages with the flipped image."""
    model.eval()
    points, scores, indices = [], [], []
    for batch in loader:
        inputs = batch["image"].to(device)
        heatmaps = model(inputs)[-1]
        if flip_permutation is not None:
            flipped = model(inputs.flip(dims=[3]))[-1]
            heatmaps = 0.5 * (heatmaps + flip_back(flipped, flip_permutation))
        coords, maxvals = codec.decode(heatmaps.float())
        inverse = batch["inverse"].to(coords.device)
        mapped = torch.einsum("bij,bkj->bki", inverse[:, :, :2], coords) + inverse[:, None, :, 2]
        points.append(mapped.cpu().numpy())
        scores.append(maxvals.cpu().numpy())
        indices.append(np.asarray(batch["index"]))
        if progress is not None:
            progress(len(inputs))
    return np.concatenate(points), np.concatenate(scores), np.concatenate(indices)
