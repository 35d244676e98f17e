"""The iBUG `.pts` format: 1-based on disk, 0-based in memory, strict count, lenient spacing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedland.data.readers.pts import read_pts, write_pts
from fedland.data.records import AnnotationError


def _pts(path: Path, lines: list[str], count: int | None = None, closing: str = "}\n") -> Path:
    count = len(lines) if count is None else count
    path.write_text(f"version: 1\nn_points:  {count}\n{{\n" + "\n".join(lines) + "\n" + closing)
    return path


def test_round_trip(tmp_path: Path) -> None:
    points = np.random.default_rng(0).uniform(0, 100, size=(68, 2)).astype(np.float32)
    write_pts(tmp_path / "a.pts", points)
    np.testing.assert_allclose(read_pts(tmp_path / "a.pts", expected_points=68), points, atol=1e-3)


def test_written_file_has_the_ibug_header_and_one_based_points(tmp_path: Path) -> None:
    write_pts(tmp_path / "a.pts", np.array([[0.0, 0.0], [9.5, 19.25]], np.float32))
    lines = (tmp_path / "a.pts").read_text().splitlines()
    assert lines[:3] == ["version: 1", "n_points:  2", "{"] and lines[-1] == "}"
    on_disk = [[float(v) for v in line.split()] for line in lines[3:-1]]
    assert on_disk == [[1.0, 1.0], [10.5, 20.25]]


def test_one_based_on_disk_with_two_space_header(tmp_path: Path) -> None:
    path = _pts(tmp_path / "a.pts", ["1.0 1.0", "  10.5\t20.25  ", "3 4"])
    np.testing.assert_array_equal(read_pts(path), [[0, 0], [9.5, 19.25], [2, 3]])


def test_missing_final_newline(tmp_path: Path) -> None:
    path = _pts(tmp_path / "a.pts", ["1 2", "3 4"], closing="}")
    np.testing.assert_array_equal(read_pts(path), [[0, 1], [2, 3]])


def test_wrong_count(tmp_path: Path) -> None:
    header_mismatch = _pts(tmp_path / "a.pts", ["1 2"] * 67, count=68)
    with pytest.raises(AnnotationError, match="header says 68 points, file has 67"):
        read_pts(header_mismatch)
    sixty_seven = _pts(tmp_path / "b.pts", ["1 2"] * 67)
    with pytest.raises(AnnotationError, match="expected 68 points") as error:
        read_pts(sixty_seven, expected_points=68)
    assert error.value.path.endswith("b.pts")


def test_no_closing_brace(tmp_path: Path) -> None:
    path = _pts(tmp_path / "a.pts", ["1 2", "3 4"], closing="")
    with pytest.raises(AnnotationError, match="closing") as error:
        read_pts(path)
    assert error.value.path.endswith("a.pts") and error.value.line == 5


def test_non_numeric_line_names_its_number(tmp_path: Path) -> None:
    path = _pts(tmp_path / "a.pts", ["1 2", "3 x", "5 6"])
    with pytest.raises(AnnotationError, match="'3 x'") as error:
        read_pts(path)
    assert error.value.line == 5
    assert str(error.value).startswith(f"{path}:5:")
