"""Components' shared plumbing: config text round trip, UI parameters, results as JSON and metrics."""

from __future__ import annotations

import json

import pytest

from damo.config import ConfigError, load_config
from damo.flat import numbers
from damo.steps.pipeline_io import (
    RUN_PARAMETERS,
    apply_run_parameters,
    config_from_yaml,
    config_text,
    result_json,
    run_parameter_defaults,
)


def test_config_text_is_one_line_and_round_trips() -> None:
    config = load_config("tiny", ["train.loss.beta=0.3", "train.learning_rate=3e-5"])
    text = config_text(config)
    assert "\n" not in text  # a multi-line default would break KFP's compiled comment header
    assert config_from_yaml(text) == config
    assert isinstance(config_from_yaml(text).train.learning_rate, float)


def test_yaml_text_works_too_and_errors_name_the_key() -> None:
    assert config_from_yaml("train: {loss: {arm: dpo}}").train.loss.arm == "dpo"
    with pytest.raises(ConfigError, match="train.loss.betta"):
        config_from_yaml("train: {loss: {betta: 0.2}}")


def test_run_parameters_set_their_config_keys_and_are_validated() -> None:
    text = config_text(load_config("tiny"))
    out = config_from_yaml(apply_run_parameters(text, {
        "arm": "dpo", "beta": 0.25, "epochs": 2.0, "gpus": 1, "model_name": "m",
        "gate": {"tiny_world.chair_response": "min"},
        "gpu_node_selector": {"pool": "a100"},
        "gpu_tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]}))
    assert (out.train.loss.arm, out.train.loss.beta, out.train.epochs) == ("dpo", 0.25, 2.0)
    assert out.train.num_processes == 1 and out.registry.model_name == "m"
    assert out.registry.gate == {"tiny_world.chair_response": "min"}
    assert out.pipeline.gpu_node_selector == {"pool": "a100"}
    assert out.pipeline.gpu_tolerations[0]["key"] == "gpu"
    with pytest.raises(ConfigError, match="train.loss.arm"):
        apply_run_parameters(text, {"arm": "nonsense"})
    with pytest.raises(ConfigError, match="global_batch_size"):
        apply_run_parameters(text, {"gpus": 3})  # 8 pairs cannot split over 3 processes of 8
    with pytest.raises(ConfigError, match="unknown run parameters"):
        apply_run_parameters(text, {"lr": 1.0})


def test_defaults_read_back_every_parameter() -> None:
    config = load_config("llava15_7b")
    defaults = run_parameter_defaults(config)
    assert set(defaults) == set(RUN_PARAMETERS)
    assert config_from_yaml(apply_run_parameters(config_text(config), defaults)) == config


def test_results_and_metrics() -> None:
    result = {"step": "evaluate", "tiny_world": {"chair_response": 0.25, "n": 8, "ok": True},
              "nan": float("nan"), "label": "x"}
    assert json.loads(result_json(result))["tiny_world"]["n"] == 8
    assert numbers(result) == {"tiny_world.chair_response": 0.25, "tiny_world.n": 8.0}
