"""Building blocks of the DU-Net: pre-activation units, the dense layer, semantic blocks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from fedland.model.norm import BatchNorm2d, recomputation
from fedland.quant.bitspec import FLOAT32, BitSpec
from fedland.quant.conv import DEFAULT_ACTIVATION_CLIP, QuantConv2d


@dataclass(frozen=True)
class ConvQuant:
    """How one convolution is quantized."""

    bits: BitSpec = FLOAT32
    per_filter: bool = True
    activation_clip: float = DEFAULT_ACTIVATION_CLIP


FLOAT_CONV = ConvQuant()


def _checkpoint_contexts() -> tuple[contextlib.AbstractContextManager, ...]:
    return contextlib.nullcontext(), recomputation()


def run_checkpointed(
    function: Callable[..., torch.Tensor], *inputs: torch.Tensor, enabled: bool = True
) -> torch.Tensor:
    """`function(*inputs)`, keeping only the inputs for backward when training with `enabled`."""
    if enabled and torch.is_grad_enabled():
        return checkpoint(
            function,
            *inputs,
            use_reentrant=False,
            preserve_rng_state=False,
            context_fn=_checkpoint_contexts,
        )
    return function(*inputs)


class Stem(nn.Module):
    """Conv7x7 stride 2 (float, bias-free) -> BN -> ReLU -> MaxPool 2x2: C maps at input/4."""

    def __init__(self, width: int, checkpointed: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.norm = BatchNorm2d(width)
        self.checkpointed = checkpointed

    def _activate(self, y: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.norm(y)), 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        enabled = self.checkpointed and self.training
        return run_checkpointed(self._activate, self.conv(images), enabled=enabled)


class PreActConv(nn.Module):
    """concat(inputs) -> BN -> ReLU -> Conv, bias-free, optionally quantized.

    With `checkpointed`, the concatenation, normalisation and activation are not kept for
    the backward pass but recomputed from the (already stored) inputs: the memory-efficient
    DenseNet trick, done with `torch.utils.checkpoint`. `upsample_first` doubles the first
    input's resolution (nearest) before the concatenation and `pool` max-pools the output, so
    that in checkpointed units neither the upsampled copy nor the unpooled output is stored.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        quant: ConvQuant = FLOAT_CONV,
        checkpointed: bool = False,
        upsample_first: bool = False,
        pool: bool = False,
    ) -> None:
        super().__init__()
        self.norm = BatchNorm2d(in_channels)
        self.conv = QuantConv2d(
            in_channels,
            out_channels,
            kernel_size,
            padding=kernel_size // 2,
            bits=quant.bits,
            per_filter=quant.per_filter,
            activation_clip=quant.activation_clip,
        )
        self.checkpointed = checkpointed
        self.upsample_first = upsample_first
        self.pool = pool

    def _run(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.upsample_first:
            inputs = (F.interpolate(inputs[0], scale_factor=2.0, mode="nearest"), *inputs[1:])
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1)
        y = self.conv(F.relu(self.norm(x)))
        return F.max_pool2d(y, 2) if self.pool else y

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return run_checkpointed(self._run, *inputs, enabled=self.checkpointed and self.training)


class DenseLayer(nn.Module):
    """DenseNet-BC bottleneck: BN-ReLU-Conv1x1 (to neck*k) then BN-ReLU-Conv3x3 (to k)."""

    def __init__(
        self,
        in_channels: int,
        growth: int,
        neck: int,
        quant_1x1: ConvQuant,
        quant_3x3: ConvQuant,
        checkpointed: bool,
        upsample_first: bool = False,
    ) -> None:
        super().__init__()
        self.bottleneck = PreActConv(
            in_channels, neck * growth, 1, quant_1x1, checkpointed, upsample_first
        )
        self.conv3x3 = PreActConv(neck * growth, growth, 3, quant_3x3)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.conv3x3(self.bottleneck(*inputs))


class SemanticBlock(nn.Module):
    """One block position of one U-Net: a dense layer plus 1x1 transition adapters.

    The dense layer reads concat(u, f_{i-K'}, ..., f_{i-1}), the features that this block
    position produced in the previous K' = min(i, K) U-Nets; the adapters read those plus the
    new features f_i and compress back to C channels ("ahead" to the next block, max-pooled
    in down blocks; "skip" from a down block to its mirrored up block). An up block's u is
    concat(upsampled x, skip); memory-efficient blocks take the two parts separately and
    upsample inside their checkpointed units.
    """

    def __init__(
        self,
        kind: str,
        in_channels: int,
        coupled: int,
        width: int,
        growth: int,
        neck: int,
        quant_1x1: ConvQuant,
        quant_3x3: ConvQuant,
        memory_efficient: bool,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.memory_efficient = memory_efficient
        lazy_upsample = memory_efficient and kind == "up"
        self.dense = DenseLayer(
            in_channels + coupled * growth,
            growth,
            neck,
            quant_1x1,
            quant_3x3,
            memory_efficient,
            lazy_upsample,
        )
        adapter_in = in_channels + (coupled + 1) * growth
        self.ahead = PreActConv(
            adapter_in, width, 1, quant_1x1, memory_efficient, lazy_upsample, kind == "down"
        )
        self.skip = None
        if kind == "down":
            self.skip = PreActConv(adapter_in, width, 1, quant_1x1, memory_efficient)

    def forward(
        self, parts: Sequence[torch.Tensor], previous: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """`parts` is [u], or [x at half resolution, skip] for an up block.

        Returns the ahead output, the skip output (down blocks) and the new features.
        """
        if self.kind == "up" and not self.memory_efficient:
            low, skip = parts
            parts = [torch.cat([F.interpolate(low, scale_factor=2.0, mode="nearest"), skip], 1)]
        dense_inputs = [*parts, *previous]
        if not self.memory_efficient and len(dense_inputs) > 1:
            dense_inputs = [torch.cat(dense_inputs, dim=1)]
        new = self.dense(*dense_inputs)
        adapter_inputs = [*parts, *previous, new]
        if not self.memory_efficient:
            adapter_inputs = [torch.cat(adapter_inputs, dim=1)]
        ahead = self.ahead(*adapter_inputs)
        skip = self.skip(*adapter_inputs) if self.skip is not None else None
        return ahead, skip, new
