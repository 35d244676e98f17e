"""The iBUG `.pts` landmark file (300-W and friends): 1-based `x y` lines between braces.

Lenient about white space (the iBUG files write `n_points:  68` with two spaces, and the last
line may lack a newline), strict about the point count and the braces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedland.data.records import AnnotationError


def read_pts(path: str | Path, expected_points: int | None = None) -> np.ndarray:
    """Landmarks [N, 2] float32 in 0-based pixel coordinates."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as error:
        raise AnnotationError(path, f"cannot read ({error})") from error
    lines = text.splitlines()
    count = None
    opening = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped.startswith("n_points:"):
            try:
                count = int(stripped.split(":", 1)[1])
            except ValueError:
                raise AnnotationError(path, f"bad point count {stripped!r}", number) from None
        elif stripped == "{":
            opening = number
            break
    if count is None:
        raise AnnotationError(path, "no 'n_points:' line")
    if opening is None:
        raise AnnotationError(path, "no opening '{'")
    points = []
    for number in range(opening + 1, len(lines) + 1):
        stripped = lines[number - 1].strip()
        if stripped == "}":
            break
        if not stripped:
            continue
        fields = stripped.split()
        try:
            if len(fields) != 2:
                raise ValueError
            points.append((float(fields[0]) - 1.0, float(fields[1]) - 1.0))
        except ValueError:
            raise AnnotationError(path, f"expected 'x y', got {stripped!r}", number) from None
    else:
        raise AnnotationError(path, "no closing '}'", len(lines))
    if len(points) != count:
        raise AnnotationError(path, f"header says {count} points, file has {len(points)}")
    if expected_points is not None and count != expected_points:
        raise AnnotationError(path, f"expected {expected_points} points, file has {count}")
    array = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    if not np.isfinite(array).all():
        raise AnnotationError(path, "non-finite coordinate")
    return array


def write_pts(path: str | Path, landmarks: np.ndarray) -> None:
    """Write 0-based landmarks [N, 2] as a 1-based iBUG `.pts` file."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2) + 1.0
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in points)
    Path(path).write_text(f"version: 1\nn_points:  {len(points)}\n{{\n{body}\n}}\n")
