"""ONNX export: ONNX Runtime reproduces the PyTorch eval model, and the file says what it is."""

import sys

import numpy as np
import pytest
import torch

from fedland.cli import main
from fedland.data.heatmaps import HeatmapCodec
from fedland.model import build_model, heatmap_loss
from fedland.model.checkpoint import save_checkpoint
from fedland.model.onnx_export import (
    OPSET,
    OnnxDependencyError,
    OnnxFileError,
    OnnxModel,
    export_onnx,
)
from fedland.quant.bitspec import FULL_PRECISION
from tests.conftest import TINY, images

onnx = pytest.importorskip("onnx")  # the onnx extra: fedland[onnx]
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TASK = {"dataset": "300w", "sigma": 1.5, "dark": False, "flip_test": False}
# Bit setting -> DU-Net shape, one U-Net but for coupling (order 1) and refinement, so that
# each export takes seconds; the export command test covers w2a8g8.
SETTINGS = {
    "w32a32g32": {"num_unets": 1, "order": 0},
    "w1a8g8": {"num_unets": 2, "order": 1},
    "w2a4g8": {"num_unets": 2, "order": 0, "refine": True},
}
GRAPH_OPS = {"Conv", "Mul", "Add", "Relu", "Concat", "MaxPool", "Resize"}
ACTIVATION_OPS = {"QuantizeLinear", "DequantizeLinear", "Clip"}


def _trained(bits: str, **shape):
    """A tiny DU-Net after a few optimizer steps: BatchNorm statistics, weights and
    activation clipping levels all moved away from their initial values."""
    model = build_model(bits=bits, **shape, **TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        x = images(4)
        target = torch.rand(4, TINY["num_landmarks"], 16, 16)
        optimizer.zero_grad()
        heatmap_loss(model(x), target).backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """Each bit setting trained and exported once: {bits: (model, path, bytes written)}."""
    folder = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    models = {}
    for bits, shape in SETTINGS.items():
        model = _trained(bits, **shape)
        path = folder / f"{bits}.onnx"
        models[bits] = (model, path, export_onnx(model, path, TASK))
    return models


def _assert_reproduces(runtime: OnnxModel, model, x: torch.Tensor) -> None:
    """Heatmaps within 1e-4 of the PyTorch eval model's, landmarks within 0.1 input px.

    With quantized activations, a pre-activation within float rounding of a rounding
    boundary can take the neighbouring code in one runtime and not in the other (their
    kernels sum in different orders). Such a code flip moves that image's heatmaps by about
    1e-3 (in 1 to 5 images of 100 of these tiny models), and on their flat, untrained
    heatmaps it can move an argmax anywhere. So there, most images must match to 1e-4 and
    every image to 1e-2, which a wrong scale, clip or rounding would fail, and landmarks
    are compared on the images that match.
    """
    with torch.no_grad():
        expected = model(x)[-1]
    actual = runtime(x)
    assert actual.shape == expected.shape == (len(x), TINY["num_landmarks"], 16, 16)
    per_image = (actual - expected).abs().flatten(1).amax(1)
    matching = per_image <= 1e-4
    if model.config.bits.activations < FULL_PRECISION:
        assert matching.float().mean() >= 0.5 and per_image.max() <= 1e-2
    else:
        assert matching.all()
    codec = HeatmapCodec.for_input(TINY["input_size"], TASK["sigma"])
    points, reference = (codec.decode(maps[matching])[0].numpy() for maps in (actual, expected))
    moved = codec.to_input_pixels(points) - codec.to_input_pixels(reference)
    assert np.abs(moved).max() <= 0.1


@pytest.mark.parametrize("bits", SETTINGS)
def test_onnx_runtime_reproduces_the_heatmaps_and_landmarks(exported, bits):
    model, path, written = exported[bits]
    assert path.stat().st_size == written
    assert not path.with_name(path.name + ".tmp").exists()
    runtime = OnnxModel(path)
    x = images(8)
    _assert_reproduces(runtime, model, x)
    whole = runtime(x)
    for batch in (1, 3):  # exported at batch 1
        assert torch.allclose(runtime(x[:batch]), whole[:batch], rtol=0, atol=1e-6)


@pytest.mark.parametrize("bits", SETTINGS)
def test_the_graph_holds_materialized_weights_and_activation_quantizers(exported, bits):
    model, path, _ = exported[bits]
    graph = onnx.load(path).graph
    [images_input] = graph.input
    assert images_input.name == "images"
    assert images_input.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [output.name for output in graph.output] == ["heatmaps"]
    ops = [node.op_type for node in graph.node]
    quantized_activations = model.config.bits.activations < FULL_PRECISION
    assert set(ops) <= GRAPH_OPS | (ACTIVATION_OPS if quantized_activations else set())
    weights = {tensor.name: onnx.numpy_helper.to_array(tensor) for tensor in graph.initializer}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    assert all(node.input[1] in weights for node in convs)  # constants, computed by no op
    if not quantized_activations:
        return
    quantizers = ops.count("QuantizeLinear")
    assert quantizers == ops.count("DequantizeLinear") > 0
    eight_bit = model.config.bits.activations == 8
    assert ops.count("Clip") == (0 if eight_bit else quantizers)
    zero_points = {
        weights[node.input[2]].dtype for node in graph.node if node.op_type == "QuantizeLinear"
    }
    assert zero_points == {np.dtype(np.uint8 if eight_bit else np.int8)}
    dequantized = {
        out for node in graph.node if node.op_type == "DequantizeLinear" for out in node.output
    }
    quantized_convs = [node for node in convs if node.input[0] in dequantized]
    assert len(quantized_convs) == quantizers
    levels = {1: 2, 2: 3}[model.config.bits.weights]
    for node in quantized_convs:
        per_filter = weights[node.input[1]].reshape(weights[node.input[1]].shape[0], -1)
        assert max(len(np.unique(row)) for row in per_filter) <= levels


def test_the_metadata_carries_the_model_config_and_the_task_card(exported):
    model, path, _ = exported["w1a8g8"]
    runtime = OnnxModel(path)
    assert runtime.model_config == model.config
    assert runtime.task == TASK
    assert (runtime.input_size, runtime.num_landmarks) == (64, TINY["num_landmarks"])
    assert runtime.providers == ["CPUExecutionProvider"]
    props = {prop.key: prop.value for prop in onnx.load(path).metadata_props}
    assert props["fedland.opset"] == str(OPSET)
    with pytest.raises(ValueError, match=r"expected images of shape \[batch, 3, 64, 64\]"):
        runtime(images(1, size=128))


def test_unreadable_files_are_refused_with_the_file_name(exported, tmp_path):
    good = exported["w32a32g32"][1].read_bytes()
    cases = {
        "not-onnx.onnx": b"fedland, but not a graph\n" * 10,
        "truncated.onnx": good[: len(good) // 2],
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(OnnxFileError, match=f"{name}: not a readable ONNX model"):
            OnnxModel(tmp_path / name)
    with pytest.raises(OnnxFileError, match="missing.onnx: no such ONNX model file"):
        OnnxModel(tmp_path / "missing.onnx")
    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["heatmaps"])],
        "foreign",
        [helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, ["n", 3, 64, 64])],
        [helper.make_tensor_value_info("heatmaps", onnx.TensorProto.FLOAT, ["n", 3, 64, 64])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), foreign)
    with pytest.raises(OnnxFileError, match="foreign.onnx: no fedland model metadata"):
        OnnxModel(foreign)


def test_a_missing_runtime_names_the_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(OnnxDependencyError, match=r"pip install 'fedland\[onnx\]'"):
        OnnxModel(tmp_path / "model.onnx")


def test_export_command_writes_an_onnx_file_that_loads(tmp_path, capsys):
    model = _trained("w2a8g8", num_unets=1, order=0)
    checkpoint = save_checkpoint(tmp_path / "ckpt.pt", model)
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    size = out.stat().st_size
    fp32 = 4 * sum(p.numel() for p in model.parameters())
    assert capsys.readouterr().out.strip() == (
        f"wrote {out} ({size:,} bytes, ONNX opset {OPSET}, w2a8g8; "
        f"float32 weights {fp32:,} bytes, {size / fp32:.2f}x their size)"
    )
    runtime = OnnxModel(out)
    assert runtime.task is None  # the checkpoint holds no experiment config
    assert runtime.model_config == model.config
    _assert_reproduces(runtime, model, images(4))


def test_export_command_refuses_an_unknown_suffix_and_writes_nothing(exported, tmp_path, capsys):
    checkpoint = save_checkpoint(tmp_path / "ckpt.pt", exported["w32a32g32"][0])
    out = tmp_path / "model.tflite"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out)]) == 2
    assert "model.tflite: unknown export format '.tflite'" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]
