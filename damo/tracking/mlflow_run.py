"""The MLflow :class:`~damo.tracking.Tracker`: one MLflow run per step, nested under the pipeline run.

It talks to the server through an explicit client (:func:`damo.tracking.client.client`; no fluent
global "active run"), so several steps in one process, or threads, never mix their runs. Design and
environment variables: see :mod:`damo.tracking`. Credentials are read by MLflow itself from
``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``; this module never sees or logs them.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from damo.config import DamoConfig, to_yaml
from damo.flat import flatten
from damo.tracking.client import client, experiment_id
from damo.tracking.trackers import ClosingTracker

log = logging.getLogger("damo.tracking")

PARENT_TAG = "mlflow.parentRunId"
# MLflow's own limit on a param value's length (mlflow.utils.validation.MAX_PARAM_VAL_LENGTH).
MAX_PARAM_LENGTH = 6000
_USERINFO = re.compile(r"(\w+://)[^/@\s]+@")


def redact(text: str) -> str:
    """``scheme://user:pass@host`` → ``scheme://***@host``: a URI with inline credentials never
    reaches a log line or a param."""
    return _USERINFO.sub(r"\1***@", text)


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = redact(text)
    if len(text) > MAX_PARAM_LENGTH:
        raise ValueError(f"param value longer than MLflow's {MAX_PARAM_LENGTH} characters: {text[:80]}...")
    return text


class MlflowTracker(ClosingTracker):
    """One step's MLflow run; ``parent_run_id`` makes it a nested run of the pipeline run."""

    def __init__(self, uri: str, experiment: str, step: str, parent_run_id: str | None = None):
        self.client = client(uri)
        self.step = step
        self.parent_run_id = parent_run_id
        tags = {"mlflow.runName": step, "damo.step": step}
        if parent_run_id:
            exp_id = str(self.client.get_run(parent_run_id).info.experiment_id)
            tags[PARENT_TAG] = parent_run_id
        else:
            exp_id = experiment_id(self.client, experiment)
        run = self.client.create_run(exp_id, run_name=step, tags=tags)
        self.mlflow_run_id: str = run.info.run_id
        self.run_id: str | None = self.mlflow_run_id
        self.artifact_uri: str = run.info.artifact_uri
        self._closed = False
        self._params: dict[str, str] = {}
        log.info("MLflow run %s (%s) at %s%s", self.mlflow_run_id, step, redact(uri),
                 f", nested in {parent_run_id}" if parent_run_id else "")

    def log_config(self, config: DamoConfig) -> None:
        """The resolved config as params (flattened keys) and as the artifact ``config.yaml``."""
        self.log_params(flatten(config.model_dump(mode="json")))
        self.client.log_text(self.mlflow_run_id, to_yaml(config), "config.yaml")

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params; a key already logged (e.g. from the resolved config) keeps its first value,
        since MLflow refuses to change a param (a differing value is reported, not raised)."""
        from mlflow.entities import Param

        new: dict[str, str] = {}
        for key, value in params.items():
            text, old = _param_value(value), self._params.get(str(key))
            if old is None:
                new[str(key)] = text
            elif old != text:
                log.warning("param %s already logged as %r in run %s; %r not logged", key, old,
                            self.mlflow_run_id, text)
        if new:
            self.client.log_batch(self.mlflow_run_id, params=[Param(k, v) for k, v in new.items()])
            self._params |= new

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        own = [Metric(str(k), float(v), now, step or 0) for k, v in metrics.items()]
        self.client.log_batch(self.mlflow_run_id, metrics=own)
        if self.parent_run_id:
            rolled = [Metric(f"{self.step}/{m.key}", m.value, now, m.step) for m in own]
            self.client.log_batch(self.parent_run_id, metrics=rolled)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.mlflow_run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.mlflow_run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.mlflow_run_id, text, artifact_file)

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(artifact_file).name
            path.write_text(json.dumps(data, indent=2, default=str))
            parent = str(Path(artifact_file).parent)
            self.client.log_artifact(self.mlflow_run_id, str(path), None if parent == "." else parent)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        run_tags = [RunTag(str(k), redact(str(v))) for k, v in tags.items()]
        self.client.log_batch(self.mlflow_run_id, tags=run_tags)

    def close(self, status: str = "FINISHED") -> None:
        if not self._closed:
            self.client.set_terminated(self.mlflow_run_id, status)
            self._closed = True
