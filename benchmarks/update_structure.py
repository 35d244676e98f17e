"""What the quickstart's client updates leave a quantizer to gain, measured on real updates.

Trains the quickstart federation in this process (8 non-IID nodes, float32 both ways,
FedAvg weighted by examples) for `--rounds` rounds and looks at each node's update (trained
weights minus the broadcast model) over the tensors the codec quantizes at `--bits` (the
others travel at `codec.float_bits`). For each round and node:

- vNMSE |Q(x) - x|^2 / |x|^2 of `lloyd`, `ecsq` and `eden` at `--bits`, and of the same
  codecs on a Gaussian vector of as many coordinates: an update that quantizes like
  Gaussian noise is at the fixed-rate optimum already, and only entropy coding (ecsq) or
  vector quantization can go lower (Shannon's bound is 2^(-2b));
- AM / GM of the blocks' variances (blocks of `codec.block_size`): the most any allocation
  of bits across blocks (reverse water-filling) can divide the error by at high rate;
- cosine of the update with the same node's previous update and with the previous global
  step: a prediction from either (predictive coding, DIANA-style shifts) removes at most
  cos^2 of the energy to be quantized.

    python benchmarks/update_structure.py [--rounds 4] [--bits 2]
"""

from __future__ import annotations

import argparse
import math
import statistics

import torch

from fedland.codec import encode_and_reconstruct
from fedland.config import load_config
from fedland.federation.client_data import node_dataset
from fedland.federation.local import train_locally
from fedland.federation.settings import NodeSettings, uplink_codec
from fedland.federation.weights import Weights, float_state
from fedland.simulations.configs import QUICKSTART
from fedland.table import format_table
from fedland.task import task_model

METHODS = ("lloyd", "ecsq", "eden")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--bits", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_config(QUICKSTART, [f"codec.uplink_bits={args.bits}"])
    nodes = config.partition.num_partitions
    codecs = {m: uplink_codec(load_config(QUICKSTART, _method(m)), args.bits) for m in METHODS}
    torch.manual_seed(config.train.seed)
    weights = float_state(task_model(config, node_dataset(config, NodeSettings(0, nodes)).meta))
    previous: list[Weights] | None = None
    previous_step: Weights | None = None
    rows, gaussian = [], {}
    for server_round in range(1, args.rounds + 1):
        results = [
            train_locally(config, NodeSettings(node, nodes), weights, server_round)
            for node in range(nodes)
        ]
        updates = [{k: r.weights[k] - weights[k] for k in weights} for r in results]
        sizes = [r.num_examples for r in results]
        step = {
            k: sum(n * u[k] for n, u in zip(sizes, updates, strict=True)) / sum(sizes)
            for k in weights
        }
        for node, update in enumerate(updates):
            coded = _coded(update, codecs["lloyd"], args.bits)
            energy = _dot(coded, coded)
            errors = [_vnmse(coded, codecs[m]) for m in METHODS]
            if not gaussian:
                count = sum(v.numel() for v in coded.values())
                generator = torch.Generator().manual_seed(0)
                noise = {"gaussian": torch.randn(count // 256, 256, generator=generator)}
                gaussian.update({m: _vnmse(noise, codecs[m]) for m in METHODS})
            own = _cosine(coded, previous[node]) if previous else math.nan
            mean = _cosine(coded, previous_step) if previous_step else math.nan
            share = energy / _dot(update, update)
            block = codecs["lloyd"].block_size
            rows.append([server_round, node, share, *errors, _dispersion(coded, block), own, mean])
        previous, previous_step = updates, step
        weights = {k: weights[k] + step[k] for k in weights}
        print(f"round {server_round}/{args.rounds}: mean loss "
              f"{statistics.mean(r.loss for r in results):.4f}", flush=True)  # fmt: skip
    header = ["round", "node", "energy share", *(f"vNMSE {m}" for m in METHODS),
              "AM/GM block var", "cos own prev", "cos global prev"]  # fmt: skip
    print(f"\nquickstart updates over the tensors quantized at {args.bits} bits "
          f"(energy share: their part of the update's squared norm)")  # fmt: skip
    print(format_table(header, [_formatted(row) for row in rows]))
    later = [row for row in rows if row[0] > 1]
    medians = [statistics.median(row[i] for row in later) for i in range(2, len(header))]
    summary = ["median, rounds 2+", "", *medians]
    reference = ["gaussian vector", "", math.nan, *(gaussian[m] for m in METHODS),
                 1.0, math.nan, math.nan]  # fmt: skip
    print()
    print(format_table(header, [_formatted(summary), _formatted(reference)], text_columns=2))
    print(f"Shannon's bound at {args.bits} bits: {2 ** (-2 * args.bits):.4f}")


def _method(method: str) -> list[str]:
    """Settings for `method` on both links (the quickstart's 8-bit downlink is not every
    method's width)."""
    return [f"codec.method={method}", "codec.downlink_bits=4"]


def _coded(update: Weights, codec, bits: int) -> Weights:
    """The tensors the codec quantizes at `bits` (not at the float width)."""
    chosen = {}
    for name, value in update.items():
        encoding = codec.encoding(tuple(value.shape), value.dtype)
        if encoding.quantizer is not None and encoding.bits == bits:
            chosen[name] = value
    return chosen


def _vnmse(tensors: Weights, codec) -> float:
    _, decoded = encode_and_reconstruct(tensors, codec, seed=0)
    error = sum(float((decoded[k] - v).square().sum()) for k, v in tensors.items())
    return error / _dot(tensors, tensors)


def _dispersion(tensors: Weights, block: int) -> float:
    """Arithmetic over geometric mean of the blocks' mean squares (all-zero blocks left out)."""
    variances = []
    for value in tensors.values():
        flat = value.reshape(-1)
        rows = torch.cat([flat, flat.new_zeros(-flat.numel() % block)]).view(-1, block)
        variances.append(rows.square().mean(1).double())
    var = torch.cat(variances)
    var = var[var > 0]
    return float(var.mean() / var.log().mean().exp())


def _dot(a: Weights, b: Weights) -> float:
    return sum(float((a[k] * b[k]).sum()) for k in a)


def _cosine(a: Weights, b: Weights) -> float:
    """Over the tensors of `a`."""
    b = {k: b[k] for k in a}
    return _dot(a, b) / math.sqrt(_dot(a, a) * _dot(b, b))


def _formatted(row: list) -> list[str]:
    return [f"{v:.4f}" if isinstance(v, float) and not math.isnan(v) else
            ("-" if isinstance(v, float) else str(v)) for v in row]  # fmt: skip


if __name__ == "__main__":
    main()
