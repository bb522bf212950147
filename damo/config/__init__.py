"""Every config schema of damo: the only home of defaults, one module per group of sections.

A config is a YAML file (or a preset name from ``configs/``) plus ``--set key.path=value``
overrides. It is validated on load: unknown keys are refused with the key, the file and the allowed
keys named; types and ranges are checked. Every step saves the resolved config next to its outputs
(:func:`save_resolved`), so an output folder always says how it was made.

Sections map one-to-one to steps (``ingest``, ``score``, ...); ``seed`` and ``tracking`` are shared.
The sections live in ``damo/config/<group>.py`` (data steps, train, evaluate, services, pipeline);
this module holds the root :class:`DamoConfig` and the loader. Import every name from here.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from damo.config.base import ConfigError, Section
from damo.config.data import IngestConfig, ReferenceConfig, ScoreConfig, TinyWorldConfig
from damo.config.evaluate import DecodingConfig, EvaluateConfig, JudgeConfig
from damo.config.pipeline import PipelineConfig, StepResources, TrainJobConfig
from damo.config.services import HubConfig, RegisterConfig, StackConfig, TrackingConfig
from damo.config.train import LoraConfig, LossConfig, SelectConfig, TrainConfig
from damo.config.yaml_text import parse_yaml, read_config_file

__all__ = ["ConfigError", "DamoConfig", "DecodingConfig", "EvaluateConfig", "HubConfig", "IngestConfig",
           "JudgeConfig", "LoraConfig", "LossConfig", "PipelineConfig", "ReferenceConfig", "RegisterConfig",
           "ScoreConfig", "Section", "SelectConfig", "StackConfig", "StepResources", "TinyWorldConfig",
           "TrackingConfig", "TrainConfig", "TrainJobConfig", "load_config", "parse_yaml", "preset_names",
           "save_resolved", "to_yaml"]


# --------------------------------------------------------------------------- root
class DamoConfig(Section):
    seed: int = 0
    tiny_world: TinyWorldConfig = Field(default_factory=TinyWorldConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    registry: RegisterConfig = Field(default_factory=RegisterConfig)
    hub: HubConfig = Field(default_factory=HubConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    stack: StackConfig = Field(default_factory=StackConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)

    @model_validator(mode="after")
    def _check_batches(self) -> DamoConfig:
        t = self.train
        per_step = t.micro_batch_size * t.num_processes
        if t.global_batch_size % per_step:
            raise ValueError(
                f"train.global_batch_size ({t.global_batch_size}) must be a multiple of "
                f"train.micro_batch_size × train.num_processes ({per_step})"
            )
        return self


# --------------------------------------------------------------------------- loading
def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in importlib.resources.files("configs").iterdir()
                  if p.name.endswith(".yaml"))


def _read_yaml(name_or_path: str) -> tuple[dict[str, Any], str]:
    path = Path(name_or_path)
    if not path.exists() and "/" not in name_or_path and not name_or_path.endswith(".yaml"):
        resource = importlib.resources.files("configs") / f"{name_or_path}.yaml"
        if not resource.is_file():
            raise ConfigError(f"no config file or preset named {name_or_path!r}; presets: {preset_names()}")
        return parse_yaml(resource.read_text(), f"preset {name_or_path!r}") or {}, f"preset {name_or_path!r}"
    if not path.is_file():
        raise ConfigError(f"config file {name_or_path!r} does not exist")
    data = parse_yaml(read_config_file(path), str(path)) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name_or_path}: the top level must be a mapping, got {type(data).__name__}")
    return data, str(path)


def _read_text(text: str) -> dict[str, Any]:
    """JSON (one line, as components pass it: read as JSON, since YAML 1.1 reads ``3e-05`` as a
    string) or YAML text → the config mapping."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = parse_yaml(text, "config text") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config text: the top level must be a mapping, got {type(data).__name__}")
    return data


def _apply_override(data: dict[str, Any], override: str) -> None:
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {override!r}: expected key.path=value")
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {override!r}: {part!r} is not a section")
    node[leaf] = parse_yaml(raw, f"--set {key}")  # "0.1" → float, "true" → bool, "[a, b]" → list


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def _explain(err: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(DamoConfig, e["loc"]))
            lines.append(f"  unknown key {key!r}; allowed here: {allowed}")
        else:
            lines.append(f"  {key}: {e['msg']} (got {repr(e.get('input'))[:200]})")
    return "\n".join(lines)


def load_config(name_or_path: str | Mapping[str, Any] | None = None,
                overrides: list[str] | tuple[str, ...] = (), *, text: str | None = None) -> DamoConfig:
    """Load a preset name or YAML path (None → all defaults), a mapping, or ``text`` (YAML or JSON,
    what a KFP component receives); apply ``key=value`` overrides; validate."""
    if text is not None:
        data, source = _read_text(text), "config text"
    elif isinstance(name_or_path, Mapping):
        data, source = copy.deepcopy(dict(name_or_path)), "config mapping"
    else:
        data, source = _read_yaml(name_or_path) if name_or_path else ({}, "defaults")
    for override in overrides:
        _apply_override(data, override)
    if overrides:
        source += " with --set " + " ".join(overrides)
    try:
        return DamoConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_explain(err, source)) from None


def to_yaml(config: DamoConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def save_resolved(config: DamoConfig, out_dir: str | Path) -> Path:
    """Write the resolved config as ``config.yaml`` in ``out_dir`` (created if missing)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.yaml"
    path.write_text(to_yaml(config))
    return path
