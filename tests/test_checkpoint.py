import pytest
import torch

from fedland.model import build_model
from fedland.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def test_checkpoint_round_trip_keeps_config_weights_and_extras(tiny, tmp_path):
    model = build_model(num_unets=2, order=1, bits="w2a8g8", **tiny)
    path = save_checkpoint(tmp_path / "ckpt.pt", model, epoch=3)
    loaded, payload = load_checkpoint(path)
    assert loaded.config == model.config
    assert payload["epoch"] == 3
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_unreadable_checkpoints_name_the_file(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"bad\.pt"):
        load_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match=r"other\.pt: not a fedland checkpoint"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
