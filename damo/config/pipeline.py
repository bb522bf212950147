"""Config section ``pipeline``: how the Kubeflow pipeline is laid out (resources, GPU pool,
secrets, caching, retries, multi-node training)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from damo.config.base import Section


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
    # The non-root user and group every task's container runs as (the damo image's `damo` user). With
    # runAsNonRoot they make the task pods meet the restricted Pod Security Standard.
    run_as_user: int = Field(10001, ge=1)
    run_as_group: int = Field(10001, ge=1)
    # The image every component and TrainJob node runs, pinned by digest (name@sha256:…); None → the
    # one `damo image build` recorded in image_record (damo.container.reference).
    image: str | None = None
    image_record: str = ".damo/image.json"

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
