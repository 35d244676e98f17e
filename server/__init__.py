"""The Flower side of the federation that runs on the coordinating machine.

Holds the `ServerApp` and the quantization-aware strategy (a `FedAvg` subclass that decodes
and validates quantized client updates, averages them and broadcasts the global model,
optionally quantized), plus SuperLink deployment material.
"""
