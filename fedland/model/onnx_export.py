"""ONNX export of a trained DU-Net, and an ONNX Runtime model that stands in for it.

Edge GPUs run ONNX through TensorRT or ONNX Runtime. The graph is the eval-mode network in
the form a packed file stores it: BatchNorm folded into a per-channel Mul and Add, every
convolution a plain Conv whose weights are the dequantized low-bit values, and the input of
each convolution with quantized activations passed through a QuantizeLinear /
DequantizeLinear pair (uint8 for 8-bit activations, a Clip and int8 below), which rounds as
the training code does. Its one output is the last stack's heatmaps, what prediction decodes.
The model config and the task card ride along as metadata, so the file is usable without
the experiment that trained it.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fedland.model.config import DUNetConfig, ModelConfigError
from fedland.model.dunet import DUNet
from fedland.model.packed import read_packed, write_packed
from fedland.quant.conv import QuantConv2d
from fedland.quant.quantizers import activation_step, quantize_activation

# The opset torchlib writes natively, so the exporter runs no version conversion pass;
# ONNX Runtime reads it from 1.14 on.
OPSET = 18
INPUT_NAME = "images"
OUTPUT_NAME = "heatmaps"
MODEL_KEY = "fedland.model"
TASK_KEY = "fedland.task"
OPSET_KEY = "fedland.opset"
INSTALL_HINT = "pip install 'fedland[onnx]'"


class OnnxFileError(ValueError):
    """An ONNX file that cannot be used as a fedland model; the message names the file."""


class OnnxDependencyError(ImportError):
    """onnx, onnxscript or onnxruntime is missing; the message says how to install them."""


@torch.library.custom_op("fedland::quantize_activation", mutates_args=())
def _quantize_activation(x: torch.Tensor, clip: torch.Tensor, bits: int) -> torch.Tensor:
    """What a quantized convolution feeds its kernel in eval mode. One opaque op, so the
    exporter can translate it to QuantizeLinear / DequantizeLinear instead of tracing the
    rounding arithmetic."""
    return quantize_activation(x, clip, bits).to(x.dtype) * activation_step(clip, bits)


@_quantize_activation.register_fake
def _(x: torch.Tensor, clip: torch.Tensor, bits: int) -> torch.Tensor:
    return torch.empty_like(x)


class _ExportedConv(nn.Module):
    """A `QuantConv2d` in its inference form: the quantized weight materialized, the input
    quantized by the op above; free of the autograd Function the training path needs."""

    def __init__(self, layer: QuantConv2d) -> None:
        super().__init__()
        self.register_buffer("weight", layer.quantized_weight().detach().clone())
        clip = layer.activation_clip
        self.register_buffer("clip", None if clip is None else clip.detach().clone())
        self.bits = layer.bits.activations
        self.stride, self.padding = layer.stride, layer.padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.clip is not None:
            x = torch.ops.fedland.quantize_activation(x, self.clip, self.bits)
        return F.conv2d(x, self.weight, None, self.stride, self.padding)


class _LastHeatmaps(nn.Module):
    """The network with one output, the last stack's heatmaps."""

    def __init__(self, model: DUNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)[-1]


def export_onnx(
    model: DUNet, path: str | Path, task: dict[str, Any] | None = None, opset: int = OPSET
) -> int:
    """Write `model` (eval mode) as one self-contained ONNX file with a dynamic batch;
    returns the number of bytes written. `task` is the task card `fedland predict` reads."""
    for name in ("onnx", "onnxscript"):  # what torch.onnx's exporter builds the graph with
        _optional_module(name)
    network = _inference_network(model)
    size = model.config.input_size
    with _quiet_exporter():
        program = torch.onnx.export(
            network,
            (torch.zeros(1, 3, size, size),),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
            custom_translation_table=_translation_table(),
            verbose=False,
        )
    proto = program.model_proto
    _drop_exporter_notes(proto.graph)
    metadata = {MODEL_KEY: json.dumps(model.config.to_dict()), OPSET_KEY: str(opset)}
    if task is not None:
        metadata[TASK_KEY] = json.dumps(task)
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    payload = proto.SerializeToString()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(payload)
    tmp.replace(path)
    return len(payload)


class OnnxModel:
    """An exported DU-Net run by ONNX Runtime. Calling it maps images [N, 3, S, S] in
    [0, 1] to the last stack's heatmaps [N, J, S/4, S/4], as `model(images)[-1]` does, so
    code that decodes a PyTorch model's heatmaps can use it unchanged."""

    def __init__(self, path: str | Path, device: torch.device | str | None = None) -> None:
        """`device` "cuda" runs on ONNX Runtime's CUDA provider where it is installed, and
        on the CPU otherwise (`providers` says which)."""
        runtime = _optional_module("onnxruntime")
        self.path = Path(path)
        if not self.path.is_file():
            raise OnnxFileError(f"{self.path}: no such ONNX model file")
        try:
            session = runtime.InferenceSession(
                str(self.path), providers=_providers(runtime, device)
            )
        except Exception as error:  # onnxruntime raises its own types for an unreadable file
            raise OnnxFileError(f"{self.path}: not a readable ONNX model ({error})") from error
        metadata = session.get_modelmeta().custom_metadata_map
        self.model_config = self._config(metadata)
        self.task = self._task(metadata)
        inputs = [value.name for value in session.get_inputs()]
        outputs = [value.name for value in session.get_outputs()]
        if inputs != [INPUT_NAME] or outputs != [OUTPUT_NAME]:
            raise OnnxFileError(
                f"{self.path}: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}, "
                f"the graph has inputs {inputs} and outputs {outputs}"
            )
        self._session = session

    @property
    def input_size(self) -> int:
        return self.model_config.input_size

    @property
    def num_landmarks(self) -> int:
        return self.model_config.num_landmarks

    @property
    def providers(self) -> list[str]:
        """The ONNX Runtime execution providers the model runs on, first preferred."""
        return self._session.get_providers()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Heatmaps on the device of `images`."""
        size = self.input_size
        if images.dim() != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) != (size, size):
            raise ValueError(
                f"expected images of shape [batch, 3, {size}, {size}], got {list(images.shape)}"
            )
        batch = images.detach().to("cpu", torch.float32).contiguous().numpy()
        (heatmaps,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        return torch.from_numpy(heatmaps).to(images.device)

    def _config(self, metadata: dict[str, str]) -> DUNetConfig:
        if MODEL_KEY not in metadata:
            raise OnnxFileError(
                f"{self.path}: no fedland model metadata ({MODEL_KEY!r}); "
                f"not written by `fedland export`"
            )
        try:
            return DUNetConfig.from_dict(json.loads(metadata[MODEL_KEY]))
        except (json.JSONDecodeError, TypeError, ModelConfigError) as error:
            raise OnnxFileError(
                f"{self.path}: bad model config in the metadata ({error})"
            ) from error

    def _task(self, metadata: dict[str, str]) -> dict[str, Any] | None:
        if TASK_KEY not in metadata:
            return None
        try:
            task = json.loads(metadata[TASK_KEY])
        except json.JSONDecodeError as error:
            raise OnnxFileError(f"{self.path}: the task card is not JSON ({error})") from error
        if not isinstance(task, dict):
            raise OnnxFileError(f"{self.path}: the task card in the metadata is not a JSON object")
        return task


def _inference_network(model: DUNet) -> nn.Module:
    """The network as a packed file restores it (BatchNorm folded, weights dequantized from
    their codes), with its quantized convolutions in export form."""
    buffer = io.BytesIO()
    write_packed(model, buffer)
    restored = read_packed(buffer.getvalue())
    for parent in list(restored.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, QuantConv2d):
                setattr(parent, name, _ExportedConv(child))
    return _LastHeatmaps(restored).eval()


def _drop_exporter_notes(graph: Any) -> None:
    """Removes the exporter's provenance notes (the torch.export program, source paths and
    stack traces of the exporting machine), which make up most of a small model's file and
    differ from machine to machine."""
    del graph.metadata_props[:]
    for item in (*graph.node, *graph.value_info, *graph.input, *graph.output, *graph.initializer):
        del item.metadata_props[:]


def _translation_table() -> dict[Callable, Callable]:
    """ONNX for the activation quantization: codes round(clip(x, 0, clip) / step) as 8-bit
    integers, times step. 8-bit codes reach 255 and need uint8, whose saturation does the
    clipping; fewer bits fit int8 with zero point 0, the form TensorRT accepts, after a Clip
    (the saturation would stop at 127, not at the clipping level)."""
    import numpy as np
    import onnx_ir
    from onnxscript import opset18 as op

    def quantize_dequantize(x: Any, clip: Any, bits: int) -> Any:
        step = op.Div(clip, op.Constant(value_float=float(2**bits - 1)))
        if bits < 8:
            x = op.Clip(x, op.Constant(value_float=0.0), clip)
        code_type = np.uint8 if bits == 8 else np.int8
        zero = op.Constant(value=onnx_ir.tensor(np.array(0, dtype=code_type)))
        return op.DequantizeLinear(op.QuantizeLinear(x, step, zero), step, zero)

    return {torch.ops.fedland.quantize_activation.default: quantize_dequantize}


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silences what the exporter says about torch's own internals (missing torchvision
    kernels, deprecations inside torch.export): nothing a user exporting a DU-Net can act on."""
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        exporter_log.setLevel(level)


def _providers(runtime: ModuleType, device: torch.device | str | None) -> list[str]:
    wants_cuda = device is not None and torch.device(device).type == "cuda"
    if wants_cuda and "CUDAExecutionProvider" in runtime.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _optional_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise OnnxDependencyError(
            f"{name} is not installed; ONNX export and inference need the onnx extra: "
            f"{INSTALL_HINT}"
        ) from error
