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
import os
from collections.abc import Iterator

from damo.config import DamoConfig
from damo.tracking.client import (
    PARENT_RUN_ENV,
    TrackingError,
    client,
    parent_run_id,
    require_uri,
    tracking_uri,
)
from damo.tracking.trackers import ClosingTracker, TerminalTracker, Tracker

__all__ = ["PARENT_RUN_ENV", "ClosingTracker", "TerminalTracker", "Tracker", "TrackingError", "client",
           "end_pipeline_run", "open_tracker", "parent_run_id", "pipeline_run", "require_uri",
           "start_pipeline_run", "tracking_uri"]


def open_tracker(config: DamoConfig, step: str) -> Tracker:
    """A tracker for one step: an MLflow run (nested under the pipeline run if there is one) when a
    URI is configured, else the terminal."""
    uri = tracking_uri(config)
    if uri is None:
        return TerminalTracker()
    from damo.tracking.mlflow_run import MlflowTracker

    tracker = MlflowTracker(uri, config.tracking.experiment, step, parent_run_id=parent_run_id(config))
    if config.tracking.log_config:
        tracker.log_config(config)
    return tracker


def start_pipeline_run(config: DamoConfig, name: str) -> str:
    """Create the parent MLflow run of one pipeline run; returns its id (steps nest under it)."""
    uri = require_uri(config, "a pipeline run")
    from damo.tracking.mlflow_run import MlflowTracker

    tracker = MlflowTracker(uri, config.tracking.experiment, name, parent_run_id=None)
    tracker.set_tags({"damo.kind": "pipeline"})
    if config.tracking.log_config:
        tracker.log_config(config)
    return tracker.mlflow_run_id


def end_pipeline_run(config: DamoConfig, run_id: str, status: str = "FINISHED") -> None:
    uri = require_uri(config, "ending the pipeline run")
    from damo.tracking.client import terminate_run

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
