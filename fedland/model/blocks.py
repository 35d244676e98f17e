"""Building blocks of the DU-Net: pre-activation units, the dense layer, semantic blocks."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
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


class PreActConv(nn.Module):
    """concat(inputs) -> BN -> ReLU -> Conv, bias-free, optionally quantized.

    With `checkpointed`, the concatenation, normalisation and activation are not kept for
    the backward pass but recomputed from the (already stored) inputs: the memory-efficient
    DenseNet trick, done with `torch.utils.checkpoint`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        quant: ConvQuant = FLOAT_CONV,
        checkpointed: bool = False,
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

    def _run(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1)
        return self.conv(F.relu(self.norm(x)))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.checkpointed and torch.is_grad_enabled() and self.training:
            return checkpoint(
                self._run,
                *inputs,
                use_reentrant=False,
                preserve_rng_state=False,
                context_fn=_checkpoint_contexts,
            )
        return self._run(*inputs)


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
    ) -> None:
        super().__init__()
        self.bottleneck = PreActConv(in_channels, neck * growth, 1, quant_1x1, checkpointed)
        self.conv3x3 = PreActConv(neck * growth, growth, 3, quant_3x3)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.conv3x3(self.bottleneck(*inputs))


class SemanticBlock(nn.Module):
    """One block position of one U-Net: a dense layer plus 1x1 transition adapters.

    The dense layer reads concat(u, f_{i-K'}, ..., f_{i-1}), the features that this block
    position produced in the previous K' = min(i, K) U-Nets; the adapters read those plus the
    new features f_i and compress back to C channels ("ahead" to the next block, "skip" from
    a down block to its mirrored up block).
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
        self.dense = DenseLayer(
            in_channels + coupled * growth, growth, neck, quant_1x1, quant_3x3, memory_efficient
        )
        adapter_in = in_channels + (coupled + 1) * growth
        self.ahead = PreActConv(adapter_in, width, 1, quant_1x1, memory_efficient)
        self.skip = None
        if kind == "down":
            self.skip = PreActConv(adapter_in, width, 1, quant_1x1, memory_efficient)

    def forward(
        self, u: torch.Tensor, previous: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        dense_inputs = [u, *previous]
        if not self.memory_efficient and len(dense_inputs) > 1:
            dense_inputs = [torch.cat(dense_inputs, dim=1)]
        new = self.dense(*dense_inputs)
        adapter_inputs = [u, *previous, new]
        if not self.memory_efficient:
            adapter_inputs = [torch.cat(adapter_inputs, dim=1)]
        ahead = self.ahead(*adapter_inputs)
        skip = self.skip(*adapter_inputs) if self.skip is not None else None
        return ahead, skip, new
