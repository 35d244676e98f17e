"""What a node makes of its own node config, the checks before a federated run starts, and
the run's bookkeeping: the pieces the apps share, driven one at a time."""

from __future__ import annotations

import json
import re
import time

import pytest
import torch

from fedland.config import ConfigError, load_config
from fedland.federation.client_data import node_experiment
from fedland.federation.ledger import RunWriter
from fedland.federation.settings import NodeSettings
from fedland.federation.weights import float_state, load_float_state
from fedland.model import build_model
from tests.conftest import TINY


def test_a_node_config_overrides_only_that_nodes_device_batch_memory_and_data():
    run = load_config(None, ["train.device=auto", "train.batch_size=16"])
    node = NodeSettings.from_node_config(
        {"partition-id": 1, "num-partitions": 3, "device": "cpu", "batch-size": "4",
         "memory-efficient": "false", "data-path": "/data/mine", "dataset": "wflw"}
    )  # fmt: skip
    mine = node_experiment(run, node)
    assert (mine.train.device, mine.train.batch_size) == ("cpu", 4)
    assert mine.model.memory_efficient is False
    assert (mine.data.root, mine.data.dataset) == ("/data/mine", "wflw")
    assert (mine.federation, mine.codec, mine.partition) == (
        run.federation,
        run.codec,
        run.partition,
    )
    plain = NodeSettings.from_node_config({"partition-id": 0, "num-partitions": 3})
    assert node_experiment(run, plain) == run


NODE = {"partition-id": 0, "num-partitions": 2}


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"num-partitions": 2}, "node config lacks 'partition-id'"),
        ({"partition-id": 2, "num-partitions": 2}, r"partition-id 2 not in \[0, 2\)"),
        ({**NODE, "batch-size": "big"}, "node config batch-size: expected int, got 'big'"),
        ({**NODE, "batch-size": 0}, "node config batch-size: must be at least 1, got 0"),
        ({**NODE, "uplink-bits": 5}, "node config uplink-bits: must be one of 32, 16, 8"),
        ({**NODE, "device": "gpu"}, "node config device: must be auto, cpu, mps, cuda"),
        ({**NODE, "dataset": "faces"}, "node config dataset: must be one of mpii"),
        ({**NODE, "memory-efficient": "maybe"}, "node config memory-efficient: expected boolean"),
    ],
)
def test_a_bad_node_config_says_what_is_wrong(config, reason):
    with pytest.raises(ValueError, match=reason):
        NodeSettings.from_node_config(config)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("partition.scheme=random", "partition.scheme: must be one of "),
        ("partition.num_partitions=0", "partition.num_partitions: must be at least 1, got 0"),
        ("federation.rounds=0", "federation.rounds: must be at least 1, got 0"),
        ("federation.local_epochs=0", "federation.local_epochs: must be at least 1, got 0"),
        ("federation.fraction_train=0", r"federation.fraction_train: must be in \(0, 1\], got 0"),
        ("federation.client_cpus=0", "federation.client_cpus: must be positive, got 0"),
    ],
)
def test_a_run_that_cannot_work_is_refused_naming_the_key_and_value(override, message):
    with pytest.raises(ConfigError, match=f"^--set {re.escape(override)}: {message}"):
        load_config(None, [override])


def test_weights_for_another_model_name_the_missing_and_extra_tensors():
    model = build_model(num_unets=1, order=0, **TINY)
    weights = float_state(model)
    names = sorted(weights)
    for name in names[:4]:
        weights.pop(name)
    weights["head.extra"] = torch.zeros(1)
    expected = f"missing {names[:3]}, extra ['head.extra']"
    with pytest.raises(ValueError, match=re.escape(f"weights do not fit the model: {expected}")):
        load_float_state(model, weights)


def _row(round_: int, nme: float) -> dict:
    sizes = {"uplink_bytes": 10, "downlink_bytes": 20, "fp32_uplink_bytes": 80}
    return {"round": round_, "nme": nme, **sizes, "fp32_downlink_bytes": 80, "rejected": 0,
            "failed": 0}  # fmt: skip


def test_a_resumed_run_counts_the_time_spent_before_the_restart(tmp_path):
    fresh = RunWriter(tmp_path, "nme", {})
    fresh.add(_row(0, 100.0))
    assert 0 <= fresh.summary()["wall_seconds"] < 60

    resumed = RunWriter(tmp_path, "nme", {})
    resumed.resume([_row(0, 100.0), _row(1, 50.0)], elapsed=500.0)
    started = time.perf_counter()
    resumed.add(_row(2, 40.0))
    summary = resumed.summary()
    assert 500 <= summary["wall_seconds"] < 500 + 60 + (time.perf_counter() - started)
    assert resumed.rows[-1]["elapsed"] >= 500
    assert (summary["rounds"], summary["nme"], summary["uplink_bytes"]) == (2, 40.0, 20)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
