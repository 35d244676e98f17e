"""A synthetic generator's run: the request check, OpenCV's threads, stale files, progress,
and the summary of what was written."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2

PROGRESS_EVERY = 50


@dataclass
class SynthSummary:
    """What a generator wrote: where, how much, how long, and how it is partitioned."""

    task: str
    root: Path
    count: int
    seconds: float
    per_split: dict[str, int]
    per_site: dict[str, int]


def check_request(num: int, seed: int, image_size: int) -> None:
    if num < 1:
        raise ValueError(f"num must be at least 1, got {num}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if image_size < 32:
        raise ValueError(f"image_size must be at least 32, got {image_size}")


def single_threaded_opencv() -> None:
    """Draw with one OpenCV thread. OpenCV's thread pool, once started, is inherited
    half-dead by forked processes, so a data loader forking workers after generation in the
    same process would hang; per-image drawing gains little from threads anyway."""
    cv2.setNumThreads(1)


def remove_stale(folder: Path, pattern: str, keep: Iterable[str]) -> None:
    """Delete files of an earlier synthetic run (names matching `pattern`) that this run did
    not write, so the tree agrees with the new annotations; other files are left alone."""
    if not folder.is_dir():
        return
    name = re.compile(pattern)
    kept = set(keep)
    for path in folder.iterdir():
        if path.is_file() and name.fullmatch(path.name) and path.name not in kept:
            path.unlink()


def report_progress(progress: Callable[[int], None] | None, done: int, total: int) -> None:
    if progress is not None and (done % PROGRESS_EVERY == 0 or done == total):
        progress(done)
