"""Training checkpoints: the model's config and float weights, plus whatever the trainer adds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fedland.model.config import DUNetConfig, ModelConfigError
from fedland.model.dunet import DUNet
from fedland.model.integrity import first_not_finite, parameter_count, tensors_digest

CHECKPOINT_FORMAT = "fedland-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a readable fedland checkpoint."""


def save_checkpoint(path: str | Path, model: DUNet, **extra: Any) -> Path:
    """Write atomically (temporary file, then rename) so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_config": model.config.to_dict(),
        "model": model.state_dict(),
        "checksum": tensors_digest(model.state_dict()),
        **extra,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path) -> tuple[DUNet, dict[str, Any]]:
    """The model (in train mode, as saved) and the full payload."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        raise CheckpointError(f"{path}: not a readable checkpoint ({error})") from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a fedland checkpoint (format key missing)")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {payload.get('version')} is not supported "
            f"(this fedland reads version {CHECKPOINT_VERSION})"
        )
    state = payload.get("model")
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise CheckpointError(f"{path}: no model weights in the checkpoint")
    if "checksum" in payload and tensors_digest(state) != payload["checksum"]:
        raise CheckpointError(f"{path}: the weights do not match their checksum (damaged file)")
    if (name := first_not_finite(state.items())) is not None:
        raise CheckpointError(f"{path}: tensor {name!r} holds NaN or Inf")
    try:
        config = DUNetConfig.from_dict(payload["model_config"])
        held = sum(t.numel() for t in state.values())
        if parameter_count(config) != held:  # before allocating what the config claims
            raise ValueError(f"its config describes {parameter_count(config):,} values, "
                             f"the file holds {held:,}")  # fmt: skip
        model = DUNet(config)
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError, ModelConfigError) as error:
        raise CheckpointError(f"{path}: model does not match its config ({error})") from error
    return model, payload
