"""Each dataset scored by its published protocol: WFLW's AUC/FR at 0.10 and its subsets,
COCO's OKS AP through pycocotools on the reader's records, and PCKh named for its head boxes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fedland.data.meta import COCO, COCO_SIGMAS, FACE_300W, MPII, WFLW, DatasetMeta
from fedland.data.readers import read_dataset
from fedland.data.records import Record
from fedland.data.synth.pose import synthesize_poses
from fedland.evaluation import PRIMARY, evaluate_predictions, is_better, primary_metric
from fedland.federation.ledger import RunWriter
from fedland.federation.run_folder import RunFolderError
from fedland.simulations.report import higher_is_better

# -- faces -------------------------------------------------------------------------------------


def _face(meta: DatasetMeta, attributes: dict | None = None) -> Record:
    """A face whose outer eye corners are 100 px apart: an NME of d % is a shift of d px."""
    landmarks = np.full((meta.num_landmarks, 2), 50.0)
    landmarks[list(meta.normaliser)] = [[0.0, 0.0], [100.0, 0.0]]
    return Record(
        image=Path("face.jpg"),
        landmarks=landmarks,
        visible=np.ones(meta.num_landmarks),
        center=[50.0, 0.0],
        scale=1.0,
        split="test",
        attributes=attributes or {},
    )


def _evaluate_shifted(meta: DatasetMeta, records: list[Record], shifts: list[float]) -> dict:
    shifted = zip(records, shifts, strict=True)
    predictions = np.stack([r.landmarks + np.array([dx, 0.0]) for r, dx in shifted])
    return evaluate_predictions(meta, records, predictions, np.arange(len(records)))


def test_wflw_is_scored_at_0_10_and_300w_at_0_08():
    shifts = [9.0, 5.0]  # per-image NME 0.09 and 0.05: a failure at 0.08, not at 0.10
    wflw = _evaluate_shifted(WFLW, [_face(WFLW), _face(WFLW)], shifts)
    assert "auc@0.08" not in wflw and "fr@0.08" not in wflw
    assert wflw["fr@0.1"] == 0.0
    assert wflw["auc@0.1"] == pytest.approx(100 * (0.01 + 0.05) / 2 / 0.1)
    face300w = _evaluate_shifted(FACE_300W, [_face(FACE_300W), _face(FACE_300W)], shifts)
    assert face300w["fr@0.08"] == pytest.approx(50.0)
    assert face300w["auc@0.08"] == pytest.approx(100 * (0.0 + 0.03) / 2 / 0.08)


def test_wflw_reports_the_nme_of_each_attribute_subset():
    flags = {  # per image
        "pose": (1, 0, 0),
        "expression": (1, 1, 0),
        "illumination": (0, 0, 1),
        "make_up": (0, 0, 0),
        "occlusion": (1, 1, 1),
        "blur": (0, 1, 0),
    }
    records = [_face(WFLW, {name: f[i] for name, f in flags.items()}) for i in range(3)]
    result = _evaluate_shifted(WFLW, records, [2.0, 4.0, 9.0])
    assert result["nme"] == pytest.approx(5.0)
    subsets = {name: result[f"nme_{name}"] for name in WFLW.nme_subsets}
    assert math.isnan(subsets.pop("make_up"))  # no image of the set has make-up
    expected = {"pose": 2.0, "expression": 3.0, "illumination": 9.0, "occlusion": 5.0, "blur": 4}
    assert subsets == pytest.approx(expected)
    face300w = _evaluate_shifted(FACE_300W, [_face(FACE_300W)], [3.0])  # no attributes
    assert [key for key in face300w if key.startswith("nme")] == ["nme", "nme_interpupil"]


def test_the_wflw_readers_attributes_reach_the_subset_nmes(tmp_path):
    points = np.zeros((98, 2))
    points[WFLW.normaliser[1]] = [100.0, 0.0]
    coordinates = " ".join(f"{v:.1f}" for v in points.ravel())
    (tmp_path / "WFLW_images" / "1--Event").mkdir(parents=True)
    (tmp_path / "WFLW_images" / "1--Event" / "a.jpg").write_bytes(b"")
    line = f"{coordinates} 0 -50 100 50 1 0 1 0 0 1 1--Event/a.jpg\n"
    (tmp_path / "list_98pt_rect_attr_test.txt").write_text(line)
    records = read_dataset("wflw", tmp_path, "test").records
    result = _evaluate_shifted(WFLW, records, [4.0])
    subsets = {name: result[f"nme_{name}"] for name in ("pose", "illumination", "blur")}
    assert subsets == pytest.approx(dict.fromkeys(subsets, 4.0))
    assert all(math.isnan(result[f"nme_{name}"]) for name in ("expression", "make_up", "occlusion"))


# -- COCO OKS ----------------------------------------------------------------------------------

OKS_KEYS = ("oks_ap", "oks_ap50", "oks_ap75", "oks_ap_m", "oks_ap_l", "oks_ar")
THRESHOLDS = np.linspace(0.5, 0.95, 10)  # COCO's OKS thresholds


def _person(index: int, image_id: int, bbox: list[float], area: float | None) -> dict:
    """A COCO annotation: nose visible, left hip occluded (v 1), right hip visible, the rest
    unlabelled."""
    keypoints = [0.0] * 51
    for joint, (x, y, v) in {0: (50, 20, 2), 11: (40, 80, 1), 12: (60, 80, 2)}.items():
        keypoints[3 * joint : 3 * joint + 3] = [x + 200.0 * index, y, v]
    annotation = {
        "id": 7,  # COCOeval reads a matched id 0 as no match: the evaluation must renumber
        "image_id": image_id,
        "category_id": 1,
        "keypoints": keypoints,
        "num_keypoints": 3,
        "bbox": bbox,
        "iscrowd": 0,
    }
    return annotation if area is None else {**annotation, "area": area}


def _coco_records(tmp_path: Path, annotations: list[dict]) -> list[Record]:
    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2017").mkdir()
    images = [{"id": i, "file_name": f"{i}.jpg"} for i in {a["image_id"] for a in annotations}]
    for image in images:
        (tmp_path / "val2017" / image["file_name"]).write_bytes(b"")
    data = {"images": images, "annotations": annotations, "categories": []}
    (tmp_path / "annotations" / "person_keypoints_val2017.json").write_text(json.dumps(data))
    return read_dataset("coco", tmp_path, "val").records


def _score(records: list[Record], predictions: np.ndarray, scores=None) -> dict:
    return evaluate_predictions(COCO, records, predictions, np.arange(len(records)), scores)


def test_perfect_predictions_have_an_oks_ap_of_100(tmp_path):
    records = _coco_records(
        tmp_path,
        [
            _person(0, 1, [30, 10, 40, 80], 2500.0),  # medium (32^2 to 96^2)
            _person(1, 1, [230, 10, 40, 80], 10000.0),  # large, same image
            _person(0, 2, [30, 10, 40, 80], None),  # box area 3200: medium
        ],
    )
    predictions = np.stack([r.landmarks for r in records])
    predictions[np.stack([r.visible for r in records]) == 0] = 500.0  # unlabelled: ignored
    result = _score(records, predictions)
    assert {key: result[key] for key in OKS_KEYS} == pytest.approx(dict.fromkeys(OKS_KEYS, 100.0))
    assert "pck" in result  # still reported next to OKS AP


def _hip_offset(area: float, oks: float) -> float:
    """How far the left hip must be off for an OKS of `oks` over the 3 labelled points:
    (2 + exp(-d^2 / (2 s^2 k^2))) / 3 with s^2 = area and k = 2 sigma."""
    k = 2 * COCO_SIGMAS[11]
    return math.sqrt(-math.log(3 * oks - 2) * 2 * area * k**2)


@pytest.mark.parametrize(
    ("area", "scale", "medium"),
    [(6400.0, 6400.0, True), (None, 100.0 * 100.0, False)],
    ids=["annotated area (medium), not the box's", "box area without one (large)"],
)
def test_oks_ap_uses_area_sigmas_and_labelled_points(tmp_path, area, scale, medium):
    records = _coco_records(tmp_path, [_person(0, 1, [0.0, 0.0, 100.0, 100.0], area)])
    oks = 0.725  # between the 0.70 and 0.75 thresholds
    predictions = records[0].landmarks[None].copy()
    predictions[0, 11, 0] += _hip_offset(scale, oks)  # the occluded (v 1) left hip
    predictions[0, records[0].visible == 0] = 1000.0  # unlabelled points: ignored
    result = _score(records, predictions)
    expected = 100.0 * np.mean(oks >= THRESHOLDS)  # one person: AP is the share matched
    assert expected == 50.0
    assert result["oks_ap"] == pytest.approx(expected)
    assert (result["oks_ap50"], result["oks_ap75"]) == pytest.approx((100.0, 0.0))
    assert result["oks_ar"] == pytest.approx(expected)
    assert math.isnan(result["oks_ap_l" if medium else "oks_ap_m"])  # no person that size
    assert result["oks_ap_m" if medium else "oks_ap_l"] == pytest.approx(expected)


def test_oks_ap_ranks_detections_by_their_landmark_scores(tmp_path):
    records = _coco_records(
        tmp_path,
        [_person(0, 1, [30, 10, 40, 80], 2500.0), _person(1, 1, [230, 10, 40, 80], 2500.0)],
    )
    predictions = np.stack([r.landmarks for r in records])
    predictions[1] += 300.0  # the second person is missed entirely
    # Found first: precision 1 up to recall 0.5 (51 of COCO's 101 recall points).
    assert _score(records, predictions)["oks_ap"] == pytest.approx(100 * 51 / 101)
    confident_miss = np.array([[0.2] * 17, [0.9] * 17])
    ranked = _score(records, predictions, confident_miss)["oks_ap"]
    assert ranked == pytest.approx(100 * 0.5 * 51 / 101)  # the miss first: precision 0.5


def test_coco_sigmas_are_those_of_the_official_evaluation():
    from pycocotools.cocoeval import Params

    assert COCO.oks_sigmas == pytest.approx(Params(iouType="keypoints").kpt_oks_sigmas)
    assert np.array_equal(COCO.oks_sigmas, COCO_SIGMAS)


# -- PCKh and its head boxes -------------------------------------------------------------------


def _pose(head_box: list[float] | None) -> Record:
    """A person whose upper neck and head top are 50 px apart."""
    landmarks = np.full((16, 2), 100.0)
    landmarks[8], landmarks[9] = [100.0, 50.0], [100.0, 0.0]
    return Record(
        image=Path("pose.jpg"),
        landmarks=landmarks,
        visible=np.ones(16),
        center=[100.0, 100.0],
        scale=1.0,
        split="val",
        head_box=head_box,
    )


def _pose_predictions(records: list[Record], offset: float) -> np.ndarray:
    predictions = np.stack([r.landmarks for r in records])
    predictions[:, 0, 0] += offset  # right ankle
    return predictions


def test_pckh_with_every_head_box_annotated_is_reported_as_pckh():
    records = [_pose([0.0, 0.0, 30.0, 40.0]), _pose([0.0, 0.0, 30.0, 40.0])]  # head size 30
    result = evaluate_predictions(MPII, records, _pose_predictions(records, 16.0), np.arange(2))
    assert not [key for key in result if key.endswith("_estimated")]
    assert result["ankle"] == 50.0 and result["pckh"] == pytest.approx(100 * 26 / 28)
    assert primary_metric(MPII, records) == ("pckh", True)


def test_pckh_with_an_estimated_head_box_is_reported_as_pckh_estimated():
    records = [_pose([0.0, 0.0, 30.0, 40.0]), _pose(None)]  # the estimate: a 50 px square
    result = evaluate_predictions(MPII, records, _pose_predictions(records, 20.0), np.arange(2))
    assert "pckh" not in result and "head" not in result and "pckh_all_joints" not in result
    # 20 px: wrong against the annotated head size 30 (15 px), right against 0.6 * 50 * sqrt 2
    assert result["ankle_estimated"] == 75.0
    assert result["pckh_estimated"] == pytest.approx(100 * 27 / 28)
    assert {"pckh_all_joints_estimated", "head_estimated", "per_joint_estimated"} <= set(result)
    metric, higher = primary_metric(MPII, records)
    assert (metric, higher) == ("pckh_estimated", True) and metric in result


def test_pckh_estimated_is_judged_like_pckh_by_every_consumer():
    assert PRIMARY["pckh_estimated"] == ("pckh_estimated", True)
    assert higher_is_better("pckh_estimated")  # sweeps, tables and the benchmark
    assert is_better(MPII, 80.0, 70.0) and not is_better(MPII, 60.0, 70.0)
    assert is_better(MPII, 60.0, None)


def test_a_resumed_run_refuses_rows_without_its_metric(tmp_path):
    writer = RunWriter(tmp_path, "pckh_estimated", {})
    with pytest.raises(RunFolderError, match="round\\(s\\) \\[0, 1\\] have no 'pckh_estimated'"):
        writer.resume([{"round": 0, "pckh": 10.0}, {"round": 1, "pckh": 20.0}], elapsed=0.0)


def test_synthetic_poses_carry_head_boxes_so_they_report_true_pckh(tmp_path):
    synthesize_poses(tmp_path, num=2, image_size=64)
    records = read_dataset("mpii", tmp_path).records
    assert primary_metric(MPII, records) == ("pckh", True)
