"""Shared fixtures: tiny DU-Net settings that run in milliseconds on a CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.wheel_env import build_wheel, fresh_environment

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


# `--set` overrides of a tiny experiment (one-U-Net DU-Net, 64 px) and of a tiny federation on
# 48 synthetic images with one batch per round: federated tests run in seconds.
TINY_MODEL = [
    "model.num_unets=1",
    "model.order=0",
    "model.width=16",
    "model.growth=8",
    "model.neck=2",
    "model.input_size=64",
]
TINY_FEDERATION = [
    *TINY_MODEL,
    "data.synthetic.num=48",
    "data.synthetic.image_size=64",
    "federation.local_batches=1",
    "partition.scheme=iid",
    "partition.min_partition_size=1",
]


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built once per session."""
    return build_wheel(tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def wheel_tools(wheel, tmp_path_factory) -> Path:
    """The bin folder of a fresh environment that holds only the wheel (and, through a path
    file, this environment's dependencies)."""
    return fresh_environment(tmp_path_factory.mktemp("wheel-env") / "venv", wheel)
