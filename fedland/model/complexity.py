"""Cost accounting of a DU-Net: parameters, bytes at float32 and packed, multiply-accumulates."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from fedland.model.config import DUNetConfig
from fedland.model.dunet import DUNet
from fedland.model.packed import packed_model_bytes


@dataclass(frozen=True)
class ModelCost:
    config: str
    bits: str
    params: int
    fp32_bytes: int
    packed_bytes: int
    macs: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(cfg: DUNetConfig) -> int:
    """Convolution multiply-accumulates for one image (BN, ReLU, pooling are not counted).

    Runs the forward pass on the meta device: shapes only, no arithmetic, no memory.
    """
    with torch.device("meta"):
        model = DUNet(cfg).eval()
        images = torch.empty(1, 3, cfg.input_size, cfg.input_size)
    total = 0

    def hook(module: nn.Conv2d, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        kernel = module.weight.shape[1] * module.weight.shape[2] * module.weight.shape[3]
        total += output.numel() * kernel

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(images)
    finally:
        for handle in handles:
            handle.remove()
    return total


def model_cost(cfg: DUNetConfig) -> ModelCost:
    """Every figure `fedland model-info` prints."""
    model = DUNet(cfg).eval()
    params = count_parameters(model)
    return ModelCost(
        config=describe(cfg),
        bits=str(cfg.bits),
        params=params,
        fp32_bytes=4 * params,
        packed_bytes=packed_model_bytes(model),
        macs=count_macs(cfg),
    )


def describe(cfg: DUNetConfig) -> str:
    """Short name such as `L8-K1-C128-J16-256px` (with `-refine` for weight sharing)."""
    name = f"L{cfg.num_unets}-K{cfg.order}-C{cfg.width}-J{cfg.num_landmarks}-{cfg.input_size}px"
    return name + ("-refine" if cfg.refine else "")
