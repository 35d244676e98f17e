"""Hostile nodes: the weighting policy, the norm bound and each aggregator, checked against
hand-computed cases and against Flower's own strategies on plain float arrays."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from flwr.app import ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp.strategy import Bulyan, FedMedian, FedTrimmedAvg, Krum, MultiKrum
from loopback import identify_as_server

from fedland.config import ConfigError, FederationSection, load_config
from fedland.federation.aggregation import Reply, aggregate, combine, update_norm
from fedland.federation.weights import to_record


def _settings(**values) -> FederationSection:
    return dataclasses.replace(
        FederationSection(), max_update_norm="none", weighting="claimed", **values
    )


def _scalars(values: list[float]) -> list[dict[str, torch.Tensor]]:
    return [{"w": torch.tensor([value])} for value in values]


def _value(mean: dict[str, torch.Tensor]) -> float:
    return float(mean["w"][0])


@pytest.mark.parametrize(
    ("aggregator", "values", "weights", "expected", "kept"),
    [
        ("fedavg", [1.0, 5.0], [1.0, 3.0], 4.0, [0, 1]),
        ("median", [1.0, 5.0, 2.0], [1.0, 1.0, 9.0], 2.0, [0, 1, 2]),  # weights do not count
        ("median", [1.0, 2.0, 3.0, 10.0], [1.0] * 4, 2.5, [0, 1, 2, 3]),
        ("trimmed_mean", [0.0, 1.0, 2.0, 3.0, 100.0], [1.0] * 5, 2.0, [0, 1, 2, 3, 4]),
        # Krum, f = 1: each scores the squared distances to its n - f - 2 = 2 nearest;
        # 0.15 has 0.0025 + 0.0025, the least.
        ("krum", [0.0, 0.1, 0.2, 0.15, 10.0], [1.0] * 5, 0.15, [3]),
        # Multi-Krum keeps the n - f = 4 best scores and averages them by weight.
        ("multi_krum", [0.0, 0.1, 0.2, 0.15, 10.0], [1.0, 1.0, 2.0, 1.0, 1.0], 0.13, [0, 1, 2, 3]),
    ],
)
def test_each_aggregator_on_a_hand_computed_case(aggregator, values, weights, expected, kept):
    settings = _settings(aggregator=aggregator, trim_fraction=0.2, num_malicious=1)
    mean, used, note = combine(_scalars(values), weights, settings)
    assert _value(mean) == pytest.approx(expected, abs=1e-6)
    assert used == kept and note == ""


@pytest.mark.parametrize(
    ("values", "threshold", "kept"),
    [
        # f = 1; scores (2 nearest): 0.0325, 0.0125, 0.0125, 0.005, 0.2125; median 0.0125.
        ([0.0, 0.1, 0.2, 0.15, 0.5], 20.0, [0, 1, 2, 3, 4]),  # 0.2125 < 20 x 0.0125: kept
        ([0.0, 0.1, 0.2, 0.15, 0.5], 3.0, [0, 1, 2, 3]),  # 0.2125 > 3 x 0.0125: left out
        ([0.0, 0.1, 0.2, 0.15, 10.0], 20.0, [0, 1, 2, 3]),  # 193.06: left out
    ],
)
def test_multi_krum_with_a_threshold_leaves_out_only_outlying_scores(values, threshold, kept):
    settings = _settings(aggregator="multi_krum", num_malicious=1, krum_threshold=threshold)
    mean, used, _ = combine(_scalars(values), [1.0] * 5, settings)
    assert used == kept
    assert _value(mean) == pytest.approx(sum(values[i] for i in kept) / len(kept), abs=1e-6)


def test_multi_krum_with_a_threshold_leaves_out_at_most_the_assumed_hostile_nodes():
    values = [0.0, 0.01, 0.02, 5.0, 9.0, -7.0]  # three far away, one assumed hostile
    settings = _settings(aggregator="multi_krum", num_malicious=1, krum_threshold=2.0)
    _, used, _ = combine(_scalars(values), [1.0] * 6, settings)
    assert len(used) == 5


def test_bulyan_keeps_the_coordinates_closest_to_the_median_of_the_krum_selection():
    """n = 7, f = 1: Multi-Krum keeps theta = 5 (the outliers +-100 go), then each
    coordinate averages the beta = 3 values nearest the median of those 5."""
    values = [0.0, 1.0, 2.0, 3.0, 4.0, 100.0, -100.0]
    mean, used, _ = combine(_scalars(values), [1.0] * 7, _settings(aggregator="bulyan",
                                                                   num_malicious=1))  # fmt: skip
    assert used == [0, 1, 2, 3, 4]
    assert _value(mean) == pytest.approx(2.0)  # the median 2 and its neighbours 1 and 3


def _reply(node: int, weights: dict[str, torch.Tensor], examples: float) -> Message:
    identify_as_server()
    instruction = Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=node,
                          message_type=MessageType.TRAIN)  # fmt: skip
    content = RecordDict({"arrays": to_record(weights),
                          "metrics": MetricRecord({"num-examples": examples})})  # fmt: skip
    return Message(content, reply_to=instruction)


FLOWER = {
    "median": lambda f: FedMedian(),
    "trimmed_mean": lambda f: FedTrimmedAvg(beta=0.2),
    "krum": lambda f: Krum(num_malicious_nodes=f),
    "multi_krum": lambda f: MultiKrum(num_malicious_nodes=f, num_nodes_to_select=9 - f),
    "bulyan": lambda f: Bulyan(num_malicious_nodes=f),
}


@pytest.mark.parametrize("aggregator", list(FLOWER))
def test_each_robust_aggregator_equals_flowers_strategy_on_float_arrays(aggregator):
    """Nine updates, two of them hostile (one scaled up, one flipped), as plain float arrays
    that Flower's own strategies read: the same aggregate."""
    torch.manual_seed(0)
    honest = torch.randn(3, 4)
    updates = [{"a": honest + 0.3 * torch.randn(3, 4), "b": torch.randn(5)} for _ in range(9)]
    updates[0] = {name: 20 * value for name, value in updates[0].items()}
    updates[1] = {name: -4 * value for name, value in updates[1].items()}
    examples = [float(n) for n in range(10, 19)]
    hostile = 1 if aggregator == "bulyan" else 2  # Bulyan needs n >= 4f + 3
    ours, _, _ = combine(updates, examples, _settings(aggregator=aggregator, trim_fraction=0.2,
                                                      num_malicious=hostile))  # fmt: skip
    replies = [_reply(n + 1, u, w) for n, (u, w) in enumerate(zip(updates, examples, strict=True))]
    arrays, _ = FLOWER[aggregator](hostile).aggregate_train(1, replies)
    for name, value in ours.items():
        reference = torch.from_numpy(arrays[name].numpy())
        torch.testing.assert_close(value, reference, rtol=1e-5, atol=1e-6)


def _replies(norms: list[float], claims: list[float] | None = None) -> list[Reply]:
    direction = torch.tensor([3.0, 4.0]) / 5.0
    claims = claims or [10.0] * len(norms)
    pairs = zip(norms, claims, strict=True)
    return [Reply(node, {"w": direction * n}, c) for node, (n, c) in enumerate(pairs, start=1)]


def test_auto_bound_scales_each_tensor_onto_twice_the_rounds_median_and_names_the_node():
    """BatchNorm statistics dominate a real update's norm; a node that inflates only its
    convolutions is still caught, tensor by tensor, and its statistics are left alone."""
    torch.manual_seed(0)
    replies = [Reply(node, {"conv": 0.1 * torch.randn(50), "running_var": 5 * torch.randn(50)},
                     10.0) for node in range(1, 6)]  # fmt: skip
    replies[3].delta["conv"] *= 30
    conv_norms = [float(r.delta["conv"].norm()) for r in replies]
    result = aggregate(replies, dataclasses.replace(_settings(), max_update_norm="auto"))
    assert result.clipped == [4]
    assert len(result.events) == 1 and result.events[0].startswith(
        "node 4: 1 of 2 tensors clipped to twice the round's median norm"
    )
    bound = 2 * float(np.median(conv_norms))
    contributions = 5 * result.mean["conv"] - sum(r.delta["conv"] for r in replies if r.node != 4)
    assert float(contributions.norm()) == pytest.approx(bound, rel=1e-5)  # onto the bound
    direction = torch.nn.functional.cosine_similarity(contributions, replies[3].delta["conv"], 0)
    assert float(direction) == pytest.approx(1.0, abs=1e-5)
    expected = sum(r.delta["running_var"] for r in replies) / 5
    torch.testing.assert_close(result.mean["running_var"], expected)
    assert result.median_norm == pytest.approx(
        float(np.median([update_norm(r.delta) for r in replies]))
    )


def test_a_tensor_that_most_nodes_leave_unchanged_is_bounded_at_zero():
    replies = [Reply(node, {"w": torch.ones(4), "frozen": torch.zeros(3)}, 10.0)
               for node in range(1, 4)]  # fmt: skip
    replies[2].delta["frozen"] = torch.full((3,), 0.5)
    result = aggregate(replies, dataclasses.replace(_settings(), max_update_norm="auto"))
    assert result.clipped == [3] and torch.equal(result.mean["frozen"], torch.zeros(3))
    assert result.events == [
        "node 3: 1 of 2 tensors clipped to twice the round's median norm; "
        "1 that most nodes left unchanged set to zero"
    ]


def test_a_numeric_norm_bound_clips_whole_updates_and_none_clips_nothing():
    replies = _replies([1.0, 3.0, 5.0])
    result = aggregate(replies, dataclasses.replace(_settings(), max_update_norm="2.5"))
    assert result.clipped == [2, 3]
    assert result.events == ["node 2: update norm 3 clipped to 2.5",
                             "node 3: update norm 5 clipped to 2.5"]  # fmt: skip
    assert update_norm(result.mean) == pytest.approx((1.0 + 2.5 + 2.5) / 3, rel=1e-6)
    untouched = aggregate(replies, _settings())
    assert untouched.clipped == [] and untouched.events == []
    assert update_norm(untouched.mean) == pytest.approx(3.0, rel=1e-6)


def test_claims_beyond_the_largest_partition_are_capped_and_honest_claims_are_not():
    replies = _replies([1.0, 1.0, 1.0, 1.0], claims=[30.0, 10.0, 20.0, 1e6])
    capped = aggregate(replies, dataclasses.replace(_settings(), weighting="capped"), 40)
    assert capped.weights == [30.0, 10.0, 20.0, 50.0]  # max(40, 2 x median 25)
    assert capped.capped == [4] and capped.events == ["node 4: num-examples 1e+06 capped at 50"]
    equal = aggregate(replies, dataclasses.replace(_settings(), weighting="equal"))
    assert equal.weights == [1.0] * 4
    assert aggregate(replies, _settings()).weights == [30.0, 10.0, 20.0, 1e6]


def test_too_few_replies_for_the_assumed_hostile_nodes_lowers_them_and_says_so():
    _, used, note = combine(_scalars([0.0, 1.0, 2.0, 50.0]), [1.0] * 4,
                            _settings(aggregator="krum", num_malicious=2))  # fmt: skip
    assert "4 replies cannot outvote 2 hostile nodes; this round assumes 0" in note
    assert len(used) == 1


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (
            ["federation.aggregator=bulyan", "federation.num_malicious=2"],
            "federation.num_malicious",
        ),
        (["federation.aggregator=krum", "federation.num_malicious=3"], "federation.num_malicious"),
        (["federation.max_update_norm=banana"], "federation.max_update_norm"),
        (["federation.max_update_norm=-1"], "federation.max_update_norm"),
        (["federation.aggregator=mean"], "federation.aggregator"),
        (["federation.trim_fraction=0.5"], "federation.trim_fraction"),
        (["attack.kind=sign_flip"], "attack.num_nodes"),
        (["attack.kind=sign_flip", "attack.nodes=[8]"], "attack.nodes"),
        (["attack.kind=scale", "attack.num_nodes=9"], "attack.num_nodes"),
        (["attack.kind=flood", "attack.num_nodes=1"], "attack.kind"),
    ],
)
def test_hostile_settings_that_cannot_work_are_refused_by_key(overrides, key):
    with pytest.raises(ConfigError) as error:
        load_config(None, ["partition.num_partitions=8", *overrides])
    assert error.value.key == key and key in str(error.value)


def test_a_numeric_norm_bound_and_a_supported_bulyan_load():
    config = load_config(None, ["federation.max_update_norm=0.5", "federation.aggregator=bulyan",
                                "federation.num_malicious=1"])  # fmt: skip
    assert config.federation.norm_bound() == 0.5
    assert math.isclose(load_config(None, []).federation.trim_fraction, 0.25)
