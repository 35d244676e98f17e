"""Leeds Sports Pose (LSP) and LSP-extended (14 joints) from `root/joints.mat`.

The shape of `joints` tells them apart:
- 3 x 14 x N: LSP. Rows x, y, flag with the flag inverted (raw visibility = 1 - flag).
  Images `root/images/im0001.jpg`, ... (4 digits); images 1-1000 "train", the rest "test".
- 14 x 3 x N: LSPET. Columns x, y, visibility (1 = visible). Images `im00001.jpg`, ...
  (5 digits); all "train".

Coordinates are 1-based (MATLAB) and shifted by -1. `Record.visible` means annotated: LSP
annotates all 14 joints, occluded or not, so all are 1; LSPET keeps a joint when it is visible
or (if marked invisible) has positive raw coordinates, and the others get visible 0 and
coordinates (0, 0). `attributes["visibility"]` keeps the raw visibility (1 visible, 0 not).
Neither set is tightly cropped around one person in a reliable way, so the crop is derived
from the annotated joints: `crop_from_landmarks(..., margin=1.25)`.
`Record.source` is "joints.mat:image N" (1-based image number); bad samples name it in the
reason (a .mat has no lines).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import loadmat
from scipy.io.matlab import MatReadError

from fedland.data.meta import LSP
from fedland.data.records import (
    AnnotationError,
    BadSample,
    ReadResult,
    Record,
    crop_from_landmarks,
)

SPLITS = ("train", "test")
NUM_JOINTS = LSP.num_landmarks
LSP_TRAIN_IMAGES = 1000


def read_lsp(root: str | Path, split: str | None = None) -> ReadResult:
    """Records of one split (all when None) from `root/joints.mat` (LSP or LSPET)."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown LSP split {split!r}; allowed: {', '.join(SPLITS)}")
    root = Path(root).absolute()
    path = root / "joints.mat"
    if not path.is_file():
        raise AnnotationError(root, "no joints.mat")
    joints, extended = _load_joints(path)
    if extended:  # x, y, raw visibility: [N, 14] each
        x, y, visibility = joints
        annotated = (visibility == 1) | ((x > 0) & (y > 0))
    else:
        x, y, visibility = joints[0], joints[1], 1.0 - joints[2]
        annotated = np.ones_like(x, dtype=bool)
    landmarks = np.stack([x, y], axis=-1) - 1.0
    finite = np.isfinite(landmarks).all(axis=(1, 2)) & np.isfinite(visibility).all(axis=1)
    result = ReadResult()
    for index in range(landmarks.shape[0]):
        number = index + 1
        image_split = "train" if extended or number <= LSP_TRAIN_IMAGES else "test"
        if split not in (None, image_split):
            continue
        image = root / "images" / (f"im{number:05d}.jpg" if extended else f"im{number:04d}.jpg")
        reason = None
        if not finite[index]:
            reason = "non-finite joint coordinates"
        elif not annotated[index].any():
            reason = "no annotated joint"
        elif not image.is_file():
            reason = f"missing image {image}"
        if reason is not None:
            result.bad.append(BadSample(str(path), f"image {number}: {reason}"))
            continue
        visible = annotated[index].astype(np.float32)
        points = np.where(annotated[index][:, None], landmarks[index], 0.0)
        center, scale = crop_from_landmarks(points, visible, margin=1.25)
        result.records.append(
            Record(
                image=image,
                landmarks=points,
                visible=visible,
                center=center,
                scale=scale,
                split=image_split,
                subset="lspet" if extended else "lsp",
                attributes={"visibility": visibility[index].astype(int).tolist()},
                source=f"{path}:image {number}",
            )
        )
    return result


def _load_joints(path: Path) -> tuple[np.ndarray, bool]:
    """Joints as [3, N, 14] (x, y, raw flag) and whether the file is LSPET (14 x 3 x N)."""
    try:
        joints = np.asarray(loadmat(path)["joints"], dtype=np.float64)
    except (OSError, ValueError, TypeError, KeyError, MatReadError) as error:
        raise AnnotationError(path, f"no readable 'joints' array ({error})") from error
    if joints.ndim == 3 and joints.shape[:2] == (3, NUM_JOINTS):
        return joints.transpose(0, 2, 1), False
    if joints.ndim == 3 and joints.shape[:2] == (NUM_JOINTS, 3):
        return joints.transpose(1, 2, 0), True
    raise AnnotationError(
        path,
        f"'joints' has shape {'x'.join(map(str, joints.shape))}; allowed: "
        f"3x{NUM_JOINTS}xN (LSP) or {NUM_JOINTS}x3xN (LSP-extended)",
    )
