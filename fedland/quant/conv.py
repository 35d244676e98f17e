"""Quantized convolution: k-bit weights, k-bit inputs and k-bit gradients in one layer.

The layer keeps a float32 latent weight for the optimizer and uses its quantized copy in the
forward pass (straight-through estimator backward). Its input is quantized to unsigned
a-bit codes with a clipping level learned as in PACT, and those uint8 codes (not a float copy)
are what it keeps for the backward pass. Back-propagated errors and the weight gradient are
quantized with stochastic rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fedland.quant.bitspec import FULL_PRECISION, BitSpec
from fedland.quant.packing import pack_bits, unpack_bits
from fedland.quant.quantizers import (
    activation_step,
    quantize_activation,
    quantize_gradient,
    quantize_weight,
)

DEFAULT_ACTIVATION_CLIP = 4.0


class QuantConv2d(nn.Conv2d):
    """A bias-free Conv2d whose weights, inputs and gradients follow a `BitSpec`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bits: BitSpec | str = "w32a32g32",
        per_filter: bool = True,
        activation_clip: float = DEFAULT_ACTIVATION_CLIP,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bits = BitSpec.parse(bits)
        self.per_filter = per_filter
        self.weight_is_quantized = False  # set for models loaded from a packed file
        if self.bits.activations < FULL_PRECISION:
            self.activation_clip = nn.Parameter(torch.tensor(float(activation_clip)))
        else:
            self.register_parameter("activation_clip", None)

    def quantized_weight(self) -> torch.Tensor:
        """The weight used in the forward pass."""
        if self.bits.weights >= FULL_PRECISION or self.weight_is_quantized:
            return self.weight
        return quantize_weight(self.weight, self.bits.weights, self.per_filter).dequantize()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits.full_precision:
            return F.conv2d(x, self.weight, None, self.stride, self.padding)
        return _QuantConvFunction.apply(x, self.weight, self.activation_clip, self)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits={self.bits}"


class _QuantConvFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, clip, layer: QuantConv2d):  # type: ignore[override]
        bits = layer.bits
        weight_q = layer.quantized_weight().detach()
        if clip is not None:
            codes = quantize_activation(x, clip, bits.activations)
            step = activation_step(clip, bits.activations)
            x_used = codes.to(x.dtype) * step
            above = x > clip
            ctx.saved_shape = x.shape
            ctx.save_for_backward(codes, pack_bits(above.to(torch.uint8), 1), clip)
        else:
            x_used = x
            ctx.save_for_backward(x, None, None)
        ctx.layer = layer
        return F.conv2d(x_used, weight_q, None, layer.stride, layer.padding)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        layer: QuantConv2d = ctx.layer
        bits = layer.bits
        saved, packed_above, clip = ctx.saved_tensors
        if bits.gradients < FULL_PRECISION:
            grad_out = quantize_gradient(grad_out, bits.gradients)
        if clip is not None:
            step = activation_step(clip, bits.activations)
            x_used = saved.to(grad_out.dtype) * step
        else:
            x_used = saved
        weight_q = layer.quantized_weight().detach()
        grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
            grad_out,
            x_used,
            weight_q,
            None,
            list(layer.stride),
            list(layer.padding),
            list(layer.dilation),
            False,
            [0, 0],
            1,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False],
        )
        grad_clip = None
        if clip is not None and grad_x is not None:
            above = unpack_bits(packed_above, 1, grad_x.numel()).view(ctx.saved_shape).bool()
            if ctx.needs_input_grad[2]:
                grad_clip = grad_x.masked_fill(~above, 0).sum().reshape(clip.shape)
            grad_x = grad_x.masked_fill(above, 0)
        if grad_w is not None and bits.gradients < FULL_PRECISION:
            grad_w = quantize_gradient(grad_w, bits.gradients)
        return grad_x, grad_w, grad_clip, None
