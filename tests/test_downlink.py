"""The downlink on its own: the broadcast model B chases the server's exact model G round
after round, and which rounding each width uses when errors are fed back."""

from __future__ import annotations

import random

import pytest
import torch

from fedland.codec import expected_payload_bytes, fp32_bytes, payload_bytes
from fedland.config import ConfigError, load_config
from fedland.federation.downlink import DELTA, FULL, Broadcaster, rebuild
from fedland.federation.settings import downlink_codec, resync_codec, uplink_codec
from fedland.federation.weights import shapes


def _gap(a: dict, b: dict) -> float:
    return max(float((a[name] - b[name]).abs().max()) for name in a)


def _codecs(*settings: str):
    config = load_config(None, list(settings))
    return downlink_codec(config), resync_codec(config), config.codec.downlink_history


def test_the_broadcast_stays_within_one_rounding_of_the_exact_model():
    torch.manual_seed(0)
    exact = {"conv.weight": torch.randn(64, 64), "head.bias": torch.randn(256)}
    delta, full, history = _codecs("codec.downlink_bits=4")
    broadcaster = Broadcaster(exact, delta, 7, full=full, history=history)
    held, held_round = None, None
    for server_round in range(1, 6):
        broadcaster.advance(server_round)
        payload = broadcaster.payload(node_id=1)
        assert payload.kind == (FULL if server_round == 1 else DELTA)
        held = rebuild(
            payload.arrays, payload.kind, payload.base_round, held, held_round, payload.seed
        )
        held_round = server_round
        broadcaster.confirm({1})
        assert _gap(held, broadcaster.model) == 0.0  # the node rebuilds B exactly
        # B chases G: within a 4-bit rounding of the last step (plus round 1's 8 bits)
        gap = _gap(broadcaster.model, broadcaster.exact)
        assert gap <= 0.1 * max(float(v.abs().max()) for v in broadcaster.exact.values())
        broadcaster.apply({name: 0.1 * torch.randn_like(v) for name, v in exact.items()})


def _sampled_downlink(rounds: int, settings: list[str]):
    """20 nodes, 5 sampled per round, each a dict standing for its `context.state`."""
    torch.manual_seed(1)
    exact = {"conv.weight": torch.randn(128, 64, 3, 3) * 0.05, "norm.bias": torch.randn(64)}
    delta, full, history = _codecs(*settings)
    broadcaster = Broadcaster(exact, delta, 3, full=full, history=history)
    nodes = {node: {"model": None, "round": None} for node in range(1, 21)}
    sampler = random.Random(0)
    sent = []
    for server_round in range(1, rounds + 1):
        broadcaster.advance(server_round)
        chosen = sampler.sample(sorted(nodes), 5)
        for node in chosen:
            payload = broadcaster.payload(node)
            state = nodes[node]
            state["model"] = rebuild(
                payload.arrays, payload.kind, payload.base_round, state["model"],
                state["round"], payload.seed,
            )  # fmt: skip
            state["round"] = server_round
            sent.append((server_round, node, payload))
        broadcaster.confirm(set(chosen))
        step = {name: 0.01 * torch.randn_like(value) for name, value in exact.items()}
        broadcaster.apply(step)
    return broadcaster, nodes, sent


def test_under_sampling_server_and_nodes_agree_on_what_each_node_holds():
    broadcaster, nodes, sent = _sampled_downlink(12, ["codec.downlink_bits=4"])
    for node, state in nodes.items():  # the server's record is each node's own
        assert broadcaster.held.get(node) == state["round"], node
    scale = max(float(v.abs().max()) for v in broadcaster.model.values())
    last = broadcaster.round
    for node, state in nodes.items():
        if state["round"] == last:  # this round's B, up to a resync or step's error
            assert _gap(state["model"], broadcaster.model) <= 0.02 * scale, node
    kinds = {(payload.kind, payload.base_round == r - 1) for r, _, payload in sent[5:]}
    assert (DELTA, True) in kinds and (DELTA, False) in kinds and (FULL, False) in kinds
    # Nobody downloads float32: full models go at 8 bits, deltas and steps at 4.
    resync = expected_payload_bytes(shapes(broadcaster.model), resync_codec(load_config()))
    step = expected_payload_bytes(
        shapes(broadcaster.model), downlink_codec(load_config(None, ["codec.downlink_bits=4"]))
    )
    for server_round, _, payload in sent:
        size = payload_bytes(payload.arrays)
        assert size == (resync if payload.kind == FULL else step), server_round
    fp32 = fp32_bytes(broadcaster.model)
    total = sum(payload_bytes(p.arrays) for _, _, p in sent)
    assert fp32 * len(sent) / total >= 4.0


def test_with_float32_resync_and_no_history_every_node_holds_b_exactly():
    settings = ["codec.downlink_bits=2", "codec.resync_bits=32", "codec.downlink_history=0"]
    broadcaster, nodes, sent = _sampled_downlink(8, settings)
    for node, state in nodes.items():
        if state["round"] == broadcaster.round:
            assert _gap(state["model"], broadcaster.model) == 0.0, node
    assert {p.kind for r, _, p in sent if r > 1} == {FULL, DELTA}


def test_a_node_that_failed_gets_a_full_model_next_time():
    exact = {"conv.weight": torch.randn(64, 64)}
    delta, full, history = _codecs("codec.downlink_bits=4")
    broadcaster = Broadcaster(exact, delta, 0, full=full, history=history)
    broadcaster.advance(1)
    broadcaster.confirm({1, 2})
    broadcaster.advance(2)
    assert broadcaster.payload(1).kind == DELTA
    broadcaster.confirm({2}, failed={1})
    broadcaster.advance(3)
    assert broadcaster.payload(1).kind == FULL and broadcaster.payload(2).kind == DELTA


@pytest.mark.parametrize(
    ("bits", "feedback", "stochastic"),
    [(4, True, True), (2, True, False), (1, True, False), (2, False, True), (8, True, True)],
)
def test_error_feedback_rounds_1_and_2_bit_uniform_uplinks_to_nearest(bits, feedback, stochastic):
    settings = ["codec.method=uniform", "codec.stochastic=true", f"codec.error_feedback={feedback}"]
    config = load_config(None, settings)
    assert uplink_codec(config, bits).stochastic is stochastic


@pytest.mark.parametrize(("bits", "stochastic"), [(2, False), (4, True)])
def test_the_broadcast_always_feeds_back_so_2_bits_round_to_nearest(bits, stochastic):
    settings = [
        "codec.method=uniform",
        "codec.stochastic=true",
        "codec.error_feedback=false",
        f"codec.downlink_bits={bits}",
    ]
    assert downlink_codec(load_config(None, settings)).stochastic is stochastic


def test_auto_scales_one_bit_steps_by_norm_and_wider_ones_by_least_squares():
    config = load_config(None, ["codec.uplink_bits=1", "codec.downlink_bits=2"])
    assert config.codec.scale == "auto"
    assert (uplink_codec(config).scale, downlink_codec(config).scale) == ("norm", "ls")
    assert uplink_codec(config, 2).scale == "ls"  # a node that sends at its own width
    config = load_config(None, ["codec.uplink_bits=1", "codec.method=eden"])
    assert uplink_codec(config).scale == "ls"  # eden has no norm scale: auto never refuses


def test_each_direction_takes_its_own_block_scale_and_full_models_least_squares():
    settings = ["codec.uplink_bits=1", "codec.downlink_bits=2", "codec.scale=norm"]
    config = load_config(None, settings)
    assert uplink_codec(config).scale == "norm" and downlink_codec(config).scale == "norm"
    assert resync_codec(config).scale == "ls"  # a full model is no step to keep the length of
    config = load_config(None, [*settings, "codec.downlink_scale=ls"])
    assert (uplink_codec(config).scale, downlink_codec(config).scale) == ("norm", "ls")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["codec.scale=unit"], "codec.scale: must be one of auto, ls, norm, got 'unit'"),
        (["codec.uplink_bits=2", "codec.method=eden", "codec.scale=norm"],
         "codec.uplink_bits = 2: scale: eden has no norm scale"),
        (["codec.downlink_bits=4", "codec.downlink_method=nf4", "codec.scale=norm"],
         "codec.downlink_bits = 4: scale: nf4 has no norm scale"),
    ],
)  # fmt: skip
def test_a_scale_the_method_lacks_is_refused_naming_the_direction(settings, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, settings)
    assert message in str(info.value)
