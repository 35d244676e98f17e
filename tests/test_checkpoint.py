import pytest
import torch

from fedland.model import build_model
from fedland.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from fedland.model.integrity import tensors_digest
from tests.conftest import images


def test_checkpoint_round_trip_keeps_config_weights_and_extras(tiny, tmp_path):
    model = build_model(num_unets=2, order=1, bits="w2a8g8", **tiny)
    model(images(4))  # train mode: moves the BatchNorm running statistics off their defaults
    path = save_checkpoint(tmp_path / "ckpt.pt", model, epoch=3, history=[{"loss": 0.5}])
    assert not path.with_name("ckpt.pt.tmp").exists()
    loaded, payload = load_checkpoint(path)
    assert loaded.config.to_dict() == model.config.to_dict()
    assert str(loaded.config.bits) == "w2a8g8" and loaded.config.num_unets == 2
    assert payload["epoch"] == 3 and payload["history"] == [{"loss": 0.5}]
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    x = images(2)
    for a, b in zip(loaded.eval()(x), model.eval()(x), strict=True):
        assert torch.equal(a, b)


def test_checkpoints_of_another_version_or_a_mismatched_model_are_rejected(tiny, tmp_path):
    model = build_model(num_unets=2, order=1, **tiny)
    path = save_checkpoint(tmp_path / "ckpt.pt", model)
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "version": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match=r"future\.pt: checkpoint version 99"):
        load_checkpoint(tmp_path / "future.pt")
    smaller = {**payload["model_config"], "num_unets": 1, "order": 0}
    torch.save({**payload, "model_config": smaller}, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match=r"mismatch\.pt: model does not match"):
        load_checkpoint(tmp_path / "mismatch.pt")


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


def test_a_checkpoint_with_changed_weight_bytes_or_nan_is_refused(tiny, tmp_path):
    model = build_model(num_unets=2, order=1, **tiny)
    path = save_checkpoint(tmp_path / "ckpt.pt", model)
    raw = bytearray(path.read_bytes())
    weight = max(model.state_dict().values(), key=lambda t: t.numel())
    start = bytes(raw).find(weight.numpy().tobytes()[:64])
    assert start > 0
    raw[start : start + 64] = bytes(b ^ 0xFF for b in raw[start : start + 64])  # 64 bytes flipped
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"damaged\.pt: the weights do not match"):
        load_checkpoint(damaged)
    payload = torch.load(path, weights_only=True)
    name = next(iter(payload["model"]))
    payload["model"][name].view(-1)[0] = float("nan")
    torch.save({**payload, "checksum": tensors_digest(payload["model"])}, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=rf"nan\.pt: tensor '{name}' holds NaN"):
        load_checkpoint(tmp_path / "nan.pt")
