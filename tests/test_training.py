"""Centralized training end to end on small synthetic data written in the real formats."""

import json
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np
import pytest
import torch

from fedland.centralized import train
from fedland.cli import main
from fedland.config import load_config
from fedland.federation.run_folder import RunFolderError
from fedland.model.checkpoint import load_checkpoint
from fedland.quant import QuantConv2d
from fedland.task import build_data
from fedland.visualize import GROUND_TRUTH, PREDICTION
from tests.conftest import TINY_MODEL


def _overrides(tmp_path, dataset="300w", *extra):
    return [
        f"data.dataset={dataset}",
        "data.synthetic.num=24",
        "data.synthetic.image_size=128",
        f"data.synthetic.cache_dir={tmp_path / 'cache'}",
        "data.workers=0",
        "train.epochs=2",
        "train.batch_size=8",
        *TINY_MODEL,
        *extra,
    ]


def _config(tmp_path, dataset="300w", *extra):
    return load_config(None, _overrides(tmp_path, dataset, *extra))


def test_dataset_items_have_crops_heatmaps_and_weights(tmp_path):
    task = build_data(_config(tmp_path))
    item = task.train[0]
    assert item["image"].shape == (3, 64, 64)
    assert item["image"].min() >= 0.0 and item["image"].max() <= 1.0
    assert item["target"].shape == (68, 16, 16)
    assert item["target_weight"].shape == (68,)
    assert item["target_weight"].sum() > 60
    assert len(task.train) + len(task.evaluation) == 24


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_training_writes_metrics_and_checkpoints_of_every_epoch(tmp_path):
    config = _config(tmp_path, "300w", "train.lr_milestones=[1]", "train.lr_factor=0.5")
    out = tmp_path / "run"
    summary = train(config, out)
    lines = _rows(out)
    assert [row["epoch"] for row in lines] == [1, 2]
    assert {"loss", "lr", "nme", "nme_interpupil", "auc@0.08", "fr@0.08"} <= lines[0].keys()
    assert [row["lr"] for row in lines] == [config.train.lr, config.train.lr * 0.5]
    assert summary["metric"] == "nme" and summary["epochs"] == 2
    assert summary["final"] == lines[-1]["nme"]
    assert summary["best"] == min(row["nme"] for row in lines)
    best_epoch = min(lines, key=lambda row: row["nme"])["epoch"]
    best = torch.load(out / "best.pt", weights_only=True)
    last = torch.load(out / "last.pt", weights_only=True)
    assert best["epoch"] == best_epoch and last["epoch"] == 2
    assert last["best"] == summary["best"]
    assert [row["epoch"] for row in last["history"]] == [1, 2]
    assert json.loads((out / "summary.json").read_text())["best"] == summary["best"]
    assert load_config(out / "config.yaml", []).to_dict() == config.to_dict()
    with pytest.raises(RunFolderError, match="--resume"):
        train(config, out)


_TIMING = {"seconds", "train_images_per_second"}


def test_resumed_training_matches_uninterrupted_training_exactly(tmp_path):
    """Stopping after epoch 1 and resuming to epoch 2 (`fedland train --resume`) gives bit
    for bit the weights, optimizer and scheduler state and metrics of two epochs in one go
    (quantized gradients draw stochastic rounding noise, and the lr drops after epoch 1)."""
    settings = (
        "model.bits=w2a8g8",
        "train.lr_milestones=[1]",
        "train.lr_factor=0.5",
        "train.device=cpu",  # CUDA convolution backward is not bit-for-bit reproducible
    )
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(_config(tmp_path, "300w", *settings), straight)
    train(_config(tmp_path, "300w", *settings, "train.epochs=1"), resumed)
    options = [flag for item in _overrides(tmp_path, "300w", *settings) for flag in ("--set", item)]
    assert main(["train", *options, "--out", str(resumed), "--resume"]) == 0
    summary = json.loads((resumed / "summary.json").read_text())

    expected = torch.load(straight / "last.pt", weights_only=True)
    actual = torch.load(resumed / "last.pt", weights_only=True)
    assert actual["model"].keys() == expected["model"].keys()
    for name, tensor in expected["model"].items():
        assert torch.equal(actual["model"][name], tensor), name
    first, second = expected["optimizer"], actual["optimizer"]
    assert second["param_groups"] == first["param_groups"]
    assert second["state"].keys() == first["state"].keys()
    for index, buffers in first["state"].items():
        for key, value in buffers.items():
            assert torch.equal(second["state"][index][key], value), (index, key)
    assert actual["scheduler"] == expected["scheduler"]

    def untimed(rows):
        return [{k: v for k, v in row.items() if k not in _TIMING} for row in rows]

    assert untimed(_rows(resumed)) == untimed(_rows(straight))
    assert [row["epoch"] for row in _rows(resumed)] == [1, 2]
    assert untimed(actual["history"]) == untimed(expected["history"])
    assert actual["best"] == expected["best"] == summary["best"]


def test_pose_training_reports_pckh_that_eval_reproduces(tmp_path, capsys):
    out = tmp_path / "pose"
    summary = train(_config(tmp_path, "mpii", "train.epochs=1"), out)
    (row,) = _rows(out)
    assert summary["metric"] == "pckh"
    assert summary["best"] == summary["final"] == row["pckh"]
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["flip_test"] is True  # on by default for poses, in training and eval alike
    assert report["pckh"] == row["pckh"]


def _pixels_of(picture, colour):
    rgb = cv2.cvtColor(cv2.imread(str(picture), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return rgb, int(np.all(rgb == np.array(colour, np.uint8), axis=-1).sum())


def test_eval_and_show_commands_use_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    train(_config(tmp_path, "300w", "train.epochs=1"), out)
    (row,) = _rows(out)
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"] == "300w" and report["split"] == "full"
    assert report["samples"] == len(build_data(_config(tmp_path)).evaluation)
    assert report["nme"] == row["nme"] and report["auc@0.08"] == row["auc@0.08"]

    drawn, plain = tmp_path / "drawn.png", tmp_path / "plain.png"
    args = ["show", "--checkpoint", str(out / "best.pt"), "--num", "4", "--out", str(drawn)]
    assert main(args) == 0
    options = [flag for item in _overrides(tmp_path) for flag in ("--set", item)]
    assert main(["show", *options, "--num", "4", "--out", str(plain)]) == 0
    grid, predicted = _pixels_of(drawn, PREDICTION)
    assert grid.shape == (64 + 2, 4 * (64 + 2), 3)  # four 64 px crops in a row, 1 px borders
    assert predicted > 0 and _pixels_of(drawn, GROUND_TRUTH)[1] > 0
    assert _pixels_of(plain, PREDICTION)[1] == 0 and _pixels_of(plain, GROUND_TRUTH)[1] > 0


def test_quantized_training_checkpoints_the_quantized_model(tmp_path):
    out = tmp_path / "q"
    train(_config(tmp_path, "300w", "train.epochs=1", "model.bits=w1a8g8"), out)
    model, payload = load_checkpoint(out / "best.pt")
    assert payload["model_config"]["bits"] == "w1a8g8"
    bits = {str(m.bits) for m in model.modules() if isinstance(m, QuantConv2d)}
    assert bits == {"w1a8g8", "w32a32g32"}  # the final head stays float
    assert model.saved_tensor_store().bits == 8
    (row,) = _rows(out)
    assert np.isfinite(row["loss"]) and row["loss"] > 0


def test_bad_samples_stop_training_unless_skipped(tmp_path):
    config = _config(tmp_path)
    build_data(config)  # generates the synthetic tree
    root = next((tmp_path / "cache").glob("face-*"))
    broken = sorted(root.glob("*/trainset/*.pts"))[0]
    broken.write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    with pytest.raises(ValueError, match=broken.name):
        build_data(config)
    skipped = _config(tmp_path, "300w", "data.skip_bad=true")
    assert len(build_data(skipped).train) + len(build_data(skipped).evaluation) == 23


def test_data_synth_and_info_commands(tmp_path, capsys):
    out = tmp_path / "faces"
    assert main(["data", "synth", "--task", "face", "--num", "20", "--out", str(out)]) == 0
    capsys.readouterr()
    (out / "afw" / "face_000000.jpg").unlink(missing_ok=True)
    assert main(["data", "info", "--dataset", "300w", "--root", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["samples"] + len(report["bad"]) == 20
    assert main(["data", "info", "--dataset", "300w", "--root", str(tmp_path / "none")]) == 2
    assert "none" in capsys.readouterr().err


def test_loader_workers_start_after_synthesis_in_the_same_process(tmp_path):
    """Generating the synthetic default and then loading with worker processes, all in one
    process, must not hang (forked workers inherit OpenCV's state)."""
    script = (
        "from fedland.task import build_data\n"
        "from fedland.config import load_config\n"
        "from fedland.data.dataset import make_loader\n"
        f"config = load_config(None, ['data.synthetic.num=24', 'data.synthetic.image_size=128',"
        f" 'data.synthetic.cache_dir={tmp_path}', 'model.input_size=64'])\n"
        "batch = next(iter(make_loader(build_data(config).train, 4, True, workers=2)))\n"
        "print(tuple(batch['image'].shape))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "(4, 3, 64, 64)" in result.stdout


def _train_split_size(cache: str) -> int:
    config = load_config(
        None, [f"data.synthetic.cache_dir={cache}", "data.synthetic.num=40", *TINY_MODEL]
    )
    return len(build_data(config).train)


def test_processes_asking_for_the_same_synthetic_data_at_once_all_get_all_of_it(tmp_path):
    """The runs of a parallel sweep generate the default data at the same moment."""
    with ProcessPoolExecutor(3) as pool:
        sizes = list(pool.map(_train_split_size, [str(tmp_path)] * 3))
    assert len(set(sizes)) == 1 and sizes[0] > 0
    assert len(list(tmp_path.glob("face-*"))) == 1


@pytest.mark.parametrize(
    ("change", "named"), [("train.lr=0.01", "train.lr"), ("model.width=8", "model.width")]
)
def test_resume_with_other_settings_is_refused_by_name_and_changes_nothing(
    tmp_path, capsys, change, named
):
    out = tmp_path / "run"
    train(_config(tmp_path, "300w", "train.epochs=1"), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    options = [flag for item in _overrides(tmp_path, "300w", change) for flag in ("--set", item)]
    capsys.readouterr()
    assert main(["train", *options, "--out", str(out), "--resume"]) == 2
    assert f"cannot resume with other settings ({named}:" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
