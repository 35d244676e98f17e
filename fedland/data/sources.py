"""Where a run's records come from: a dataset on disk, or the embedded synthetic default.

Synthetic data is written in the dataset's real format (300-W tree for faces, MPII JSON list
for poses) and read back through the real reader, so the default path exercises the same code
as real data. It is generated once per (task, count, seed, size) into a cache folder, by one
process at a time (a lock file); a half-written folder is never used (generation goes to a
temporary folder that is renamed).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock

from fedland.config import DataSection
from fedland.data.image_check import image_problems
from fedland.data.meta import DatasetMeta, dataset_meta
from fedland.data.readers import read_dataset
from fedland.data.records import AnnotationError, BadSample, ReadResult, Record

log = logging.getLogger(__name__)

DEFAULT_EVAL_SPLIT = {"300w": "full", "wflw": "test", "mpii": "val", "lsp": "test", "coco": "val"}
SYNTHETIC_FORMAT = {"300w": "face", "mpii": "pose"}
_COMPLETE = ".complete"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fedland" / "synthetic"


def synthetic_root(data: DataSection, progress: bool = False) -> Path:
    """The cached synthetic dataset for `data.dataset`, generated if it is not there yet."""
    from fedland.data.synth import synthesize_faces, synthesize_poses

    task = SYNTHETIC_FORMAT.get(data.dataset)
    if task is None:
        raise ValueError(
            f"data.root is required for dataset {data.dataset!r}: synthetic data exists for "
            f"{', '.join(sorted(SYNTHETIC_FORMAT))} only"
        )
    synth = data.synthetic
    cache = Path(synth.cache_dir) if synth.cache_dir else default_cache_dir()
    root = cache / f"{task}-n{synth.num}-seed{synth.seed}-{synth.image_size}px"
    if (root / _COMPLETE).is_file():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    # Processes that want the same data at once (the runs of a parallel sweep, the nodes of
    # a simulation) take turns: the first generates it, the others find it complete.
    with FileLock(str(cache / f".{root.name}.lock")):
        if (root / _COMPLETE).is_file():
            return root
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=cache))
        try:
            generate = synthesize_faces if task == "face" else synthesize_poses
            bar = _progress_bar(synth.num, f"synthesizing {task}s") if progress else None
            report = (lambda done: bar.update(done - bar.n)) if bar else None
            generate(staging, synth.num, synth.seed, synth.image_size, progress=report)
            if bar:
                bar.close()
            (staging / _COMPLETE).write_text("ok\n")
            if root.exists():  # an incomplete folder left by a crash
                shutil.rmtree(root)
            staging.rename(root)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return root


def load_split(
    data: DataSection, split: str, progress: bool = False
) -> tuple[list[Record], ReadResult, DatasetMeta]:
    """Records of one split; bad samples raise unless `data.skip_bad`, then are reported."""
    meta = dataset_meta(data.dataset)
    root = Path(data.root) if data.root else synthetic_root(data, progress)
    result = with_image_check(read_dataset(data.dataset, root, split))
    if result.bad and not data.skip_bad:
        first = result.bad[0]
        advice = (
            f"{len(result.bad)} bad sample(s) in {root}; set data.skip_bad=true to skip them, "
            "`fedland data info` lists them"
        )
        raise AnnotationError(first.path, f"{first.reason} ({advice})", first.line)
    if result.bad:
        log.warning("skipped %d bad sample(s) in %s", len(result.bad), root)
    if not result.records:
        raise AnnotationError(root, f"no usable samples in split {split!r}")
    return result.records, result, meta


def with_image_check(
    result: ReadResult, decode: bool = False, progress: bool = False
) -> ReadResult:
    """`result` with the records whose image is damaged (truncated, not an image; with
    `decode`, anything OpenCV cannot decode) moved to its bad samples."""
    images = [record.image for record in result.records]
    bar = _progress_bar(len(set(images)), "checking images") if progress else None
    report = (lambda done: bar.update(done - bar.n)) if bar else None
    problems = image_problems(images, decode, progress=report)
    if bar:
        bar.close()
    if not problems:
        return result
    kept = [record for record in result.records if record.image not in problems]
    damaged = [BadSample(str(path), reason) for path, reason in problems.items()]
    return ReadResult(kept, [*result.bad, *damaged])


def eval_split(data: DataSection) -> str:
    return data.eval_split or DEFAULT_EVAL_SPLIT[data.dataset]


def _progress_bar(total: int, description: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="img", leave=False)
