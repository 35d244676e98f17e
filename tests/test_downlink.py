"""The downlink on its own: the broadcast model B chases the server's exact model G round
after round, and which rounding each width uses when errors are fed back."""

from __future__ import annotations

import pytest
import torch

from fedland.config import load_config
from fedland.federation.downlink import DELTA, FULL, Broadcaster, rebuild
from fedland.federation.settings import downlink_codec, uplink_codec


def _gap(a: dict, b: dict) -> float:
    return max(float((a[name] - b[name]).abs().max()) for name in a)


def test_the_broadcast_stays_within_one_rounding_of_the_exact_model():
    torch.manual_seed(0)
    exact = {"conv.weight": torch.randn(64, 64), "head.bias": torch.randn(256)}
    broadcaster = Broadcaster(exact, downlink_codec(load_config(None, ["codec.downlink_bits=4"])))
    held, held_round = None, None
    for server_round in range(1, 6):
        broadcaster.advance(server_round)
        payload = broadcaster.payload(node_id=1)
        assert payload.kind == (FULL if server_round == 1 else DELTA)
        held = rebuild(payload.arrays, payload.kind, payload.base_round, held, held_round)
        held_round = server_round
        broadcaster.confirm({1})
        assert _gap(held, broadcaster.model) == 0.0  # the node rebuilds B exactly
        # 4 bits: 7 levels a side; stochastic rounding is off by at most one step of 1/7
        scale = max(float(value.abs().max()) for value in broadcaster.exact.values())
        assert _gap(broadcaster.model, broadcaster.exact) <= scale / 7
        broadcaster.apply({name: 0.1 * torch.randn_like(v) for name, v in exact.items()})


@pytest.mark.parametrize(
    ("bits", "feedback", "stochastic"),
    [(4, True, True), (2, True, False), (1, True, False), (2, False, True), (8, True, True)],
)
def test_error_feedback_rounds_1_and_2_bit_uplinks_to_nearest(bits, feedback, stochastic):
    config = load_config(None, ["codec.stochastic=true", f"codec.error_feedback={feedback}"])
    assert uplink_codec(config, bits).stochastic is stochastic


@pytest.mark.parametrize(("bits", "stochastic"), [(2, False), (4, True)])
def test_the_broadcast_always_feeds_back_so_2_bits_round_to_nearest(bits, stochastic):
    settings = [
        "codec.stochastic=true",
        "codec.error_feedback=false",
        f"codec.downlink_bits={bits}",
    ]
    assert downlink_codec(load_config(None, settings)).stochastic is stochastic
