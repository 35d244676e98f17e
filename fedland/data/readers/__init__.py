"""Readers of landmark datasets in their published on-disk formats.

`read_dataset(name, root, split)` returns every usable `Record` of a split and, in
`ReadResult.bad`, every sample it could not use; each module's docstring states how that
dataset's coordinates, visibility flags, crop centre and scale are derived.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fedland.data.readers import coco, face300w, lsp, mpii, wflw
from fedland.data.records import AnnotationError, ReadResult

_READERS: dict[str, tuple[Callable[[Path, str | None], ReadResult], tuple[str, ...]]] = {
    "mpii": (mpii.read_mpii, mpii.SPLITS),
    "lsp": (lsp.read_lsp, lsp.SPLITS),
    "300w": (face300w.read_300w, face300w.SPLITS),
    "wflw": (wflw.read_wflw, wflw.SPLITS),
    "coco": (coco.read_coco, coco.SPLITS),
}

SPLITS: dict[str, tuple[str, ...]] = {name: splits for name, (_, splits) in _READERS.items()}


def read_dataset(name: str, root: str | Path, split: str | None = None) -> ReadResult:
    """Records of dataset `name` under `root`, one split or all of them (None)."""
    if name not in _READERS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(_READERS)}")
    reader, splits = _READERS[name]
    if split is not None and split not in splits:
        raise ValueError(f"unknown {name} split {split!r}; allowed: {', '.join(splits)}")
    root = Path(root)
    if not root.is_dir():
        raise AnnotationError(root, "dataset folder does not exist")
    return reader(root, split)


__all__ = ["SPLITS", "read_dataset"]
