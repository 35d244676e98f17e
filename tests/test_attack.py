"""The attack harness: which nodes attack, what each kind sends, that every kind's payload is
well-formed (the server accepts it), and that a robust aggregator survives what plain FedAvg
does not, with the real ServerApp and ClientApp code (tests/loopback.py)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from loopback import LoopbackGrid

from fedland.config import load_config
from fedland.data.dataset import LandmarkDataset
from fedland.data.heatmaps import HeatmapCodec
from fedland.data.meta import MPII
from fedland.data.transforms import NO_AUGMENTATION
from fedland.federation.attack import attacking_partitions, corrupt, poison
from fedland.federation.local import LocalResult
from fedland.server.run import run_federation
from tests.conftest import TINY_FEDERATION
from tests.data.test_dataset_flip import record  # noqa: F401 (a fixture)


def _result(weights, examples=12) -> LocalResult:
    return LocalResult(weights, examples, examples, 0.5, 1.0, 10.0, "cpu")


def _attack(kind: str, scale: float | None = None):
    settings = [f"attack.kind={kind}", "attack.num_nodes=2", "partition.num_partitions=8"]
    if scale is not None:
        settings.append(f"attack.scale={scale}")
    return load_config(None, settings)


def test_attacking_partitions_are_drawn_once_from_the_seed_or_named():
    config = _attack("sign_flip")
    chosen = attacking_partitions(config)
    assert len(chosen) == 2 and set(chosen) <= set(range(8))
    assert attacking_partitions(config) == chosen
    reseeded = dataclasses.replace(config, attack=dataclasses.replace(config.attack, seed=5))
    draws = {tuple(attacking_partitions(reseeded))}
    for seed in range(6, 12):
        other = dataclasses.replace(config.attack, seed=seed)
        draws.add(tuple(attacking_partitions(dataclasses.replace(config, attack=other))))
    assert len(draws) > 1
    named = load_config(None, ["attack.kind=zero", "attack.nodes=[3,1]"])
    assert attacking_partitions(named) == [1, 3]
    assert attacking_partitions(load_config(None, [])) == []


START = {"w": torch.linspace(-1, 1, 4000).reshape(40, 100), "b": torch.ones(100)}
TRAINED = {name: value + 0.01 * torch.randn_like(value) for name, value in START.items()}


@pytest.mark.parametrize(
    ("kind", "scale", "expected"),
    [
        ("sign_flip", None, lambda delta: -4 * delta),
        ("sign_flip", 2.0, lambda delta: -2 * delta),
        ("scale", None, lambda delta: 30 * delta),
        ("zero", None, lambda delta: 0 * delta),
    ],
)
def test_update_attacks_send_the_transformed_update(kind, scale, expected):
    sent = corrupt(_attack(kind, scale), START, _result(TRAINED), 3, 0)
    for name, start in START.items():
        torch.testing.assert_close(sent.weights[name] - start, expected(TRAINED[name] - start))
    assert sent.num_examples == 12


def test_noise_attacks_send_noise_of_the_stated_size_seeded_by_round_and_node():
    gaussian = corrupt(_attack("gaussian"), START, _result(TRAINED), 3, 0).weights
    delta = TRAINED["w"] - START["w"]
    noise = gaussian["w"] - START["w"]
    assert float(noise.square().mean().sqrt()) == pytest.approx(
        3 * float(delta.square().mean().sqrt()), rel=0.05
    )
    assert abs(float(torch.corrcoef(torch.stack([noise.flatten(), delta.flatten()]))[0, 1])) < 0.1
    again = corrupt(_attack("gaussian"), START, _result(TRAINED), 3, 0).weights
    other_round = corrupt(_attack("gaussian"), START, _result(TRAINED), 4, 0).weights
    assert torch.equal(again["w"], gaussian["w"]) and not torch.equal(
        other_round["w"], gaussian["w"]
    )
    random = corrupt(_attack("random"), START, _result(TRAINED), 3, 0).weights
    assert float(random["w"].min()) >= -1 and float(random["w"].max()) <= 1
    assert float((random["w"] - START["w"]).abs().mean()) > 0.3  # unrelated to the model


def test_the_examples_attack_claims_the_scale_with_an_honest_update():
    sent = corrupt(_attack("examples"), START, _result(TRAINED), 3, 0)
    assert sent.num_examples == 1_000_000 and sent.weights is TRAINED


def test_the_mirror_attack_mirrors_every_crop_without_swapping_partners(record):  # noqa: F811
    """The poisoned item's heatmaps are the clean ones mirrored, channel for channel, so a
    left eye is taught where the right one is."""
    clean = LandmarkDataset([record], MPII, 64, HeatmapCodec(16, sigma=1.0), NO_AUGMENTATION)
    poisoned = LandmarkDataset([record], MPII, 64, HeatmapCodec(16, sigma=1.0), NO_AUGMENTATION)
    poison(poisoned)
    plain, mirrored = clean[0], poisoned[0]
    expected = plain["target"].numpy()[:, :, ::-1]
    np.testing.assert_allclose(mirrored["target"].numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(mirrored["target_weight"], plain["target_weight"])
    np.testing.assert_allclose(
        mirrored["image"], plain["image"].flip(dims=[2]), atol=1 / 255 + 1e-6
    )


NODES = 8
TINY = [*TINY_FEDERATION, "data.workers=0", "train.batch_size=4",
        f"partition.num_partitions={NODES}", "federation.min_train_nodes=8"]  # fmt: skip


def _run(tmp_path, *settings):
    config = load_config(None, [*TINY, f"data.synthetic.cache_dir={tmp_path.parent / 'cache'}",
                                f"federation.out={tmp_path / 'run'}", *settings])  # fmt: skip
    run_federation(LoopbackGrid(NODES), config)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    return rows, json.loads((tmp_path / "run" / "summary.json").read_text())


@pytest.mark.parametrize(
    "kind", ["sign_flip", "scale", "gaussian", "zero", "random", "examples", "mirror"]
)
def test_every_attack_sends_payloads_that_pass_validation(tmp_path, kind):
    rows, summary = _run(tmp_path, "federation.rounds=1", f"attack.kind={kind}",
                         "attack.nodes=[0,5]")  # fmt: skip
    assert (rows[1]["accepted"], rows[1]["rejected"], rows[1]["failed"]) == (NODES, 0, 0)
    assert summary["attack"]["kind"] == kind and summary["attack"]["partitions"] == [0, 5]
    if kind == "scale":
        assert rows[1]["clipped"] == 2  # the default norm bound catches both
    if kind == "examples":
        assert rows[1]["capped"] == 2


@pytest.mark.slow
def test_two_sign_flipping_nodes_stop_plain_fedavg_and_not_the_trimmed_mean(tmp_path):
    """Two of eight nodes send -4x their update (measured: clean 120 -> 50 % NME in six
    rounds, trimmed mean -> 60, unbounded FedAvg stays at 115)."""
    attack = ["attack.kind=sign_flip", "attack.nodes=[2,6]", "federation.rounds=6",
              "train.lr=0.002", "data.synthetic.num=240", "federation.local_batches=3",
              "train.batch_size=8"]  # fmt: skip
    plain, _ = _run(tmp_path / "fedavg", *attack, "federation.max_update_norm=none")
    robust, _ = _run(tmp_path / "trimmed", *attack, "federation.aggregator=trimmed_mean")
    start = plain[0]["nme"]
    assert robust[0]["nme"] == start
    assert robust[-1]["nme"] < 0.7 * start  # learns
    assert min(row["nme"] for row in plain) > 0.9 * start  # never does


def test_multi_krum_with_a_threshold_leaves_out_the_attackers_and_no_one_else(tmp_path):
    settings = ["federation.aggregator=multi_krum", "federation.krum_threshold=3",
                "federation.rounds=1"]  # fmt: skip
    rows, _ = _run(tmp_path / "attacked", *settings, "attack.kind=sign_flip", "attack.nodes=[2,6]")
    clean, _ = _run(tmp_path / "clean", *settings)
    left_out = sorted(event for event in rows[1]["bounded"] if "left out" in event)
    # LoopbackGrid's node ids are the partition ids plus one
    assert left_out == ["node 3: left out by multi_krum", "node 7: left out by multi_krum"]
    assert (rows[1]["accepted"], rows[1]["excluded"], clean[1]["excluded"]) == (NODES, 2, 0)
