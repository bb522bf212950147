"""Pruning model uploads that no model version refers to.

Every registration uploads under ``<registry.store_uri>/<name>/<register run id>/`` before it creates
the version (:mod:`damo.registry`). When the store goes away mid-upload the register step cannot
remove what it sent, and a version deleted in MLflow leaves its files behind: both are *orphans*.
A prefix is an orphan when no version of the model has it as its source and its register run is not
a registration still in progress: a run that is RUNNING and started less than
``registry.prune_grace_hours`` ago is left alone (a run killed outright stays RUNNING in MLflow, so
after the grace period it counts as dead). Unfinished multipart uploads count as files.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from damo import storage
from damo.config import DamoConfig
from damo.registry import RegistryError, require_uri, store_uri
from damo.tracking import client as tracking_client

log = logging.getLogger(__name__)


def _uploads_by_prefix(root: str) -> dict[str, int]:
    """``<root>/<run id>`` → objects and unfinished multipart uploads under it."""
    counts: dict[str, int] = {}
    for uri in storage.list_objects(root + "/") + storage.list_multipart_uploads(root + "/"):
        run_id = uri[len(root) + 1 :].split("/", 1)[0]
        counts[f"{root}/{run_id}"] = counts.get(f"{root}/{run_id}", 0) + 1
    return counts


def _in_progress(client: Any, run_id: str, grace_s: float) -> bool:
    """True while ``run_id`` is a RUNNING register run younger than the grace period."""
    from mlflow.exceptions import MlflowException

    try:
        info = client.get_run(run_id).info
    except MlflowException:
        return False  # no such run: nothing can still be uploading there
    return info.status == "RUNNING" and time.time() - info.start_time / 1000 < grace_s


def orphans(config: DamoConfig) -> dict[str, int]:
    """Orphaned upload prefixes of ``registry.model_name`` → how many objects each holds."""
    client = tracking_client(require_uri(config))
    name = config.registry.model_name
    root = f"{store_uri(config)}/{name}"
    sources = {mv.source.rstrip("/") for mv in client.search_model_versions(f"name='{name}'")}
    grace_s = config.registry.prune_grace_hours * 3600
    try:
        uploads = _uploads_by_prefix(root)
    except storage.StorageError as err:
        raise RegistryError(f"listing the uploads under {root}: {err}; nothing was deleted") from err
    return {
        prefix: count
        for prefix, count in uploads.items()
        if prefix not in sources and not _in_progress(client, prefix.rsplit("/", 1)[1], grace_s)
    }


def prune(config: DamoConfig, dry_run: bool = False) -> dict[str, Any]:
    """Delete the orphans of ``registry.model_name`` (list them only with ``dry_run``)."""
    found = orphans(config)
    removed = 0
    for prefix in [] if dry_run else found:
        try:
            removed += storage.delete_prefix(prefix + "/")
        except storage.StorageError as err:
            raise RegistryError(f"pruning {prefix}: {err} ({removed} objects removed so far)") from err
        log.info("pruned %s", prefix)
    name = config.registry.model_name
    return {"model_name": name, "orphans": found, "dry_run": dry_run, "removed": removed}
