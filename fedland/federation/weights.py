"""The tensors a federated round exchanges: a model's floating-point state.

Integer buffers (BatchNorm's `num_batches_tracked`) are not used by the model's BatchNorm
(it has a fixed momentum), so they never travel; each side keeps its own.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from flwr.app import Array, ArrayRecord

from fedland.model import DUNet

Weights = dict[str, torch.Tensor]


def float_state(model: DUNet) -> Weights:
    """Detached float32 CPU copies of every floating-point tensor of the state dict."""
    return {
        name: value.detach().to("cpu", torch.float32, copy=True)
        for name, value in model.state_dict().items()
        if value.is_floating_point()
    }


def load_float_state(model: DUNet, weights: Mapping[str, torch.Tensor]) -> None:
    """Load `weights` into the model's float tensors; a missing or extra tensor is an error."""
    expected = {k for k, v in model.state_dict().items() if v.is_floating_point()}
    if set(weights) != expected:
        missing, extra = sorted(expected - set(weights)), sorted(set(weights) - expected)
        raise ValueError(f"weights do not fit the model: missing {missing[:3]}, extra {extra[:3]}")
    model.load_state_dict(dict(weights), strict=False)


def shapes(weights: Mapping[str, torch.Tensor]) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """What a decoder expects: (shape, dtype) per tensor."""
    return {name: (tuple(value.shape), value.dtype) for name, value in weights.items()}


def to_record(tensors: Mapping[str, torch.Tensor]) -> ArrayRecord:
    """Plain numpy Arrays in the tensors' own dtypes: what the training code on a client
    sees, and what a node keeps in `context.state` (its model, its residual)."""
    return ArrayRecord(
        {name: Array(value.detach().cpu().numpy()) for name, value in tensors.items()}
    )


def from_record(record: ArrayRecord) -> Weights:
    """Inverse of `to_record`: writable CPU tensors in the dtypes they were stored in."""
    return {name: torch.from_numpy(array.numpy().copy()) for name, array in record.items()}


def subtract(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> Weights:
    return {name: a[name] - b[name] for name in a}
