"""k-bit quantizers, quantized convolution, bit packing and low-bit saved activations.

One quantizer, two uses: the code that trains the low-bit DU-Net also encodes weight updates
for the wire and weights for packed model files.
"""

from fedland.quant.bitspec import FLOAT32, BitSpec, BitSpecError
from fedland.quant.blockwise import (
    dequantize_blockwise,
    max_code,
    max_level,
    quantize_blockwise,
    round_up_bfloat16,
)
from fedland.quant.conv import QuantConv2d
from fedland.quant.packing import pack_bits, packed_size, unpack_bits
from fedland.quant.quantizers import (
    Quantized,
    dequantize,
    fake_quantize_weight,
    quantize_activation,
    quantize_gradient,
    quantize_weight,
)
from fedland.quant.saved_tensors import SavedTensorStore

__all__ = [
    "FLOAT32",
    "BitSpec",
    "BitSpecError",
    "QuantConv2d",
    "Quantized",
    "SavedTensorStore",
    "dequantize",
    "dequantize_blockwise",
    "fake_quantize_weight",
    "max_code",
    "max_level",
    "pack_bits",
    "packed_size",
    "quantize_activation",
    "quantize_blockwise",
    "quantize_gradient",
    "quantize_weight",
    "round_up_bfloat16",
    "unpack_bits",
]
