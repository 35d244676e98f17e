"""Shared fixtures: tiny DU-Net settings that run in milliseconds on a CPU."""

from __future__ import annotations

import pytest
import torch

TINY = {"width": 16, "growth": 8, "neck": 2, "input_size": 64, "num_landmarks": 5}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def tiny() -> dict:
    """Keyword arguments of a tiny DU-Net; callers add num_unets, order, bits, ..."""
    return dict(TINY)


def images(batch: int = 2, size: int = 64) -> torch.Tensor:
    return torch.rand(batch, 3, size, size)
