"""The Flower side that runs on each training device.

`app.py` is the `ClientApp` (local training, device chosen automatically); `codec_mod.py`
the update-codec client mod (rebuild the broadcast model, quantize the outgoing weight delta
with error feedback). A SuperNode starts with `fedland deploy supernode` and its node config
(partition, data path, device, batch size, uplink bits, memory-efficient mode).
"""
