"""`fedland predict` on images with known landmarks: a model trained here, every model file
format, boxes and the way back to the image's pixels, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fedland.centralized import train
from fedland.cli import main
from fedland.config import load_config
from fedland.data.meta import FACE_300W
from fedland.data.sources import load_split
from fedland.metrics import interocular, nme_per_image
from fedland.model.checkpoint import load_checkpoint
from fedland.predict import crop_of, load_landmark_model, predict_images
from fedland.task import evaluate_model, evaluation_dataset, heatmap_codec
from tests.conftest import TINY_MODEL

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A tiny face model trained for 12 epochs on 128 synthetic faces (about 15 s): NME
    about 30% on the held-out faces, where the untrained model is near 100%."""
    tmp = tmp_path_factory.mktemp("predict")
    config = load_config(None, [
        "data.dataset=300w", "data.synthetic.num=160", "data.synthetic.image_size=96",
        f"data.synthetic.cache_dir={tmp / 'cache'}", "data.workers=0", "train.epochs=12",
        "train.batch_size=8", "train.lr=2.5e-3", "train.lr_milestones=[9]", *TINY_MODEL,
    ])  # fmt: skip
    summary = train(config, tmp / "run")
    records, _, _ = load_split(config.data, "full")
    return {"config": config, "checkpoint": tmp / "run" / "best.pt", "records": records,
            "nme": summary["best"], "tmp": tmp}  # fmt: skip


def _box(record) -> list[float]:
    """The box whose crop is the reader's: the landmarks' bounding box."""
    (x1, y1), (x2, y2) = record.landmarks.min(axis=0), record.landmarks.max(axis=0)
    return [float(x1), float(y1), float(x2), float(y2)]


def _nme(landmarks: np.ndarray, records) -> float:
    gt = np.stack([r.landmarks for r in records])
    visible = np.stack([r.visible for r in records])
    return 100 * float(nme_per_image(landmarks, gt, visible, interocular(gt, (36, 45))).mean())


def test_predictions_on_held_out_faces_are_the_evaluated_ones_in_image_pixels(trained):
    records = trained["records"]
    model = load_landmark_model(trained["checkpoint"], CPU)
    assert (model.meta.name, model.flip_test, model.input_size) == ("300w", False, 64)
    boxes = {r.image: tuple(_box(r)) for r in records}
    predicted = list(predict_images(model, [r.image for r in records], boxes, batch_size=5))
    landmarks = np.stack([p.landmarks for p in predicted])
    assert landmarks.shape == (len(records), 68, 2)
    assert np.all(np.stack([p.scores for p in predicted]) > 0)
    assert _nme(landmarks, records) == pytest.approx(trained["nme"], abs=1e-3)
    assert trained["nme"] < 40  # the model learned: the untrained one is near 100%
    network, _ = load_checkpoint(trained["checkpoint"])
    dataset = evaluation_dataset(trained["config"], FACE_300W)
    untrained = evaluate_model(
        type(network)(network.config), dataset, heatmap_codec(trained["config"]), CPU, 8, 0, False
    )
    assert untrained["nme"] > 2 * trained["nme"]


def test_a_box_moves_and_scales_with_the_image(trained, tmp_path):
    record = trained["records"][0]
    image = cv2.imread(str(record.image))
    x1, y1, x2, y2 = _box(record)
    dx, dy = 37, 21
    canvas = np.zeros((image.shape[0] + 80, image.shape[1] + 60, 3), np.uint8)
    canvas[dy : dy + image.shape[0], dx : dx + image.shape[1]] = image
    cv2.imwrite(str(tmp_path / "moved.png"), canvas)
    cv2.imwrite(str(tmp_path / "large.png"), cv2.resize(image, None, fx=2, fy=2,
                                                        interpolation=cv2.INTER_CUBIC))  # fmt: skip
    cv2.imwrite(str(tmp_path / "same.png"), image)
    boxes = {
        tmp_path / "same.png": (x1, y1, x2, y2),
        tmp_path / "moved.png": (x1 + dx, y1 + dy, x2 + dx, y2 + dy),
        # pixel centres at integers: x in the 2x image is 2x + 0.5
        tmp_path / "large.png": (2 * x1 + 0.5, 2 * y1 + 0.5, 2 * x2 + 0.5, 2 * y2 + 0.5),
    }
    model = load_landmark_model(trained["checkpoint"], CPU)
    same, moved, large = predict_images(model, list(boxes), boxes)
    assert np.abs(moved.landmarks - same.landmarks - [dx, dy]).max() < 1e-3
    size = np.linalg.norm(same.landmarks[36] - same.landmarks[45])
    assert np.abs((large.landmarks - 0.5) / 2 - same.landmarks).mean() < 0.05 * size


def test_without_a_box_the_whole_image_is_the_crop():
    center, scale = crop_of(100, 300, None)
    assert center.tolist() == [149.5, 49.5] and scale == 1.5  # the longer side, 300 px
    center, scale = crop_of(100, 300, (10, 20, 50, 100))
    assert center.tolist() == [30.0, 60.0] and scale == pytest.approx(1.25 * 80 / 200)


def test_every_model_file_gives_the_same_landmarks(trained, tmp_path):
    files = [trained["checkpoint"], tmp_path / "model.fldp", tmp_path / "model.onnx"]
    for exported in files[1:]:
        args = ["export", "--checkpoint", str(trained["checkpoint"]), "--out", str(exported)]
        assert main(args) == 0
    images = [r.image for r in trained["records"][:4]]
    results = {}
    for path in files:
        model = load_landmark_model(path, CPU)
        assert (model.meta.name, model.flip_test) == ("300w", False)  # from the task card
        results[path.suffix] = np.stack([p.landmarks for p in predict_images(model, images)])
    assert np.abs(results[".fldp"] - results[".pt"]).max() < 1e-3
    assert np.abs(results[".onnx"] - results[".pt"]).max() < 0.1


def test_predict_command_writes_json_and_overlays_and_keeps_them(trained, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for record in trained["records"][:3]:
        (folder / record.image.name).write_bytes(record.image.read_bytes())
    out = tmp_path / "out"
    args = ["predict", "--model", str(trained["checkpoint"]), str(folder), "--out", str(out)]
    assert main([*args, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(line["image"]).name for line in lines] == sorted(p.name for p in folder.iterdir())
    assert all(len(line["landmarks"]) == 68 == len(line["scores"]) for line in lines)
    assert json.loads((out / "predictions.json").read_text()) == lines
    for line in lines:
        overlay = cv2.imread(str(out / (Path(line["image"]).stem + ".png")))
        original = cv2.imread(line["image"])
        assert overlay.shape == original.shape and (overlay != original).any()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(args) == 2  # a second prediction into the same folder
    assert "predictions.json exists" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_bad_input_is_refused_naming_it(trained, tmp_path, capsys):
    image = trained["records"][0].image
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(image.read_bytes()[:200])
    unlabelled = tmp_path / "old.fldp"
    network, _ = load_checkpoint(trained["checkpoint"])
    from fedland.model.packed import write_packed

    write_packed(network.eval(), unlabelled)  # no task card
    model = ["--model", str(trained["checkpoint"])]
    cases = {
        "cut.jpg: truncated JPEG": [*model, str(truncated)],
        "missing.png: no such image or folder": [*model, str(tmp_path / "missing.png")],
        "--box: expected four numbers": [*model, str(image), "--box", "1,2,3"],
        "the box needs x2 > x1": [*model, str(image), "--box", "5,5,1,9"],
        "unknown model file type '.h5'": ["--model", str(tmp_path / "m.h5"), str(image)],
        "give --dataset": ["--model", str(unlabelled), str(image)],
    }
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"other.jpg": [0, 0, 10, 10]}))
    cases["key 'other.jpg' names none of the images"] = [*model, str(image), "--boxes", str(boxes)]
    for message, args in cases.items():
        assert main(["predict", *args]) == 2, message
        assert message in capsys.readouterr().err
    assert main(["predict", "--model", str(unlabelled), str(image), "--dataset", "300w"]) == 0
