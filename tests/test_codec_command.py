"""`fedland codec`: the size and error report of a saved update, and the decoded file."""

import json
from unittest.mock import ANY

import pytest
import torch

from fedland.cli import main
from fedland.codec import CodecConfig, decode_update, encode_update, expected_payload_bytes


def gaussian_update() -> dict[str, torch.Tensor]:
    """Two quantized tensors, a small one and a vector (sent at float16) and an integer."""
    generator = torch.Generator().manual_seed(1)
    return {
        "conv.weight": torch.randn(32, 16, 3, 3, generator=generator) * 1e-3,
        "head.weight": torch.randn(40, 64, generator=generator) * 1e-2,
        "stem.weight": torch.randn(8, 8, generator=generator),  # 64 values: float16
        "bn.weight": torch.randn(32, generator=generator),  # a vector: float16
        "bn.num_batches_tracked": torch.tensor(7),
    }


@pytest.fixture
def update_file(tmp_path):
    path = tmp_path / "update.pt"
    torch.save(gaussian_update(), path)
    return path


def report(capsys, *arguments) -> dict:
    assert main(["codec", *arguments, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def error_of(capsys, *arguments) -> str:
    assert main(["codec", *arguments]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fedland codec: error: ")
    return lines[0]


def test_json_reports_the_exact_payload_and_error(update_file, capsys):
    tensors = gaussian_update()
    shapes = {name: (tuple(value.shape), value.dtype) for name, value in tensors.items()}
    floats = sum(value.numel() for value in tensors.values() if value.is_floating_point())
    fp32 = 4 * floats + 8  # the int64 counter travels raw
    for bits, method in ((2, "lloyd"), (4, "eden"), (1, "sign"), (8, "uniform"), (16, "lloyd")):
        info = report(capsys, "--in", str(update_file), "--bits", str(bits), "--method", method)
        config = CodecConfig(bits=bits, method=method)
        assert info["method"] == method and info["bits"] == bits
        assert info["payload_bytes"] == expected_payload_bytes(shapes, config)
        assert info["coordinates"] == floats
        assert info["bits_per_coordinate"] == pytest.approx(8 * info["payload_bytes"] / floats)
        assert info["fp32_bytes"] == fp32
        assert info["ratio"] == pytest.approx(fp32 / info["payload_bytes"])
        assert info["encode_seconds"] >= 0 and info["decode_seconds"] >= 0
    assert report(capsys, "--in", str(update_file), "--bits", "2")["vnmse"] < 0.12
    exact = report(capsys, "--in", str(update_file), "--bits", "32")
    assert exact["vnmse"] == 0.0
    assert exact["payload_bytes"] == exact["fp32_bytes"] and exact["bits_per_coordinate"] > 32


def test_table_names_the_settings_and_the_figures(update_file, capsys):
    assert main(["codec", "--in", str(update_file), "--bits", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "lloyd at 2 bits, block 256" in lines[0]
    assert lines[1].split()[:3] == ["method", "bits", "payload"]
    info = report(capsys, "--in", str(update_file), "--bits", "2")
    cells = lines[3].split()
    assert cells[:4] == ["lloyd", "2", f"{info['payload_bytes']:,}", f"{info['fp32_bytes']:,}"]
    assert cells[6] == f"{info['bits_per_coordinate']:.3f}"
    assert cells[7] == f"{info['vnmse']:.3e}"


def test_out_holds_what_the_receiver_decodes(update_file, tmp_path, capsys):
    out = tmp_path / "decoded.pt"
    arguments = ["--in", str(update_file), "--bits", "2", "--method", "eden", "--stochastic"]
    info = report(capsys, *arguments, "--seed", "5", "--out", str(out))
    assert info["out"] == str(out)
    written = torch.load(out, weights_only=True)
    tensors = gaussian_update()
    config = CodecConfig(bits=2, method="eden", stochastic=True)
    expected = decode_update(encode_update(tensors, config, seed=5), config=config, seed=5)
    assert list(written) == list(tensors)
    for name, value in tensors.items():
        assert written[name].shape == value.shape
        assert written[name].dtype == (torch.float32 if value.is_floating_point() else value.dtype)
        assert torch.equal(written[name], expected[name]), name
    assert sorted(path.name for path in tmp_path.iterdir()) == ["decoded.pt", "update.pt"]


def test_out_is_never_overwritten_without_force(update_file, tmp_path, capsys):
    out = tmp_path / "decoded.pt"
    out.write_bytes(b"a result")
    message = error_of(capsys, "--in", str(update_file), "--bits", "4", "--out", str(out))
    assert str(out) in message and "--force" in message
    assert out.read_bytes() == b"a result"
    assert (
        main(["codec", "--in", str(update_file), "--bits", "4", "--out", str(out), "--force"]) == 0
    )
    assert f"wrote the decoded tensors to {out}" in capsys.readouterr().out
    assert set(torch.load(out, weights_only=True)) == set(gaussian_update())
    # never the input file, even with --force
    before = update_file.read_bytes()
    arguments = ["--in", str(update_file), "--bits", "4", "--out", str(update_file), "--force"]
    assert "is the --in file" in error_of(capsys, *arguments)
    assert update_file.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["decoded.pt", "update.pt"]


def test_bad_inputs_name_the_file_or_key(tmp_path, capsys):
    missing = tmp_path / "missing.pt"
    assert f"{missing}: no such file" in error_of(capsys, "--in", str(missing), "--bits", "4")

    text = tmp_path / "notes.pt"
    text.write_text("not a torch file\n")
    message = error_of(capsys, "--in", str(text), "--bits", "4")
    assert f"{text}: not a torch file" in message

    a_list = tmp_path / "list.pt"
    torch.save([torch.zeros(3)], a_list)
    assert f"{a_list}: holds a list, not a dict of tensors" in error_of(
        capsys, "--in", str(a_list), "--bits", "4"
    )

    checkpoint = tmp_path / "checkpoint.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "epoch": 3}, checkpoint)
    message = error_of(capsys, "--in", str(checkpoint), "--bits", "4")
    assert f"{checkpoint}: 'model' is a dict, not a tensor" in message

    number = tmp_path / "number.pt"
    torch.save({"w": torch.zeros(2, 2), "lr": 0.1}, number)
    assert f"{number}: 'lr' is a float, not a tensor" in error_of(
        capsys, "--in", str(number), "--bits", "4"
    )

    empty = tmp_path / "empty.pt"
    torch.save({}, empty)
    assert f"{empty}: the dict holds no tensors" in error_of(
        capsys, "--in", str(empty), "--bits", "4"
    )


def test_settings_the_codec_refuses_are_its_own_message(update_file, capsys):
    def refused(*arguments) -> str:
        return error_of(capsys, "--in", str(update_file), *arguments)

    assert "method sign encodes at (1,) bits, not 2" in refused("--bits", "2", "--method", "sign")
    assert "bits must be one of" in refused("--bits", "5")
    assert "method must be one of" in refused("--bits", "4", "--method", "zstd")
    assert "power of two" in refused("--bits", "4", "--method", "eden", "--block-size", "100")
    assert "eden has no norm scale" in refused("--bits", "2", "--method", "eden", "--scale", "norm")


def test_the_norm_scale_costs_the_same_bytes_for_more_error(update_file, capsys):
    least_squares = report(capsys, "--in", str(update_file), "--bits", "1", "--scale", "ls")
    norm = report(capsys, "--in", str(update_file), "--bits", "1", "--scale", "norm")
    assert (least_squares["scale"], norm["scale"]) == ("ls", "norm")
    assert report(capsys, "--in", str(update_file), "--bits", "1") == {
        **norm,
        "encode_seconds": ANY,
        "decode_seconds": ANY,
    }  # auto, as the uplink: norm at 1 bit
    assert report(capsys, "--in", str(update_file), "--bits", "2")["scale"] == "ls"
    assert norm["payload_bytes"] == least_squares["payload_bytes"]
    assert least_squares["vnmse"] < norm["vnmse"] < 0.7  # v / (1 - v) for v = 0.36 is 0.57


def test_non_finite_values_name_the_tensor(tmp_path, capsys):
    path = tmp_path / "nan.pt"
    torch.save({"w": torch.full((64, 64), float("nan"))}, path)
    assert "'w'" in error_of(capsys, "--in", str(path), "--bits", "4")
