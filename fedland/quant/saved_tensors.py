"""Storage of the tensors autograd keeps for the backward pass, optionally at low bit-width.

`SavedTensorStore` is a `saved_tensors_hooks` context for a training step. With `bits` set,
every float activation kept for backward (BatchNorm inputs, checkpoint inputs, ...) is stored
as `bits`-bit codes with a float offset and step per group of 256 values, bit-packed, and
expanded again when backward needs it (activation-compressed training). The quantized
convolutions already keep their inputs as integer codes, which pass through untouched. The
store also tallies the bytes it holds, which is how training memory is measured
deterministically.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from fedland.quant.packing import pack_bits, packed_size, unpack_bits

MIN_COMPRESSED_ELEMENTS = 4096
GROUP_SIZE = 256  # elements sharing one (offset, step) pair


@dataclass
class _Packed:
    data: torch.Tensor
    low: torch.Tensor
    step: torch.Tensor
    shape: torch.Size
    dtype: torch.dtype
    bits: int

    @property
    def nbytes(self) -> int:
        return self.data.numel() + (self.low.numel() + self.step.numel()) * self.low.element_size()

    def restore(self) -> torch.Tensor:
        count = self.shape.numel()
        codes = unpack_bits(self.data, self.bits, self.low.numel() * GROUP_SIZE)
        groups = codes.view(-1, GROUP_SIZE).to(torch.float32)
        values = torch.addcmul(self.low[:, None], groups, self.step[:, None])
        return values.reshape(-1)[:count].view(self.shape).to(self.dtype)


class SavedTensorStore(torch.autograd.graph.saved_tensors_hooks):
    """Holds saved-for-backward tensors; `bits` = None keeps them as they are."""

    def __init__(self, bits: int | None = None, exclude: Iterable[torch.Tensor] = ()) -> None:
        if bits is not None and not 1 <= bits <= 8:
            raise ValueError(f"saved activation bits must be 1..8 or None, got {bits}")
        self.bits = bits
        self.stored_bytes = 0
        self._excluded = {t.untyped_storage().data_ptr() for t in exclude}
        self._seen_storages: set[int] = set()
        self._packed_cache: dict[tuple, tuple[weakref.ref, int, _Packed]] = {}
        super().__init__(self._pack, self._unpack)

    def __enter__(self) -> SavedTensorStore:
        super().__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        # The cache only de-duplicates within the forward pass; backward frees what it used.
        self._packed_cache.clear()
        super().__exit__(*exc_info)

    @classmethod
    def for_model(cls, model: nn.Module, bits: int | None = None) -> SavedTensorStore:
        """A store that does not count or compress the model's own parameters."""
        return cls(bits, exclude=[*model.parameters(), *model.buffers()])

    def _pack(self, tensor: torch.Tensor):
        storage = tensor.untyped_storage().data_ptr()
        if storage in self._excluded:
            return tensor
        if self._should_compress(tensor):
            return self._compress(tensor)
        if storage not in self._seen_storages:
            self._seen_storages.add(storage)
            self.stored_bytes += tensor.untyped_storage().nbytes()
        return tensor

    @staticmethod
    def _unpack(packed):
        return packed.restore() if isinstance(packed, _Packed) else packed

    def _should_compress(self, tensor: torch.Tensor) -> bool:
        return (
            self.bits is not None
            and tensor.is_floating_point()
            and tensor.dim() >= 2
            and tensor.numel() >= MIN_COMPRESSED_ELEMENTS
        )

    def _compress(self, tensor: torch.Tensor) -> _Packed:
        key = (tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)
        cached = self._packed_cache.get(key)
        if cached is not None:
            ref, version, packed = cached
            if ref() is tensor and version == tensor._version:
                return packed
        packed = _quantize_groups(tensor, self.bits)
        self._packed_cache[key] = (weakref.ref(tensor), tensor._version, packed)
        self.stored_bytes += packed.nbytes
        return packed


def _quantize_groups(tensor: torch.Tensor, bits: int) -> _Packed:
    flat = tensor.detach().reshape(-1).to(torch.float32)
    padding = -flat.numel() % GROUP_SIZE
    if padding:
        flat = torch.cat([flat, flat[-1:].expand(padding)])
    groups = flat.view(-1, GROUP_SIZE)
    low = groups.amin(dim=1)
    step = ((groups.amax(dim=1) - low) / (2**bits - 1)).clamp_min(torch.finfo(torch.float32).tiny)
    codes = torch.round((groups - low[:, None]) / step[:, None]).clamp_(0, 2**bits - 1)
    return _Packed(
        pack_bits(codes.to(torch.uint8), bits), low, step, tensor.shape, tensor.dtype, bits
    )


def expected_packed_bytes(count: int, bits: int) -> int:
    """Bytes `SavedTensorStore` uses for one compressed float tensor of `count` elements."""
    groups = -(-count // GROUP_SIZE)
    return packed_size(groups * GROUP_SIZE, bits) + 2 * groups * 4
