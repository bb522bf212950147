"""``damo run``: the whole DAMA pipeline on this machine, through kfp.local.

``--runner subprocess`` (default) runs each task as a process of this environment; ``--runner
docker`` runs each in the pinned pipeline image through kfp.local's DockerRunner on the host network
(damo.container.run says what the containers see and as whom they run).

The embedded default: with no ``pipeline.source`` the tiny world is the data and base model (built
on first use), and with no tracking URI the local stack (SeaweedFS + MLflow) is started. Task output
goes to stderr; stdout carries only the one-line JSON summary. kfp is imported inside :func:`run`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from damo.cli.compile import add_image_argument
from damo.config import DamoConfig
from damo.steps.evaluate import EvaluateResult
from damo.steps.local_run import (
    StepFailed,
    failed_step,
    latest_run_dir,
    summary,
    with_absolute_paths,
)
from damo.steps.register import RegisterResult
from damo.tracking import pipeline_run

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", default=None,
                        help="where kfp.local writes the run's artifacts (default: pipeline.output_dir)")
    parser.add_argument("--runner", choices=sorted(RUNNERS), default="subprocess",
                        help="subprocess: tasks run in this environment; docker: in the pipeline image")
    add_image_argument(parser)


class _Tee(io.TextIOBase):
    """Task output to stderr (so stdout stays one JSON line) and kept for the failure message."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.lines = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        return self.lines.write(text)

    def flush(self) -> None:
        self.stream.flush()


def _tracking(config: DamoConfig) -> None:
    """No tracking URI configured → start (or reuse) the local stack; its endpoint and credentials
    go into this process's environment, which every kfp.local task subprocess inherits."""
    from damo.stack import use_local_stack_if_unset

    env = use_local_stack_if_unset(config)
    if env is not None:
        log.info("local stack: MLflow %s, object store %s", env.tracking_uri, env.s3_endpoint)


# A runner: (config, args) → the config it runs and a factory of the kfp.local runner, called once
# the stack's environment and the parent MLflow run are in this process's environment.
RunnerSetup = tuple[DamoConfig, Callable[[], Any]]


def _subprocess_runner(config: DamoConfig, args: argparse.Namespace) -> RunnerSetup:
    """Tasks as processes of this environment; the image is not used (a placeholder when unset)."""
    from kfp import local

    from components.steps import UNBOUND_IMAGE

    config.pipeline.image = config.pipeline.image or UNBOUND_IMAGE
    return config, lambda: local.SubprocessRunner(use_venv=False)


def _docker_runner(config: DamoConfig, args: argparse.Namespace) -> RunnerSetup:
    """Tasks in the pinned image (found locally by its RepoDigests after a push), host network."""
    from kfp import local

    from damo.container import run as container
    from damo.container.build import docker
    from damo.container.reference import with_image

    config = container.mounted_config(with_image(config, allow_unpinned=args.allow_unpinned_image))
    image = str(config.pipeline.image)
    image_user = docker("image", "inspect", "--format", "{{.Config.User}}", image)
    container.prepare_root(Path(config.pipeline.output_dir))
    log.info("docker runner: image %s, pipeline root %s", image, config.pipeline.output_dir)
    return config, lambda: local.DockerRunner(**container.container_run_args(image_user))


RUNNERS = {"subprocess": _subprocess_runner, "docker": _docker_runner}


def _execute(config: DamoConfig, runner: Callable[[], Any]) -> tuple[RegisterResult, EvaluateResult]:
    from kfp import local

    from components import steps
    from damo.steps.pipeline_io import config_text
    from pipelines import build_pipeline

    local.init(runner=runner(), pipeline_root=config.pipeline.output_dir)
    text, p = config_text(config), config.pipeline
    with warnings.catch_warnings():
        # Expected here: the cluster settings (resources, GPUs) and the container image do not apply
        # to kfp.local's subprocesses, which run in this environment.
        warnings.filterwarnings("ignore", message=r"Task '.*': settings .* have no effect",
                                category=UserWarning)
        warnings.filterwarnings("ignore", message=r"You may be attemping to run a task that uses custom",
                                category=RuntimeWarning)
        source, base_model = p.source, p.base_model
        if source is None or base_model is None:
            tiny_world = steps.with_image(steps.tiny_world, str(p.image))
            world = tiny_world(config=text, world_dir=p.tiny_world_dir).outputs
            source, base_model = source or world["data"], base_model or world["policy"]
        task = build_pipeline(config)(config=text, source=source, base_model=base_model)
    # the pipeline's outputs are the register and evaluate components' results, as JSON text
    return (RegisterResult.from_json(task.outputs["registered"]),
            EvaluateResult.from_json(task.outputs["evaluated"]))


def run(config: DamoConfig, args: argparse.Namespace) -> dict[str, Any] | int:
    config = with_absolute_paths(config, Path.cwd())
    if args.output_dir:
        config.pipeline.output_dir = str(Path(args.output_dir).resolve())
    # Retries are for a cluster's transient failures; kfp.local honours them with real back-off
    # sleeps, and on one machine a failing step fails again: stop at the first failure.
    config.pipeline.retries = 0
    config, runner = RUNNERS[args.runner](config, args)
    _tracking(config)
    tee = _Tee(sys.stderr)
    try:
        # One MLflow run for the pipeline run: every step's run nests under it (through the env).
        with contextlib.redirect_stdout(tee), pipeline_run(config, config.pipeline.name) as run_id:
            registered, evaluated = _execute(config, runner)
    except RuntimeError as err:  # kfp.local: "Pipeline ... finished with status FAILURE. Inner task failed"
        failure = err if isinstance(err, StepFailed) else failed_step(str(err), tee.lines.getvalue())
        sys.stderr.write(f"damo run: {failure}\n")
        return 1
    run_dir = latest_run_dir(Path(config.pipeline.output_dir), config.pipeline.name)
    return summary(registered, evaluated, run_id, run_dir)
