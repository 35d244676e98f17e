import pytest
import yaml

from fedland.config import ConfigError, ExperimentConfig, load_config, load_config_dict


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
