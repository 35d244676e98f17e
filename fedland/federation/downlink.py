"""The broadcast of the global model, optionally quantized, that server and clients agree on.

The server keeps two models: the exact global model G (where averaged client updates land)
and the broadcast model B that every client reconstructs bit for bit. Each round B moves
towards G by a quantized delta, B <- B + Q(G - B), so what quantization leaves out is sent in
later rounds (error feedback on the downlink). A node that holds the previous B gets only the
quantized delta; a node that does not (new, sampled out last round, or restarted) gets B as
raw float32. The first broadcast of a run sends Q(G) itself: clients and server start from
that model, so nobody downloads the float model. At 32 bits B is G, sent whole every round.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from flwr.app import ArrayRecord

from fedland.codec import CodecConfig, decode_update, encode_and_reconstruct, encode_update
from fedland.federation.weights import Weights, shapes

FULL, DELTA = "full", "delta"
RAW = CodecConfig(bits=32)


@dataclass
class Payload:
    """What one node is sent: the arrays and how to rebuild B from them."""

    arrays: ArrayRecord
    kind: str  # FULL or DELTA
    base_round: int  # DELTA: the broadcast round the node must hold


class Broadcaster:
    """Server side of the downlink."""

    def __init__(self, weights: Weights, config: CodecConfig, seed: int = 0) -> None:
        self.exact = {name: value.clone() for name, value in weights.items()}
        self.config = config
        self.seed = seed
        self.model: Weights | None = None  # B, once broadcast
        self.round = 0  # the broadcast round B belongs to
        self.holders: set[int] = set()  # nodes known to hold B of `self.round`
        self._previous_holders: set[int] = set()
        self._previous_round = 0
        self._delta: ArrayRecord | None = None
        self._first: ArrayRecord | None = None
        self._full: ArrayRecord | None = None

    def advance(self, server_round: int) -> None:
        """Compute this round's B and its payloads."""
        self._delta = self._first = self._full = None
        # Rounding noise drawn from (seed, round): a resumed run broadcasts what the
        # uninterrupted run would have.
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + server_round)
        if self.config.bits == 32:
            self.model = {name: value.clone() for name, value in self.exact.items()}
        elif self.model is None:
            self._first, self.model = encode_and_reconstruct(self.exact, self.config, generator)
        else:
            step = {name: self.exact[name] - self.model[name] for name in self.exact}
            self._delta, decoded = encode_and_reconstruct(step, self.config, generator)
            self.model = {name: self.model[name] + decoded[name] for name in self.model}
        self._previous_holders, self.holders = self.holders, set()
        self._previous_round, self.round = self.round, server_round

    def restore(self, exact: Weights, model: Weights, server_round: int) -> None:
        """State of a checkpointed round; no node is known to hold its B any more."""
        self.exact = {name: value.clone() for name, value in exact.items()}
        self.model = {name: value.clone() for name, value in model.items()}
        self.round = server_round
        self.holders = set()

    def payload(self, node_id: int) -> Payload:
        """The cheapest payload that lets `node_id` rebuild this round's B exactly."""
        if self._first is not None:
            return Payload(self._first, FULL, 0)
        if self._delta is not None and node_id in self._previous_holders:
            return Payload(self._delta, DELTA, self._previous_round)
        if self._full is None:
            self._full = encode_update(self.model, RAW)
        return Payload(self._full, FULL, 0)

    def confirm(self, node_ids: set[int]) -> None:
        """These nodes replied to this round, so they hold its B."""
        self.holders |= node_ids

    def apply(self, mean_delta: Weights) -> None:
        """Averaged client updates (relative to B) move the exact model."""
        for name, value in mean_delta.items():
            self.exact[name] += value


class BroadcastError(ValueError):
    """A delta broadcast for a model this node does not hold."""


def rebuild(
    arrays: ArrayRecord,
    kind: str,
    base_round: int,
    held: Weights | None,
    held_round: int | None,
    template: Weights | None = None,
) -> Weights:
    """Client side: B from a payload and, for a delta, the B this node holds."""
    expected = shapes(template) if template is not None else None
    if kind == FULL:
        return decode_update(arrays, expected)
    if kind != DELTA:
        raise BroadcastError(f"unknown broadcast kind {kind!r}")
    if held is None or held_round != base_round:
        have = "no model" if held is None else f"round {held_round}"
        raise BroadcastError(f"delta against round {base_round}, but this node holds {have}")
    step = decode_update(arrays, shapes(held))
    return {name: held[name] + step[name] for name in held}
