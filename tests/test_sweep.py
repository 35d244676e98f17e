"""`fedland sweep`: the plan, and a real two-run sweep on the Simulation Engine that is then
resumed without running anything again."""

from __future__ import annotations

import csv

import pytest

from fedland.cli import main
from simulations.sweep import SweepPoint, default_downlink, plan
from tests.conftest import TINY_FEDERATION

TINY = [*TINY_FEDERATION, "federation.rounds=2", "partition.num_partitions=2"]


def test_plan_covers_every_bit_width_seed_and_variant():
    points = plan([32, 4, 1], None, 2, [("codec.error_feedback", ["true", "false"])])
    assert len(points) == 3 * 2 * 2
    assert {(p.bits, p.downlink_bits) for p in points} == {(32, 32), (4, 4), (1, 4)}
    assert len({p.name for p in points}) == len(points)
    assert plan([8, 4], [8], 1, [])[1].downlink_bits == 8
    assert [p.downlink_bits for p in plan([8, 4], [16, 2], 1, [])] == [16, 2]


def test_plan_errors_say_what_is_allowed():
    with pytest.raises(ValueError, match="one value or one per --bits value"):
        plan([8, 4, 2], [8, 4], 1)
    with pytest.raises(ValueError, match="--seeds"):
        plan([8], None, 0)


def test_points_differ_only_in_what_is_swept():
    from fedland.config import load_config
    from simulations.sweep import point_config

    base = load_config(None, ["train.seed=7"])
    point = SweepPoint(2, default_downlink(2), 1, (("codec.block_size", "64"),))
    assert point.name == "up2-down4-seed1-block_size=64"
    config = point_config(base, point)
    assert (config.codec.uplink_bits, config.codec.downlink_bits) == (2, 4)
    assert (config.train.seed, config.partition.seed, config.codec.block_size) == (8, 1, 64)
    assert config.model == base.model and config.data == base.data


@pytest.mark.slow
def test_sweep_writes_csv_table_and_plots_and_resumes(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", "--bits", "32,4", "--parallel", "2", "--out", str(out)]
    for override in [*TINY, f"data.synthetic.cache_dir={tmp_path / 'cache'}"]:
        args += ["--set", override]
    assert main(args) == 0
    with (out / "sweep.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["bits"] for row in rows] == ["32", "4"]
    float32, four = rows
    assert float(float32["uplink_ratio"]) == pytest.approx(1.0, abs=0.01)
    assert float(four["uplink_ratio"]) > 3
    assert int(four["uplink_bytes"]) < int(float32["uplink_bytes"])
    assert {"nme", "rounds_to_target", "bytes_to_target", "seconds", "downlink_bytes"} <= set(
        float32
    )
    assert float32["nme_vs_float32_%"] == "0.0"
    table = (out / "sweep.md").read_text()
    assert "| 32 | 32 |" in table and "| 4 | 4 |" in table
    for name in ("comm_vs_accuracy.png", "accuracy_by_round.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()

    assert main(args) == 0  # everything is there: nothing runs again
    shown = capsys.readouterr().out
    assert shown.count("(reused)") == 2 and "round 1/2" not in shown


def test_sweep_rejects_a_folder_with_other_settings(tmp_path):
    folder = tmp_path / "sweep" / "runs" / "up8-down8-seed0"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text("{}")
    (folder / "config.yaml").write_text("model: {bits: w1a8g8}\n")
    assert main(["sweep", "--bits", "8", "--out", str(tmp_path / "sweep")]) == 2
