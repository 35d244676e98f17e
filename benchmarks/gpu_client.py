"""One local round of the paper's DU-Net on a GPU: step time, peak memory and images/s.

The three variants of `training_memory.py` (naive float32, memory-efficient float32,
memory-efficient w1a8g8 with low-bit saved activations), L=8 K=1 C=128, 256 px, 16
landmarks, at each batch size: warm-up steps, then timed RMSprop steps through `train_epoch`
(the client's own loop), synchronized after each; the median step and the peak of
`torch.cuda.max_memory_allocated`, reset between variants. Out of memory is an OOM row.
Quick checks follow the table: the peaks fall naive > memory-efficient > low-bit; every
codec method turns the trained update, on the GPU, into bytes that decode to what the sender
reconstructed and equal the CPU encoding; the real ClientApp's reply reports the round's
CUDA peak memory and carries a decodable update. Exit code 1 when a check fails or a variant
errors, 2 when the device is not there.

    python benchmarks/gpu_client.py [--device cuda] [--steps 5] [--batches 8,24] [--json F]
    python benchmarks/gpu_client.py --device cpu --tiny     # a CPU smoke run in seconds
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import resource
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from training_memory import VARIANTS

import fedland
from fedland.codec import CodecConfig, decode_update, encode_and_reconstruct, encode_update
from fedland.codec.methods import METHODS
from fedland.config import dump_config, load_config_dict
from fedland.federation.downlink import FULL, RAW
from fedland.federation.settings import (
    BASE_ROUND,
    DOWNLINK_SEED,
    EXPERIMENT,
    FEDLAND_VERSION,
    KIND,
    SERVER_ROUND,
    UPLINK_BITS,
    UPLINK_SEED,
)
from fedland.federation.weights import Weights, float_state, subtract
from fedland.model import build_model
from fedland.train import make_optimizer, resolve_device, train_epoch

PAPER = {"num_unets": 8, "order": 1, "width": 128, "growth": 32, "neck": 4, "input_size": 256}
TINY = {"num_unets": 2, "order": 1, "width": 16, "growth": 8, "neck": 2, "input_size": 64}
LANDMARKS = 16  # MPII
LR = 2.5e-4
NAIVE, EFFICIENT, LOW_BIT = VARIANTS  # the client check trains LOW_BIT
UPLINK = 4  # bits of the client check's reply
STOCHASTIC_METHODS = ("qsgd",)  # codes depend on the device's random generator
SEED = 7
CLIENT_CHECK = "client reply: peak-memory-mb and update"


@dataclass
class Row:
    variant: str
    batch: int
    status: str  # ok, OOM, error, or skipped (past --time-limit)
    step_ms: float | None = None
    images_per_s: float | None = None
    peak_mib: float | None = None  # CUDA only
    memory_vs_naive: float | None = None
    error: str | None = None


@dataclass
class Check:
    name: str
    status: str  # ok, FAIL, or skip
    detail: str


def model_settings(shape: dict, variant: str) -> dict:
    """DUNetConfig fields of a variant: `store_bits` becomes low-bit saved activations."""
    settings = VARIANTS[variant]
    return {
        **shape,
        "memory_efficient": settings["memory_efficient"],
        "bits": settings["bits"],
        "low_bit_saved_activations": settings["store_bits"] is not None,
    }


def clock(device: torch.device) -> float:
    """Wall time once the device has finished what was queued."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def measure(
    variant: str, batch: int, shape: dict, device: torch.device, steps: int, warmup: int
) -> tuple[Row, Weights | None]:
    """One variant's local round; also its update (on the CPU, so that it does not count in
    the next variant's peak) for the codec check. Out of memory is an OOM row and any other
    failure an error row, so that the other variants still run on a machine lent once."""
    try:
        times, peak, update = train_round(variant, batch, shape, device, steps, warmup)
    except torch.cuda.OutOfMemoryError:
        return Row(variant, batch, "OOM"), None
    except Exception as error:
        traceback.print_exc()
        return Row(variant, batch, "error", error=f"{type(error).__name__}: {error}"), None
    finally:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    median = statistics.median(times)
    return Row(variant, batch, "ok", 1000 * median, batch / median, peak), update


def train_round(
    variant: str, batch: int, shape: dict, device: torch.device, steps: int, warmup: int
) -> tuple[list[float], float | None, Weights]:
    torch.manual_seed(0)
    model = build_model(num_landmarks=LANDMARKS, **model_settings(shape, variant)).to(device)
    start = float_state(model)
    optimizer = make_optimizer(model, LR)
    size = shape["input_size"]
    data = {
        "image": torch.rand(batch, 3, size, size, device=device),
        "target": torch.rand(batch, LANDMARKS, size // 4, size // 4, device=device),
        "target_weight": torch.ones(batch, LANDMARKS, device=device),
    }
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    stamps = [clock(device)]
    train_epoch(
        model,
        [data] * (warmup + steps),
        optimizer,
        device,
        progress=lambda images, loss: stamps.append(clock(device)),
    )
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    times = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    return times[warmup:], peak, subtract(float_state(model), start)


def compare_with_naive(rows: list[Row]) -> None:
    naive = {row.batch: row.peak_mib for row in rows if row.variant == NAIVE}
    for row in rows:
        if row.peak_mib is not None and naive.get(row.batch):
            row.memory_vs_naive = row.peak_mib / naive[row.batch]


def check_memory_order(rows: list[Row]) -> Check:
    """The paper's claim: memory-efficient below naive, low-bit saved below both."""
    name = "peak memory: naive > memory-efficient > low-bit"
    peaks = {(row.variant, row.batch): row.peak_mib for row in rows}
    batches = dict.fromkeys(row.batch for row in rows)
    comparable = [b for b in batches if all(peaks.get((v, b)) is not None for v in VARIANTS)]
    if not comparable:
        return Check(name, "skip", "no batch with all three peaks measured (CUDA only)")
    wrong = [b for b in comparable if not peaks[NAIVE, b] > peaks[EFFICIENT, b] > peaks[LOW_BIT, b]]
    if wrong:
        return Check(name, "FAIL", f"out of order at batch {', '.join(map(str, wrong))}")
    return Check(name, "ok", f"at batch {', '.join(map(str, comparable))}")


def check_codec(update: Weights | None, device: torch.device) -> list[Check]:
    """Every codec method on the trained update placed on `device`: the bytes decode to the
    sender's own reconstruction (error feedback relies on it) and, for deterministic
    methods, equal the CPU encoding of the same update."""
    if update is None:
        return [Check("codec", "FAIL", "no variant trained, so there is no update to encode")]
    on_device = {name: value.to(device) for name, value in update.items()}
    checks = []
    for name, method in METHODS.items():
        bits = 4 if 4 in method.widths else method.widths[0]
        label = f"codec {name} {bits}-bit on {device.type}"
        checks.append(guarded(label, check_method, label, name, bits, update, on_device))
    return checks


def check_method(label: str, name: str, bits: int, update: Weights, on_device: Weights) -> Check:
    config = CodecConfig(bits=bits, method=name)
    sent, reconstructed = encode_and_reconstruct(on_device, config, SEED)
    reference, _ = encode_and_reconstruct(update, config, SEED)
    expected = {key: (tuple(value.shape), value.dtype) for key, value in update.items()}
    decoded = decode_update(sent, expected, bits, config, SEED)
    exact = all(torch.equal(decoded[key], value.cpu()) for key, value in reconstructed.items())
    same = sum(sent[key].data == reference[key].data for key in update)
    stochastic = name in STOCHASTIC_METHODS
    detail = (
        f"decode {'==' if exact else '!='} sender's reconstruction; bytes equal to the "
        f"CPU encoding for {same}/{len(update)} tensors"
        + (" (stochastic rounding: not expected to match)" if stochastic else "")
    )
    ok = exact and (stochastic or same == len(update))
    return Check(label, "ok" if ok else "FAIL", detail)


def check_client_reply(shape: dict, batch: int, device: torch.device, row: Row | None) -> Check:
    """The real ClientApp (codec mod included) on one batch of synthetic MPII data."""
    from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    from fedland.clients.app import app
    from fedland.data.sources import load_split
    from fedland.task import task_model

    with tempfile.TemporaryDirectory() as cache:
        experiment = load_config_dict(
            {
                "model": model_settings(shape, LOW_BIT),
                "data": {
                    "dataset": "mpii",
                    "workers": 0,
                    "synthetic": {"num": 16, "image_size": shape["input_size"], "cache_dir": cache},
                },
                "train": {"batch_size": batch, "device": str(device)},
                "federation": {"local_batches": 1},
            }
        )
        _, _, meta = load_split(experiment.data, experiment.data.train_split)
        torch.manual_seed(0)
        weights = float_state(task_model(experiment, meta))
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 0
        config = ConfigRecord(
            {
                FEDLAND_VERSION: fedland.__version__,
                SERVER_ROUND: 1,
                EXPERIMENT: dump_config(experiment),
                KIND: FULL,
                BASE_ROUND: 0,
                UPLINK_BITS: UPLINK,
                DOWNLINK_SEED: 0,
                UPLINK_SEED: SEED,
            }
        )
        content = RecordDict({"arrays": encode_update(weights, RAW), "config": config})
        message = Message(content, dst_node_id=1, message_type=MessageType.TRAIN)
        node = {"partition-id": 0, "num-partitions": 1, "device": str(device)}
        reply = app(message, Context(1, 1, node, RecordDict(), {}))
    if reply.has_error():
        return Check(CLIENT_CHECK, "FAIL", f"the ClientApp failed: {reply.error.reason}")
    reported = float(reply.content["metrics"]["peak-memory-mb"])
    if device.type == "cuda":
        actual = torch.cuda.max_memory_allocated(device) / 2**20
        memory_ok = reported > 0 and abs(reported - actual) < 1e-6
        relation = "==" if memory_ok else "!="
        what = f"torch.cuda.max_memory_allocated of the round ({actual:.1f} MiB)"
    else:
        actual = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        memory_ok = 0 < reported <= actual
        relation = "<=" if memory_ok else "not <="
        what = f"the process's peak RSS ({actual:.1f} MiB; no CUDA peak on a CPU)"
    expected = {key: (tuple(value.shape), value.dtype) for key, value in weights.items()}
    decoded = decode_update(reply.content["arrays"], expected, UPLINK, seed=SEED)
    benchmark = f", benchmark row {row.peak_mib:.1f} MiB" if row and row.peak_mib else ""
    detail = (
        f"reported {reported:.1f} MiB {relation} {what}{benchmark}; "
        f"{len(decoded)}/{len(expected)} tensors decoded at {UPLINK} bits"
    )
    ok = memory_ok and len(decoded) == len(expected)
    return Check(CLIENT_CHECK, "ok" if ok else "FAIL", detail)


def guarded(name: str, check: Callable[..., Check], *args: object) -> Check:
    """A check that raises is a failed check, so that the others and the JSON still come."""
    try:
        return check(*args)
    except Exception as error:
        traceback.print_exc()
        return Check(name, "FAIL", f"{type(error).__name__}: {error}")


def markdown(rows: list[Row]) -> str:
    header = ["variant", "batch", "step ms", "images/s", "peak MiB", "memory vs naive"]

    def cell(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for row in rows:
        if row.status != "ok":
            cells = [row.variant, str(row.batch), row.status, "-", "-", "-"]
        else:
            cells = [
                row.variant,
                str(row.batch),
                cell(row.step_ms, 1),
                cell(row.images_per_s, 1),
                cell(row.peak_mib, 0),
                cell(row.memory_vs_naive, 3),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def batch_sizes(text: str) -> list[int]:
    sizes = [int(part) for part in text.split(",")]
    if min(sizes) < 1:
        raise ValueError(text)
    return sizes


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before them")
    parser.add_argument(
        "--batches", type=batch_sizes, help="comma-separated (default 8,24; 2 with --tiny)"
    )
    parser.add_argument("--tiny", action="store_true", help="a small model at 64 px")
    parser.add_argument(
        "--time-limit", type=float, default=240, help="seconds after which no variant starts"
    )
    parser.add_argument("--json", type=Path, help="write the rows and checks here")
    args = parser.parse_args()
    try:
        device = resolve_device(args.device)
    except (RuntimeError, ValueError) as error:
        parser.error(f"{error}; for a CPU smoke run use --device cpu --tiny")
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be at least 1 and --warmup at least 0")
    batches = args.batches or ([2] if args.tiny else [8, 24])
    shape = TINY if args.tiny else PAPER
    if args.tiny:
        torch.set_num_threads(1)  # tensors this small gain nothing from more threads

    rows, update = [], None
    for batch in batches:
        for variant in VARIANTS:
            if time.perf_counter() - started > args.time_limit:
                rows.append(Row(variant, batch, "skipped"))
                continue
            row, trained = measure(variant, batch, shape, device, args.steps, args.warmup)
            rows.append(row)
            update = trained or update
            print(f"  {variant} batch {batch}: {row.status}", file=sys.stderr, flush=True)
    compare_with_naive(rows)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    model = "L{num_unets}-K{order}-C{width}, {input_size}x{input_size}".format(**shape)
    result = {
        "device": name,
        "model": model,
        "landmarks": LANDMARKS,
        "steps": args.steps,
        "warmup": args.warmup,
        "torch": torch.__version__,
        "rows": [asdict(row) for row in rows],
        "checks": [],
    }
    print(
        f"{name}, {model}, {LANDMARKS} landmarks, median of {args.steps} steps after "
        f"{args.warmup} warm-up, torch {torch.__version__}"
    )
    print(markdown(rows), flush=True)
    # Written before the checks too, so that a run stopped during them keeps the table.
    write_json(args.json, result, started)

    lowbit = next((r for r in rows if r.variant == LOW_BIT and r.batch == batches[0]), None)
    checks = [
        *(Check(f"{r.variant} batch {r.batch}", "FAIL", r.error) for r in rows if r.error),
        check_memory_order(rows),
        *check_codec(update, device),
        guarded(CLIENT_CHECK, check_client_reply, shape, batches[0], device, lowbit),
    ]
    print("\nquick checks")
    for check in checks:
        print(f"- [{check.status}] {check.name}: {check.detail}")
    result["checks"] = [asdict(check) for check in checks]
    write_json(args.json, result, started)
    print(f"\nelapsed {time.perf_counter() - started:.1f} s")
    sys.exit(1 if any(check.status == "FAIL" for check in checks) else 0)


def write_json(path: Path | None, result: dict, started: float) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        result = {**result, "seconds": time.perf_counter() - started}
        path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
