"""Config sections of the services: ``registry``, ``tracking``, ``stack``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from damo.config.base import Section


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
    # MLflow basic auth: an admin user with a generated password (state_dir/credentials.env). On by
    # default: without it any local user reads and writes runs, and through MLflow's artifact proxy
    # the bucket's mlflow/ prefix, around the store's credentials.
    auth: bool = True
    # Seconds a verified password stays cached in the (single) server worker; 0 → PBKDF2 on every
    # request. One worker means no stale entry survives a password change made through the API.
    auth_cache_ttl_s: int = Field(60, ge=0)
    start_timeout_s: float = Field(120.0, gt=0)
    stop_timeout_s: float = Field(30.0, gt=0)


# --------------------------------------------------------------------------- hub
class HubConfig(Section):
    """Hugging Face Hub ids (``org/name[@revision]``) wherever a model or CLIP is named (damo.hub)."""

    # The hub cache; None → huggingface_hub's default (HF_HUB_CACHE, else HF_HOME/hub). A cluster
    # mounts a shared volume and points this at it.
    cache_dir: str | None = None
    endpoint: str | None = None  # a mirror's URL; None → HF_ENDPOINT, else huggingface.co
    offline: bool = False  # read the cache only (HF_HUB_OFFLINE=1 does the same)
    # Kubernetes Secret whose key HF_TOKEN is mounted as that variable on the tasks that read models
    # (gated or private repos); None → no token (public repos, or HF_TOKEN set otherwise).
    token_secret: str | None = None
