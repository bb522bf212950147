"""The one way to MLflow: the tracking URI resolved from the config, and the client for it.

The URI is ``config.tracking.uri``, else ``MLFLOW_TRACKING_URI``; credentials only from the
environment (``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``, read by MLflow itself). Steps,
the registry, model resolution and the pipeline run all reach MLflow through :func:`client`.
"""

from __future__ import annotations

import os
from typing import Any

from damo.config import DamoConfig
from damo.errors import DamoError

PARENT_RUN_ENV = "DAMO_MLFLOW_PARENT_RUN_ID"


class TrackingError(DamoError, RuntimeError):
    """No MLflow tracking URI where one is needed."""


def tracking_uri(config: DamoConfig) -> str | None:
    return config.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or None


def require_uri(config: DamoConfig, purpose: str) -> str:
    """The tracking URI, or a TrackingError saying that ``purpose`` needs one and how to get it."""
    uri = tracking_uri(config)
    if uri is None:
        raise TrackingError(f"{purpose} needs an MLflow tracking URI: set tracking.uri or "
                            "MLFLOW_TRACKING_URI, or start the local stack with `damo stack up`")
    return uri


def parent_run_id(config: DamoConfig) -> str | None:
    """The pipeline run's MLflow run id: the config field, else ``DAMO_MLFLOW_PARENT_RUN_ID``."""
    return config.tracking.parent_run_id or os.environ.get(PARENT_RUN_ENV) or None


def client(uri: str) -> Any:
    """An :class:`mlflow.MlflowClient` for tracking and the model registry at ``uri`` (no global state)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(client: Any, name: str) -> str:
    """The id of experiment ``name``, created if missing (a concurrent creation is tolerated)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name))
    except MlflowException:
        found = client.get_experiment_by_name(name)  # another step created it meanwhile
        if found is None:
            raise
        return str(found.experiment_id)


def terminate_run(uri: str, run_id: str, status: str = "FINISHED") -> None:
    client(uri).set_terminated(run_id, status)
