"""Aggregation of quantized weight updates, with a quantized broadcast.

Flower's `FedAvg` samples the nodes; this subclass decides what each node is sent (see
`fedland.federation.downlink`) and decodes, validates and combines what comes back. A reply
that fails validation (truncated or corrupt payload, wrong shape or dtype, NaN or Inf, an
unknown stype, the wrong bit-width, a missing or absurd `num-examples`) is logged with the
node's id and left out; the round goes on, and the global model is untouched by it. Valid
replies are weighted, norm-bounded and combined by `federation.aggregator` (see
`fedland.federation.aggregation`); every clip, cap and exclusion is logged with the node.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable

from flwr.app import ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedland import __version__
from fedland.codec import CodecError, decode_update, fp32_bytes, payload_bytes
from fedland.codec.format import ALLOWED_BITS
from fedland.config import ExperimentConfig
from fedland.federation.aggregation import Reply, aggregate
from fedland.federation.downlink import FULL, Broadcaster
from fedland.federation.ledger import RoundLedger
from fedland.federation.settings import (
    BASE_ROUND,
    DOWNLINK_SEED,
    EXPERIMENT,
    FEDLAND_VERSION,
    KIND,
    NUM_PARTITIONS,
    PARTITION_ID,
    UPLINK_BITS,
    UPLINK_SEED,
    client_view,
    uplink_codec,
)
from fedland.federation.weights import Weights, shapes, to_record
from fedland.seeds import derive_seed

log = logging.getLogger("flwr")  # shown with Flower's own log, streamed by `flwr run`


class UpdateRejected(ValueError):
    """A reply that cannot go into the average."""


class FederationStalled(RuntimeError):
    """Rounds in a row without a usable update: the run cannot train; says why."""


class QuantizedFedAvg(FedAvg):
    def __init__(
        self,
        broadcaster: Broadcaster,
        experiment: ExperimentConfig,
        largest_partition: int = 0,
        **fedavg: object,
    ) -> None:
        """`largest_partition`: the most examples an honest node can claim (0: unknown)."""
        super().__init__(fraction_evaluate=0.0, **fedavg)
        self.broadcaster = broadcaster
        self.largest_partition = largest_partition
        self.experiment = experiment
        self.experiment_text = client_view(experiment)
        self.uplink_bits = experiment.codec.uplink_bits
        self.node_uplink_bits = experiment.codec.node_uplink_bits
        self.ledger = RoundLedger()
        self.round_offset = 0  # rounds done before this start (a resumed run)
        self.idle_rounds = 0  # rounds in a row that ended without a usable update
        self.trained_rounds = 0
        self._expected = shapes(broadcaster.exact)
        self._fp32_update = fp32_bytes(broadcaster.exact)

    def configure_train(
        self, server_round: int, arrays, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        server_round += self.round_offset
        self._wait_for_nodes(grid)
        sampled = list(super().configure_train(server_round, arrays, config, grid))
        self.ledger = RoundLedger()
        self.broadcaster.advance(server_round)
        messages = []
        for message in sampled:
            node = message.metadata.dst_node_id
            payload = self.broadcaster.payload(node)
            settings = ConfigRecord(dict(message.content["config"]))
            if payload.kind == FULL:  # a node without the model has no experiment either
                settings[EXPERIMENT] = self.experiment_text
            settings[FEDLAND_VERSION] = __version__
            settings[KIND] = payload.kind
            settings[BASE_ROUND] = payload.base_round
            settings[UPLINK_BITS] = self.uplink_bits
            settings[DOWNLINK_SEED] = payload.seed
            settings[UPLINK_SEED] = self._uplink_seed(server_round, node)
            content = RecordDict({"arrays": payload.arrays, "config": settings})
            messages.append(Message(content, dst_node_id=node, message_type=MessageType.TRAIN))
            self.ledger.downlink_bytes += payload_bytes(payload.arrays)
            self.ledger.fp32_downlink_bytes += self._fp32_update
            self.ledger.full_downloads += payload.kind == FULL
        self.ledger.sent = len(messages)
        return messages

    def _wait_for_nodes(self, grid: Grid, report_every: float = 10.0) -> None:
        """Flower waits for nodes forever, one log line a second; this says what it waits
        for and gives up after `federation.node_wait_timeout` with the nodes it saw."""
        needed = max(self.min_available_nodes, self.min_train_nodes)
        limit = self.experiment.federation.node_wait_timeout
        start = time.monotonic()
        reported = -math.inf
        while len(nodes := list(grid.get_node_ids())) < needed:
            waited = time.monotonic() - start
            if waited >= limit:
                raise FederationStalled(
                    f"waited {waited:.0f} s for {needed} nodes (federation.min_available_nodes "
                    f"/ min_train_nodes); {len(nodes)} connected: {sorted(nodes) or 'none'}. "
                    f"Start more SuperNodes, or lower those settings "
                    f"(federation.node_wait_timeout sets how long to wait)"
                )
            if waited - reported >= report_every:
                log.info("waiting for %d nodes: %d connected, giving up in %.0f s",
                         needed, len(nodes), limit - waited)  # fmt: skip
                reported = waited
            time.sleep(min(1.0, limit - waited))

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        server_round += self.round_offset
        ledger = self.ledger
        accepted: list[tuple[Reply, MetricRecord]] = []
        replied: set[int] = set()
        failed: set[int] = set()
        received = 0
        for reply in replies:
            received += 1
            node = reply.metadata.src_node_id
            if reply.has_error():
                ledger.failed += 1
                failed.add(node)
                ledger.failures.append(f"node {node}: {reply.error.reason}")
                log.warning(
                    "node %d failed in round %d: %s", node, server_round, reply.error.reason
                )
                continue
            replied.add(node)
            ledger.uplink_bytes += sum(
                payload_bytes(r) for r in reply.content.array_records.values()
            )
            ledger.fp32_uplink_bytes += self._fp32_update
            try:
                delta, weight, metrics = self._validate(reply, server_round)
            except (UpdateRejected, CodecError) as error:
                ledger.rejected += 1
                reason = f"node {node}: {error}"
                ledger.rejections.append(reason)
                log.warning("rejected update in round %d from %s", server_round, reason)
                continue
            accepted.append((Reply(node, delta, weight), metrics))
        ledger.failed += ledger.sent - received  # no reply before the round's timeout
        ledger.accepted = len(accepted)
        self.broadcaster.confirm(replied, failed)
        if not accepted:
            log.warning("round %d: no usable update; the global model is unchanged", server_round)
            self._idle(server_round)
            return None, None
        self.idle_rounds = 0
        self.trained_rounds += 1
        accepted.sort(key=_arrival_free_order)
        result = aggregate(
            [reply for reply, _ in accepted], self.experiment.federation, self.largest_partition
        )
        for event in result.events:
            log.warning("round %d: %s", server_round, event)
        ledger.record_aggregation(result)
        self.broadcaster.apply(result.mean)
        total = sum(result.weights)
        losses = [m["loss"] * w for (_, m), w in zip(accepted, result.weights, strict=True)]
        ledger.loss = sum(losses) / total
        ledger.client_seconds = sum(m["seconds"] for _, m in accepted) / len(accepted)
        ledger.peak_memory_mb = max(m["peak-memory-mb"] for _, m in accepted)
        metrics = MetricRecord({"loss": ledger.loss, "num-examples": int(total)})
        return to_record(self.broadcaster.exact), metrics

    def _idle(self, server_round: int) -> None:
        self.idle_rounds += 1
        limit = self.experiment.federation.max_idle_rounds
        if self.idle_rounds >= limit:
            ledger = self.ledger
            reasons = ledger.failures + ledger.rejections
            if silent := ledger.failed - len(ledger.failures):
                reasons.append(f"{silent} node(s) did not reply in time")
            raise FederationStalled(
                f"no usable update in {limit} round(s) in a row (up to round {server_round}, "
                f"federation.max_idle_rounds); the nodes said:\n  " + "\n  ".join(reasons)
            )

    def _uplink_seed(self, server_round: int, node: int) -> int:
        return derive_seed(self.experiment.train.seed, "uplink", server_round, node)

    def _validate(self, reply: Message, server_round: int) -> tuple[Weights, float, MetricRecord]:
        content = reply.content
        if len(content.array_records) != 1 or len(content.metric_records) != 1:
            raise UpdateRejected(
                f"expected one ArrayRecord and one MetricRecord, got "
                f"{len(content.array_records)} and {len(content.metric_records)}"
            )
        (arrays,) = content.array_records.values()
        (metrics,) = content.metric_records.values()
        for key in ("num-examples", "loss", "seconds", "peak-memory-mb", UPLINK_BITS):
            if key not in metrics:
                raise UpdateRejected(f"metric {key!r} missing")
        weight = metrics["num-examples"]
        if not isinstance(weight, int | float) or not math.isfinite(weight) or weight <= 0:
            raise UpdateRejected(f"num-examples must be a positive number, got {weight!r}")
        share = metrics.get(NUM_PARTITIONS, 0)
        partitions = self.experiment.partition.num_partitions
        if share not in (0, partitions):
            raise UpdateRejected(
                f"trained partition {metrics.get(PARTITION_ID)} of {share}, but this run splits "
                f"the data into {partitions} (partition.num_partitions); give the nodes "
                f"num-partitions={partitions}, or set partition.num_partitions to the node count"
            )
        bits = metrics[UPLINK_BITS]
        if bits not in ALLOWED_BITS:
            raise UpdateRejected(f"uplink-bits {bits!r} is not one of {ALLOWED_BITS}")
        if bits != self.uplink_bits and not self.node_uplink_bits:
            raise UpdateRejected(
                f"sent a {bits}-bit update; this run uses {self.uplink_bits} bits "
                "(set codec.node_uplink_bits to let nodes choose)"
            )
        codec = uplink_codec(self.experiment, bits)
        seed = self._uplink_seed(server_round, reply.metadata.src_node_id)
        delta = decode_update(arrays, self._expected, config=codec, seed=seed)
        return delta, float(weight), metrics


def _arrival_free_order(item: tuple[Reply, MetricRecord]) -> tuple[int, int]:
    """Replies are summed by partition (then node id), not as they arrived: float sums
    depend on their order, and the arrival order varies from run to run, so the same
    experiment would not give the same model twice."""
    reply, metrics = item
    partition = metrics.get(PARTITION_ID)
    return (partition if isinstance(partition, int) else -1, reply.node)
