import dataclasses

import pytest
import yaml

from fedland.config import (
    ConfigError,
    ExperimentConfig,
    ModelSection,
    load_config,
    load_config_dict,
)
from fedland.model.config import DUNetConfig


def test_defaults_file_and_overrides_combine(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("train:\n  epochs: 3\nmodel:\n  bits: w1a8g8\n")
    config = load_config(path, ["train.epochs=5", "data.augment.colour_gain=[1, 1]"])
    assert config.train.epochs == 5
    assert config.model.bits == "w1a8g8"
    assert config.data.augment.colour_gain == [1.0, 1.0]
    assert config.data.dataset == "300w"
    # Everything else keeps its default, and the result survives the YAML the server sends.
    changed = ExperimentConfig().to_dict()
    changed["train"]["epochs"] = 5
    changed["model"]["bits"] = "w1a8g8"
    changed["data"]["augment"]["colour_gain"] = [1.0, 1.0]
    assert config.to_dict() == changed
    assert load_config_dict(yaml.safe_load(yaml.safe_dump(config.to_dict()))) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train:\n  epochs: ten\n", "train.epochs: expected an integer, got 'ten'"),
        ("data:\n  augment:\n    rotaton: 3\n", "data.augment.rotaton: unknown key"),
        ("model: 3\n", "model: expected a mapping"),
        ("train:\n  lr: yes\n", "train.lr: expected a number"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("train: [\n", "not valid YAML"),
        ("train:\n  epochs: 0\n", "train.epochs: must be at least 1, got 0"),
        ("model:\n  input_size: 100\n", "model.input_size: input size must be a multiple of 64"),
    ],
)
def test_bad_configs_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="bad.yaml") as info:
        load_config(path)
    assert message in str(info.value)


def test_bad_override_is_explained():
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(None, ["epochs"])
    with pytest.raises(ConfigError, match="no such config file"):
        load_config("missing.yaml")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.device=banana", "train.device: must be auto, cpu, mps, cuda or cuda:N"),
        ("train.lr=0", "train.lr: must be positive, got 0.0"),
        ("train.lr_factor=-5", "train.lr_factor: must be positive, got -5.0"),
        ("train.lr_milestones=[3, 0]", "train.lr_milestones: must be at least 1, got [3, 0]"),
        ("model.order=2", "model.order: order K must satisfy 0 <= K < L = 2"),
        ("model.bits=w3", "model.bits: must be a bit spec"),
        ("codec.uplink_bits=5", "codec.uplink_bits: must be one of 32, 16, 8, 4, 3, 2, 1, got 5"),
        ("codec.block_size=0", "codec.block_size: must be from 1 to"),
        ("data.dataset=faces", "data.dataset: must be one of mpii, lsp, 300w, wflw, coco"),
        ("data.augment.flip_probability=2", "data.augment.flip_probability: must be from 0"),
    ],
)
def test_a_bad_override_is_blamed_on_that_override_not_the_file(tmp_path, override, message):
    path = tmp_path / "fine.yaml"
    path.write_text("train:\n  epochs: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, ["train.epochs=4", override])
    assert str(info.value).startswith(f"--set {override}: {message}")
    assert info.value.key == override.partition("=")[0]


def test_a_bad_value_from_the_file_is_blamed_on_the_file_under_unrelated_overrides(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lr: -1\n")
    with pytest.raises(ConfigError, match=r"^\S*bad.yaml: train.lr: must be positive, got -1"):
        load_config(path, ["train.epochs=4"])
    with pytest.raises(ConfigError, match=r"^--set train=\{'lr': -2\}: train.lr: must be"):
        load_config(path, ["train={'lr': -2}"])


def test_the_model_section_has_the_dunet_fields_less_the_landmarks():
    section = [f.name for f in dataclasses.fields(ModelSection)]
    assert section == [f.name for f in dataclasses.fields(DUNetConfig) if f.name != "num_landmarks"]


def test_numbers_in_exponent_form_without_a_dot_are_numbers(tmp_path):
    """YAML 1.1 reads `1e-3` as a string; a learning rate is written that way."""
    path = tmp_path / "lr.yaml"
    path.write_text("train:\n  lr: 2e-3\n  rmsprop_eps: 1E-8\n")
    config = load_config(path, ["train.weight_decay=5e-4"])
    assert (config.train.lr, config.train.rmsprop_eps) == (2e-3, 1e-8)
    assert config.train.weight_decay == 5e-4
    with pytest.raises(ConfigError, match="train.lr: expected a number, got 'e-3'"):
        load_config(None, ["train.lr=e-3"])
