"""A federation that cannot train stops with the nodes' reasons instead of reporting
success, and what can be known before start is refused before start."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from loopback import LoopbackGrid

from fedland.config import ConfigError, load_config
from fedland.server.run import run_federation
from fedland.server.strategy import FederationStalled
from tests.conftest import TINY_FEDERATION

SETTINGS = [*TINY_FEDERATION, "data.workers=0", "train.batch_size=4"]


def _config(tmp_path: Path, *extra: str):
    return load_config(None, [*SETTINGS, f"data.synthetic.cache_dir={tmp_path / 'cache'}",
                              f"federation.out={tmp_path / 'run'}", *extra])  # fmt: skip


def _rounds(tmp_path: Path) -> list[int]:
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["round"] for line in lines]


def test_a_federation_whose_nodes_all_fail_stops_after_the_idle_rounds_with_their_reasons(
    tmp_path,
):
    config = _config(tmp_path, "partition.num_partitions=2", "federation.rounds=10",
                     "federation.max_idle_rounds=2")  # fmt: skip
    grid = LoopbackGrid(2)
    for context in grid.contexts.values():
        context.node_config = {"partition-id": 0}  # every node is broken
    with pytest.raises(FederationStalled) as stalled:
        run_federation(grid, config)
    message = str(stalled.value)
    assert "no usable update in 2 round(s) in a row (up to round 2" in message
    assert "node 1:" in message and "node 2:" in message and "num-partitions" in message
    assert _rounds(tmp_path) == [0, 1]  # round 1 recorded; the run stopped in round 2
    assert not (tmp_path / "run" / "summary.json").exists()


def test_a_run_that_trained_nothing_never_reports_success(tmp_path):
    config = _config(tmp_path, "partition.num_partitions=2", "federation.rounds=1")
    grid = LoopbackGrid(2, tamper=lambda node, reply: reply.content.metric_records.clear()
                        or reply)  # fmt: skip
    with pytest.raises(FederationStalled, match="trained nothing"):
        run_federation(grid, config)
    assert not (tmp_path / "run" / "summary.json").exists()
    assert not (tmp_path / "run" / "final.pt").exists()


def test_nodes_that_split_the_data_another_way_are_rejected_by_name(tmp_path, caplog):
    """Two nodes that each train half of the data, in a run that splits it in four: both
    replies are rejected with the reason, and the run that trained nothing fails."""
    config = _config(tmp_path, "partition.num_partitions=4", "federation.rounds=1")
    with pytest.raises(FederationStalled, match="trained nothing"):
        run_federation(LoopbackGrid(2), config)
    rejected = [r.getMessage() for r in caplog.records if "rejected update" in r.getMessage()]
    assert len(rejected) == 2
    assert all("of 2, but this run splits the data into 4" in m for m in rejected)


@pytest.mark.parametrize("key", ["min_train_nodes", "min_available_nodes"])
def test_more_required_nodes_than_partitions_is_refused_at_load(key):
    with pytest.raises(ConfigError) as error:
        load_config(None, ["partition.num_partitions=2", f"federation.{key}=3"])
    assert error.value.key == f"federation.{key}" and "wait forever" in str(error.value)


def test_waiting_for_more_nodes_than_connect_gives_up_naming_what_it_waited_for(tmp_path):
    config = _config(tmp_path, "partition.num_partitions=4", "federation.min_available_nodes=4",
                     "federation.node_wait_timeout=2")  # fmt: skip
    started = time.monotonic()
    with pytest.raises(FederationStalled) as stalled:
        run_federation(LoopbackGrid(2), config)
    assert time.monotonic() - started < 30
    message = str(stalled.value)
    assert "waited 2 s for 4 nodes" in message and "2 connected: [1, 2]" in message
    assert not (tmp_path / "run" / "summary.json").exists()
