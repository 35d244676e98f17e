"""Update codec: bits per coordinate, error and single-core speed of every method and width.

Three vectors. A real DU-Net update: the default `DUNetConfig()` (L=4, K=1, C=128, J=16,
about 4.0M float coordinates with the BatchNorm statistics) at 128 px input, trained 30
RMSprop steps (lr 2.5e-4, batch 4) on synthetic poses; the update is every float tensor of
the state dict after training minus before (what a node sends). It is cached in `--update`
(with a `.json` beside it saying how it was made), so reruns skip the training (about a
minute on one core). Then a Gaussian and a Student-t(3) vector of as many coordinates
(rounded down to a multiple of 256), one tensor shaped (N / 256, 256).

For every method of `fedland.codec.methods` at each of its widths among 1, 2, 3, 4 and 8
bits, and each variant where the method has one, plus float16 and float32: bits per float
coordinate (8 x payload / coordinates), the vNMSE |Q(x) - x|^2 / |x|^2 on each vector (the
receiver's decoded values, seed 0), and encode and decode MB/s of float32 input of the update
on one thread (median of `--runs`). On the update both figures come twice: over every float
tensor, and over the quantized tensors alone (`q`). The other tensors (BatchNorm weights,
biases and running statistics, 2.5% of the coordinates) travel at float16: they add about
0.4 bits per coordinate, and the running statistics' change in training holds nearly all of
the update's squared norm, so the whole-update vNMSE says little about the quantizer.
A second table holds ours (lloyd, the default; ecsq; eden) against the goals on the update, both
ways: vNMSE <= 0.31 / 0.12 / 0.035 / 0.010 at 1 / 2 / 3 / 4 bits at no more than b + 0.1
bits per coordinate.

    python benchmarks/codec.py [--update benchmarks/.cache/dunet_update.pt] [--runs 3]
                               [--json rows.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fedland.codec import (
    CodecConfig,
    decode_update,
    encode_update,
    expected_payload_bytes,
    fp32_bytes,
    payload_bytes,
)
from fedland.codec.methods import METHODS
from fedland.model import DUNetConfig, build_model
from fedland.table import format_table

HERE = Path(__file__).resolve().parent
DEFAULT_UPDATE = HERE / ".cache" / "dunet_update.pt"
STEPS, LR, BATCH, INPUT_SIZE = 30, 2.5e-4, 4, 128
SYNTHETIC_IMAGES = 160  # 136 in the train split: 30 batches of 4 without repeating an image
WIDTHS = (1, 2, 3, 4, 8)
GOALS = {1: 0.31, 2: 0.12, 3: 0.035, 4: 0.010}  # vNMSE on the update at b bits
GOAL_BITS_SLACK = 0.1  # at <= b + 0.1 bits per coordinate
ERROR_COLUMNS = ("vnmse_update", "vnmse_update_q", "vnmse_gaussian", "vnmse_student-t3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", type=Path, default=DEFAULT_UPDATE, help="cached update")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per setting (median)")
    parser.add_argument("--json", type=Path, help="write every row here")
    args = parser.parse_args()

    started = time.perf_counter()
    torch.set_num_threads(1)
    update, provenance = load_or_make_update(args.update)
    count = sum(value.numel() for value in update.values() if value.is_floating_point())
    size = count // 256 * 256
    vectors = {
        "update": update,
        "gaussian": {
            "x": torch.randn(size // 256, 256, generator=torch.Generator().manual_seed(1))
        },
        "student-t3": {
            "x": torch.from_numpy(
                np.random.default_rng(2).standard_t(3, size).astype(np.float32)
            ).view(size // 256, 256)
        },
    }
    megabytes = fp32_bytes(update) / 1e6
    print(
        f"update: {len(update)} tensors, {count:,} float coordinates, {megabytes:.1f} MB as "
        f"float32 ({provenance})"
    )
    print(f"gaussian, student-t3: {size:,} coordinates, one ({size // 256}, 256) tensor each")
    names = quantized(update)
    part = sum(update[name].numel() for name in names)
    energy = sum(float(value.double().square().sum()) for value in update.values())
    share = sum(float(update[name].double().square().sum()) for name in names) / energy
    print(
        f"q: the update's {len(names)} tensors quantized below 16 bits ({part:,} coordinates, "
        f"{100 * part / count:.1f}%, {100 * share:.2f}% of the squared norm); the other "
        f"{len(update) - len(names)} (BatchNorm weights, biases, running statistics) travel "
        "at float16"
    )

    rows = []
    for method, bits, variant in settings():
        codec = CodecConfig(bits=bits, method=method, stochastic=variant)
        row = {"method": method if bits <= 8 else f"float{bits}", "bits": bits}
        row["variant"] = variant_name(method, variant) if bits <= 8 else "-"
        for name, tensors in vectors.items():
            timed = args.runs if name == "update" else 1
            result = measure(tensors, codec, timed)
            if name == "update":
                row["bits_per_coordinate"] = result["bits_per_coordinate"]
                row["bits_per_coordinate_q"] = result["bits_per_coordinate_q"]
                row["vnmse_update_q"] = result["vnmse_q"]
                row["payload_bytes"] = result["payload_bytes"]
                row["encode_mb_s"] = megabytes / result["encode_s"]
                row["decode_mb_s"] = megabytes / result["decode_s"]
                row["codec_mb_s"] = megabytes / (result["encode_s"] + result["decode_s"])
            else:
                row[f"bits_per_coordinate_{name}"] = result["bits_per_coordinate"]
            row[f"vnmse_{name}"] = result["vnmse"]
        rows.append(row)
        print(f"  measured {row['method']} {row['variant']} {bits} bits", file=sys.stderr)
    rows.sort(key=lambda r: (r["method"], r["bits"], r["variant"]))

    print()
    print(
        f"1 thread, MB/s of float32 input of the update, median of {args.runs} runs; "
        "bits/coord and vNMSE on the whole update, and on its quantized tensors (q)"
    )
    header = [
        "method",
        "variant",
        "bits",
        "bits/coord",
        "bits/coord q",
        "vNMSE update",
        "vNMSE update q",
        "vNMSE gauss",
        "vNMSE t3",
        "enc MB/s",
        "dec MB/s",
        "enc+dec MB/s",
    ]
    table = [
        [
            r["method"],
            r["variant"],
            r["bits"],
            f"{r['bits_per_coordinate']:.3f}",
            f"{r['bits_per_coordinate_q']:.3f}",
            *(f"{r[key]:.3e}" for key in ERROR_COLUMNS),
            f"{r['encode_mb_s']:.0f}",
            f"{r['decode_mb_s']:.0f}",
            f"{r['codec_mb_s']:.0f}",
        ]
        for r in rows
    ]
    print(format_table(header, table, text_columns=2))

    print()
    print(
        "goals on the DU-Net update: vNMSE <= 0.31 / 0.12 / 0.035 / 0.010 at 1 / 2 / 3 / 4 "
        f"bits, at <= b + {GOAL_BITS_SLACK} bits per coordinate; on the whole update and on "
        "its quantized tensors (q)"
    )
    goal_rows = []
    for r in rows:
        if r["method"] not in ("lloyd", "ecsq", "eden") or r["bits"] not in GOALS:
            continue
        bits_goal = r["bits"] + GOAL_BITS_SLACK
        error_goal = GOALS[r["bits"]]
        passed = r["vnmse_update"] <= error_goal and r["bits_per_coordinate"] <= bits_goal
        passed_q = r["vnmse_update_q"] <= error_goal and r["bits_per_coordinate_q"] <= bits_goal
        r["goal"] = {
            "vnmse": error_goal,
            "bits_per_coordinate": bits_goal,
            "pass": passed,
            "pass_q": passed_q,
        }
        goal_rows.append(
            [
                r["method"],
                r["variant"],
                r["bits"],
                f"{bits_goal:.1f}",
                f"{error_goal:.3f}",
                f"{r['bits_per_coordinate']:.3f}",
                f"{r['vnmse_update']:.3e}",
                "pass" if passed else "FAIL",
                f"{r['bits_per_coordinate_q']:.3f}",
                f"{r['vnmse_update_q']:.4f}",
                "pass" if passed_q else "FAIL",
            ]
        )
    header = [
        "method",
        "variant",
        "bits",
        "goal bits",
        "goal vNMSE",
        "bits/coord",
        "vNMSE",
        "update",
        "bits/coord q",
        "vNMSE q",
        "update q",
    ]
    print(format_table(header, goal_rows, text_columns=2))
    seconds = time.perf_counter() - started
    print(f"\n{seconds:.0f} s in all")

    if args.json:
        report = {
            "update": provenance,
            "coordinates": {"update": count, "gaussian": size, "student-t3": size},
            "runs": args.runs,
            "seconds": seconds,
            "rows": rows,
        }
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.json}")


def settings() -> list[tuple[str, int, bool]]:
    """(method, bits, variant on) of every row: float32 and float16, then each method at
    each of its widths among `WIDTHS`, each variant where it has one."""
    rows = [("lloyd", 32, False), ("lloyd", 16, False)]  # the method is not used above 8 bits
    for name, method in METHODS.items():
        for bits in method.widths:
            if bits in WIDTHS:
                variants = (False, True) if method.variant is not None else (False,)
                rows += [(name, bits, variant) for variant in variants]
    return rows


def variant_name(method: str, on: bool) -> str:
    variant = METHODS[method].variant
    if variant is None:
        return "-"
    key, off, value = variant
    return f"{key}={value if on else off}"


def measure(tensors: dict[str, torch.Tensor], codec: CodecConfig, runs: int) -> dict:
    """Encode as a node does and decode as the server does (every field checked), `runs`
    times: bits per coordinate and vNMSE of the first decode over all float tensors and over
    the quantized ones (`_q`), the median seconds."""
    expected = {name: (tuple(value.shape), value.dtype) for name, value in tensors.items()}
    encode_times, decode_times = [], []
    decoded = None
    for _ in range(runs):
        start = time.perf_counter()
        record = encode_update(tensors, codec, seed=0)
        encode_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = decode_update(record, expected, codec.bits, codec, seed=0)
        decode_times.append(time.perf_counter() - start)
        if decoded is None:
            decoded = result
    size = payload_bytes(record)
    bound = expected_payload_bytes(expected, codec)  # exact, or the bound of ecsq's frames
    assert size == bound if METHODS[codec.method].exact_size else size <= bound, (codec, size)
    figures = {
        "payload_bytes": size,
        "encode_s": statistics.median(encode_times),
        "decode_s": statistics.median(decode_times),
    }
    floats = [name for name, value in tensors.items() if value.is_floating_point()]
    for suffix, names in (("", floats), ("_q", quantized(tensors))):
        coordinates = sum(tensors[name].numel() for name in names)
        error = sum(
            float((decoded[n].double() - tensors[n].double()).square().sum()) for n in names
        )
        norm = sum(float(tensors[n].double().square().sum()) for n in names)
        part = sum(len(record[name].data) for name in names)
        figures[f"bits_per_coordinate{suffix}"] = 8 * part / coordinates
        figures[f"vnmse{suffix}"] = error / norm
    return figures


def quantized(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The float tensors quantized below 16 bits (the others travel at float_bits)."""
    codec = CodecConfig(bits=8)
    return [
        name
        for name, value in tensors.items()
        if codec.encoding(tuple(value.shape), value.dtype).quantizer is not None
    ]


def load_or_make_update(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The cached update and how it was made, or a new one trained and cached."""
    sidecar = path.with_suffix(".json")
    if path.is_file():
        update = torch.load(path, map_location="cpu", weights_only=True)
        made = json.loads(sidecar.read_text())["made"] if sidecar.is_file() else "origin unknown"
        return update, f"cached {path}: {made}"
    print(f"training a DU-Net update for {path} ...", file=sys.stderr)
    update, made = make_update(path.parent / "synthetic")
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_atomically(path, lambda file: torch.save(update, file))
    _save_atomically(sidecar, lambda file: file.write(json.dumps({"made": made}).encode()))
    return update, f"new, saved to {path}: {made}"


def make_update(data_cache: Path) -> tuple[dict[str, torch.Tensor], str]:
    """30 RMSprop steps of the default DU-Net on synthetic poses: float state after - before."""
    from fedland.config import load_config_dict
    from fedland.data.dataset import make_loader
    from fedland.data.sources import load_split
    from fedland.task import training_dataset
    from fedland.train import make_optimizer, train_epoch

    experiment = load_config_dict(
        {},
        [
            "data.dataset=mpii",
            f"data.synthetic.num={SYNTHETIC_IMAGES}",
            f"data.synthetic.image_size={INPUT_SIZE}",
            f"data.synthetic.cache_dir={data_cache}",
            f"model.input_size={INPUT_SIZE}",
        ],
    )
    records, _, meta = load_split(experiment.data, experiment.data.train_split)
    dataset = training_dataset(experiment, records, meta, seed=0)
    loader = make_loader(dataset, BATCH, training=True, workers=0, seed=0)
    if len(loader) < STEPS:
        raise SystemExit(f"{len(records)} training images give fewer than {STEPS} batches")
    torch.manual_seed(0)
    config = DUNetConfig(input_size=INPUT_SIZE, num_landmarks=meta.num_landmarks)
    model = build_model(config)
    before = _float_state(model)
    losses = []
    start = time.perf_counter()
    train_epoch(
        model,
        loader,
        make_optimizer(model, LR),
        torch.device("cpu"),
        progress=lambda _, loss: losses.append(loss),
        max_batches=STEPS,
    )
    seconds = time.perf_counter() - start
    after = _float_state(model)
    update = {name: after[name] - before[name] for name in before}
    made = (
        f"L{config.num_unets}-K{config.order}-C{config.width}-J{config.num_landmarks} DU-Net, "
        f"{len(losses)} RMSprop steps lr {LR:g} batch {BATCH} at {INPUT_SIZE} px on synthetic "
        f"poses, loss {losses[0]:.3g} -> {losses[-1]:.3g}, {seconds:.0f} s on 1 thread"
    )
    return update, made


def _float_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """float32 copies of the state dict's float tensors (what a node's update holds)."""
    return {
        name: value.detach().to(torch.float32, copy=True)
        for name, value in model.state_dict().items()
        if value.is_floating_point()
    }


def _save_atomically(path: Path, write: Callable[[object], object]) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


if __name__ == "__main__":
    main()
