"""Multi-node training: the TrainJob manifest we submit, and the wait/collect logic — against a fake
Kubernetes API (no cluster here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes.client.exceptions import ApiException

from damo.cluster import trainjob
from damo.cluster.trainjob import TrainJobError, TrainJobPaths, build_trainjob, wait
from damo.config import DamoConfig, load_config

IMAGE = "ghcr.io/damo-ml/damo:0.1.0@sha256:" + "a" * 64


def multinode(tmp_path: Path, nodes: int = 2) -> DamoConfig:
    return load_config("llava15_7b", [f"pipeline.num_nodes={nodes}", "train.global_batch_size=32",
                                      f"pipeline.trainjob.workspace_path={tmp_path / 'workspace'}"])


def manifest(tmp_path: Path) -> dict[str, Any]:
    return build_trainjob(multinode(tmp_path), name="damo-train-x", namespace="ml", image=IMAGE,
                          workdir=tmp_path / "workspace" / "damo-train-x", model="s3://models/llava")


def test_manifest_runs_damo_train_on_every_node(tmp_path: Path) -> None:
    job = manifest(tmp_path)
    assert (job["apiVersion"], job["kind"]) == ("trainer.kubeflow.org/v1alpha1", "TrainJob")
    assert job["metadata"] == {"name": "damo-train-x", "namespace": "ml", "labels": {
        "app.kubernetes.io/part-of": "damo", "app.kubernetes.io/component": "train"}}
    trainer = job["spec"]["trainer"]
    assert job["spec"]["runtimeRef"] == {"name": "torch-distributed"}
    assert trainer["image"] == IMAGE and trainer["numNodes"] == 2 and trainer["numProcPerNode"] == 4
    work = tmp_path / "workspace" / "damo-train-x"
    assert trainer["command"] == [
        "torchrun", "-m", "damo.train.worker", "--config", f"{work}/config.yaml", "--data", f"{work}/data",
        "--model", "s3://models/llava", "--out", f"{work}/out"]
    assert trainer["resourcesPerNode"]["limits"] == {"cpu": "32", "memory": "256Gi", "nvidia.com/gpu": "4"}


def test_manifest_takes_credentials_from_secrets_only(tmp_path: Path) -> None:
    env = manifest(tmp_path)["spec"]["trainer"]["env"]
    assert all(set(e) == {"name", "valueFrom"} for e in env), "no literal value may carry a credential"
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in env}
    assert refs["AWS_SECRET_ACCESS_KEY"] == "damo-s3-credentials"
    assert refs["MLFLOW_TRACKING_PASSWORD"] == "damo-mlflow-credentials"


def test_node_pod_patch_is_a_valid_pod_spec_on_the_gpu_pool(tmp_path: Path) -> None:
    (patch,) = manifest(tmp_path)["spec"]["runtimePatches"]
    (job,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod = job["template"]["spec"]["template"]["spec"]
    assert job["name"] == "node" and patch["manager"] == "damo.io/pipeline"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["workspace"]["persistentVolumeClaim"] == {"claimName": "damo-workspace"}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
    # The patch's pod spec, completed with the image the runtime supplies, passes the Pod schema.
    full = {**pod, "containers": [{**pod["containers"][0], "image": IMAGE}]}
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "n"},
                                  "spec": full}, "1.32.0", strict=True)


def test_batch_must_split_over_all_nodes(tmp_path: Path) -> None:
    config = load_config("llava15_7b", ["pipeline.num_nodes=2"])  # 16 pairs over 2 × 4 × 4
    with pytest.raises(TrainJobError, match=r"multiple of .* pipeline.num_nodes \(32\)"):
        build_trainjob(config, name="j", namespace="ml", image=IMAGE, workdir=tmp_path, model="m")


class FakeApi:
    """CustomObjectsApi stand-in: records creations, answers `get` from a scripted list of statuses
    (an ApiException in the script is raised), and can play the job by writing its output."""

    def __init__(self, script: list[Any], on_create: Any = None) -> None:
        self.script, self.on_create = list(script), on_create
        self.created: list[dict[str, Any]] = []
        self.gets = 0

    def create_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                        body: dict[str, Any]) -> dict[str, Any]:
        assert (group, version, plural) == ("trainer.kubeflow.org", "v1alpha1", "trainjobs")
        self.created.append(body)
        if self.on_create:
            self.on_create(body)
        return body

    def get_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                     name: str) -> dict[str, Any]:
        self.gets += 1
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, ApiException):
            raise item
        return {"metadata": {"name": name}, "status": item}


RUNNING = {"conditions": [{"type": "Created", "status": "True"}]}
COMPLETE = {"conditions": [{"type": "Created", "status": "True"}, {"type": "Complete", "status": "True"}]}
FAILED = {"conditions": [{"type": "Failed", "status": "True", "reason": "JobsFailed",
                          "message": "node-1 exited with code 1"}]}


def no_sleep(_: float) -> None:
    return None


def test_wait_returns_when_complete_and_polls_until_then() -> None:
    api = FakeApi([RUNNING, {}, RUNNING, COMPLETE])
    assert wait(api, "j", "ml", poll_seconds=1, timeout_seconds=60, sleep=no_sleep) == COMPLETE
    assert api.gets == 4


def test_wait_raises_the_failure_reason() -> None:
    with pytest.raises(TrainJobError, match="ml/j failed: JobsFailed: node-1 exited with code 1"):
        wait(FakeApi([RUNNING, FAILED]), "j", "ml", poll_seconds=1, timeout_seconds=60, sleep=no_sleep)


def test_wait_rides_out_server_errors_but_not_a_deleted_job() -> None:
    api = FakeApi([ApiException(status=503, reason="Unavailable"), COMPLETE])
    assert wait(api, "j", "ml", poll_seconds=1, timeout_seconds=60, sleep=no_sleep) == COMPLETE
    with pytest.raises(TrainJobError, match="disappeared"):
        wait(FakeApi([ApiException(status=404, reason="Not Found")]), "j", "ml", poll_seconds=1,
             timeout_seconds=60, sleep=no_sleep)
    with pytest.raises(TrainJobError, match="API error 403"):
        wait(FakeApi([ApiException(status=403, reason="Forbidden")]), "j", "ml", poll_seconds=1,
             timeout_seconds=60, sleep=no_sleep)


def test_wait_times_out() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(TrainJobError, match="did not finish within 90 s"):
        wait(FakeApi([RUNNING]), "j", "ml", poll_seconds=30, timeout_seconds=90, sleep=sleep,
             clock=lambda: now[0])
    assert now[0] == 90


# The train step's result.json, as rank 0 writes it (damo.train.results.TrainResult).
TRAINED = {"step": "train", "model": "out/model", "checkpoints": "out/checkpoints",
           "metrics": "out/metrics.json", "final_loss": 0.5}


def play_job(body: dict[str, Any]) -> None:
    """What the TrainJob's nodes would leave on the workspace: the train step's output folder."""
    out = Path(body["spec"]["trainer"]["command"][-1])
    (out / "model").mkdir(parents=True)
    (out / "model" / "model.safetensors").write_bytes(b"weights")
    (out / "result.json").write_text(json.dumps(TRAINED))


def test_run_stages_submits_waits_and_collects(tmp_path: Path) -> None:
    data = tmp_path / "dataset"
    data.mkdir()
    (data / "manifest.json").write_text("{}")
    api = FakeApi([RUNNING, COMPLETE], on_create=play_job)
    paths = TrainJobPaths(data=data, model="s3://models/llava", out=tmp_path / "artifact", image=IMAGE)
    result = trainjob.run(multinode(tmp_path), paths, api=api, namespace="ml", sleep=no_sleep)
    (job,) = api.created
    name = job["metadata"]["name"]
    assert result == {**TRAINED, "trainjob": f"ml/{name}", "num_nodes": 2}
    assert result.model == "out/model"  # read back as the typed result
    assert (paths.out / "model" / "model.safetensors").read_bytes() == b"weights"
    assert not (tmp_path / "workspace" / name).exists(), "the shared workspace is cleaned up"


def test_run_fails_loudly_when_the_job_wrote_no_model(tmp_path: Path) -> None:
    data = tmp_path / "dataset"
    data.mkdir()
    paths = TrainJobPaths(data=data, model="m", out=tmp_path / "artifact", image=IMAGE)
    with pytest.raises(TrainJobError, match="completed but wrote no model"):
        trainjob.run(multinode(tmp_path), paths, api=FakeApi([COMPLETE]), namespace="ml", sleep=no_sleep)
