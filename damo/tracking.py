"""Where steps report params, metrics and artifacts: MLflow when a tracking URI is set, else the terminal.

Steps call :func:`open_tracker` once and use the returned :class:`Tracker`; they never import mlflow
themselves. The URI comes from ``config.tracking.uri`` or ``MLFLOW_TRACKING_URI``; credentials only
from the environment (``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from damo.config import DamoConfig

log = logging.getLogger(__name__)


class Tracker(Protocol):
    run_id: str | None

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...
    def close(self, status: str = "FINISHED") -> None: ...


class TerminalTracker:
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


def open_tracker(config: DamoConfig, step: str) -> Tracker:
    """A tracker for one step: an MLflow run when a URI is configured, else the terminal."""
    uri = tracking_uri(config)
    if uri is None:
        return TerminalTracker()
    from damo.mlflow_tracker import MlflowTracker

    return MlflowTracker(uri, config.tracking.experiment, step)
