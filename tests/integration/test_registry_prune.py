"""`damo prune` on real MLflow + SeaweedFS: orphaned uploads go; versions and uploads in progress stay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from damo import storage
from damo.cli import main
from damo.config import DamoConfig
from damo.registry import RegistryError, store_uri
from damo.registry_gc import orphans, prune
from damo.stack import StackEnv
from damo.steps.pull import PullPaths
from damo.steps.pull import run as pull_step
from damo.steps.register import RegisterPaths
from damo.steps.register import run as register_step
from damo.tracking import client as registry_client
from damo.tracking.client import experiment_id
from tests.integration.test_registry import _fake_model

pytestmark = pytest.mark.integration
NAME = "pruned"


def test_prune_removes_orphans_only(stack_environ: StackEnv, stack_config: DamoConfig, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = stack_config.model_copy(deep=True)
    config.registry.model_name = NAME
    kept = register_step(config, RegisterPaths(model=_fake_model(tmp_path / "m", b"\x07" * 2048)))
    root = f"{store_uri(config)}/{NAME}"
    client, s3 = registry_client(stack_environ.tracking_uri), storage.s3_client()
    bucket, key = storage.split_s3_uri(root)
    # A registration whose store died mid-upload: a file of a run that then ended without a version.
    dead = client.create_run(experiment_id(client, "damo")).info.run_id
    client.set_terminated(dead, "FAILED")
    s3.put_object(Bucket=bucket, Key=f"{key}/{dead}/model.safetensors", Body=b"half")
    # ... and one that died inside a multipart upload: no object at all, an unfinished upload.
    s3.create_multipart_upload(Bucket=bucket, Key=f"{key}/no-such-run/model.safetensors")
    # A registration in progress: its run is RUNNING and young, its version not created yet.
    busy = client.create_run(experiment_id(client, "damo")).info.run_id
    s3.put_object(Bucket=bucket, Key=f"{key}/{busy}/model.safetensors", Body=b"uploading")

    assert set(orphans(config)) == {f"{root}/{dead}", f"{root}/no-such-run"}
    args = ["prune", "--config", "tiny", "--set", f"registry.model_name={NAME}",
            "--set", f"tracking.uri={stack_environ.tracking_uri}",
            "--set", f"stack.bucket={config.stack.bucket}"]
    assert main([*args, "--dry-run"]) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert listed["removed"] == 0 and set(listed["orphans"]) == {f"{root}/{dead}", f"{root}/no-such-run"}
    assert storage.list_objects(f"{root}/{dead}/")  # a dry run deletes nothing

    assert main(args) == 0
    pruned = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert pruned["removed"] == 2  # one object, one unfinished multipart upload
    assert not storage.list_objects(f"{root}/{dead}/")
    assert not storage.list_multipart_uploads(f"{root}/no-such-run/")
    assert storage.list_objects(f"{root}/{busy}/")  # still uploading: left alone
    assert orphans(config) == {}
    pulled = pull_step(config, PullPaths(model_uri=kept["model_uri"], out=tmp_path / "pulled"))
    assert pulled["version"] == kept["version"]  # the registered version is intact


def test_prune_with_wrong_store_credentials_fails_naming_the_store(
        stack_environ: StackEnv, stack_config: DamoConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    config = stack_config.model_copy(deep=True)
    config.registry.model_name = NAME
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-key")
    with pytest.raises(RegistryError, match=f"listing the uploads under {store_uri(config)}/{NAME}.*nothing"):
        prune(config)
