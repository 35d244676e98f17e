"""Error feedback: what compression drops from this round's update joins the next one.

With EF the running sum of the updates the server receives stays within one residual of the
running sum of the true updates, so even 1-bit updates do not drift. The residual lives on
the client between rounds (the codec mod keeps it in `context.state` with
`fedland.federation.weights.to_record`).

The residual stays bounded only if compression error is smaller than what is compressed.
Stochastic 1-bit rounding on the uniform grid sends ±max|x| per block, an error several
times the update itself, and the residual grows without bound, so it is refused; the
deterministic codecs (sign times mean magnitude at 1 bit) are the ones to pair with error
feedback.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from flwr.app import ArrayRecord

from fedland.codec.format import CodecConfig
from fedland.codec.update import encode_and_reconstruct


def encode_with_feedback(
    delta: Mapping[str, torch.Tensor],
    residual: Mapping[str, torch.Tensor] | None,
    config: CodecConfig,
    seed: int = 0,
) -> tuple[ArrayRecord, dict[str, torch.Tensor]]:
    """Encode delta + residual; the new residual is what the receiver will not see of it.

    `residual` (None at the first round: zeros) holds one float32 tensor per float tensor of
    `delta`; integer tensors travel as they are and have no residual.
    """
    if config.bits == 1 and config.stochastic and config.method == "uniform":
        raise ValueError(
            "error feedback diverges with stochastic 1-bit rounding; use stochastic=False"
        )
    floats = [name for name, value in delta.items() if value.is_floating_point()]
    if residual is not None and set(residual) != set(floats):
        unknown = sorted(set(residual).symmetric_difference(floats))
        raise ValueError(f"residual and float tensors of the update differ in {unknown}")
    corrected = dict(delta)
    for name in floats:
        value = delta[name].detach().to(torch.float32)
        if residual is not None:
            if residual[name].shape != value.shape:
                raise ValueError(
                    f"{name!r}: residual shape {tuple(residual[name].shape)} "
                    f"differs from the update's {tuple(value.shape)}"
                )
            value = value + residual[name].to(value.device)
        corrected[name] = value
    record, decoded = encode_and_reconstruct(corrected, config, seed)
    return record, {name: corrected[name] - decoded[name] for name in floats}
