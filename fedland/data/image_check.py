"""Image files that cannot be used whole: missing, not an image, cut short, or undecodable.

OpenCV decodes a truncated JPEG without an error (the missing rows come out grey), so a
structural check of the file's start and end markers runs on every image before training
(a few hundred bytes read per file); `fedland data info` also decodes every image.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"
PNG_START, PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"
TAIL_BYTES = 512  # JPEG writers may pad after the end marker; look this far back for it


def structural_problem(path: Path) -> str | None:
    """Why the file's bytes cannot hold a whole JPEG or PNG image, or None; other formats
    are left to the decoder."""
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            head = file.read(len(PNG_START))
            file.seek(max(0, size - TAIL_BYTES))
            tail = file.read()
    except OSError as error:
        return f"cannot read image ({error.strerror or error})"
    if size == 0:
        return "empty image file"
    suffix = path.suffix.lower()
    if head.startswith(JPEG_START):
        return None if JPEG_END in tail else "truncated JPEG (no end marker)"
    if head.startswith(PNG_START):
        return None if PNG_END in tail else "truncated PNG (no IEND chunk)"
    if suffix in (".jpg", ".jpeg", ".png"):
        return f"not a {suffix[1:].upper()} image (its first bytes say otherwise)"
    return None


def decode_problem(path: Path) -> str | None:
    """`structural_problem`, then a full decode."""
    if (problem := structural_problem(path)) is not None:
        return problem
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        return f"cannot read image ({error.strerror or error})"
    if cv2.imdecode(data, cv2.IMREAD_COLOR) is None:
        return "cannot decode image"
    return None


def image_problems(
    paths: Iterable[Path],
    decode: bool = False,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[Path, str]:
    """Each unusable image and why, checked in parallel (OpenCV and file reads release the
    GIL, so threads use every core); `progress(n)` after each file."""
    check = decode_problem if decode else structural_problem
    unique = sorted(set(paths))
    problems: dict[Path, str] = {}
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        found = zip(unique, pool.map(check, unique), strict=True)
        for done, (path, problem) in enumerate(found, 1):
            if problem is not None:
                problems[path] = problem
            if progress is not None:
                progress(done)
    return problems
