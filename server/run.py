"""One federated run on the server: data, initial model, strategy, evaluation, result files.

Evaluation happens here, on the server's held-out split, every round (no evaluate broadcast:
that would cost a second download per round). The global model is checkpointed every round.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from flwr.app import ArrayRecord, MetricRecord
from flwr.serverapp import Grid

from fedland.config import (
    ConfigError,
    ExperimentConfig,
    dump_config,
    load_config_dict,
    validate,
)
from fedland.data.dataset import LandmarkDataset
from fedland.data.meta import DatasetMeta
from fedland.data.sources import load_split
from fedland.evaluation import primary_metric
from fedland.federation.attack import attack_summary
from fedland.federation.client_data import partitions
from fedland.federation.downlink import Broadcaster
from fedland.federation.ledger import RoundLedger, RunWriter, read_rows
from fedland.federation.partition import format_partition_table, partition_statistics
from fedland.federation.run_folder import folder_lock, refuse_another_run, write_atomically
from fedland.federation.settings import downlink_codec, resync_codec
from fedland.federation.weights import float_state, from_record, load_float_state, to_record
from fedland.model import DUNet
from fedland.model.checkpoint import load_checkpoint, save_checkpoint
from fedland.server.strategy import FederationStalled, QuantizedFedAvg
from fedland.task import evaluate_model, evaluation_dataset, flip_test_enabled, task_model
from fedland.train import resolve_device


def run_federation(grid: Grid, config: ExperimentConfig, run_id: int | None = None) -> dict:
    """Run `federation.rounds` rounds; returns the summary written to `summary.json`
    (`run_id`, Flower's id of the run, lets `fedland deploy traffic` find its traffic).
    The folder is refused, and left as it was, when another run holds it or writes to it."""
    out = Path(config.federation.out)
    validate(config)  # configuration errors surface before any node is contacted
    with folder_lock(out, "server"):
        refuse_another_run(out, config.federation.resume)
        resumed = _checkpoint_to_resume(out, config)  # refuses before anything is written
        out.mkdir(parents=True, exist_ok=True)
        return _run(grid, config, out, resumed, run_id)


def _run(
    grid: Grid, config: ExperimentConfig, out: Path, resumed: dict | None, run_id: int | None
) -> dict:
    if resumed is None:
        (out / "metrics.jsonl").unlink(missing_ok=True)
    write_atomically(out / "config.yaml", dump_config(config))
    meta, largest_partition = _write_partitions(config, out)

    torch.manual_seed(config.train.seed)
    model = task_model(config, meta)
    broadcaster = Broadcaster(
        float_state(model),
        downlink_codec(config),
        config.train.seed,
        full=resync_codec(config),
        history=config.codec.downlink_history,
    )
    federation = config.federation
    strategy = QuantizedFedAvg(
        broadcaster,
        config,
        largest_partition,
        fraction_train=federation.fraction_train,
        min_train_nodes=federation.min_train_nodes,
        min_available_nodes=federation.min_available_nodes,
    )
    evaluation = evaluation_dataset(config, meta)
    metric, _ = primary_metric(meta, evaluation.records)
    writer = RunWriter(out, metric, config.to_dict(), run_id, attack_summary(config))
    done = 0
    if resumed is not None:
        done = _resume(resumed, broadcaster, model, writer, out)
        strategy.round_offset = done
        _say(f"resuming after round {done} of {federation.rounds} from {out / 'global.pt'}")
    evaluate = RoundEvaluator(config, evaluation, model, strategy, writer, done)

    strategy.start(
        grid=grid,
        initial_arrays=to_record(float_state(model)),
        num_rounds=federation.rounds - done,
        timeout=federation.round_timeout,
        evaluate_fn=evaluate,
    )
    if strategy.trained_rounds == 0:
        raise FederationStalled(
            f"no round accepted an update, so the run trained nothing; see the reasons logged "
            f"for each node (metrics.jsonl: failures, rejections) in {out}"
        )
    save_checkpoint(out / "final.pt", model, round=federation.rounds, config=config.to_dict())
    summary = writer.summary()
    _say(
        f"done: {metric} {summary[metric]:.2f}% after {summary['rounds']} rounds; "
        f"uplink {summary['uplink_bytes']:,} B ({_times(summary['uplink_ratio'])} less than "
        f"float32), downlink {summary['downlink_bytes']:,} B "
        f"({_times(summary['downlink_ratio'])}); results in {out}"
    )
    return summary


def _write_partitions(config: ExperimentConfig, out: Path) -> tuple[DatasetMeta, int]:
    """The partitions every node will compute, saved and shown once; the task's metadata and
    the largest partition's size (the most examples an honest node claims)."""
    train_records, _, meta = load_split(config.data, config.data.train_split)
    parts = partitions(train_records, config, config.partition.num_partitions)
    stats = partition_statistics(train_records, parts, config.partition.attribute)
    write_atomically(out / "partitions.json", json.dumps(stats, indent=2))
    _say(
        f"{len(parts)} partitions of {len(train_records)} training samples "
        f"({config.partition.scheme} by {config.partition.attribute}):"
    )
    _say(format_partition_table(stats))
    if (attack := attack_summary(config)) is not None:
        _say(f"attack: {attack['kind']} x{attack['scale']:g} from partitions "
             f"{attack['partitions']}")  # fmt: skip
    return meta, max(len(part) for part in parts)


class RoundEvaluator:
    """The strategy's `evaluate_fn`: after each round, the global model on the held-out split,
    one row in `metrics.jsonl`, a checkpoint and a progress line."""

    def __init__(
        self,
        config: ExperimentConfig,
        dataset: LandmarkDataset,
        model: DUNet,
        strategy: QuantizedFedAvg,
        writer: RunWriter,
        done: int,
    ) -> None:
        self.dataset = dataset
        self.codec = dataset.codec
        self.flip = flip_test_enabled(config, dataset.meta)
        self.device = resolve_device(config.train.device)
        self.config, self.model, self.strategy, self.writer = config, model, strategy, writer
        self.done = done  # rounds of a resumed run that were recorded before
        self.last = time.perf_counter()

    def __call__(self, server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round == 0 and self.done:
            return None  # the checkpointed round, evaluated and recorded before
        server_round += self.done
        results = self._evaluate(arrays)
        ledger = self.strategy.ledger if server_round > 0 else RoundLedger()
        now = time.perf_counter()
        row = {
            "round": server_round,
            **ledger.row(),
            **{k: v for k, v in results.items() if not isinstance(v, list)},
            "seconds": now - self.last,
        }
        self.last = now
        self.writer.add(row)
        save_checkpoint(
            self.writer.out / "global.pt",
            self.model,
            round=server_round,
            broadcast=self.strategy.broadcaster.model,
            downlink=self.strategy.broadcaster.state(),
            config=self.config.to_dict(),
            elapsed=now - self.writer.started,
        )
        _say(_progress(row, self.writer.metric, self.config.federation.rounds))
        return MetricRecord({self.writer.metric: float(results[self.writer.metric])})

    def _evaluate(self, arrays: ArrayRecord) -> dict:
        load_float_state(self.model, from_record(arrays))
        self.model.to(self.device)
        train, data = self.config.train, self.config.data
        results = evaluate_model(
            self.model, self.dataset, self.codec, self.device, train.batch_size, data.workers,
            self.flip,
        )  # fmt: skip
        self.model.cpu()
        return results


def _checkpoint_to_resume(out: Path, config: ExperimentConfig) -> dict | None:
    """The last checkpoint, when `federation.resume` asks for it and there is one."""
    path = out / "global.pt"
    if not config.federation.resume or not path.is_file():
        return None
    _, payload = load_checkpoint(path)
    if payload["round"] == 0:  # stopped before any round ended: start afresh
        return None
    saved = load_config_dict(payload["config"]).to_dict()  # later settings: their defaults
    planned = config.to_dict()
    for settings in (saved, planned):  # a resumed run may extend the rounds
        settings["federation"] = {**settings["federation"], "rounds": 0, "resume": False}
    if saved != planned:
        raise ConfigError(f"{path}: the run there has other settings; it cannot be resumed")
    if payload["round"] >= config.federation.rounds:
        raise ConfigError(
            f"{path}: already {payload['round']} rounds; set federation.rounds higher to go on"
        )
    return payload


def _resume(
    payload: dict, broadcaster: Broadcaster, model: DUNet, writer: RunWriter, out: Path
) -> int:
    """Restore the global model, the broadcast and the rows up to the checkpointed round."""
    done = int(payload["round"])
    model.load_state_dict(payload["model"])
    broadcaster.restore(float_state(model), payload["broadcast"], done, payload.get("downlink"))
    rows = [row for row in read_rows(out / "metrics.jsonl") if row["round"] <= done]
    write_atomically(out / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    writer.resume(rows, payload.get("elapsed", 0.0))
    return done


def _progress(row: dict, metric: str, rounds: int) -> str:
    text = f"round {row['round']}/{rounds}  {metric} {row[metric]:.2f}%"
    if row["round"] == 0:
        return text + "  (initial model)"
    up, down = row["uplink_bytes"], row["downlink_bytes"]
    up_ratio = row["fp32_uplink_bytes"] / up if up else None
    down_ratio = row["fp32_downlink_bytes"] / down if down else None
    return (
        f"{text}  loss {row['loss']:.5f}  clients {row['accepted']}/{row['sent']}"
        f"  up {up / 1e3:,.1f} kB ({_times(up_ratio)})"
        f"  down {down / 1e3:,.1f} kB ({_times(down_ratio)})  {row['seconds']:.1f} s"
    )


def _times(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.1f}x"


def _say(text: str) -> None:
    """Progress lines on the ServerApp's output (streamed by `flwr run --stream`)."""
    print(text, flush=True)
