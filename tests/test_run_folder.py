"""A run folder belongs to one run: a second run is refused before it writes anything, a run
already writing holds the folder, a refused resume leaves it byte for byte as it was, and
`--force` moves the old run aside rather than deleting it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from loopback import LoopbackGrid

from fedland.config import ConfigError, load_config
from fedland.federation.run_folder import (
    RunFolderError,
    folder_lock,
    set_aside,
    write_atomically,
)
from fedland.server.run import run_federation
from tests.conftest import TINY_FEDERATION

SETTINGS = [*TINY_FEDERATION, "data.workers=0", "train.batch_size=4",
            "partition.num_partitions=2", "federation.rounds=1"]  # fmt: skip


def _config(tmp_path: Path, *extra: str):
    return load_config(None, [*SETTINGS, f"data.synthetic.cache_dir={tmp_path / 'cache'}",
                              f"federation.out={tmp_path / 'run'}", *extra])  # fmt: skip


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def finished(tmp_path) -> Path:
    run_federation(LoopbackGrid(2), _config(tmp_path))
    return tmp_path / "run"


def test_a_second_run_into_a_finished_runs_folder_is_refused_and_changes_nothing(
    finished, tmp_path
):
    before = _snapshot(finished)
    with pytest.raises(RunFolderError, match="holds another run .*config.yaml"):
        run_federation(LoopbackGrid(2), _config(tmp_path, "codec.uplink_bits=2"))
    assert _snapshot(finished) == before


def test_a_refused_resume_leaves_the_folder_byte_for_byte(finished, tmp_path):
    before = _snapshot(finished)
    other = _config(tmp_path, "codec.uplink_bits=2", "federation.resume=true",
                    "federation.rounds=2")  # fmt: skip
    with pytest.raises(ConfigError, match="other settings"):
        run_federation(LoopbackGrid(2), other)
    assert _snapshot(finished) == before


def test_a_folder_another_process_writes_to_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    with folder_lock(out, "server"), pytest.raises(RunFolderError, match="another run is using"):
        run_federation(LoopbackGrid(2), _config(tmp_path))
    assert not out.exists() or _snapshot(out) == {}
    run_federation(LoopbackGrid(2), _config(tmp_path))  # the lock went with its holder
    assert (out / "summary.json").is_file()


def test_fedland_simulate_refuses_a_held_or_finished_folder_at_once(finished, tmp_path):
    before = _snapshot(finished)
    command = [sys.executable, "-m", "fedland.cli", "simulate", "--out", str(finished)]
    for setting in SETTINGS:
        command += ["--set", setting]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert "holds another run" in refused.stderr and "--force" in refused.stderr
    with folder_lock(finished, "simulate"):
        held = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert held.returncode == 2 and "another run is using this folder" in held.stderr
    assert _snapshot(finished) == before


def test_force_moves_the_old_run_aside_whole(finished):
    before = _snapshot(finished)
    moved = set_aside(finished)
    assert moved is not None and moved.parent == finished.parent
    assert moved.name.startswith("run.replaced-")
    assert _snapshot(moved) == before and _snapshot(finished) == {}
    assert set_aside(finished) is None  # nothing to move


def test_atomic_writes_leave_no_temporary_file(tmp_path):
    path = tmp_path / "summary.json"
    write_atomically(path, "{}")
    write_atomically(path, '{"rounds": 2}')
    assert path.read_text() == '{"rounds": 2}' and [p.name for p in tmp_path.iterdir()] == [
        "summary.json"
    ]
