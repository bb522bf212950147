"""What the pipeline's components share: the config as text, run parameters, results as JSON.

A KFP component receives the resolved config as one string parameter, so that the Kubeflow UI shows
it and caching keys on it: one line of JSON (also valid YAML), because the KFP compiler copies
parameter defaults into a comment header that a multi-line default would break. A component returns
its step's result dict as a JSON string. The run parameters a person sets in the UI (arm, β, epochs,
GPUs, model name, gate, GPU pool) are applied to that text by :func:`apply_run_parameters`, and
named here once: :data:`RUN_PARAMETERS`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from damo.config import ConfigError, DamoConfig, load_config

# UI parameter → the config key it sets. Defaults of the compiled pipeline are read from the config.
RUN_PARAMETERS: dict[str, str] = {
    "arm": "train.loss.arm",
    "beta": "train.loss.beta",
    "epochs": "train.epochs",
    "gpus": "train.num_processes",
    "model_name": "registry.model_name",
    "gate": "registry.gate",
    "gpu_node_selector": "pipeline.gpu_node_selector",
    "gpu_tolerations": "pipeline.gpu_tolerations",
}


def config_text(config: DamoConfig) -> str:
    """The config as the one-line JSON text components receive."""
    return json.dumps(config.model_dump(mode="json"))


def config_from_yaml(text: str, overrides: list[str] | tuple[str, ...] = ()) -> DamoConfig:
    """Validate a config given as JSON or YAML text (what components receive) through the one loader."""
    return load_config(text=text, overrides=overrides)


def _get(config: DamoConfig, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = getattr(node, part)
    return node.model_dump(mode="json") if hasattr(node, "model_dump") else node


def run_parameter_defaults(config: DamoConfig) -> dict[str, Any]:
    """The UI parameters' values in ``config``: the defaults a compiled pipeline shows."""
    return {name: _get(config, key) for name, key in RUN_PARAMETERS.items()}


def apply_run_parameters(text: str, params: Mapping[str, Any]) -> str:
    """The config text with the UI parameters applied, validated, as one-line JSON text."""
    unknown = set(params) - set(RUN_PARAMETERS)
    if unknown:
        raise ConfigError(f"unknown run parameters {sorted(unknown)}; known: {sorted(RUN_PARAMETERS)}")
    overrides = [f"{RUN_PARAMETERS[name]}={json.dumps(value)}" for name, value in params.items()]
    return config_text(config_from_yaml(text, overrides))


def result_json(result: Mapping[str, Any]) -> str:
    """A step's result dict as the component's JSON output parameter."""
    return json.dumps(dict(result), default=str, sort_keys=True)
