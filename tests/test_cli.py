import json
import subprocess
import sys

import torch

from fedland.cli import main
from fedland.export import read_packed
from fedland.model import build_model
from fedland.model.checkpoint import save_checkpoint
from tests.conftest import images

SMALL = ["--width", "16", "--growth", "8", "--neck", "2", "--input-size", "64"]


def test_model_info_json_has_the_documented_keys(capsys):
    assert main(["model-info", "--unets", "4", "--order", "1", "--landmarks", "68", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"params", "fp32_bytes", "packed_bytes", "macs"} <= info.keys()
    assert info["fp32_bytes"] == 4 * info["params"]
    assert info["bits"] == "w32a32g32"


def test_model_info_compares_bit_settings_in_a_table(capsys):
    assert main(["model-info", "--bits", "w32a32g32,w1a8g8", *SMALL]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["model", "bits", "params"]
    assert lines[2].split()[1] == "w32a32g32" and lines[3].split()[1] == "w1a8g8"
    assert float(lines[3].split()[5].rstrip("x")) > 5


def test_model_info_packed_size_shrinks_with_bits(capsys):
    sizes = {}
    for bits in ("w8a8g8", "w4a8g8", "w1a8g8"):
        main(["model-info", "--bits", bits, "--json", *SMALL])
        sizes[bits] = json.loads(capsys.readouterr().out)["packed_bytes"]
    assert sizes["w8a8g8"] > sizes["w4a8g8"] > sizes["w1a8g8"]


def test_refine_flag_halves_the_parameters(capsys):
    main(["model-info", "--unets", "4", "--json"])
    plain = json.loads(capsys.readouterr().out)["params"]
    main(["model-info", "--unets", "4", "--refine", "--json"])
    shared = json.loads(capsys.readouterr().out)["params"]
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
    assert "smaller" in capsys.readouterr().out
    loaded = read_packed(out)
    x = images()
    with torch.no_grad():
        assert torch.equal(loaded(x)[-1], model.eval()(x)[-1])


def test_export_of_a_missing_checkpoint_fails_cleanly(tmp_path, capsys):
    assert main(["export", "--checkpoint", str(tmp_path / "nope.pt"), "--out", "x"]) == 2
    assert "nope.pt: no such checkpoint" in capsys.readouterr().err


def test_console_script_runs():
    result = subprocess.run(
        [sys.executable, "-m", "fedland.cli", "model-info", "--json", *SMALL],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout)["params"] > 0
