"""Multi-node training: a Kubeflow Trainer ``TrainJob`` running the same ``damo train``, and its wait.

The pipeline's train task (``pipeline.num_nodes`` > 1) copies the dataset and the resolved config
into a ReadWriteMany workspace claim that every node mounts, creates a TrainJob whose nodes run
``torchrun -m damo.train.worker`` on that workspace — every rank runs
``damo.train.session.train_here``, what ``damo train`` runs (the ``torch-distributed`` runtime sets
the torchrun rendezvous through ``PET_*`` variables) — waits for the job's
``Complete``/``Failed`` condition, and copies the trained folder back as its artifact.

Targets the Trainer API ``trainer.kubeflow.org/v1alpha1`` with ``runtimePatches`` (Trainer ≥ 2.2).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from damo.cluster.pod_security import CONTAINER_CONTEXT, POD_CONTEXT
from damo.config import DamoConfig, save_resolved
from damo.contract import HF_SECRET_KEYS, MLFLOW_SECRET_KEYS, S3_SECRET_KEYS
from damo.errors import DamoError
from damo.skeleton import RESULT_FILE
from damo.train.results import TrainResult

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL, KIND = "trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob"
PATCH_MANAGER = "damo.io/pipeline"
NODE = "node"  # the runtime's replicated job and container that run the trainer
SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
WORKSPACE_VOLUME, SHM_VOLUME = "workspace", "dshm"


class TrainJobError(DamoError, RuntimeError):
    """The TrainJob failed, vanished or timed out; the message names the job and the reason."""


@dataclass(frozen=True)
class TrainJobPaths:
    data: Path  # the preference dataset (with reference log-probs)
    model: str  # the base model URI (local folder on the workspace, s3://, models:/...)
    out: Path  # the train step's output folder (the pipeline artifact)
    image: str  # the image every node runs (the pipeline's own, pinned by digest)


def _secret_env(secret: str | None, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """The keys of ``secret`` as environment variables (none when no Secret is configured)."""
    if secret is None:
        return []
    return [{"name": k, "valueFrom": {"secretKeyRef": {"name": secret, "key": k}}} for k in keys]


def _check_batch(config: DamoConfig) -> None:
    t, nodes = config.train, config.pipeline.num_nodes
    per_step = t.micro_batch_size * t.num_processes * nodes
    if t.global_batch_size % per_step:
        raise TrainJobError(
            f"train.global_batch_size ({t.global_batch_size}) must be a multiple of train.micro_batch_size "
            f"× train.num_processes × pipeline.num_nodes ({per_step}) for a {nodes}-node TrainJob")


def build_trainjob(config: DamoConfig, *, name: str, namespace: str, image: str, workdir: Path,
                   model: str) -> dict[str, Any]:
    """The TrainJob manifest: ``pipeline.num_nodes`` nodes × ``train.num_processes`` GPUs each."""
    _check_batch(config)
    p, t = config.pipeline, config.pipeline.trainjob
    res = p.resources["train"]
    gpus = config.train.num_processes
    limits = {"cpu": res.cpu, "memory": res.memory, p.gpu_resource: str(gpus)}
    # torchrun reads the rendezvous (PET_NNODES, PET_NODE_RANK, PET_MASTER_ADDR...) the runtime sets;
    # each rank runs damo.train.worker → damo.train.session.train_here, the code `damo train` runs.
    command = ["torchrun", "-m", "damo.train.worker", "--config", str(workdir / "config.yaml"),
               "--data", str(workdir / "data"), "--model", model, "--out", str(workdir / "out")]
    pod_spec = {
        "nodeSelector": dict(p.gpu_node_selector),
        "tolerations": [dict(x) for x in p.gpu_tolerations],
        # restricted Pod Security (damo.cluster.pod_security): non-root, seccomp, no escalation, no caps
        "securityContext": {**copy.deepcopy(POD_CONTEXT), "runAsUser": p.run_as_user,
                            "runAsGroup": p.run_as_group},
        "volumes": [
            {"name": WORKSPACE_VOLUME, "persistentVolumeClaim": {"claimName": t.workspace_pvc}},
            {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": p.shm_size}},
        ],
        "containers": [{"name": NODE, "securityContext": copy.deepcopy(CONTAINER_CONTEXT), "volumeMounts": [
            {"name": WORKSPACE_VOLUME, "mountPath": t.workspace_path},
            {"name": SHM_VOLUME, "mountPath": "/dev/shm"}]}],
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/part-of": "damo", "app.kubernetes.io/component": "train"}},
        "spec": {
            "runtimeRef": {"name": t.runtime},
            "trainer": {
                "image": image, "command": command, "numNodes": p.num_nodes, "numProcPerNode": gpus,
                "resourcesPerNode": {"requests": dict(limits), "limits": limits},
                "env": (_secret_env(p.s3_secret, S3_SECRET_KEYS)
                        + _secret_env(p.mlflow_secret, MLFLOW_SECRET_KEYS)
                        + _secret_env(config.hub.token_secret, HF_SECRET_KEYS)),
            },
            "runtimePatches": [{"manager": PATCH_MANAGER, "trainingRuntimeSpec": {"template": {"spec": {
                "replicatedJobs": [{"name": NODE, "template": {"spec": {"template": {"spec": pod_spec}}}}],
            }}}}],
        },
    }


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return dict(cond)
    return None


def wait(api: Any, name: str, namespace: str, *, poll_seconds: float, timeout_seconds: float,
         sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Poll the TrainJob until it is Complete (its status returned) or Failed / gone / late (raises)."""
    from kubernetes.client.exceptions import ApiException

    deadline = clock() + timeout_seconds
    while True:
        try:
            job = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as err:
            if err.status == 404:
                raise TrainJobError(f"TrainJob {namespace}/{name} disappeared while waiting") from err
            if err.status is None or err.status < 500:
                raise TrainJobError(
                    f"TrainJob {namespace}/{name}: API error {err.status}: {err.reason}") from err
            log.warning("TrainJob %s: API error %s, retrying", name, err.status)  # transient (5xx)
            job = {}
        status = job.get("status") or {}
        failed = _condition(status, "Failed")
        if failed:
            raise TrainJobError(f"TrainJob {namespace}/{name} failed: {failed.get('reason')}: "
                                f"{failed.get('message')}")
        if _condition(status, "Complete"):
            return dict(status)
        if clock() >= deadline:
            raise TrainJobError(f"TrainJob {namespace}/{name} did not finish within {timeout_seconds:.0f} s")
        sleep(poll_seconds)


def own_namespace() -> str:
    """The namespace of the pod this runs in (its service account's)."""
    if not SA_NAMESPACE_FILE.is_file():
        raise TrainJobError(f"{SA_NAMESPACE_FILE} not found: a TrainJob is submitted from a cluster pod")
    return SA_NAMESPACE_FILE.read_text().strip()


def custom_objects_api() -> Any:
    from kubernetes import client, config

    config.load_incluster_config()
    return client.CustomObjectsApi()


def run(config: DamoConfig, paths: TrainJobPaths, *, api: Any = None, namespace: str | None = None,
        sleep: Callable[[float], None] = time.sleep) -> TrainResult:
    """Stage data + config on the workspace, run the TrainJob to completion, collect its output."""
    t = config.pipeline.trainjob
    name = f"damo-train-{uuid.uuid4().hex[:12]}"
    workdir = Path(t.workspace_path) / name
    shutil.copytree(paths.data, workdir / "data")
    save_resolved(config, workdir)
    api = api if api is not None else custom_objects_api()
    namespace = namespace or own_namespace()
    manifest = build_trainjob(config, name=name, namespace=namespace, image=paths.image, workdir=workdir,
                              model=paths.model)
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
    log.info("TrainJob %s/%s created: %d nodes", namespace, name, config.pipeline.num_nodes)
    wait(api, name, namespace, poll_seconds=t.poll_seconds, timeout_seconds=t.timeout_seconds, sleep=sleep)
    out = workdir / "out"
    if not (out / "model").is_dir():
        raise TrainJobError(f"TrainJob {namespace}/{name} completed but wrote no model under {out}")
    shutil.copytree(out, paths.out, dirs_exist_ok=True)
    shutil.rmtree(workdir)  # the artifact now holds the result; the workspace is shared and finite
    result_file = paths.out / RESULT_FILE
    result = TrainResult.from_json(result_file.read_text()) if result_file.is_file() else TrainResult("train")
    job = {"trainjob": f"{namespace}/{name}", "num_nodes": config.pipeline.num_nodes}
    return dataclasses.replace(result, stats={**result.stats, **job})
