"""The Flower side of the federation that runs on the coordinating machine.

`app.py` is the `ServerApp`; `strategy.py` the quantization-aware strategy (a `FedAvg`
subclass that decodes and validates quantized client updates, averages them and broadcasts
the global model, optionally quantized); `run.py` one run (evaluation, checkpoints, resume,
result files). The SuperLink itself starts with `fedland deploy superlink` (TLS and node
authentication, see `fedland.federation.deployment`).
"""
