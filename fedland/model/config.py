"""The DU-Net's hyper-parameters, validated with errors that say what is allowed."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from fedland.quant.bitspec import BitSpec

QUANT_SCOPES = ("all", "3x3")
INPUT_MULTIPLE = 64  # stem /4, then four 2x2 poolings per U-Net


class ModelConfigError(ValueError):
    """A DU-Net configuration that cannot be built; `key` is the field at fault."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class DUNetConfig:
    """Paper defaults: C = 128, k = 32, neck = 4, 256x256 input, every U-Net supervised.

    `num_unets` counts U-Net passes. With `refine`, half as many U-Nets are built and run
    twice with shared weights.
    """

    num_unets: int = 4
    order: int = 1
    num_landmarks: int = 16
    width: int = 128
    growth: int = 32
    neck: int = 4
    input_size: int = 256
    num_supervised: int | None = None
    memory_efficient: bool = True
    refine: bool = False
    bits: BitSpec = field(default_factory=BitSpec)
    quant_scope: str = "all"
    per_filter_scale: bool = True
    activation_clip: float = 4.0
    low_bit_saved_activations: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "bits", BitSpec.parse(self.bits))
        self._validate()

    @property
    def built_unets(self) -> int:
        """U-Nets that own weights (half the passes with refinement)."""
        return self.num_unets // 2 if self.refine else self.num_unets

    @property
    def supervised(self) -> tuple[int, ...]:
        """Indices of supervised U-Net passes, spread evenly, the last always included."""
        total = self.num_unets
        count = self.num_supervised or total
        return tuple(sorted({math.ceil((j + 1) * total / count) - 1 for j in range(count)}))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bits"] = str(self.bits)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DUNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelConfigError(
                unknown[0],
                f"unknown model key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
            )
        return cls(**data)

    def _validate(self) -> None:
        positive = ("num_unets", "num_landmarks", "width", "growth", "neck", "input_size")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ModelConfigError(name, f"{name} must be a positive integer, got {value!r}")
        if self.refine and self.num_unets % 2:
            raise ModelConfigError(
                "num_unets",
                f"refinement runs L/2 U-Nets twice, so the number of U-Nets must be even; "
                f"got {self.num_unets}",
            )
        built = self.built_unets
        if not isinstance(self.order, int) or not 0 <= self.order < built:
            limit = f"the {built} built U-Nets" if self.refine else f"L = {built}"
            raise ModelConfigError(
                "order",
                f"order K must satisfy 0 <= K < {limit} (K = {built - 1} is fully dense); "
                f"got K = {self.order!r}",
            )
        if self.input_size % INPUT_MULTIPLE:
            raise ModelConfigError(
                "input_size",
                f"input size must be a multiple of {INPUT_MULTIPLE} (the stem divides it by 4 "
                f"and each U-Net pools four times); got {self.input_size}",
            )
        if self.num_supervised is not None and not 1 <= self.num_supervised <= self.num_unets:
            raise ModelConfigError(
                "num_supervised",
                f"num_supervised must be between 1 and the number of U-Nets "
                f"({self.num_unets}); got {self.num_supervised}",
            )
        if self.quant_scope not in QUANT_SCOPES:
            raise ModelConfigError(
                "quant_scope",
                f"quant_scope must be one of {', '.join(QUANT_SCOPES)}; got {self.quant_scope!r}",
            )
        if not self.activation_clip > 0:
            raise ModelConfigError(
                "activation_clip", f"activation_clip must be > 0, got {self.activation_clip}"
            )
