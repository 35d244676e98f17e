"""How uplink quantization moves distance-based selection (Krum, Multi-Krum).

The quickstart's 8 nodes each train one real round from the same initial model; 2 of them
then attack (sign_flip x4, gaussian at 3x the update's RMS, scale x30). Every update goes
through the uplink codec at each width (what the server would decode), and the table shows,
per attack and width: whether Krum picks an honest node, how many attackers Multi-Krum leaves
out (of 2), how much the codec's noise stretches the honest nodes' distances to each other,
and the margin (the best attacker's Krum score over the worst honest one: above 1, the rule
can tell them apart).

    python benchmarks/krum_quantization.py [--bits 32,8,4,2,1]
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch
from tqdm import tqdm

from fedland.codec import encode_and_reconstruct
from fedland.config import load_config
from fedland.data.sources import load_split
from fedland.federation.aggregation import combine
from fedland.federation.attack import corrupt
from fedland.federation.local import train_locally
from fedland.federation.settings import NodeSettings, uplink_codec
from fedland.federation.weights import Weights, float_state
from fedland.seeds import derive_seed
from fedland.simulations.configs import QUICKSTART
from fedland.table import format_table
from fedland.task import task_model

NODES, ATTACKERS = 8, (2, 6)
KINDS = ("sign_flip", "gaussian", "scale")


def _flat(delta: Weights) -> torch.Tensor:
    return torch.cat([value.flatten().double() for value in delta.values()])


def _scores(updates: list[Weights], hostile: int) -> np.ndarray:
    """Krum's score of each update: squared distances to its n - f - 2 nearest."""
    flat = torch.stack([_flat(update) for update in updates])
    distances = torch.cdist(flat, flat).square().numpy()
    nearest = len(updates) - hostile - 2
    return np.array([np.sort(row)[1 : nearest + 1].sum() for row in distances])


def _honest_spread(updates: list[Weights]) -> float:
    honest = [_flat(u) for i, u in enumerate(updates) if i not in ATTACKERS]
    pairs = [float((a - b).norm()) for i, a in enumerate(honest) for b in honest[i + 1 :]]
    return float(np.mean(pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", default="32,8,4,2,1")
    args = parser.parse_args()
    widths = [int(bits) for bits in args.bits.split(",")]
    config = load_config(QUICKSTART)
    _, _, meta = load_split(config.data, config.data.train_split)
    torch.manual_seed(config.train.seed)
    start = float_state(task_model(config, meta))
    results = [
        train_locally(config, NodeSettings(node, NODES), start, 1)
        for node in tqdm(range(NODES), desc="local rounds")
    ]
    settings = dataclasses.replace(config.federation, num_malicious=len(ATTACKERS),
                                   max_update_norm="none", weighting="equal")  # fmt: skip
    rows, spread32 = [], None
    for kind in KINDS:
        attack = dataclasses.replace(config.attack, kind=kind, nodes=list(ATTACKERS))
        attacked = dataclasses.replace(config, attack=attack)
        sent = [
            corrupt(attacked, start, result, 1, node) if node in ATTACKERS else result
            for node, result in enumerate(results)
        ]
        exact = [{name: r.weights[name] - start[name] for name in start} for r in sent]
        for bits in widths:
            codec = uplink_codec(config, bits)
            decoded = [
                encode_and_reconstruct(delta, codec, derive_seed(0, "uplink", 1, node))[1]
                for node, delta in enumerate(exact)
            ]
            spread = _honest_spread(decoded)
            if kind == KINDS[0] and bits == widths[0]:
                spread32 = spread
            scores = _scores(decoded, len(ATTACKERS))
            honest = [i for i in range(NODES) if i not in ATTACKERS]
            margin = scores[list(ATTACKERS)].min() / scores[honest].max()
            krum = dataclasses.replace(settings, aggregator="krum")
            multi = dataclasses.replace(settings, aggregator="multi_krum")
            (picked,) = combine(decoded, [1.0] * NODES, krum)[1]
            kept = combine(decoded, [1.0] * NODES, multi)[1]
            left_out = sum(node not in kept for node in ATTACKERS)
            rows.append([kind, bits, "honest" if picked not in ATTACKERS else "attacker",
                         f"{left_out}/2", f"{spread / spread32:.2f}", f"{margin:.2f}"])  # fmt: skip
    print(f"quickstart, round 1, {NODES} nodes, attackers {list(ATTACKERS)}")
    header = ["attack", "bits", "krum picks", "multi_krum leaves out", "honest spread x",
              "margin"]  # fmt: skip
    print(format_table(header, rows))


if __name__ == "__main__":
    main()
