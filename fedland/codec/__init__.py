"""Compressed model updates for federated rounds: float tensors quantized by one of several
methods (`fedland.codec.methods`: the Lloyd-Max default, EDEN, the anchors' codecs) or sent
as float16, in a Flower `ArrayRecord`, validated on decode, with error feedback for the
client.

Bandwidth is the cost of a federated round; a DU-Net update at 1 to 8 bits costs a small
fraction of float32 and error feedback keeps the compression from biasing training.
Each Array's stype (`STYPE_PREFIX` plus `;key=value` fields) states how its bytes encode the
tensor, so the payload holds the values alone (see `fedland.codec.format`).
"""

from fedland.codec.feedback import encode_with_feedback
from fedland.codec.format import (
    STYPE_PREFIX,
    CodecConfig,
    CodecError,
    expected_payload_bytes,
    fp32_bytes,
    payload_bytes,
)
from fedland.codec.update import decode_update, encode_and_reconstruct, encode_update

__all__ = [
    "STYPE_PREFIX",
    "CodecConfig",
    "CodecError",
    "decode_update",
    "encode_and_reconstruct",
    "encode_update",
    "encode_with_feedback",
    "expected_payload_bytes",
    "fp32_bytes",
    "payload_bytes",
]
