"""The server strategy, the downlink protocol and the client codec mod working together:
real ServerApp code and real ClientApp code, messages passed in-process (tests/loopback.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml
from flwr.app import (
    Array,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords
from loopback import LoopbackGrid, identify_as_server

import fedland
from fedland.clients.codec_mod import HELD, META, RESIDUAL, codec_mod
from fedland.codec import (
    STYPE_PREFIX,
    CodecConfig,
    decode_update,
    encode_and_reconstruct,
    encode_update,
    expected_payload_bytes,
    fp32_bytes,
)
from fedland.config import dump_config, load_config
from fedland.federation.downlink import DELTA, FULL, RAW, Broadcaster, BroadcastError, rebuild
from fedland.federation.settings import (
    BASE_ROUND,
    DOWNLINK_SEED,
    EXPERIMENT,
    FEDLAND_VERSION,
    KIND,
    PARTITION_ID,
    SERVER_ONLY,
    SERVER_ROUND,
    UPLINK_BITS,
    UPLINK_SEED,
    downlink_codec,
    resync_codec,
    uplink_codec,
)
from fedland.federation.weights import from_record, shapes, subtract, to_record
from fedland.model.checkpoint import load_checkpoint
from fedland.server.run import run_federation
from fedland.server.strategy import QuantizedFedAvg
from fedland.task import build_data, evaluate_model, flip_test_enabled
from tests.conftest import TINY_FEDERATION

TINY = [*TINY_FEDERATION, "data.workers=0", "train.batch_size=4"]


def _config(tmp_path, *extra):
    return load_config(
        None,
        [
            *TINY,
            f"data.synthetic.cache_dir={tmp_path / 'cache'}",
            f"federation.out={tmp_path / 'run'}",
            *extra,
        ],
    )


def _rows(tmp_path):
    text = (tmp_path / "run" / "metrics.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_server_and_clients_hold_exactly_the_same_broadcast_model(tmp_path):
    config = _config(
        tmp_path,
        "partition.num_partitions=3",
        "federation.rounds=3",
        "federation.fraction_train=0.67",
        "codec.uplink_bits=2",
        "codec.downlink_bits=4",
        "codec.resync_bits=32",  # a node out of step gets B itself, so every node holds B
        "codec.downlink_history=0",
    )
    grid = LoopbackGrid(3)
    held_after_round = []

    def record(node, reply):
        held_after_round.append((node, from_record(grid.contexts[node].state[HELD])))
        return reply

    grid.tamper = record
    run_federation(grid, config)
    _, payload = load_checkpoint(tmp_path / "run" / "global.pt")
    last_round = held_after_round[-2:]  # two of three nodes train each round
    for _, held in last_round:
        assert held.keys() == payload["broadcast"].keys()
        assert all(torch.equal(held[k], payload["broadcast"][k]) for k in held)
    kinds = [str(m.content["config"]["downlink-kind"]) for m in grid.sent]
    assert kinds[:2] == ["full", "full"]  # first broadcast: the quantized model itself
    # Later a node gets a delta exactly when it trained (and so holds B) the round before.
    trained = [[m.metadata.dst_node_id for m in grid.sent[i : i + 2]] for i in (0, 2, 4)]
    expected = [
        "delta" if node in trained[r - 1] else "full" for r in (1, 2) for node in trained[r]
    ]
    assert kinds[2:] == expected
    bases = [int(m.content["config"]["base-round"]) for m in grid.sent[2:]]
    assert bases == [
        r if kind == "delta" else 0 for r, kind in zip([1, 1, 2, 2], expected, strict=True)
    ]
    rows = _rows(tmp_path)
    assert [row["round"] for row in rows] == [0, 1, 2, 3]
    assert all(row["accepted"] == 2 and row["rejected"] == 0 for row in rows[1:])


def test_byte_counters_match_the_payload_formula(tmp_path):
    config = _config(tmp_path, "partition.num_partitions=2", "federation.rounds=2")
    config.codec.uplink_bits, config.codec.downlink_bits = 4, 8
    grid = LoopbackGrid(2)
    run_federation(grid, config)
    model, _ = load_checkpoint(tmp_path / "run" / "final.pt")
    floats = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}
    per_update = expected_payload_bytes(shapes(floats), CodecConfig(bits=4))
    per_broadcast = expected_payload_bytes(shapes(floats), CodecConfig(bits=8))
    fp32 = 4 * sum(v.numel() for v in floats.values())
    rows = _rows(tmp_path)[1:]
    for row in rows:
        assert row["uplink_bytes"] == 2 * per_update
        assert row["downlink_bytes"] == 2 * per_broadcast
        assert row["fp32_uplink_bytes"] == row["fp32_downlink_bytes"] == 2 * fp32
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["uplink_bytes"] == 4 * per_update
    assert summary["uplink_ratio"] == pytest.approx(fp32 / per_update)
    assert summary["rounds"] == 2 and summary["metric"] == "nme"
    assert summary["nme"] == rows[-1]["nme"]


def test_under_client_sampling_the_server_knows_what_every_node_holds(tmp_path):
    config = _config(
        tmp_path,
        "partition.num_partitions=20",
        "partition.scheme=iid",
        "data.synthetic.num=160",
        "federation.rounds=4",
        "federation.fraction_train=0.25",
        "federation.min_train_nodes=5",
        "codec.uplink_bits=2",
        "codec.downlink_bits=4",
    )
    grid = LoopbackGrid(20)
    run_federation(grid, config)
    _, payload = load_checkpoint(tmp_path / "run" / "global.pt")
    held = payload["downlink"]["held"]
    for node, context in grid.contexts.items():  # the server's record is each node's own
        own = int(context.state[META]["round"]) if META in context.state else None
        assert held.get(node) == own, node
    assert len(held) > 5  # most nodes were sampled at some point
    kinds = [str(c[KIND]) for c in grid.sent_config]
    bases = [int(c[BASE_ROUND]) for c in grid.sent_config]
    rounds = [int(c[SERVER_ROUND]) for c in grid.sent_config]
    assert kinds[:5] == ["full"] * 5 and len(kinds) == 20
    steps = [r for r, k, b in zip(rounds, kinds, bases, strict=True) if k == "delta" and b < r - 1]
    assert all(row["accepted"] == 5 for row in _rows(tmp_path)[1:])
    rows = _rows(tmp_path)[1:]
    # No float32 download: full models at 8 bits, deltas and steps at 4.
    spec = shapes(payload["broadcast"])
    full = expected_payload_bytes(spec, resync_codec(config))
    delta = expected_payload_bytes(spec, downlink_codec(config))
    assert full < fp32_bytes(payload["broadcast"]) / 2.5
    for server_round, row in enumerate(rows, start=1):
        fulls = sum(k == "full" for r, k in zip(rounds, kinds, strict=True) if r == server_round)
        assert row["downlink_bytes"] == fulls * full + (5 - fulls) * delta, server_round
        assert row["full_downloads"] == fulls
    assert steps or kinds.count("full") > 5  # nodes out of step caught up one way or the other


def _train_message(weights, server_round, experiment_text, version=fedland.__version__):
    """A train instruction as `QuantizedFedAvg.configure_train` sends it at 32 downlink bits."""
    config = ConfigRecord(
        {
            FEDLAND_VERSION: version,
            SERVER_ROUND: server_round,
            EXPERIMENT: experiment_text,
            KIND: FULL,
            BASE_ROUND: 0,
            UPLINK_BITS: 2,
            DOWNLINK_SEED: 0,
            UPLINK_SEED: 0,  # what the codec's randomness (none for lloyd) is drawn from
        }
    )
    content = RecordDict({"arrays": encode_update(weights, RAW), "config": config})
    return Message(content, dst_node_id=1, message_type=MessageType.TRAIN)


def test_a_node_refuses_a_server_of_another_fedland_version():
    context = Context(1, 1, {"partition-id": 0, "num-partitions": 1}, RecordDict(), {})
    message = _train_message({"w": torch.zeros(4)}, 1, dump_config(load_config()), "0.0.1")
    with pytest.raises(RuntimeError, match=r"fedland \S+ and the server fedland 0\.0\.1"):
        codec_mod(message, context, lambda msg, ctx: pytest.fail("trained anyway"))
    assert len(context.state) == 0


def test_error_feedback_adds_the_previous_residual_to_the_next_uplink_update():
    identify_as_server()
    experiment = load_config(None, ["codec.uplink_bits=2", "codec.stochastic=false"])
    codec = uplink_codec(experiment)
    text = dump_config(experiment)
    context = Context(
        run_id=1,
        node_id=1,
        node_config={"partition-id": 0, "num-partitions": 1},
        state=RecordDict(),
        run_config={},
    )
    start = {
        "conv.weight": torch.randn(16, 8, 3, 3),  # 1152 values: quantized to 2 bits
        "norm.weight": torch.randn(16),  # small: travels as float16
        "norm.num_batches_tracked": torch.tensor(5, dtype=torch.int64),
    }
    steps = {
        server_round: {
            "conv.weight": torch.randn(16, 8, 3, 3) * 1e-2,
            "norm.weight": torch.randn(16) * 1e-2,
            "norm.num_batches_tracked": torch.tensor(server_round, dtype=torch.int64),
        }
        for server_round in (1, 2)
    }
    received, trained = {}, {}

    def train(msg, ctx):  # the local training step: a fixed step away from the model
        server_round = int(msg.content["config"][SERVER_ROUND])
        model = received[server_round] = from_record(msg.content["arrays"])
        step = steps[server_round]
        weights = trained[server_round] = {name: model[name] + step[name] for name in model}
        metrics = MetricRecord({"num-examples": 8, "loss": 0.0})
        content = RecordDict({"arrays": to_record(weights), "metrics": metrics})
        return Message(content, reply_to=msg)

    second = {name: value + 1 for name, value in start.items()}
    replies = {}
    for server_round, weights in ((1, start), (2, second)):
        message = _train_message(weights, server_round, text)
        replies[server_round] = codec_mod(message, context, train)
        for name, value in weights.items():  # training saw the broadcast model itself
            assert torch.equal(received[server_round][name], value), name
    assert all(r.content["metrics"][UPLINK_BITS] == 2 for r in replies.values())

    deltas = {r: subtract(trained[r], received[r]) for r in (1, 2)}
    _, decoded_first = encode_and_reconstruct(deltas[1], codec)
    residual_first = {
        name: deltas[1][name] - decoded_first[name]
        for name in start
        if start[name].is_floating_point()
    }
    assert all(v.abs().max() > 0 for v in residual_first.values())
    corrected = {name: deltas[2][name] + residual_first.get(name, 0) for name in start}
    with_feedback = encode_update(corrected, codec)
    without_feedback = encode_update(deltas[2], codec)
    uplink = replies[2].content["arrays"]
    assert uplink.keys() == with_feedback.keys()
    for name, array in uplink.items():
        assert array.stype == with_feedback[name].stype, name
        assert array.data == with_feedback[name].data, name
    for name in residual_first:  # without the residual the float tensors would differ
        assert uplink[name].data != without_feedback[name].data, name

    # The node keeps what round 2 left out; what the server decodes from both rounds sums to
    # the true deltas less that one residual.
    _, decoded_second = encode_and_reconstruct(corrected, codec)
    residual = from_record(context.state[RESIDUAL])
    assert residual.keys() == residual_first.keys()
    spec = shapes(start)
    sent = [decode_update(replies[r].content["arrays"], spec, config=codec) for r in (1, 2)]
    for name in start:
        true_sum = deltas[1][name] + deltas[2][name]
        sent_sum = sent[0][name] + sent[1][name]
        if name in residual:
            assert torch.equal(residual[name], corrected[name] - decoded_second[name]), name
            torch.testing.assert_close(true_sum - sent_sum, residual[name], rtol=0, atol=1e-6)
        else:
            assert torch.equal(sent_sum, true_sum), name


def _corrupt(kind):
    """A function that damages one reply's update the way a broken or hostile client would."""

    def damage(reply: Message) -> None:
        arrays = reply.content["arrays"]
        name = next(k for k, a in arrays.items() if len(a.shape) == 4)
        array = arrays[name]
        data = array.data
        if kind == "truncated":
            data = data[: len(data) // 2]
        elif kind == "nan":  # a well-formed float32 payload full of NaN
            values = np.full(tuple(array.shape), np.nan, dtype=np.float32).tobytes()
            arrays[name] = Array("float32", array.shape, f"{STYPE_PREFIX};bits=32", values)
            return
        elif kind == "wrong-bits":
            stype = array.stype.replace(";bits=4;", ";bits=8;")
            arrays[name] = Array(array.dtype, array.shape, stype, data)
            return
        elif kind == "stype":
            arrays[name] = Array(array.dtype, array.shape, "someone.else/9", data)
            return
        elif kind == "shape":
            wider = (*array.shape[:-1], array.shape[-1] + 1)
            arrays[name] = Array(array.dtype, wider, array.stype, data)
            return
        elif kind == "claims-8-bits":
            reply.content["metrics"][UPLINK_BITS] = 8
            return
        elif kind == "no-examples":
            del reply.content["metrics"]["num-examples"]
            return
        arrays[name] = Array(array.dtype, array.shape, array.stype, data)

    return damage


HOSTILE = ["truncated", "nan", "wrong-bits", "stype", "shape", "claims-8-bits", "no-examples"]


def test_hostile_updates_are_rejected_and_leave_the_model_alone(tmp_path, caplog):
    nodes = len(HOSTILE) + 1
    extra = [f"partition.num_partitions={nodes}", "federation.rounds=1", "codec.uplink_bits=4"]
    extra += ["codec.stochastic=false"]

    def hostile(node, reply):
        if node > 1 and not reply.has_error():
            _corrupt(HOSTILE[node - 2])(reply)
        return reply

    run_federation(LoopbackGrid(nodes, hostile), _config(tmp_path / "a", *extra))
    row = _rows(tmp_path / "a")[1]
    assert row["accepted"] == 1 and row["rejected"] == len(HOSTILE)
    for node, kind in enumerate(HOSTILE, start=2):
        assert any(f"from node {node}:" in r.getMessage() for r in caplog.records), kind
        assert any(reason.startswith(f"node {node}:") for reason in row["rejections"]), kind

    honest, _ = load_checkpoint(tmp_path / "a" / "run" / "final.pt")
    grid = LoopbackGrid(nodes)
    original = grid.send_and_receive

    def only_node_one(messages, *, timeout=None):
        replies = original(messages, timeout=timeout)
        return [r for r in replies if r.metadata.src_node_id == 1]

    grid.send_and_receive = only_node_one
    run_federation(grid, _config(tmp_path / "b", *extra))
    alone, _ = load_checkpoint(tmp_path / "b" / "run" / "final.pt")
    for name, value in honest.state_dict().items():
        assert torch.equal(value, alone.state_dict()[name]), name
    row = _rows(tmp_path / "b")[1]
    assert row["accepted"] == 1 and row["failed"] == nodes - 1


def test_a_client_that_raises_does_not_stop_the_run(tmp_path, caplog):
    config = _config(tmp_path, "partition.num_partitions=3", "federation.rounds=2")
    grid = LoopbackGrid(3)
    grid.contexts[2].node_config = {"partition-id": 1}  # broken node config: it raises
    run_federation(grid, config)
    rows = _rows(tmp_path)
    assert [(r["accepted"], r["failed"]) for r in rows[1:]] == [(2, 1), (2, 1)]
    assert math.isfinite(rows[-1]["nme"]) and rows[-1]["nme"] != rows[0]["nme"]
    failures = [r.getMessage() for r in caplog.records if "failed in round" in r.getMessage()]
    assert [m.split(":")[0] for m in failures] == [
        "node 2 failed in round 1",
        "node 2 failed in round 2",
    ]
    assert all("lacks 'num-partitions'" in m for m in failures)


def test_a_node_that_lost_its_state_recovers_with_a_full_download(tmp_path):
    config = _config(
        tmp_path,
        "partition.num_partitions=2",
        "federation.rounds=3",
        "codec.downlink_bits=8",
    )
    grid = LoopbackGrid(2)
    restarted = {"done": False}

    def restart(node, reply):  # node 2 restarts after round 1: its state is gone
        if node == 2 and not restarted["done"]:
            restarted["done"] = True
            grid.contexts[2].state = RecordDict()
        return reply

    grid.tamper = restart
    run_federation(grid, config)
    rows = _rows(tmp_path)
    assert [r["failed"] for r in rows[1:]] == [0, 1, 0]
    assert [r["full_downloads"] for r in rows[1:]] == [2, 0, 1]


def test_the_experiment_travels_with_full_models_only_and_without_server_only_keys(tmp_path):
    config = _config(
        tmp_path, "partition.num_partitions=2", "federation.rounds=3", "codec.downlink_bits=8"
    )
    grid = LoopbackGrid(2)
    run_federation(grid, config)
    assert all(row["accepted"] == 2 for row in _rows(tmp_path)[1:])
    sent = [(int(c[SERVER_ROUND]), c[KIND], EXPERIMENT in c) for c in grid.sent_config]
    assert sent == [(1, FULL, True)] * 2 + [(2, DELTA, False)] * 2 + [(3, DELTA, False)] * 2
    view = yaml.safe_load(grid.sent_config[0][EXPERIMENT])
    full = config.to_dict()
    for section, values in full.items():
        kept = {k: v for k, v in values.items() if k not in SERVER_ONLY.get(section, ())}
        assert view[section] == kept, section


def test_a_node_without_the_experiment_refuses_to_train():
    context = Context(1, 1, {"partition-id": 0, "num-partitions": 1}, RecordDict(), {})
    message = _train_message({"w": torch.zeros(4)}, 2, "")
    del message.content["config"][EXPERIMENT]
    with pytest.raises(BroadcastError, match="holds no experiment"):
        codec_mod(message, context, lambda msg, ctx: pytest.fail("trained anyway"))


def test_aggregate_at_32_bits_equals_plain_fedavg():
    identify_as_server()
    torch.manual_seed(0)
    start = {"w": torch.randn(8, 4, 3, 3), "b": torch.randn(8)}
    broadcaster = Broadcaster(start, CodecConfig(bits=32))
    config = load_config(None, ["codec.uplink_bits=32"])
    strategy = QuantizedFedAvg(broadcaster, config, largest_partition=30)  # claims are honest
    broadcaster.advance(1)
    strategy.ledger.sent = 3
    trained = [{k: v + torch.randn_like(v) * 0.1 for k, v in start.items()} for _ in range(3)]
    examples = [10, 30, 5]
    replies = [
        _float_reply({k: weights[k] - start[k] for k in start}, count, node)
        for node, (weights, count) in enumerate(zip(trained, examples, strict=True), start=1)
    ]
    arrays, _ = strategy.aggregate_train(1, replies)
    plain = aggregate_arrayrecords(
        [
            RecordDict({"arrays": to_record(w), "metrics": MetricRecord({"num-examples": n})})
            for w, n in zip(trained, examples, strict=True)
        ],
        "num-examples",
    )
    for name in start:
        ours = torch.from_numpy(arrays[name].numpy())
        reference = torch.from_numpy(plain[name].numpy())
        torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)
    assert all(
        array.stype.startswith(STYPE_PREFIX)
        for array in encode_update(start, CodecConfig(32)).values()
    )


def _float_reply(delta: dict, count: int, node: int, partition: int | None = None) -> Message:
    """A node's float32 reply to a train instruction."""
    instruction = Message(
        RecordDict({"config": ConfigRecord({})}), dst_node_id=node,
        message_type=MessageType.TRAIN,
    )  # fmt: skip
    metrics = MetricRecord(
        {"num-examples": count, "loss": 0.0, "seconds": 0.0, "peak-memory-mb": 0.0,
         UPLINK_BITS: 32}
    )  # fmt: skip
    if partition is not None:
        metrics[PARTITION_ID] = partition
    content = RecordDict({"arrays": encode_update(delta, CodecConfig(32)), "metrics": metrics})
    return Message(content, reply_to=instruction)


def test_the_global_model_does_not_depend_on_the_order_replies_arrive_in():
    identify_as_server()
    torch.manual_seed(0)
    start = {"w": torch.randn(64, 16, 3, 3)}
    deltas = [{"w": torch.randn(64, 16, 3, 3) * 10.0**-k} for k in range(6)]
    results = []
    for order in (range(6), reversed(range(6)), (3, 0, 5, 1, 4, 2)):
        broadcaster = Broadcaster(start, CodecConfig(bits=32))
        config = load_config(None, ["codec.uplink_bits=32", "partition.num_partitions=6"])
        strategy = QuantizedFedAvg(broadcaster, config, largest_partition=40)
        broadcaster.advance(1)
        strategy.ledger.sent = 6
        # node ids differ between runs of a simulation; partitions do not
        replies = [_float_reply(deltas[i], 7 + i, 1000 - 7 * i, partition=i) for i in order]
        arrays, _ = strategy.aggregate_train(1, replies)
        results.append(torch.from_numpy(arrays["w"].numpy()))
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])


def test_a_delta_for_a_model_the_node_does_not_hold_is_refused():
    weights = {"w": torch.ones(4, 4)}
    record = encode_update(weights, CodecConfig(32))
    with pytest.raises(ValueError, match="holds no model"):
        rebuild(record, "delta", 3, None, None)
    with pytest.raises(ValueError, match="holds round 2"):
        rebuild(record, "delta", 3, weights, 2)


def test_poses_with_natural_partitions_report_pckh(tmp_path):
    config = _config(
        tmp_path,
        "data.dataset=mpii",
        "partition.scheme=natural",
        "partition.attribute=site",
        "partition.num_partitions=4",
        "federation.rounds=1",
    )
    run_federation(LoopbackGrid(4), config)
    stats = json.loads((tmp_path / "run" / "partitions.json").read_text())
    sites = [[v for v, n in p["counts"].items() if n] for p in stats["partitions"]]
    assert sorted(len(s) for s in sites) == [1, 1, 1, 1]  # one site per partition
    assert sorted(s[0] for s in sites) == sorted(stats["values"]) and len(stats["values"]) == 4
    row = _rows(tmp_path)[-1]
    assert row["accepted"] == 4
    # The reported PCKh is that of the final model on the held-out split.
    model, _ = load_checkpoint(tmp_path / "run" / "final.pt")
    data = build_data(config)
    flip = flip_test_enabled(config, data.meta)
    again = evaluate_model(model, data.evaluation, data.codec, torch.device("cpu"), 4, 0, flip)
    assert row["pckh"] == pytest.approx(again["pckh"], abs=1e-9)


def test_nodes_may_choose_their_own_uplink_bits(tmp_path):
    config = _config(
        tmp_path,
        "partition.num_partitions=2",
        "federation.rounds=1",
        "codec.uplink_bits=4",
        "codec.node_uplink_bits=true",
    )
    grid = LoopbackGrid(2)
    grid.contexts[1].node_config["uplink-bits"] = 2  # a slow link
    grid.contexts[2].node_config["uplink-bits"] = 8  # a fast one
    sent = {}

    def record(node, reply):
        sent[node] = {array.stype.split(";")[2] for array in reply.content["arrays"].values()}
        return reply

    grid.tamper = record
    run_federation(grid, config)
    assert sent[1] == {"bits=2", "bits=16"} and sent[2] == {"bits=8", "bits=16"}
    model, _ = load_checkpoint(tmp_path / "run" / "final.pt")
    floats = shapes({k: v for k, v in model.state_dict().items() if v.is_floating_point()})
    row = _rows(tmp_path)[1]
    assert row["accepted"] == 2
    assert row["uplink_bytes"] == sum(
        expected_payload_bytes(floats, uplink_codec(config, bits)) for bits in (2, 8)
    )

    config.codec.node_uplink_bits = False
    config.federation.out = str(tmp_path / "fixed" / "run")
    run_federation(LoopbackGrid(2, lambda n, r: r), config)  # fine: both use the run's bits
    grid = LoopbackGrid(2)
    grid.contexts[1].node_config["uplink-bits"] = 2
    config.federation.out = str(tmp_path / "refused" / "run")
    run_federation(grid, config)
    row = _rows(tmp_path / "refused")[1]
    assert row["accepted"] == 1 and row["rejected"] == 1
    assert "this run uses 4 bits" in row["rejections"][0]


def test_a_restarted_server_resumes_without_losing_a_round(tmp_path):
    extra = ["partition.num_partitions=2", "codec.uplink_bits=4", "codec.downlink_bits=8"]
    straight = _config(tmp_path / "straight", *extra, "federation.rounds=3")
    run_federation(LoopbackGrid(2), straight)

    grid = LoopbackGrid(2)  # the SuperNodes live on while the server restarts
    run_federation(grid, _config(tmp_path / "resumed", *extra, "federation.rounds=2"))
    resumed = _config(tmp_path / "resumed", *extra, "federation.rounds=3")
    resumed.federation.resume = True
    run_federation(grid, resumed)

    rows = _rows(tmp_path / "resumed")
    assert [row["round"] for row in rows] == [0, 1, 2, 3]
    assert [r["nme"] for r in rows] == [r["nme"] for r in _rows(tmp_path / "straight")]
    assert rows[3]["full_downloads"] == 0  # the checkpoint says which node holds which B
    one, _ = load_checkpoint(tmp_path / "straight" / "run" / "final.pt")
    two, _ = load_checkpoint(tmp_path / "resumed" / "run" / "final.pt")
    for name, value in one.state_dict().items():
        assert torch.equal(value, two.state_dict()[name]), name


def test_resume_refuses_a_run_with_other_settings(tmp_path):
    settings = ["partition.num_partitions=2", "federation.rounds=1"]
    run_federation(LoopbackGrid(2), _config(tmp_path, *settings))
    other = _config(tmp_path, *settings, "codec.uplink_bits=2")
    other.federation.resume = True
    with pytest.raises(ValueError, match="other settings"):
        run_federation(LoopbackGrid(2), other)


def test_a_node_with_its_own_data_path_trains_on_all_of_it(tmp_path):
    from fedland.data.synth import synthesize_faces

    own = tmp_path / "own-faces"
    synthesize_faces(own, 20, seed=5, image_size=64)
    config = _config(tmp_path, "partition.num_partitions=2", "federation.rounds=1")
    grid = LoopbackGrid(2)
    grid.contexts[2].node_config.update({"data-path": str(own), "dataset": "300w"})
    examples = {}

    def record(node, reply):
        examples[node] = reply.content["metrics"]["num-examples"]
        return reply

    grid.tamper = record
    run_federation(grid, config)
    own_train = sum(1 for _ in own.glob("*/trainset/*.pts")) + sum(1 for _ in own.glob("afw/*.pts"))
    assert examples[2] == own_train  # the whole train split of its own folder
    stats = json.loads((tmp_path / "run" / "partitions.json").read_text())
    assert examples[1] == stats["partitions"][0]["size"]  # its share of the run's data
    assert sum(p["size"] for p in stats["partitions"]) == stats["num_assigned"]
