"""k-bit quantizers for weights, activations and gradients.

Every quantizer returns integer codes plus a float scale, and one `dequantize` turns them back
into floats. Training, model export and the update codec all reconstruct values through that
one function, so a value written to disk or to the wire is bit-for-bit the value trained with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

TERNARY_THRESHOLD = 0.7  # TWN: delta = 0.7 * mean|w|
_TINY = 1e-12


@dataclass(frozen=True)
class Quantized:
    """Codes in [0, 2**bits) and a scale; value = (code - offset(bits)) * scale."""

    codes: torch.Tensor
    scale: torch.Tensor
    bits: int

    def dequantize(self) -> torch.Tensor:
        return dequantize(self.codes, self.scale, self.bits)


def code_offset(bits: int) -> float:
    """Zero point of the signed code grids: 1 bit is {-1, +1}, 2 bits {-1, 0, +1}, k bits
    the mid-rise grid with 2**k levels symmetric around zero."""
    if bits == 1:
        return 0.5
    if bits == 2:
        return 1.0
    return 2.0 ** (bits - 1) - 0.5


def dequantize(codes: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """Float values of signed codes; `scale` broadcasts over dim 0 (per filter) or is a scalar."""
    values = codes.to(torch.float32) - code_offset(bits)
    return values * _broadcast(scale, values)


def quantize_weight(weight: torch.Tensor, bits: int, per_filter: bool = True) -> Quantized:
    """Quantize a weight tensor: 1 bit sign * mean|w| (XNOR), 2 bits ternary (TWN),
    3..8 bits uniform symmetric mid-rise grid of step 2**(1-k) after scaling by max|w|."""
    w = weight.detach().to(torch.float32)
    magnitude = w.abs()
    reduce_dims = tuple(range(1, w.dim())) if per_filter and w.dim() > 1 else tuple(range(w.dim()))
    if bits == 1:
        alpha = magnitude.mean(dim=reduce_dims, keepdim=True)
        codes = (w >= 0).to(torch.uint8)
        scale = 2.0 * alpha
    elif bits == 2:
        delta = TERNARY_THRESHOLD * magnitude.mean(dim=reduce_dims, keepdim=True)
        keep = magnitude > delta
        kept = keep.sum(dim=reduce_dims, keepdim=True).clamp_min(1)
        scale = (magnitude * keep).sum(dim=reduce_dims, keepdim=True) / kept
        codes = (torch.sign(w) * keep + 1).to(torch.uint8)
    elif 3 <= bits <= 8:
        max_abs = magnitude.amax(dim=reduce_dims, keepdim=True).clamp_min(_TINY)
        scale = max_abs * 2.0 ** (1 - bits)
        half = 2 ** (bits - 1)
        codes = (torch.floor(w / scale) + half).clamp(0, 2 * half - 1).to(torch.uint8)
    else:
        raise ValueError(f"weight bits must be 1..8, got {bits}")
    return Quantized(codes=codes, scale=scale.reshape(-1), bits=bits)


def activation_step(clip: torch.Tensor, bits: int) -> torch.Tensor:
    """Spacing of the unsigned activation grid {0, step, ..., clip}."""
    return clip / (2**bits - 1)


def quantize_activation(x: torch.Tensor, clip: torch.Tensor, bits: int) -> torch.Tensor:
    """Unsigned codes of round(clamp(x, 0, clip) / step); the value is code * step."""
    step = activation_step(clip, bits)
    return torch.round(torch.clamp(x, min=0) / step).clamp_(0, 2**bits - 1).to(torch.uint8)


def quantize_gradient(grad: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantize to signed `bits`-bit levels with stochastic (unbiased) rounding.

    The range is the power of two at or above the tensor's largest magnitude, so small
    gradients survive as a probability of rounding up rather than vanishing to zero.
    """
    max_abs = grad.detach().abs().max()
    if not torch.isfinite(max_abs) or max_abs == 0:
        return grad
    levels = 2 ** (bits - 1) - 1
    step = torch.exp2(torch.ceil(torch.log2(max_abs))) / levels
    scaled = grad / step
    rounded = torch.floor(scaled + torch.rand_like(scaled))
    return rounded.clamp_(-levels, levels) * step


def fake_quantize_weight(weight: torch.Tensor, bits: int, per_filter: bool = True) -> torch.Tensor:
    """Quantized weight in the forward pass, identity gradient (straight-through) backward."""
    quantized = quantize_weight(weight, bits, per_filter).dequantize().to(weight.dtype)
    return weight + (quantized - weight).detach()


def _broadcast(scale: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if scale.numel() == 1 or like.dim() == 0:
        return scale.reshape(())
    return scale.reshape((-1,) + (1,) * (like.dim() - 1))
