"""The update codec as a Flower client mod, so that training code only sees float tensors.

Incoming train messages carry the broadcast (a full model with the experiment, or a
quantized delta against the model this node already holds); the mod rebuilds the float model,
keeps it and the experiment in `context.state`, and hands both on. The reply's trained
weights become a delta against that model, which is encoded at the uplink bit-width with
error feedback (the residual also lives in `context.state`, so it survives across rounds in
simulation and deployment alike).
"""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType
from flwr.clientapp.typing import ClientAppCallable

from fedland.codec import encode_update, encode_with_feedback
from fedland.federation.downlink import BroadcastError, rebuild
from fedland.federation.settings import (
    BASE_ROUND,
    DOWNLINK_SEED,
    EXPERIMENT,
    FEDLAND_VERSION,
    KIND,
    SERVER_ROUND,
    UPLINK_BITS,
    UPLINK_SEED,
    NodeSettings,
    check_version,
    experiment_from_text,
    uplink_codec,
)
from fedland.federation.weights import from_record, subtract, to_record

HELD = "fedland.broadcast"
RESIDUAL = "fedland.residual"
META = "fedland.meta"


def codec_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, context)
    config = msg.content["config"]
    check_version(str(config.get(FEDLAND_VERSION, "unknown")))
    server_round = int(config[SERVER_ROUND])
    held, held_round = _held(context)
    model = rebuild(
        msg.content["arrays"],
        str(config[KIND]),
        int(config[BASE_ROUND]),
        held,
        held_round,
        int(config[DOWNLINK_SEED]),
    )
    text = _experiment_text(config, context)
    context.state[HELD] = to_record(model)
    context.state[META] = ConfigRecord({"round": server_round, EXPERIMENT: text})
    msg.content["arrays"] = to_record(model)
    config[EXPERIMENT] = text  # the app reads the experiment from the message, as the model

    reply = call_next(msg, context)
    if reply.has_error():
        return reply
    delta = subtract(from_record(reply.content["arrays"]), model)
    experiment = experiment_from_text(str(config[EXPERIMENT]))
    node = NodeSettings.from_node_config(dict(context.node_config))
    bits = node.uplink_bits or int(config[UPLINK_BITS])
    codec = uplink_codec(experiment, bits)
    seed = int(config[UPLINK_SEED])
    if experiment.codec.error_feedback:
        residual = from_record(context.state[RESIDUAL]) if RESIDUAL in context.state else None
        record, residual = encode_with_feedback(delta, residual, codec, seed)
        context.state[RESIDUAL] = to_record(residual)
    else:
        record = encode_update(delta, codec, seed)
    reply.content["arrays"] = record
    reply.content["metrics"][UPLINK_BITS] = bits
    return reply


def _experiment_text(config: ConfigRecord, context: Context) -> str:
    """The experiment comes with each full model; a delta builds on the one held with the
    model it applies to."""
    if EXPERIMENT in config:
        return str(config[EXPERIMENT])
    if META in context.state and EXPERIMENT in context.state[META]:
        return str(context.state[META][EXPERIMENT])
    raise BroadcastError("this node holds no experiment; the server sends it with a full model")


def _held(context: Context) -> tuple[dict | None, int | None]:
    if HELD not in context.state or META not in context.state:
        return None, None
    record: ArrayRecord = context.state[HELD]
    return from_record(record), int(context.state[META]["round"])
