import json
import subprocess
import sys

import torch

from fedland.cli import main
from fedland.model import build_model
from fedland.model.checkpoint import save_checkpoint
from fedland.model.packed import packed_model_bytes, read_packed
from tests.conftest import images

SMALL = ["--width", "16", "--growth", "8", "--neck", "2", "--input-size", "64"]
SMALL_MODEL = {"width": 16, "growth": 8, "neck": 2, "input_size": 64}  # the same, for Python
PAPER = {"width": 128, "growth": 32, "neck": 4, "input_size": 256}  # model-info's defaults


def parameters(**settings) -> int:
    """Parameters of a DU-Net built here, counted without allocating its weights."""
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(**settings).parameters())


def test_model_info_json_has_the_documented_keys(capsys):
    assert main(["model-info", "--unets", "4", "--order", "1", "--landmarks", "68", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"params", "fp32_bytes", "packed_bytes", "macs"} <= info.keys()
    assert info["params"] == parameters(num_unets=4, order=1, num_landmarks=68, **PAPER)
    assert info["fp32_bytes"] == 4 * info["params"]
    assert info["bits"] == "w32a32g32"


def test_model_info_compares_bit_settings_in_a_table(capsys):
    assert main(["model-info", "--bits", "w32a32g32,w1a8g8", *SMALL]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["model", "bits", "params"]
    assert lines[2].split()[1] == "w32a32g32" and lines[3].split()[1] == "w1a8g8"
    main(["model-info", "--bits", "w32a32g32,w1a8g8", "--json", *SMALL])
    fp32, one_bit = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    for line, info in ((lines[2], fp32), (lines[3], one_bit)):
        cells = line.split()
        assert cells[2:5] == [f"{info[k]:,}" for k in ("params", "fp32_bytes", "packed_bytes")]
    # "smaller" compares every row with the float32 weights of the first one.
    assert lines[3].split()[5] == f"{fp32['fp32_bytes'] / one_bit['packed_bytes']:.1f}x"
    assert lines[2].split()[5] == f"{fp32['fp32_bytes'] / fp32['packed_bytes']:.1f}x"


def test_model_info_packed_size_shrinks_with_bits(capsys):
    sizes = {}
    for bits in ("w8a8g8", "w4a8g8", "w1a8g8"):
        main(["model-info", "--bits", bits, "--json", *SMALL])
        sizes[bits] = json.loads(capsys.readouterr().out)["packed_bytes"]
        # the size of the file `fedland export` writes for that model
        assert sizes[bits] == packed_model_bytes(build_model(bits=bits, **SMALL_MODEL)), bits
    assert sizes["w8a8g8"] > sizes["w4a8g8"] > sizes["w1a8g8"]


def test_refine_flag_halves_the_parameters(capsys):
    main(["model-info", "--unets", "4", "--json"])
    plain = json.loads(capsys.readouterr().out)["params"]
    main(["model-info", "--unets", "4", "--refine", "--json"])
    shared = json.loads(capsys.readouterr().out)["params"]
    assert plain == parameters(num_unets=4, order=1, num_landmarks=16, **PAPER)
    assert shared == parameters(num_unets=4, order=1, num_landmarks=16, refine=True, **PAPER)
    assert 0.45 < shared / plain < 0.55


def test_bad_configuration_exits_with_a_clear_message(capsys):
    assert main(["model-info", "--unets", "2", "--order", "2"]) == 2
    assert "order K must satisfy 0 <= K < L = 2" in capsys.readouterr().err
    assert main(["model-info", "--bits", "w1a8"]) == 2
    assert "wXaYgZ" in capsys.readouterr().err


def test_export_writes_a_packed_file_that_loads(tmp_path, tiny, capsys):
    model = build_model(num_unets=2, order=1, bits="w1a8g8", **tiny)
    model(images())
    checkpoint = save_checkpoint(tmp_path / "ckpt.pt", model)
    out = tmp_path / "model-w1a8g8.fldp"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    size = out.stat().st_size
    assert size == packed_model_bytes(model.eval())
    fp32 = 4 * sum(p.numel() for p in model.parameters())
    assert capsys.readouterr().out.strip() == (
        f"wrote {out} ({size:,} bytes, w1a8g8; "
        f"float32 weights {fp32:,} bytes, {fp32 / size:.1f}x smaller)"
    )
    loaded = read_packed(out)
    x = images()
    with torch.no_grad():
        assert torch.equal(loaded(x)[-1], model.eval()(x)[-1])


def test_export_of_a_missing_checkpoint_fails_cleanly(tmp_path, capsys):
    assert main(["export", "--checkpoint", str(tmp_path / "nope.pt"), "--out", "x"]) == 2
    assert "nope.pt: no such checkpoint" in capsys.readouterr().err


def test_console_script_runs(capsys):
    result = subprocess.run(
        [sys.executable, "-m", "fedland.cli", "model-info", "--json", *SMALL],
        capture_output=True,
        text=True,
        check=True,
    )
    main(["model-info", "--json", *SMALL])
    assert json.loads(result.stdout) == json.loads(capsys.readouterr().out)
    assert json.loads(result.stdout)["params"] == parameters(
        num_unets=4, order=1, num_landmarks=16, **SMALL_MODEL
    )
