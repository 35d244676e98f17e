"""Damaged images are found before training: `data info` reports them, `skip_bad` skips
them, and without it the run stops naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fedland.cli import main
from fedland.data.image_check import decode_problem, image_problems, structural_problem
from fedland.data.records import AnnotationError
from fedland.data.sources import load_split
from tests.test_training import _config


def _encoded(suffix: str) -> bytes:
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    return cv2.imencode(suffix, image)[1].tobytes()


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    jpeg, png = _encoded(".jpg"), _encoded(".png")
    files = {
        "whole.jpg": jpeg,
        "padded.jpg": jpeg + b"\x00" * 100,  # some writers pad after the end marker
        "whole.png": png,
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "truncated.png": png[: len(png) // 2],
        "garbage.jpg": np.random.default_rng(1).bytes(2000),
        "empty.jpg": b"",
        # markers intact, the compressed pixels replaced: only a decode finds it
        "scrambled.png": png[:33] + np.random.default_rng(2).bytes(len(png) - 45) + png[-12:],
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {name: tmp_path / name for name in files}


def test_truncated_and_foreign_files_are_found_from_their_markers(images):
    assert {name: structural_problem(path) for name, path in images.items()} == {
        "whole.jpg": None,
        "padded.jpg": None,
        "whole.png": None,
        "truncated.jpg": "truncated JPEG (no end marker)",
        "truncated.png": "truncated PNG (no IEND chunk)",
        "garbage.jpg": "not a JPG image (its first bytes say otherwise)",
        "empty.jpg": "empty image file",
        "scrambled.png": None,
    }
    assert structural_problem(images["whole.jpg"].with_name("missing.jpg")).startswith(
        "cannot read image"
    )


def test_decoding_finds_what_the_markers_cannot(images):
    assert decode_problem(images["scrambled.png"]) == "cannot decode image"
    assert decode_problem(images["whole.jpg"]) is None
    found = image_problems([*images.values(), images["truncated.jpg"]], decode=True, workers=2)
    assert sorted(path.name for path in found) == [
        "empty.jpg", "garbage.jpg", "scrambled.png", "truncated.jpg", "truncated.png"
    ]  # fmt: skip


def _truncate_one_training_image(tmp_path: Path) -> Path:
    config = _config(tmp_path)
    load_split(config.data, "train")  # generates the synthetic tree
    root = next((tmp_path / "cache").glob("face-*"))
    image = sorted(root.glob("*/trainset/*.jpg"))[0]
    image.write_bytes(image.read_bytes()[:300])
    return image


def test_a_truncated_jpeg_stops_a_run_before_training_unless_skipped(tmp_path):
    image = _truncate_one_training_image(tmp_path)
    with pytest.raises(AnnotationError, match=f"{image.name}: truncated JPEG"):
        load_split(_config(tmp_path).data, "train")
    records, result, _ = load_split(_config(tmp_path, "300w", "data.skip_bad=true").data, "train")
    assert image not in {record.image for record in records}
    assert [bad.path for bad in result.bad] == [str(image)]


def test_data_info_reports_a_truncated_jpeg(tmp_path, capsys):
    image = _truncate_one_training_image(tmp_path)
    root = image.parents[2]
    assert main(["data", "info", "--dataset", "300w", "--root", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"path": str(image), "line": None, "reason": "truncated JPEG (no end marker)"} in (
        report["bad"]
    )
