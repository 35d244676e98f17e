"""The quantized densely connected U-Net (DU-Net, ECCV 2018) for heatmap regression."""

from __future__ import annotations

import torch
from torch import nn

from fedland.model.blocks import FLOAT_CONV, ConvQuant, PreActConv, SemanticBlock, Stem
from fedland.model.config import DUNetConfig
from fedland.quant.bitspec import FULL_PRECISION
from fedland.quant.saved_tensors import SavedTensorStore

DOWN_BLOCKS = 4  # at input/4, /8, /16, /32; a neck block follows, then four up blocks
BLOCK_KINDS = ("down",) * DOWN_BLOCKS + ("neck",) + ("up",) * DOWN_BLOCKS


class UNet(nn.Module):
    """Nine semantic blocks; block p reads the features block p produced in earlier U-Nets."""

    def __init__(
        self, cfg: DUNetConfig, coupled: int, quant_1x1: ConvQuant, quant_3x3: ConvQuant
    ) -> None:
        super().__init__()
        width = cfg.width
        self.blocks = nn.ModuleList(
            SemanticBlock(
                kind,
                2 * width if kind == "up" else width,
                coupled,
                width,
                cfg.growth,
                cfg.neck,
                quant_1x1,
                quant_3x3,
                cfg.memory_efficient,
            )
            for kind in BLOCK_KINDS
        )

    def forward(
        self, x: torch.Tensor, history: list[list[torch.Tensor]]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Returns the C-channel output and the new dense features of each block position."""
        new_features: list[torch.Tensor] = []
        skips: list[torch.Tensor] = []
        for position, block in enumerate(self.blocks):
            parts = [x, skips.pop()] if block.kind == "up" else [x]
            x, skip_out, new = block(parts, history[position])
            new_features.append(new)
            if skip_out is not None:
                skips.append(skip_out)
        return x, new_features


class DUNet(nn.Module):
    """Stacked U-Nets with order-K dense coupling, one heatmap head per U-Net."""

    def __init__(self, cfg: DUNetConfig) -> None:
        super().__init__()
        self.config = cfg
        width, order = cfg.width, cfg.order
        quantized = ConvQuant(cfg.bits, cfg.per_filter_scale, cfg.activation_clip)
        quant_1x1 = quantized if cfg.quant_scope == "all" else FLOAT_CONV
        self.stem = Stem(width, cfg.memory_efficient)
        built = cfg.built_unets
        self.unets = nn.ModuleList(
            UNet(cfg, min(i, order), quant_1x1, quantized) for i in range(built)
        )
        self.unet_adapters = nn.ModuleList(
            PreActConv(width * (1 + min(i, order)), width, 1, quant_1x1, cfg.memory_efficient)
            for i in range(1, built)
        )
        self.heads = nn.ModuleList(
            PreActConv(width, cfg.num_landmarks, 1, quantized if i < built - 1 else FLOAT_CONV)
            for i in range(built)
        )
        self.refine_adapter = (
            PreActConv(2 * width, width, 1, quant_1x1, cfg.memory_efficient) if cfg.refine else None
        )

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Heatmaps [B, J, S/4, S/4] of the supervised U-Net passes, last one final."""
        self._check_input(images)
        stem = self.stem(images)
        supervised = set(self.config.supervised)
        built = self.config.built_unets
        outputs, last = self._pass(stem, supervised, offset=0)
        if self.refine_adapter is not None:
            second, _ = self._pass(self.refine_adapter(stem, last), supervised, offset=built)
            outputs += second
        return outputs

    def saved_tensor_store(self) -> SavedTensorStore:
        """Context for a training step's forward pass: with quantized activations (and
        `low_bit_saved_activations`), what autograd keeps for backward is stored at the
        activation bit-width."""
        bits = self.config.bits.activations
        low_bit = self.config.low_bit_saved_activations and bits < FULL_PRECISION
        return SavedTensorStore.for_model(self, bits if low_bit else None)

    def _pass(
        self, x0: torch.Tensor, supervised: set[int], offset: int
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        order = self.config.order
        history: list[list[torch.Tensor]] = [[] for _ in BLOCK_KINDS]
        recent_inputs: list[torch.Tensor] = []
        outputs: list[torch.Tensor] = []
        x = h = x0
        for i, unet in enumerate(self.unets):
            if i > 0:
                x = self.unet_adapters[i - 1](h, *recent_inputs)
            h, features = unet(x, history)
            if order:
                recent_inputs = [*recent_inputs, x][-order:]
                history = [[*old, new][-order:] for old, new in zip(history, features, strict=True)]
            if offset + i in supervised:
                outputs.append(self.heads[i](h))
        return outputs, h

    def _check_input(self, images: torch.Tensor) -> None:
        size = self.config.input_size
        if images.dim() != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) != (size, size):
            raise ValueError(
                f"expected images of shape [batch, 3, {size}, {size}], got {list(images.shape)}"
            )


def build_model(cfg: DUNetConfig | None = None, **overrides: object) -> DUNet:
    """A DU-Net from a config, with keyword overrides (`build_model(num_unets=8, order=1)`)."""
    base = (cfg or DUNetConfig()).to_dict()
    base.update(overrides)
    return DUNet(DUNetConfig.from_dict(base))
