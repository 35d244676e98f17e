"""One annotated instance as every reader returns it, and the errors readers raise.

Conventions (fixed once, for every dataset): 0-based pixel coordinates with pixel centres at
integers; `visible` is 1 for an annotated landmark and 0 for a missing one (it becomes the
landmark's loss weight); `center` and `scale` describe the square crop of side 200 * scale
pixels around the instance, already including each dataset's customary margin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class AnnotationError(ValueError):
    """A malformed annotation or a missing image; the message names the file (and line)."""

    def __init__(self, path: str | Path, reason: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class BadSample:
    """A sample a reader could not use, and why."""

    path: str
    reason: str
    line: int | None = None

    @classmethod
    def from_error(cls, error: AnnotationError) -> BadSample:
        return cls(error.path, error.reason, error.line)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "reason": self.reason}

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.reason}"


@dataclass
class Record:
    """One annotated instance (a face or a person) in one image."""

    image: Path
    landmarks: np.ndarray  # [J, 2] float32, 0-based pixels
    visible: np.ndarray  # [J] float32, 1 annotated, 0 missing
    center: np.ndarray  # [2] float32, crop centre in pixels
    scale: float  # crop side = 200 * scale pixels
    split: str  # "train", "val", "test", "common", "challenging", ...
    subset: str = ""  # e.g. "helen/trainset" (300-W), a site name (synthetic data)
    attributes: dict[str, Any] = field(default_factory=dict)  # for non-IID partitions
    head_box: np.ndarray | None = None  # [4] x1, y1, x2, y2 (MPII, for PCKh)
    source: str = ""  # "file" or "file:line" of the annotation

    def __post_init__(self) -> None:
        self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(-1, 2)
        self.visible = np.asarray(self.visible, dtype=np.float32).reshape(-1)
        self.center = np.asarray(self.center, dtype=np.float32).reshape(2)
        self.scale = float(self.scale)
        if self.head_box is not None:
            self.head_box = np.asarray(self.head_box, dtype=np.float32).reshape(4)
        if len(self.visible) != len(self.landmarks):
            raise ValueError(
                f"{self.source or self.image}: {len(self.landmarks)} landmarks but "
                f"{len(self.visible)} visibility flags"
            )


@dataclass
class ReadResult:
    """What a reader found: usable records and the samples it could not use."""

    records: list[Record] = field(default_factory=list)
    bad: list[BadSample] = field(default_factory=list)

    def extend(self, other: ReadResult) -> None:
        self.records.extend(other.records)
        self.bad.extend(other.bad)


def crop_from_box(
    x1: float, y1: float, x2: float, y2: float, margin: float = 1.25
) -> tuple[np.ndarray, float]:
    """Centre and scale of the square crop around a box: side = margin * max(w, h)."""
    center = np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0], dtype=np.float32)
    return center, margin * max(x2 - x1, y2 - y1) / 200.0


def crop_from_landmarks(
    landmarks: np.ndarray, visible: np.ndarray, margin: float = 1.25
) -> tuple[np.ndarray, float]:
    """Centre and scale from the bounding box of the annotated landmarks."""
    points = landmarks[visible > 0] if (visible > 0).any() else landmarks
    (x1, y1), (x2, y2) = points.min(axis=0), points.max(axis=0)
    return crop_from_box(float(x1), float(y1), float(x2), float(y2), margin)
