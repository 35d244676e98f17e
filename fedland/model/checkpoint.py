"""Training checkpoints: the model's config and float weights, plus whatever the trainer adds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fedland.model.config import DUNetConfig
from fedland.model.dunet import DUNet

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
    try:
        model = DUNet(DUNetConfig.from_dict(payload["model_config"]))
        model.load_state_dict(payload["model"])
    except (KeyError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: model does not match its config ({error})") from error
    return model, payload
