"""Batch normalisation that is safe under activation checkpointing and exports exactly.

Recomputing a checkpointed segment in the backward pass runs its BatchNorm a second time;
plain `nn.BatchNorm2d` would then update its running statistics twice. Inside
`recomputation()` this layer normalises with the batch statistics but leaves the running
statistics alone. In eval mode it applies the folded per-channel affine map
`x * scale + shift`, the same arithmetic a packed model file stores, so export is exact.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import nn

_recomputing: ContextVar[bool] = ContextVar("fedland_recomputing", default=False)


@contextlib.contextmanager
def recomputation() -> Iterator[None]:
    """Marks the forward pass that a checkpoint replays during backward."""
    token = _recomputing.set(True)
    try:
        yield
    finally:
        _recomputing.reset(token)


class BatchNorm2d(nn.BatchNorm2d):
    """`nn.BatchNorm2d` with recompute-aware statistics and a folded eval path."""

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel (scale, shift) equivalent to this layer in eval mode."""
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return scale, shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            scale, shift = self.folded()
            return torch.addcmul(shift[:, None, None], x, scale[:, None, None])
        if _recomputing.get():
            # Throwaway copies take the update, so the replay saves the same tensors as the
            # original forward (checkpoint checks that) and the real statistics stay put.
            mean, var = self.running_mean.clone(), self.running_var.clone()
            return F.batch_norm(x, mean, var, self.weight, self.bias, True, 0.0, self.eps)
        return super().forward(x)


class ChannelAffine(nn.Module):
    """Inference-only BatchNorm: the folded `x * scale + shift` loaded from a packed file."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(channels))
        self.register_buffer("shift", torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift[:, None, None], x, self.scale[:, None, None])
