"""Checks that a model file is whole before anything is built from it: a digest of its
contents, a bound on the size its header claims, and finite values."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import torch

from fedland.model.config import DUNetConfig
from fedland.model.dunet import DUNet


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over each tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def parameter_count(config: DUNetConfig) -> int:
    """The parameters and buffers `config` describes, counted without allocating them."""
    with torch.device("meta"):
        model = DUNet(config)
    return sum(t.numel() for t in model.state_dict().values())


def first_not_finite(tensors: Iterable[tuple[str, torch.Tensor]]) -> str | None:
    """The name of the first floating-point tensor holding NaN or Inf, if any."""
    for name, tensor in tensors:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None
