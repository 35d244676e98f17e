"""Model file size at each bit-width: packed file against the float32 model.

Writes the packed file of an L-U-Net order-1 DU-Net (default L=8, J=16, C=128) at each
weight bit-width, checks that reading it back reproduces the model's outputs exactly, and
compares its size with the float32 weights (4 bytes a parameter) and with `torch.save` of the
float32 state dict.

    python benchmarks/model_size.py [--unets 8] [--landmarks 16]
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import torch

from fedland.model import build_model
from fedland.model.packed import read_packed, write_packed
from fedland.table import format_table

BITS = ["w32a32g32", "w8a8g8", "w4a8g8", "w2a8g8", "w1a8g8"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unets", type=int, default=8)
    parser.add_argument("--landmarks", type=int, default=16)
    parser.add_argument("--width", type=int, default=128)
    args = parser.parse_args()

    torch.manual_seed(0)
    reference = build_model(
        num_unets=args.unets, order=1, num_landmarks=args.landmarks, width=args.width
    )
    state_dict_file = io.BytesIO()
    torch.save(reference.state_dict(), state_dict_file)
    fp32_weights = 4 * sum(p.numel() for p in reference.parameters())
    probe = torch.rand(1, 3, 256, 256)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for bits in BITS:
            model = build_model(reference.config, bits=bits)
            model.load_state_dict(reference.state_dict(), strict=False)
            model.eval()
            path = Path(folder) / f"dunet-{bits}.fldp"
            size = write_packed(model, path)
            with torch.no_grad():
                exact = torch.equal(read_packed(path)(probe)[-1], model(probe)[-1])
            rows.append(
                [
                    bits,
                    f"{size:,}",
                    f"{fp32_weights / size:.1f}x",
                    f"{state_dict_file.tell() / size:.1f}x",
                    f"{100 * (1 - size / fp32_weights):.1f}%",
                    "yes" if exact else "NO",
                ]
            )
    print(
        f"L{args.unets}-K1-C{args.width}-J{args.landmarks}: "
        f"{fp32_weights // 4:,} parameters, float32 weights {fp32_weights:,} bytes, "
        f"torch.save state dict {state_dict_file.tell():,} bytes"
    )
    header = [
        "bits",
        "packed bytes",
        "vs fp32 weights",
        "vs torch.save",
        "size saved",
        "exact reload",
    ]
    print(format_table(header, rows))


if __name__ == "__main__":
    main()
