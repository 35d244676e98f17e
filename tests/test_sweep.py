"""`fedland sweep`: the plan, the report (CSV, table, plots) from finished runs, and one real
run on the Simulation Engine that a second sweep reuses without running it again."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fedland.cli import main
from fedland.simulations import report
from fedland.simulations.sweep import RunResult, SweepPoint, default_downlink, plan
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
    from fedland.simulations.sweep import point_config

    base = load_config(None, ["train.seed=7"])
    point = SweepPoint(2, default_downlink(2), 1, (("codec.block_size", "64"),))
    assert point.name == "up2-down4-seed1-block_size=64"
    config = point_config(base, point)
    assert (config.codec.uplink_bits, config.codec.downlink_bits) == (2, 4)
    assert (config.train.seed, config.partition.seed, config.codec.block_size) == (8, 1, 64)
    assert config.model == base.model and config.data == base.data


def test_runs_at_once_share_the_cores_and_each_keeps_what_a_client_needs(monkeypatch):
    from fedland.config import load_config
    from fedland.simulations import sweep

    monkeypatch.setattr(sweep.os, "cpu_count", lambda: 8)
    config = load_config(None, [])
    assert sweep._cpu_share(config, 1) is None  # one run: Ray takes the machine
    assert [sweep._cpu_share(config, n) for n in (2, 4, 16)] == [4, 2, 1]
    wide = load_config(None, ["federation.client_cpus=3"])
    assert sweep._cpu_share(wide, 4) == 3  # a share below one client would never schedule


def test_attacks_and_aggregators_sweep_as_varied_keys():
    """`fedland sweep --set attack.num_nodes=2 --vary attack.kind=none,sign_flip
    --vary federation.aggregator=fedavg,trimmed_mean`: the attack x aggregator table."""
    from fedland.config import load_config
    from fedland.simulations.sweep import point_config

    base = load_config(None, ["attack.num_nodes=2"])
    variants = [("attack.kind", ["none", "sign_flip"]),
                ("federation.aggregator", ["fedavg", "trimmed_mean"])]  # fmt: skip
    points = plan([4], None, 1, variants)
    configs = [point_config(base, point) for point in points]
    assert {(c.attack.kind, c.federation.aggregator) for c in configs} == {
        ("none", "fedavg"), ("none", "trimmed_mean"),
        ("sign_flip", "fedavg"), ("sign_flip", "trimmed_mean"),
    }  # fmt: skip
    assert points[-1].name == "up4-down4-seed0-kind=sign_flip-aggregator=trimmed_mean"


def _result(bits, nme_by_round, up, down, seed=0, variant=()):
    """A finished run as the sweep reads it back: its summary and its metrics.jsonl rows."""
    point = SweepPoint(bits, default_downlink(bits), seed, variant)
    rows = [{"round": 0, "nme": nme_by_round[0], "uplink_bytes": 0, "downlink_bytes": 0}]
    rows += [
        {"round": r, "nme": value, "uplink_bytes": up, "downlink_bytes": down}
        for r, value in enumerate(nme_by_round[1:], start=1)
    ]
    rounds = len(rows) - 1
    fp32 = 1000 * rounds
    summary = {
        "metric": "nme",
        "nme": nme_by_round[-1],
        "rounds": rounds,
        "uplink_bytes": up * rounds,
        "downlink_bytes": down * rounds,
        "uplink_ratio": fp32 / (up * rounds),
        "downlink_ratio": fp32 / (down * rounds),
        "total_ratio": 2 * fp32 / ((up + down) * rounds),
        "wall_seconds": 12.0,
    }
    return RunResult(point, Path(f"runs/{point.name}"), summary, rows, reused=False)


def test_report_counts_rounds_and_bytes_to_float32s_target(tmp_path):
    results = [
        _result(32, [100.0, 30.0, 12.0, 10.0], up=1000, down=1000),
        _result(4, [100.0, 40.0, 10.4, 10.2], up=125, down=250),
        _result(1, [100.0, 60.0, 20.0, 15.0], up=40, down=250),
    ]
    target = report.default_target(results)
    assert target == pytest.approx(10.5)  # float32's final NME relaxed by 5%
    rows = report.csv_rows(results, target)
    float32, four, one = rows
    assert (float32["rounds_to_target"], float32["bytes_to_target"]) == (3, 6000)
    assert (four["rounds_to_target"], four["bytes_to_target"]) == (2, 750)
    assert (one["rounds_to_target"], one["bytes_to_target"]) == (None, None)
    assert [row["nme_vs_float32_%"] for row in rows] == [0.0, 2.0, 50.0]
    assert (four["uplink_ratio"], four["total_ratio"]) == (8.0, 5.333)

    report.write_csv(rows, tmp_path / "sweep.csv")
    with (tmp_path / "sweep.csv").open() as handle:
        written = list(csv.DictReader(handle))
    assert [row["bits"] for row in written] == ["32", "4", "1"]
    assert written[1]["bytes_to_target"] == "750" and written[2]["rounds_to_target"] == ""

    table = report.markdown(rows, [], "nme", target, "fedland sweep --bits 32,4,1")
    lines = table.splitlines()
    assert "nme <= 10.50%" in table
    assert lines[-3:] == [
        "| 32 | 32 | 10.00 | +0.0% | 1.0 | 1.0 | 3.0 | 0.0 | 1 |",
        "| 4 | 4 | 10.20 | +2.0% | 8.0 | 5.3 | 2.0 | 0.0 | 1 |",
        "| 1 | 4 | 15.00 | +50.0% | 25.0 | 6.9 | not reached | not reached | 1 |",
    ]
    for path in report.plot(results, target, tmp_path):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_averages_seeds_and_compares_each_variant_with_its_own_float32():
    on, off = (("codec.error_feedback", "true"),), (("codec.error_feedback", "false"),)
    results = [
        _result(32, [100.0, 10.0], 1000, 1000, seed=0, variant=on),
        _result(2, [100.0, 11.0], 60, 250, seed=0, variant=on),
        _result(32, [100.0, 20.0], 1000, 1000, seed=0, variant=off),
        _result(2, [100.0, 30.0], 60, 250, seed=0, variant=off),
        _result(2, [100.0, 13.0], 60, 250, seed=1, variant=on),
    ]
    rows = report.csv_rows(results, target=12.0)
    assert [row["nme_vs_float32_%"] for row in rows] == [0.0, 10.0, 0.0, 50.0, None]
    keys = report.variant_keys(results)
    table = report.markdown(rows, keys, "nme", 12.0, "sweep")
    assert "| 2 | 4 | true | 12.00 ± 1.41 | +10.0% |" in table
    assert "| 1.0 (1/2) |" in table  # one of the two seeds reached the target


@pytest.mark.slow
def test_sweep_runs_each_point_on_the_simulation_engine_once(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", "--bits", "4", "--out", str(out)]
    for override in [*TINY, f"data.synthetic.cache_dir={tmp_path / 'cache'}"]:
        args += ["--set", override]
    assert main(args) == 0
    run = out / "runs" / "up4-down4-seed0"
    summary = json.loads((run / "summary.json").read_text())
    with (out / "sweep.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert (row["bits"], row["downlink_bits"], row["rounds"]) == ("4", "4", "2")
    assert int(row["uplink_bytes"]) == summary["uplink_bytes"]
    assert float(row["nme"]) == pytest.approx(summary["nme"], abs=1e-4)
    assert summary["uplink_ratio"] > 3
    assert "| 4 | 4 |" in (out / "sweep.md").read_text()
    for name in ("comm_vs_accuracy.png", "accuracy_by_round.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    first = capsys.readouterr().out
    assert "round 2/2" in first

    assert main(args) == 0  # everything is there: nothing runs again
    shown = capsys.readouterr().out
    assert shown.count("(reused)") == 1 and "round 1/2" not in shown
    assert json.loads((run / "summary.json").read_text()) == summary


def test_sweep_rejects_a_folder_with_other_settings(tmp_path):
    folder = tmp_path / "sweep" / "runs" / "up8-down8-seed0"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text("{}")
    (folder / "config.yaml").write_text("model: {bits: w1a8g8}\n")
    assert main(["sweep", "--bits", "8", "--out", str(tmp_path / "sweep")]) == 2
