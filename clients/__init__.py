"""The Flower side that runs on each training device.

Holds the `ClientApp`, the update-codec client mod (dequantize the broadcast, quantize the
outgoing weight delta with error feedback), the edge-device runtime (device choice, memory
budget) and SuperNode deployment material.
"""
