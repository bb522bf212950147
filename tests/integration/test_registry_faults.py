"""Faults during registration, against the real servers: no model version may point at missing files.

- The object store is killed in the middle of a multipart upload: the step fails naming the store,
  no version exists, the MLflow run is FAILED; after `damo stack up` restarts the store (and only
  the store), the rerun registers a complete, pullable version.
- Wrong S3 credentials: rejected before anything is uploaded, with a message that names the
  variables to check and not the secret.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from damo import registry
from damo import stack as damo_stack
from damo.config import DamoConfig
from damo.stack import StackEnv
from damo.steps.pull import PullPaths
from damo.steps.pull import run as pull_step
from damo.steps.register import RegisterPaths
from damo.steps.register import run as register_step
from damo.tracking import client as registry_client
from damo.tracking import open_tracker

pytestmark = pytest.mark.integration

PART_MB = 5  # S3's minimum part size: the smallest multipart upload that still has many parts


def _model_with_blob(folder: Path, megabytes: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "model-00001-of-00001.safetensors").write_bytes(os.urandom(megabytes << 20))
    return folder


def _versions(config: DamoConfig, uri: str) -> list[str]:
    client = registry_client(uri)
    return [mv.version for mv in client.search_model_versions(f"name='{config.registry.model_name}'")]


def test_store_killed_mid_upload_leaves_no_version_then_rerun_succeeds(
        stack_environ: StackEnv, stack_config: DamoConfig, tmp_path: Path) -> None:
    config = stack_config.model_copy(deep=True)
    config.registry.model_name = "fault-mid-upload"
    config.registry.multipart_threshold_mb = config.registry.multipart_chunk_mb = PART_MB
    config.registry.max_concurrency = 1  # parts go one by one: the kill lands mid-file
    model = _model_with_blob(tmp_path / "model", 8 * PART_MB)
    mlflow_pid = json.loads((damo_stack.state_dir(config.stack) / damo_stack.STATE_FILE).read_text())[
        "services"]["mlflow"]["pid"]

    sent = {"bytes": 0}
    killed = threading.Event()

    def kill_store_after_first_part(n: int) -> None:
        sent["bytes"] += n
        if sent["bytes"] >= PART_MB << 20 and not killed.is_set():
            killed.set()
            damo_stack.stop_service(config, "s3", force=True)  # SIGKILL: the store crashes

    try:
        with pytest.raises(registry.RegistryError) as err, open_tracker(config, "register") as tracker:
            registry.register(config, tracker, model, progress=kill_store_after_first_part)
        assert killed.is_set()
        message = str(err.value)
        assert "no model version was created" in message and "unreachable" in message
        assert stack_environ.s3_endpoint in message
        assert _versions(config, stack_environ.tracking_uri) == []
        failed = registry_client(stack_environ.tracking_uri).search_runs(
            [registry_client(stack_environ.tracking_uri).get_experiment_by_name("damo-tests").experiment_id],
            "tags.`mlflow.runName` = 'register' and attributes.status = 'FAILED'")
        assert failed, "the register run must be marked FAILED"
    finally:
        env = damo_stack.up(config)  # restarts the store only
    state = json.loads((damo_stack.state_dir(config.stack) / damo_stack.STATE_FILE).read_text())
    assert state["services"]["mlflow"]["pid"] == mlflow_pid
    assert env.s3_endpoint == stack_environ.s3_endpoint

    result = register_step(config, RegisterPaths(model=model))
    assert result["version"] == "1" and _versions(config, stack_environ.tracking_uri) == ["1"]
    out = tmp_path / "pulled"
    pull_step(config, PullPaths(model_uri="models:/fault-mid-upload@candidate", out=out))
    blob = "model-00001-of-00001.safetensors"
    assert (out / blob).read_bytes() == (model / blob).read_bytes()


def test_wrong_s3_credentials_are_rejected_before_any_upload(
        stack_environ: StackEnv, stack_config: DamoConfig, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = stack_config.model_copy(deep=True)
    config.registry.model_name = "fault-credentials"
    model = _model_with_blob(tmp_path / "model", 1)
    wrong_secret = "not-the-secret-" + "x" * 20
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong_secret)
    with pytest.raises(registry.RegistryError) as err:
        register_step(config, RegisterPaths(model=model))
    message = str(err.value)
    assert "rejected the credentials" in message and "AWS_SECRET_ACCESS_KEY" in message
    assert "no model version was created" in message and wrong_secret not in message

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "unknown-key")
    with pytest.raises(registry.RegistryError, match="rejected the credentials"):
        register_step(config, RegisterPaths(model=model))
    assert _versions(config, stack_environ.tracking_uri) == []
