"""WFLW (98 points) from `list_98pt_rect_attr_{train,test}.txt`.

The lists are found in `root/WFLW_annotations/list_98pt_rect_attr_train_test/` or directly in
`root`. One face per line, 207 fields: 196 coordinates (x0 y0 x1 y1 ...), the face box
(x_min y_min x_max y_max), six 0/1 attributes (pose expression illumination make-up occlusion
blur) and the image path under `root/WFLW_images/`. Coordinates are 0-based as published; all
98 points are annotated. Crop: `crop_from_box` of the face box with margin 1.25.
`Record.attributes` holds the six flags under the names of `WFLW.nme_subsets`, so each
evaluation set reports an NME per subset. `Record.subset` is the image's first folder (the
WIDER event, e.g. "51--Dresses"); `Record.source` is "file:line" and bad lines carry their
1-based line number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedland.data.meta import WFLW
from fedland.data.records import AnnotationError, BadSample, ReadResult, Record, crop_from_box

SPLITS = ("train", "test")
LIST_FOLDER = Path("WFLW_annotations") / "list_98pt_rect_attr_train_test"
ATTRIBUTES = WFLW.nme_subsets  # the file's attribute columns, in order: WFLW's test subsets
NUM_POINTS = WFLW.num_landmarks
NUM_FIELDS = 2 * NUM_POINTS + 4 + len(ATTRIBUTES) + 1


def read_wflw(root: str | Path, split: str | None = None) -> ReadResult:
    """Records of one split (all when None) from the WFLW annotation lists under `root`."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown WFLW split {split!r}; allowed: {', '.join(SPLITS)}")
    root = Path(root).absolute()
    lists = {}
    for name in SPLITS:
        filename = f"list_98pt_rect_attr_{name}.txt"
        found = [p for p in (root / LIST_FOLDER / filename, root / filename) if p.is_file()]
        if found:
            lists[name] = found[0]
    if not lists:
        raise AnnotationError(root, "no list_98pt_rect_attr_{train,test}.txt")
    result = ReadResult()
    for name, path in lists.items():
        if split in (None, name):
            result.extend(_read_list(path, root / "WFLW_images", name))
    return result


def _read_list(path: Path, images: Path, split: str) -> ReadResult:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise AnnotationError(path, f"cannot read ({error})") from error
    result = ReadResult()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = _parse_line(line, images, split)
        except ValueError as error:
            result.bad.append(BadSample(str(path), str(error), number))
            continue
        record.source = f"{path}:{number}"
        result.records.append(record)
    return result


def _parse_line(line: str, images: Path, split: str) -> Record:
    fields = line.split()
    if len(fields) != NUM_FIELDS:
        raise ValueError(f"{len(fields)} fields, expected {NUM_FIELDS}")
    numbers = np.asarray(fields[: 2 * NUM_POINTS + 4], dtype=np.float64)
    if not np.isfinite(numbers).all():
        raise ValueError("non-finite coordinate")
    flags = [int(value) for value in fields[2 * NUM_POINTS + 4 : -1]]
    if any(flag not in (0, 1) for flag in flags):
        raise ValueError(f"attributes must be 0 or 1, got {flags}")
    x1, y1, x2, y2 = numbers[2 * NUM_POINTS :]
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"empty face box {[x1, y1, x2, y2]}")
    image = images / fields[-1]
    if not image.is_file():
        raise ValueError(f"missing image {image}")
    center, scale = crop_from_box(x1, y1, x2, y2, margin=1.25)
    folders = Path(fields[-1]).parts[:-1]
    return Record(
        image=image,
        landmarks=numbers[: 2 * NUM_POINTS],
        visible=np.ones(NUM_POINTS, dtype=np.float32),
        center=center,
        scale=scale,
        split=split,
        subset=folders[0] if folders else "",
        attributes=dict(zip(ATTRIBUTES, flags, strict=True)),
    )
