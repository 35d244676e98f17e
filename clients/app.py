"""The Flower ClientApp: local training of the quantized DU-Net on this node's data."""

from __future__ import annotations

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedland.clients.codec_mod import codec_mod
from fedland.federation.attack import attacks, corrupt
from fedland.federation.client_data import node_experiment
from fedland.federation.local import train_locally
from fedland.federation.settings import (
    EXPERIMENT,
    NUM_PARTITIONS,
    PARTITION_ID,
    SERVER_ROUND,
    NodeSettings,
    experiment_from_text,
)
from fedland.federation.weights import from_record, to_record

app = ClientApp(mods=[codec_mod])


@app.train()
def train(msg: Message, context: Context) -> Message:
    config = msg.content["config"]
    node = NodeSettings.from_node_config(dict(context.node_config))
    experiment = node_experiment(experiment_from_text(str(config[EXPERIMENT])), node)
    weights = from_record(msg.content["arrays"])
    server_round = int(config[SERVER_ROUND])
    result = train_locally(experiment, node, weights, server_round)
    if attacks(experiment, node.partition_id):  # a simulated hostile node (attack.*)
        result = corrupt(experiment, weights, result, server_round, node.partition_id)
    metrics = MetricRecord(
        {
            "num-examples": result.num_examples,
            "images": result.images,
            "loss": result.loss,
            "seconds": result.seconds,
            "peak-memory-mb": result.peak_memory_mb,
            PARTITION_ID: node.partition_id,
            NUM_PARTITIONS: 0 if node.data_path is not None else node.num_partitions,
        }
    )
    content = RecordDict({"arrays": to_record(result.weights), "metrics": metrics})
    return Message(content=content, reply_to=msg)
