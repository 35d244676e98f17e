"""The `wXaYgZ` notation for weight, activation and gradient bit-widths."""

from __future__ import annotations

import re
from dataclasses import dataclass

FULL_PRECISION = 32
WEIGHT_BITS = (1, 2, 3, 4, 5, 6, 7, 8, FULL_PRECISION)
ACTIVATION_BITS = (1, 2, 3, 4, 5, 6, 7, 8, FULL_PRECISION)
GRADIENT_BITS = (2, 3, 4, 5, 6, 7, 8, FULL_PRECISION)

_PATTERN = re.compile(r"^w(\d+)a(\d+)g(\d+)$")


class BitSpecError(ValueError):
    """A bit setting that is not of the form wXaYgZ or names an unsupported width."""


@dataclass(frozen=True)
class BitSpec:
    """Bit-widths of weights, activations (conv inputs) and gradients; 32 means float."""

    weights: int = FULL_PRECISION
    activations: int = FULL_PRECISION
    gradients: int = FULL_PRECISION

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("weight", self.weights, WEIGHT_BITS),
            ("activation", self.activations, ACTIVATION_BITS),
            ("gradient", self.gradients, GRADIENT_BITS),
        ):
            if value not in allowed:
                raise BitSpecError(
                    f"{name} bits must be one of {', '.join(map(str, allowed))}; got {value}"
                )

    @classmethod
    def parse(cls, text: str | BitSpec) -> BitSpec:
        """Read `w1a8g8`-style text (case-insensitive); a BitSpec passes through."""
        if isinstance(text, BitSpec):
            return text
        match = _PATTERN.match(str(text).strip().lower())
        if match is None:
            raise BitSpecError(
                f"bit setting {text!r} is not of the form wXaYgZ (for example w1a8g8 or w32a32g32)"
            )
        return cls(*(int(group) for group in match.groups()))

    @property
    def full_precision(self) -> bool:
        return self.weights == self.activations == self.gradients == FULL_PRECISION

    def __str__(self) -> str:
        return f"w{self.weights}a{self.activations}g{self.gradients}"


FLOAT32 = BitSpec()
