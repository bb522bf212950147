"""``damo run --runner docker``: what kfp.local's DockerRunner needs, decided without kfp.

Every task runs in the pinned pipeline image on the host network (the local stack listens on
127.0.0.1). kfp.local bind-mounts only the pipeline root (``pipeline.output_dir``) into a container,
at the same path, so every local path the run reads or writes must lie under it: the tiny world is
built in ``<output_dir>/tiny-world`` (``score.clip_model`` follows it when it points into the tiny
world), and any other local path outside the root is refused.

Who runs inside: the container's group is always 0 and the image keeps every folder it writes
owned by group 0 with the owner's rights (the arbitrary-uid convention of OpenShift's restricted
policy). A non-root host user runs the containers as its own uid, so the outputs in the pipeline
root stay its own; a root host runs them as the image's non-root user (never root, as on a
cluster) and makes the pipeline root group-0 writable (root's folders are group 0 already).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

from damo.config import ConfigError, DamoConfig

log = logging.getLogger(__name__)

# Environment the containers get from this process: the stack's endpoints and credentials (set by
# `damo stack`/the CI, never written anywhere), the parent MLflow run, offline and device switches.
FORWARD_PREFIXES = ("MLFLOW_", "AWS_", "DAMO_")
FORWARD_NAMES = ("DS_ACCELERATOR", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DO_NOT_TRACK")
CONTAINER_GROUP = "0"
TINY_WORLD_FOLDER = "tiny-world"
MIN_ROOT_DEPTH = 2  # a root this close to / would hide the image's own folders (/opt, /home, ...)


def forwarded_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if k.startswith(FORWARD_PREFIXES) or k in FORWARD_NAMES}


def _under(path: str, root: Path) -> bool:
    return Path(path).resolve().is_relative_to(root)


def mounted_config(config: DamoConfig) -> DamoConfig:
    """The config with the tiny world inside the pipeline root; other local paths outside it refused.
    ``config`` has absolute paths already (damo.steps.local_run.with_absolute_paths)."""
    p, root = config.pipeline, Path(config.pipeline.output_dir).resolve()
    if len(root.parts) <= MIN_ROOT_DEPTH:  # parts of /a/b: "/", "a", "b"
        raise ConfigError(f"pipeline.output_dir {root} is too close to / to be bind-mounted into containers")
    resolved = config.model_copy(deep=True)
    uses_world = p.source is None or p.base_model is None
    if uses_world and not _under(p.tiny_world_dir, root):
        world = str(root / TINY_WORLD_FOLDER)
        log.info("--runner docker: the tiny world lives in %s (containers see only the pipeline root)", world)
        if config.score.clip_model.startswith(p.tiny_world_dir.rstrip("/") + "/"):
            resolved.score.clip_model = world + config.score.clip_model[len(p.tiny_world_dir.rstrip("/")):]
        resolved.pipeline.tiny_world_dir = world
    outside = [f"{key} {value}" for key, value in _local_inputs(resolved).items() if not _under(value, root)]
    if outside:
        raise ConfigError(f"--runner docker: containers see only the pipeline root {root} (mounted at the "
                          f"same path), but {', '.join(outside)} lie outside it: move them under it or set "
                          "pipeline.output_dir to a folder that holds them")
    return resolved


def _local_inputs(config: DamoConfig) -> dict[str, str]:
    p = config.pipeline
    found = {"pipeline.source": p.source, "pipeline.base_model": p.base_model}
    if p.source is None or p.base_model is None:
        found["pipeline.tiny_world_dir"] = p.tiny_world_dir
    if config.score.clip_pretrained is None and os.path.isabs(config.score.clip_model):
        found["score.clip_model"] = config.score.clip_model
    return {k: v for k, v in found.items() if v is not None and os.path.isabs(v)}


def container_user(image_user: str, host_uid: int | None = None) -> str:
    """``uid:0``: the host user's uid, or the image's own (non-root) uid when the host user is root."""
    uid = os.getuid() if host_uid is None else host_uid
    if uid != 0:
        return f"{uid}:{CONTAINER_GROUP}"
    image_uid = image_user.split(":")[0]
    if image_uid in ("", "0", "root"):
        shown = image_user or "root"
        raise ConfigError(f"the pipeline image runs as {shown!r}: it must name a non-root USER")
    return f"{image_uid}:{CONTAINER_GROUP}"


def prepare_root(root: Path) -> None:
    """Create the pipeline root; a root host makes it writable by the containers' group (0).
    Everything below it is created by the containers themselves (the host writes only its cache)."""
    root.mkdir(parents=True, exist_ok=True)
    if os.getuid() == 0:
        root.chmod(root.stat().st_mode | stat.S_IRWXG)


def container_run_args(image_user: str) -> dict[str, Any]:
    """Keyword arguments for kfp.local.DockerRunner (they go to docker's containers.run)."""
    return {"network_mode": "host", "user": container_user(image_user), "environment": forwarded_env()}
