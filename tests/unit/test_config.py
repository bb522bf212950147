"""The config schema: presets load, unknown keys are refused with the key, file and allowed keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from damo.config import ConfigError, DamoConfig, load_config, preset_names, save_resolved


def test_presets_load() -> None:
    assert {"tiny", "llava15_7b"} <= set(preset_names())
    tiny = load_config("tiny")
    assert tiny.train.zero_stage == 2
    paper = load_config("llava15_7b")
    assert paper.train.global_batch_size == 16 and paper.train.loss.beta == 0.1


def test_defaults_follow_the_paper() -> None:
    c = DamoConfig()
    assert (c.train.loss.beta, c.train.loss.keep_ratio, c.train.loss.gamma, c.train.loss.beta_min) == (
        0.1, 0.8, 0.9, 1e-3)
    assert c.train.loss.delta_mean is None  # never a literal: computed from the data
    assert c.score.clip_model == "ViT-L-14-336" and c.score.clip_pretrained == "openai"


def test_unknown_key_names_key_file_and_allowed(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"train": {"loss": {"betta": 0.2}}}))
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    msg = str(err.value)
    assert "train.loss.betta" in msg and str(path) in msg and "beta_min" in msg and "keep_ratio" in msg


def test_overrides_are_typed_and_validated() -> None:
    c = load_config("tiny", ["train.loss.beta=0.25", "train.loss.arm=dpo", "train.shuffle=false"])
    assert c.train.loss.beta == 0.25 and c.train.loss.arm == "dpo" and c.train.shuffle is False
    with pytest.raises(ConfigError, match="train.loss.arm"):
        load_config("tiny", ["train.loss.arm=nonsense"])
    with pytest.raises(ConfigError, match="key.path=value"):
        load_config("tiny", ["justakey"])


def test_batch_arithmetic_checked() -> None:
    with pytest.raises(ConfigError, match="global_batch_size"):
        load_config(None, ["train.global_batch_size=10", "train.micro_batch_size=4"])


def test_missing_preset_named() -> None:
    with pytest.raises(ConfigError, match="no config file or preset named 'nope'"):
        load_config("nope")


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    c = load_config("tiny", ["seed=7"])
    path = save_resolved(c, tmp_path / "out")
    assert load_config(str(path)) == c


def test_config_loads_from_text_or_a_mapping_through_the_one_loader() -> None:
    tiny = load_config("tiny")
    as_json = tiny.model_dump_json()  # one line, as a KFP component receives it
    assert load_config(text=as_json) == tiny
    assert load_config(text=yaml.safe_dump(tiny.model_dump(mode="json"))) == tiny
    mapping = tiny.model_dump(mode="json")
    assert load_config(mapping, ["train.loss.beta=0.2"]).train.loss.beta == 0.2
    assert mapping["train"]["loss"]["beta"] == tiny.train.loss.beta  # the caller's mapping is untouched
    assert load_config(text='{"train": {"learning_rate": 3e-05}}').train.learning_rate == 3e-05
    with pytest.raises(ConfigError, match="no_such_section"):
        load_config({"no_such_section": {}})
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(text="[1, 2]")
