"""Every config schema of damo, in one place: the only home of defaults.

A config is a YAML file (or a preset name from ``configs/``) plus ``--set key.path=value``
overrides. It is validated on load: unknown keys are refused with the key, the file and the allowed
keys named; types and ranges are checked. Every step saves the resolved config next to its outputs
(:func:`save_resolved`), so an output folder always says how it was made.

Sections map one-to-one to steps (``ingest``, ``score``, ...); ``seed`` and ``tracking`` are shared.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key and the file."""


class Section(BaseModel):
    """Base of every section: unknown keys are refused, assignments re-validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- tiny world
class TinyWorldConfig(Section):
    """The offline stand-in world: synthetic pairs, a tiny LLaVA policy, a tiny CLIP."""

    num_pairs: int = Field(3000, ge=16)
    validation_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    image_size: int = Field(48, ge=16)
    # SFT captions mention an absent object this often: the hallucination prior DPO must remove.
    caption_noise: float = Field(0.4, ge=0.0, le=1.0)
    sft_steps: int = Field(300, ge=0)
    sft_batch_size: int = Field(16, ge=1)
    sft_learning_rate: float = Field(3e-3, gt=0)
    clip_steps: int = Field(300, ge=0)
    clip_batch_size: int = Field(64, ge=2)
    clip_learning_rate: float = Field(2e-3, gt=0)
    eval_images: int = Field(128, ge=1)


# --------------------------------------------------------------------------- ingest
class IngestConfig(Section):
    """Raw preference data → the preference dataset (DESIGN.md contract)."""

    format: Literal["auto", "rlaif_v", "dama_json", "hf_datasets"] = "auto"
    image_folder: str | None = None
    validation_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    split_seed: int = 0
    shard_rows: int = Field(2048, ge=1)
    max_image_pixels: int = Field(89_478_485, ge=1)  # PIL's own decompression-bomb limit
    dedupe: bool = True


# --------------------------------------------------------------------------- score
class ScoreConfig(Section):
    """CLIP hardness (DAMA.md §1)."""

    clip_model: str = "ViT-L-14-336"
    clip_pretrained: str | None = "openai"  # an open_clip tag, a local file or s3:// URI
    score: Literal["softmax", "cosine"] = "softmax"
    splitter: Literal["rule"] = "rule"
    batch_size: int = Field(32, ge=1)
    num_workers: int = Field(2, ge=0)


# --------------------------------------------------------------------------- reference
class ReferenceConfig(Section):
    """Reference (SFT) log-probs stored as dataset columns."""

    batch_size: int = Field(8, ge=1)
    precision: Literal["auto", "bf16", "fp32"] = "auto"


# --------------------------------------------------------------------------- train
class LossConfig(Section):
    """The DAMA loss (DAMA.md §2–3); ``arm`` picks the ablation."""

    arm: Literal["dpo", "data", "model", "dama", "beta_dpo"] = "dama"
    beta: float = Field(0.1, gt=0)
    keep_ratio: float = Field(0.8, gt=0.0, le=1.0)
    gamma: float = Field(0.9, ge=0.0, lt=1.0)
    beta_min: float = Field(1e-3, ge=0.0)
    # α_M: mean of σ(R_kept)/σ(R̄) (the authors' code) or σ(mean R_kept)/σ(R̄) (Algorithm 1).
    model_factor: Literal["mean_sigmoid", "sigmoid_mean"] = "mean_sigmoid"
    # Keep-set weight: unit-variance Gaussian (default) or scaled by the running std (β-DPO).
    keep_weight: Literal["unit", "running_std"] = "unit"
    beta_dpo_alpha: float = Field(0.6, ge=0.0)  # β-DPO's `a`
    # δ̄ pinned by the user; None → the dataset's computed delta_mean from the manifest.
    delta_mean: float | None = None


class LoraConfig(Section):
    enabled: bool = False
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: str = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"


class TrainConfig(Section):
    loss: LossConfig = Field(default_factory=LossConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    epochs: float = Field(4, gt=0)
    max_steps: int | None = Field(None, ge=1)
    learning_rate: float = Field(5e-7, gt=0)
    lr_schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    global_batch_size: int = Field(16, ge=1)
    micro_batch_size: int = Field(4, ge=1)
    zero_stage: Literal[0, 1, 2, 3] = 3
    num_processes: int = Field(1, ge=1)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    gradient_checkpointing: bool = True
    freeze_vision_tower: bool = True
    shuffle: bool = True  # False reads pairs in file order, as the authors' script does
    reference: Literal["precomputed", "on_the_fly"] = "precomputed"
    logging_steps: int = Field(1, ge=1)
    save_steps: int = Field(200, ge=1)
    max_grad_norm: float = Field(1.0, gt=0)


# --------------------------------------------------------------------------- evaluate
class JudgeConfig(Section):
    """An OpenAI-compatible judge; the key comes from the environment variable named here."""

    base_url: str | None = None
    model: str | None = None
    api_key_env: str = "DAMO_JUDGE_API_KEY"
    max_retries: int = Field(4, ge=0)
    timeout_s: float = Field(60.0, gt=0)


class EvaluateConfig(Section):
    benchmarks: list[str] = Field(default_factory=lambda: ["tiny_world"])
    data: dict[str, str] = Field(default_factory=dict)  # benchmark → local or s3:// path
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int = Field(128, ge=1)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)


# --------------------------------------------------------------------------- register / stack
class RegisterConfig(Section):
    model_name: str = "damo-aligned"
    # metric → "min" or "max": the promotion gate against the current champion.
    gate: dict[str, Literal["min", "max"]] = Field(default_factory=dict)


class TrackingConfig(Section):
    """MLflow. The URI may also come from MLFLOW_TRACKING_URI; credentials only from the env."""

    uri: str | None = None
    experiment: str = "damo"


class StackConfig(Section):
    state_dir: str = ".damo/stack"
    host: str = "127.0.0.1"
    s3_port: int = Field(18333, ge=1, le=65535)
    mlflow_port: int = Field(15000, ge=1, le=65535)
    bucket: str = "damo"


class PipelineConfig(Section):
    """The whole run: where the data and base model come from, where outputs go."""

    source: str | None = None  # None → the tiny world's dataset
    base_model: str | None = None  # None → the tiny world's policy
    tiny_world_dir: str = ".damo/tiny-world"
    output_dir: str = ".damo/runs"


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
        return yaml.safe_load(resource.read_text()) or {}, f"preset {name_or_path!r}"
    if not path.is_file():
        raise ConfigError(f"config file {name_or_path!r} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name_or_path}: the top level must be a mapping, got {type(data).__name__}")
    return data, str(path)


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
    node[leaf] = yaml.safe_load(raw)  # "0.1" → float, "true" → bool, "[a, b]" → list


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
            lines.append(f"  {key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def load_config(name_or_path: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> DamoConfig:
    """Load a preset name or YAML path (None → all defaults), apply ``key=value`` overrides, validate."""
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
