"""The broadcast of the global model, quantized, that server and clients agree on.

The server keeps two models: the exact global model G (where averaged client updates land)
and the broadcast model B. Each round B moves towards G by a quantized delta,
B <- B + Q(G - B), so what quantization leaves out is sent in later rounds (error feedback
on the downlink). What a node is sent depends on what it holds, as the server knows from
the nodes that replied:

- round 1: B is Q(G) at `codec.resync_bits` (the full-model codec), sent to every node;
- a node that holds the previous round's B: the delta, at `codec.downlink_bits`. It then
  holds this round's B exactly if it held the previous one exactly;
- a node that holds an older B the server still keeps (`codec.downlink_history` rounds):
  the quantized step from it, Q(B - B_old), at `codec.downlink_bits`; it then holds B up to
  the step's quantization error;
- any other node (new, restarted, or out of step for longer): B at `codec.resync_bits`
  (default 8; 32 sends float32 and the node holds B exactly).

So under client sampling no node downloads float32 unless asked; a node that caught up by a
step or a resync trains from a model within that codec's error of B, and its update is taken
relative to what it holds, so the server's G is not biased by it. At 32 bits B is G, sent
whole every round.
"""

from __future__ import annotations

from dataclasses import dataclass

from flwr.app import ArrayRecord

from fedland.codec import CodecConfig, decode_update, encode_and_reconstruct, encode_update
from fedland.federation.weights import Weights, shapes
from fedland.seeds import derive_seed

FULL, DELTA = "full", "delta"
RAW = CodecConfig(bits=32)


@dataclass
class Payload:
    """What one node is sent: the arrays, how to rebuild B from them, and the codec seed."""

    arrays: ArrayRecord
    kind: str  # FULL or DELTA
    base_round: int  # DELTA: the broadcast round the node must hold
    seed: int


class Broadcaster:
    """Server side of the downlink."""

    def __init__(
        self,
        weights: Weights,
        config: CodecConfig,
        seed: int = 0,
        full: CodecConfig = RAW,
        history: int = 0,
    ) -> None:
        self.exact = {name: value.clone() for name, value in weights.items()}
        self.config = config  # deltas and steps
        self.full = full  # full models (round 1 and nodes out of step)
        self.seed = seed
        self.history = history
        self.model: Weights | None = None  # B, once broadcast
        self.round = 0  # the broadcast round B belongs to
        self.held: dict[int, int] = {}  # node -> the broadcast round it holds
        self._past: dict[int, Weights] = {}  # earlier B, by round, for nodes out of step
        self._for_all: Payload | None = None  # this round's payload for every node, if one
        self._steps: dict[int, Payload] = {}  # this round's deltas, by the base round
        self._resync: Payload | None = None  # this round's full model for nodes out of step

    def advance(self, server_round: int) -> None:
        """Compute this round's B and the delta from the previous one."""
        self._for_all, self._steps, self._resync = None, {}, None
        if self.model is not None and self.history:
            self._past[self.round] = self.model
            self._past = {r: m for r, m in self._past.items() if r > self.round - self.history}
        previous = self.round
        self.round = server_round
        # Rounding noise drawn from (seed, round): a resumed run broadcasts what the
        # uninterrupted run would have.
        seed = derive_seed(self.seed, "downlink", server_round)
        if self.config.bits == 32:
            self.model = {name: value.clone() for name, value in self.exact.items()}
            self._for_all = Payload(encode_update(self.model, RAW), FULL, 0, seed)
        elif self.model is None:
            arrays, self.model = encode_and_reconstruct(self.exact, self.full, seed)
            self._for_all = Payload(arrays, FULL, 0, seed)
        else:
            step = {name: self.exact[name] - self.model[name] for name in self.exact}
            arrays, decoded = encode_and_reconstruct(step, self.config, seed)
            self._steps[previous] = Payload(arrays, DELTA, previous, seed)
            self.model = {name: self.model[name] + decoded[name] for name in self.model}

    def state(self) -> dict:
        """What a checkpoint keeps besides G and B: which node holds which round, and the
        earlier broadcasts, so a restarted server sends what it would have sent."""
        return {"held": dict(self.held), "past": dict(self._past)}

    def restore(
        self, exact: Weights, model: Weights, server_round: int, state: dict | None = None
    ) -> None:
        """State of a checkpointed round (without `state`: no node known to hold any B)."""
        self.exact = {name: value.clone() for name, value in exact.items()}
        self.model = {name: value.clone() for name, value in model.items()}
        self.round = server_round
        self.held = dict(state["held"]) if state else {}
        self._past = dict(state["past"]) if state else {}

    def payload(self, node_id: int) -> Payload:
        """The cheapest payload that brings `node_id` to this round's B (see the module)."""
        if self._for_all is not None:
            return self._for_all
        base = self.held.get(node_id)
        if base in self._steps:
            return self._steps[base]
        if base in self._past:  # encoded once per base round, for every node that holds it
            seed = derive_seed(self.seed, "downlink-step", self.round, base)
            old = self._past[base]
            step = {name: self.model[name] - old[name] for name in old}
            self._steps[base] = Payload(encode_update(step, self.config, seed), DELTA, base, seed)
            return self._steps[base]
        if self._resync is None:
            seed = derive_seed(self.seed, "downlink-resync", self.round)
            self._resync = Payload(encode_update(self.model, self.full, seed), FULL, 0, seed)
        return self._resync

    def confirm(self, replied: set[int], failed: set[int] = frozenset()) -> None:
        """Nodes that replied to this round hold its B; for those that failed the server no
        longer knows what they hold, so their next payload is a full model."""
        for node in replied:
            self.held[node] = self.round
        for node in failed:
            self.held.pop(node, None)

    def apply(self, mean_delta: Weights) -> None:
        """Averaged client updates (relative to what each node held) move the exact model."""
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
    seed: int = 0,
) -> Weights:
    """Client side: B from a payload and, for a delta, the B this node holds."""
    if kind == FULL:
        return decode_update(arrays, seed=seed)
    if kind != DELTA:
        raise BroadcastError(f"unknown broadcast kind {kind!r}")
    if held is None or held_round != base_round:
        have = "no model" if held is None else f"round {held_round}"
        raise BroadcastError(f"delta against round {base_round}, but this node holds {have}")
    step = decode_update(arrays, shapes(held), seed=seed)
    return {name: held[name] + step[name] for name in held}
