"""A run folder belongs to one run.

A run may start in a folder only if it holds no other run's results (or the run resumes it),
and only one process writes to a folder at a time: the server holds a lock for the run's
life, and `fedland simulate` holds its own while it runs. The lock files live in the
temporary directory, named by the folder's resolved path, so a refused command leaves the
folder (and its parent) byte for byte as it was. Results are written atomically (a temporary
file, then a rename).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

# What a run leaves in its folder; any of them means the folder holds a run.
RUN_FILES = ("config.yaml", "metrics.jsonl", "summary.json", "partitions.json", "global.pt",
             "final.pt", "flwr.log")  # fmt: skip


class RunFolderError(FileExistsError):
    """A folder that this run may not use; the message names it and says what to do."""


def held_results(out: Path) -> list[str]:
    """The names of the run files in `out`."""
    return [name for name in RUN_FILES if (out / name).exists()]


def refuse_another_run(out: Path, resume: bool) -> None:
    """Raise unless `out` is empty of run files or this run resumes the one there."""
    held = held_results(out)
    if held and not resume:
        raise RunFolderError(
            f"{out} holds another run ({', '.join(held)}); choose another --out, continue it "
            "with --set federation.resume=true, or replace it with --force (the old run is "
            "moved aside, not deleted)"
        )


@contextmanager
def folder_lock(out: Path, role: str) -> Iterator[None]:
    """Hold `role`'s lock on `out` or refuse at once."""
    path = _lock_path(out, role)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunFolderError(
            f"{out}: another run is using this folder ({role} lock {path} is held)"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _lock_path(out: Path, role: str) -> Path:
    """One lock file per folder and role, the same for every process on this machine."""
    folder = Path(tempfile.gettempdir()) / f"fedland-locks-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    name = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:24]
    return folder / f"{name}.{role}.lock"


def set_aside(out: Path) -> Path | None:
    """Move the run in `out` to a sibling `NAME.replaced-YYYYmmdd-HHMMSS` (for --force);
    returns where it went, or None when there was nothing to move."""
    if not held_results(out):
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = out.with_name(f"{out.name}.replaced-{stamp}")
    suffix = 1
    while target.exists():
        target = out.with_name(f"{out.name}.replaced-{stamp}-{suffix}")
        suffix += 1
    out.rename(target)
    out.mkdir()
    return target


def write_atomically(path: Path, text: str) -> None:
    """`path` holds either its old or its new text, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def stamp(path: Path) -> tuple[int, int] | None:
    """What tells one version of a file from the next (an atomic write makes a new inode)."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_mtime_ns
