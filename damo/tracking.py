"""Where steps report params, metrics and artifacts: MLflow when a tracking URI is set, else the terminal.

Steps call :func:`open_tracker` once and use the returned :class:`Tracker` (best as a context
manager: an exception closes the run as FAILED); they never import mlflow themselves. The URI comes
from ``config.tracking.uri`` or ``MLFLOW_TRACKING_URI``; credentials only from the environment
(``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``), never from a config.

One pipeline run = one MLflow run
---------------------------------
A pipeline run opens a *parent* run (:func:`start_pipeline_run`, or the :func:`pipeline_run` context
manager) and hands its id to the steps, which may run in other processes or pods:

- locally (``damo run`` → kfp.local subprocesses) through the environment variable
  ``DAMO_MLFLOW_PARENT_RUN_ID``, which :func:`pipeline_run` sets and subprocesses inherit;
- on a cluster through the config field ``tracking.parent_run_id`` (``--set
  tracking.parent_run_id=<id>`` in the component's arguments), which wins over the variable.

Each step's :func:`open_tracker` then creates a *nested* run (tag ``mlflow.parentRunId``) named
after the step, in the parent's experiment. The step's run holds its resolved config (params with
flattened keys such as ``train.loss.beta``, and ``config.yaml``), its params, metrics and artifacts;
every metric is also copied to the parent as ``<step>/<metric>``, so the pipeline run compares
across runs in the MLflow UI. Without a parent, a step's run is top-level in
``tracking.experiment``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from damo.config import DamoConfig

log = logging.getLogger(__name__)

PARENT_RUN_ENV = "DAMO_MLFLOW_PARENT_RUN_ID"


class Tracker(Protocol):
    run_id: str | None

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...
    def close(self, status: str = "FINISHED") -> None: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class ClosingTracker(ABC):
    """``with open_tracker(...) as t:`` closes the run FINISHED, or FAILED when the body raises."""

    @abstractmethod
    def close(self, status: str = "FINISHED") -> None: ...

    def __enter__(self) -> Any:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close("FAILED" if kind is not None else "FINISHED")


class TerminalTracker(ClosingTracker):
    """No tracking server: metrics go to the log (the progress bar shows the rest)."""

    run_id: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        log.debug("params: %s", dict(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        log.info("step %s: %s", step, shown)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        log.debug("artifact (not uploaded, no tracking URI): %s", path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        log.debug("tags: %s", dict(tags))

    def close(self, status: str = "FINISHED") -> None:
        return None


def tracking_uri(config: DamoConfig) -> str | None:
    return config.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or None


def parent_run_id(config: DamoConfig) -> str | None:
    """The pipeline run's MLflow run id: the config field, else ``DAMO_MLFLOW_PARENT_RUN_ID``."""
    return config.tracking.parent_run_id or os.environ.get(PARENT_RUN_ENV) or None


def open_tracker(config: DamoConfig, step: str) -> Tracker:
    """A tracker for one step: an MLflow run (nested under the pipeline run if there is one) when a
    URI is configured, else the terminal."""
    uri = tracking_uri(config)
    if uri is None:
        return TerminalTracker()
    from damo.mlflow_tracker import MlflowTracker

    tracker = MlflowTracker(uri, config.tracking.experiment, step, parent_run_id=parent_run_id(config))
    if config.tracking.log_config:
        tracker.log_config(config)
    return tracker


def start_pipeline_run(config: DamoConfig, name: str) -> str:
    """Create the parent MLflow run of one pipeline run; returns its id (steps nest under it)."""
    uri = tracking_uri(config)
    if uri is None:
        raise RuntimeError("a pipeline run needs an MLflow tracking URI: set tracking.uri or "
                           "MLFLOW_TRACKING_URI (or start the local stack: `damo stack up`)")
    from damo.mlflow_tracker import MlflowTracker

    tracker = MlflowTracker(uri, config.tracking.experiment, name, parent_run_id=None)
    tracker.set_tags({"damo.kind": "pipeline"})
    if config.tracking.log_config:
        tracker.log_config(config)
    return tracker.mlflow_run_id


def end_pipeline_run(config: DamoConfig, run_id: str, status: str = "FINISHED") -> None:
    uri = tracking_uri(config)
    if uri is None:
        raise RuntimeError("no MLflow tracking URI to end the pipeline run on")
    from damo.mlflow_tracker import terminate_run

    terminate_run(uri, run_id, status)


@contextlib.contextmanager
def pipeline_run(config: DamoConfig, name: str) -> Iterator[str]:
    """Open the parent run and export ``DAMO_MLFLOW_PARENT_RUN_ID`` for the steps run inside; the
    run ends FINISHED, or FAILED when the body raises."""
    run_id = start_pipeline_run(config, name)
    previous = os.environ.get(PARENT_RUN_ENV)
    os.environ[PARENT_RUN_ENV] = run_id
    status = "FAILED"
    try:
        yield run_id
        status = "FINISHED"
    finally:
        if previous is None:
            os.environ.pop(PARENT_RUN_ENV, None)
        else:
            os.environ[PARENT_RUN_ENV] = previous
        end_pipeline_run(config, run_id, status)
