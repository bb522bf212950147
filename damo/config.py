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

from damo.errors import DamoError


class ConfigError(DamoError, ValueError):
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
    max_shapes: int = Field(2, ge=1, le=3)  # shapes per image: 1..max_shapes
    # Share of rejected answers with a wrong colour/shape ("hard"); the rest add an absent object.
    hard_fraction: float = Field(0.5, ge=0.0, le=1.0)
    # SFT captions mention an absent object this often: the hallucination prior DPO must remove.
    caption_noise: float = Field(0.4, ge=0.0, le=1.0)
    # Share of TRAINING pairs with chosen and rejected swapped (recorded per pair as `swapped`);
    # validation pairs stay clean. The noisy world is where DAMA's per-pair β should beat DPO.
    label_noise: float = Field(0.0, ge=0.0, lt=0.5)
    # A pair is "hard" when the SFT policy prefers its true answer by less than this many nats
    # (log p(true) − log p(hallucinating)), or CLIP does not prefer it (damo.tinyworld.hardness).
    hard_margin: float = Field(1.0, ge=0.0)
    # The policy: a CLIP-style vision tower (image_size / patch_size)² patches + a small Llama.
    patch_size: int = Field(12, ge=2)
    vision_width: int = Field(48, ge=8)
    vision_layers: int = Field(2, ge=1)
    # Which vision hidden state feeds the projector (LLaVA uses -2; -1 uses every tiny layer).
    vision_feature_layer: int = Field(-1, lt=0)
    text_width: int = Field(96, ge=8)
    text_layers: int = Field(3, ge=1)
    attention_heads: int = Field(4, ge=1)
    # Measured (report.json): 1000 steps at 1e-3 reach ~40% exact greedy descriptions; 2000 add little,
    # rates of 2e-3 and up stall at the caption-format loss without learning to see.
    sft_steps: int = Field(1000, ge=0)
    sft_batch_size: int = Field(16, ge=1)
    sft_learning_rate: float = Field(1e-3, gt=0)
    # Both pre-trainings: linear warm-up over this share of the steps, then cosine decay to zero.
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0)
    # The CLIP: open_clip ViT + text transformer, trained with one hallucinated negative per image.
    clip_patch_size: int = Field(8, ge=2)
    clip_width: int = Field(64, ge=8)
    clip_layers: int = Field(2, ge=1)
    clip_embed_dim: int = Field(32, ge=4)
    clip_context_length: int = Field(16, ge=8)
    clip_steps: int = Field(400, ge=0)
    clip_batch_size: int = Field(64, ge=2)
    clip_learning_rate: float = Field(2e-3, gt=0)
    # Held-out benchmark images (not in the pairs); quality is measured on them.
    eval_images: int = Field(128, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    max_new_tokens: int = Field(16, ge=4)


# --------------------------------------------------------------------------- ingest
class IngestConfig(Section):
    """Raw preference data → the preference dataset (DESIGN.md contract)."""

    # Reader by name (damo.ingest.readers.READERS); "auto" picks one from the files found.
    format: Literal["auto", "rlaif_v", "dama_json", "hf_datasets"] = "auto"
    # Folder (local or s3://) of images that rows name by path (DAMA JSON; parquet/arrow rows without
    # bytes); relative → beside the data file; None → the JSON's own folder (parquet/arrow: none).
    image_folder: str | None = None
    # Share of pairs put in "validation", chosen by a seeded hash of the pair id (stable under reordering).
    validation_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    split_seed: int = 0
    # Splits of an HF DatasetDict source (e.g. ["test"]) whose rows all go to "validation"; the other
    # rows are split by validation_fraction. Every name must be a split of the source.
    validation_splits: list[str] = Field(default_factory=list)
    shard_rows: int = Field(2048, ge=1)
    read_batch_rows: int = Field(256, ge=1)  # rows read and validated at once: bounds memory
    workers: int = Field(2, ge=1)  # threads decoding images for validation
    max_image_pixels: int = Field(89_478_485, ge=1)  # PIL's own decompression-bomb limit
    dedupe: bool = True
    id_length: int = Field(16, ge=8, le=64)  # hex digits of the sha256 pair id kept


# --------------------------------------------------------------------------- score
class ScoreConfig(Section):
    """CLIP hardness (DAMA.md §1)."""

    # An open_clip model name, or a folder (local or s3://) in open_clip's hf-hub layout
    # (open_clip_config.json + open_clip_model.safetensors; then clip_pretrained must be null).
    clip_model: str = "ViT-L-14-336"
    clip_pretrained: str | None = "openai"  # an open_clip tag, a local file or s3:// URI
    # softmax: one softmax over the pair's chosen ∪ rejected sub-sentences (DAMA.md §1); cosine: raw cos.
    score: Literal["softmax", "cosine"] = "softmax"
    splitter: Literal["rule"] = "rule"  # damo.hardness.splitter.SPLITTERS
    batch_size: int = Field(32, ge=1)  # pairs per forward pass (their sub-sentences go in one text batch)
    # Sub-sentences per text-tower forward: sorted by length, each chunk cut to its longest text.
    text_batch_size: int = Field(256, ge=1)
    num_workers: int = Field(2, ge=0)  # DataLoader processes decoding images and splitting texts
    # Tower dtype (damo.device.inference_dtype): auto = fp16 on GPU, bf16 on CPUs with native bf16,
    # else fp32. The softmax and sums always run in fp32.
    precision: Literal["auto", "fp16", "bf16", "fp32"] = "auto"
    # Image and sub-sentence features kept for reuse across batches (each; 0: none). Pairs share
    # images and sentences; 100k rows of ViT-L-14's 768 dims in half precision are ~150 MB per cache.
    feature_cache: int = Field(100_000, ge=0)
    histogram_bins: int = Field(50, ge=2)


# --------------------------------------------------------------------------- reference
class ReferenceConfig(Section):
    """Reference (SFT) log-probs stored as dataset columns."""

    batch_size: int = Field(8, ge=1)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    # Response positions that get full-vocabulary logits at once (bounds logits memory).
    logps_chunk_tokens: int = Field(1024, ge=1)


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
    keep_checkpoints: int = Field(2, ge=1)  # older complete checkpoints are deleted
    max_grad_norm: float = Field(1.0, gt=0)
    # Response positions that get full-vocabulary logits at once (bounds logits memory).
    logps_chunk_tokens: int = Field(1024, ge=1)


# --------------------------------------------------------------------------- evaluate
class JudgeConfig(Section):
    """An OpenAI-compatible judge; the key comes from the environment variable named here.

    Unset ``base_url``/``model`` (or an unset key variable) → judged benchmarks are recorded as
    skipped, never scored. Each request is bounded (``timeout_s``, ``max_tokens``) and retried
    ``max_retries`` times on transient errors with exponential backoff from ``backoff_s``.
    """

    base_url: str | None = None
    model: str | None = None
    api_key_env: str = "DAMO_JUDGE_API_KEY"
    max_retries: int = Field(4, ge=0)
    timeout_s: float = Field(60.0, gt=0)
    backoff_s: float = Field(2.0, ge=0.0)
    max_backoff_s: float = Field(60.0, ge=0.0)
    max_tokens: int = Field(1024, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    # Files replacing the built-in judge prompts (e.g. the published ones, for comparable numbers):
    # MMHal a template with {image_content} {question} {gt_answer} {response}; LLaVA-Bench a
    # rule.json in LLaVA's format ({"llava_bench_<category>": {"prompt": ...}}).
    mmhal_prompt: str | None = None
    llava_bench_rule: str | None = None


class DecodingConfig(Section):
    """One decoding of a benchmark's prompts; its ``name`` tags the answers file and the metrics."""

    name: str = "greedy"
    do_sample: bool = False
    num_beams: int = Field(1, ge=1)
    temperature: float = Field(1.0, gt=0)  # used only when do_sample (temperature 0 = greedy/beam)
    top_p: float = Field(1.0, gt=0, le=1.0)
    max_new_tokens: int | None = Field(None, ge=1)  # None → evaluate.max_new_tokens
    # Answers per prompt (sampling only): rates are then over all samples, so a small benchmark
    # (the tiny world's held-out images) gives a steadier sampled estimate.
    samples: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _samples_need_sampling(self) -> DecodingConfig:
        if self.samples > 1 and not self.do_sample:
            raise ValueError(f"decoding {self.name!r}: samples > 1 needs do_sample (greedy repeats itself)")
        return self


def _default_decodings() -> dict[str, list[DecodingConfig]]:
    greedy = DecodingConfig()
    return {
        # RLAIF-V's LLaVA-1.5 Object HalBench convention: 3 beams, temperature 0.
        "object_halbench": [DecodingConfig(name="beam3", num_beams=3)],
        # Sampling shows the SFT policy's hallucination prior that greedy decoding hides
        # (notes/tiny-world-probe.md); greedy is reported beside it. The first one is primary.
        "tiny_world": [DecodingConfig(name="sampled", do_sample=True, temperature=1.0, samples=4), greedy],
    }


class EvaluateConfig(Section):
    """Benchmarks: tiny_world, object_halbench, amber, pope, mmhal_bench, llava_bench.

    ``data`` keys: each benchmark's path, plus ``coco_annotations`` (folder of COCO 2014
    instances/captions JSON), ``coco_synonyms`` (RLAIF-V's synonyms_refine.txt), ``coco_images``
    (POPE's COCO val2014 images) and ``amber_images``. Paths are local or s3://.
    """

    benchmarks: list[str] = Field(default_factory=lambda: ["tiny_world"])
    data: dict[str, str] = Field(default_factory=dict)  # benchmark → local or s3:// path
    data_cache: str = ".damo/cache/eval-data"  # where s3:// data is fetched to (once per URI)
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int = Field(128, ge=1)
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # of the generating model (damo.device)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    # benchmark → its decodings (first = primary); benchmarks not named here decode greedily.
    decoding: dict[str, list[DecodingConfig]] = Field(default_factory=_default_decodings)
    limit: int | None = Field(None, ge=1)  # first N prompts per benchmark (smoke runs)
    # Appended (after a newline) to yes/no questions (POPE, AMBER discriminative), as LLaVA does.
    short_answer_prompt: str = "Answer the question using a single word or phrase."
    # AMBER yes/no: "exact" = the official scorer (response must equal "Yes"/"No");
    # "first_word" = the first word, case and punctuation ignored.
    amber_answer_parse: Literal["exact", "first_word"] = "first_word"
    amber_query_file: str = "query/query_all.json"  # relative to data["amber"]
    pope_splits: list[str] = Field(default_factory=lambda: ["random", "popular", "adversarial"])


# --------------------------------------------------------------------------- register / stack
class RegisterConfig(Section):
    """``damo register`` / ``damo pull``: model versions in MLflow, files in S3."""

    model_name: str = "damo-aligned"
    # metric → "min" or "max": the promotion gate against the current champion. A metric name is
    # the flattened key of the evaluate step's metrics.json ("tiny_world.chair_s"). Empty → the
    # `champion` alias is never moved automatically.
    gate: dict[str, Literal["min", "max"]] = Field(default_factory=dict)
    # The quality guard: metric → the least value a candidate must reach to be promoted at all
    # (e.g. tiny_world.well_formed: 0.9), champion or not. A missing metric refuses promotion.
    gate_floor: dict[str, float] = Field(default_factory=dict)
    # s3:// prefix that receives model files; None → s3://<stack.bucket>/models.
    store_uri: str | None = None
    # S3 multipart: parts of this size (raised by boto3 when a file would need > 10 000 parts),
    # uploaded by this many threads; files below the threshold go in one PUT.
    multipart_threshold_mb: int = Field(64, ge=5)
    multipart_chunk_mb: int = Field(64, ge=5)
    max_concurrency: int = Field(4, ge=1)
    # `damo prune`: a RUNNING register run younger than this may still be uploading; its files stay.
    prune_grace_hours: float = Field(24.0, ge=0.0)


class TrackingConfig(Section):
    """MLflow. The URI may also come from MLFLOW_TRACKING_URI; credentials only from the env."""

    uri: str | None = None
    experiment: str = "damo"
    # The pipeline run's MLflow run: each step becomes a nested run under it. None → env
    # DAMO_MLFLOW_PARENT_RUN_ID, else each step is a top-level run.
    parent_run_id: str | None = None
    # Log the resolved config of each step as params (flattened keys) and as config.yaml.
    log_config: bool = True


class StackConfig(Section):
    """``damo stack``: the local SeaweedFS + MLflow server (state, logs, credentials in state_dir)."""

    state_dir: str = ".damo/stack"
    host: str = "127.0.0.1"
    # 0 → a free port is chosen at the first `up` and kept in state_dir/stack.json.
    s3_port: int = Field(18333, ge=0, le=65535)
    mlflow_port: int = Field(15000, ge=0, le=65535)
    bucket: str = "damo"
    # MLflow basic auth: an admin user with a generated password (state_dir/credentials.env).
    auth: bool = False
    # Seconds a verified password stays cached in the (single) server worker; 0 → PBKDF2 on every
    # request. One worker means no stale entry survives a password change made through the API.
    auth_cache_ttl_s: int = Field(60, ge=0)
    start_timeout_s: float = Field(120.0, gt=0)
    stop_timeout_s: float = Field(30.0, gt=0)


class StepResources(Section):
    """Kubernetes resources of one pipeline task (Kubernetes quantity strings)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, coerce_numbers_to_str=True)  # cpu=16

    cpu: str = "2"
    memory: str = "8Gi"
    gpus: int = Field(0, ge=0)  # fixed GPU count; the train step takes `train.num_processes`


class TrainJobConfig(Section):
    """Multi-node training: a Kubeflow Trainer TrainJob running `damo train` (pipeline.num_nodes > 1)."""

    runtime: str = "torch-distributed"  # a ClusterTrainingRuntime with torchrun
    # A ReadWriteMany claim shared by the pipeline's train task and every TrainJob node.
    workspace_pvc: str = "damo-workspace"
    workspace_path: str = "/workspace"
    poll_seconds: float = Field(30.0, gt=0)
    timeout_seconds: float = Field(7 * 24 * 3600.0, gt=0)


def _default_resources() -> dict[str, StepResources]:
    return {
        "ingest": StepResources(cpu="4", memory="16Gi"),
        "score": StepResources(cpu="8", memory="32Gi", gpus=1),
        "reference": StepResources(cpu="8", memory="64Gi", gpus=1),
        "configure": StepResources(cpu="500m", memory="512Mi"),
        "train": StepResources(cpu="32", memory="256Gi"),
        "evaluate": StepResources(cpu="8", memory="64Gi", gpus=1),
        "register": StepResources(cpu="2", memory="8Gi"),
    }


class PipelineConfig(Section):
    """The whole run: where the data and base model come from, where outputs go, and how the
    Kubeflow pipeline is laid out on a cluster (GPU pool, secrets, caching, retries)."""

    source: str | None = None  # None → the tiny world's dataset
    base_model: str | None = None  # None → the tiny world's policy
    tiny_world_dir: str = ".damo/tiny-world"
    output_dir: str = ".damo/runs"
    name: str = "damo-dama"  # the KFP pipeline name
    pipeline_root: str | None = None  # e.g. s3://bucket/kfp; None → the KFP installation's default
    # The GPU node pool of score/reference/train/evaluate.
    gpu_resource: str = "nvidia.com/gpu"
    gpu_node_selector: dict[str, str] = Field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    gpu_tolerations: list[dict[str, str]] = Field(default_factory=lambda: [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    shm_size: str = "16Gi"  # /dev/shm for NCCL and DataLoader workers (a Memory emptyDir)
    resources: dict[str, StepResources] = Field(default_factory=_default_resources)
    # Kubernetes Secrets whose keys are the environment variable names the steps read.
    s3_secret: str = "damo-s3-credentials"  # AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL
    mlflow_secret: str = "damo-mlflow-credentials"  # MLFLOW_TRACKING_USERNAME/PASSWORD/URI
    cache_steps: list[str] = Field(default_factory=lambda: ["ingest", "score", "reference"])
    retries: int = Field(2, ge=0)  # for transient failures (node preemption, object-store hiccups)
    retry_backoff: str = "120s"
    num_nodes: int = Field(1, ge=1)  # > 1 → the train step runs a TrainJob across nodes
    trainjob: TrainJobConfig = Field(default_factory=TrainJobConfig)
    kfp_experiment: str = "damo"
    service_account: str = "damo-pipeline"

    @model_validator(mode="before")
    @classmethod
    def _merge_resources(cls, data: Any) -> Any:
        """``resources`` entries override the defaults per step and field (``--set
        pipeline.resources.train.cpu=16`` keeps every other default); unknown steps are refused."""
        if not isinstance(data, dict) or not isinstance(data.get("resources"), dict):
            return data
        defaults = _default_resources()
        unknown = sorted(set(data["resources"]) - set(defaults))
        if unknown:
            raise ValueError(f"pipeline.resources: unknown steps {unknown}; steps: {sorted(defaults)}")
        merged: dict[str, Any] = dict(defaults)
        for step, given in data["resources"].items():
            # a validated entry (re-validation on assignment) stays; a mapping fills in the defaults and
            # is validated by the field itself, so errors keep their path (pipeline.resources.<step>...)
            merged[step] = given if isinstance(given, BaseModel) else {**defaults[step].model_dump(), **given}
        return {**data, "resources": merged}


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
