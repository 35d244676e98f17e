"""Centralized training end to end on small synthetic data written in the real formats."""

import json
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch

from fedland.centralized import RunFolderError, build_data, train
from fedland.cli import main
from fedland.config import load_config
from tests.conftest import TINY_MODEL


def _config(tmp_path, dataset="300w", *extra):
    return load_config(
        None,
        [
            f"data.dataset={dataset}",
            "data.synthetic.num=24",
            "data.synthetic.image_size=128",
            f"data.synthetic.cache_dir={tmp_path / 'cache'}",
            "data.workers=0",
            "train.epochs=2",
            "train.batch_size=8",
            *TINY_MODEL,
            *extra,
        ],
    )


def test_dataset_items_have_crops_heatmaps_and_weights(tmp_path):
    task = build_data(_config(tmp_path))
    item = task.train[0]
    assert item["image"].shape == (3, 64, 64)
    assert item["image"].min() >= 0.0 and item["image"].max() <= 1.0
    assert item["target"].shape == (68, 16, 16)
    assert item["target_weight"].shape == (68,)
    assert item["target_weight"].sum() > 60
    assert len(task.train) + len(task.evaluation) == 24


def test_training_writes_metrics_checkpoints_and_resumes(tmp_path):
    config = _config(tmp_path)
    out = tmp_path / "run"
    summary = train(config, out)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in lines] == [1, 2]
    assert {"loss", "lr", "nme", "nme_interpupil", "auc@0.08", "fr@0.08"} <= lines[0].keys()
    assert summary["metric"] == "nme" and summary["epochs"] == 2
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    with pytest.raises(RunFolderError, match="--resume"):
        train(config, out)
    longer = _config(tmp_path, "300w", "train.epochs=3")
    train(longer, out, resume=True)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in lines] == [1, 2, 3]


def test_pose_training_reports_pckh(tmp_path):
    summary = train(_config(tmp_path, "mpii", "train.epochs=1"), tmp_path / "pose")
    assert summary["metric"] == "pckh"
    assert 0.0 <= summary["best"] <= 100.0


def test_eval_and_show_commands_use_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    train(_config(tmp_path, "300w", "train.epochs=1"), out)
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"] == "300w" and report["split"] == "full" and "nme" in report
    picture = tmp_path / "grid.png"
    args = ["show", "--checkpoint", str(out / "best.pt"), "--num", "4", "--out", str(picture)]
    assert main(args) == 0
    assert picture.stat().st_size > 1000


def test_quantized_training_runs_with_low_bit_storage(tmp_path):
    summary = train(
        _config(tmp_path, "300w", "train.epochs=1", "model.bits=w1a8g8"), tmp_path / "q"
    )
    checkpoint = torch.load(tmp_path / "q" / "best.pt", weights_only=True)
    assert checkpoint["model_config"]["bits"] == "w1a8g8"
    assert summary["epochs"] == 1


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
        "from fedland.centralized import build_data\n"
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
