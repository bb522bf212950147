"""Every pod the project creates meets the restricted Pod Security Standard: the manifests' workloads,
the TrainJob's node pods and the compiled pipeline's task pods. The check itself fails when any one
rule is broken (shown by mutating copies)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest

from damo.cluster.pod_security import restricted_violations
from damo.cluster.trainjob import build_trainjob
from damo.config import load_config
from tests.unit.pipelines.conftest import compile_docs

IMAGE = "ghcr.io/damo-ml/damo:0.1.0@sha256:" + "a" * 64
# What the KFP backend's compiler/driver set on every executor container and pod whatever the platform
# spec says (kubeflow/pipelines#12782, #12832): the spec can only add the identity fields.
KFP_CONTAINER_DEFAULTS = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                          "seccompProfile": {"type": "RuntimeDefault"}}
KFP_POD_DEFAULTS = {"seccompProfile": {"type": "RuntimeDefault"}}


def compliant_pod() -> dict[str, Any]:
    return {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "tmp", "emptyDir": {}}],
            "containers": [{"name": "main", "image": IMAGE, "securityContext": {
                "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}


def _del(path: str) -> Any:
    def mutate(pod: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node: Any = pod
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[leaf]
    return mutate


def _set(path: str, value: Any) -> Any:
    def mutate(pod: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node: Any = pod
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        node[leaf] = value
    return mutate


MUTATIONS = {
    "runAsNonRoot removed": (_del("securityContext.runAsNonRoot"), "runAsNonRoot"),
    "seccomp removed": (_del("securityContext.seccompProfile"), "seccomp"),
    "seccomp Unconfined": (_set("securityContext.seccompProfile.type", "Unconfined"), "seccomp"),
    "escalation allowed": (_set("containers.0.securityContext.allowPrivilegeEscalation", True), "Escalation"),
    "escalation unset": (_del("containers.0.securityContext.allowPrivilegeEscalation"), "Escalation"),
    "capabilities kept": (_del("containers.0.securityContext.capabilities"), "drop ALL"),
    "capability added": (_set("containers.0.securityContext.capabilities.add", ["SYS_ADMIN"]), "adds"),
    "privileged": (_set("containers.0.securityContext.privileged", True), "privileged"),
    "root user": (_set("containers.0.securityContext.runAsUser", 0), "user 0"),
    "hostNetwork": (_set("hostNetwork", True), "hostNetwork"),
    "hostPath volume": (_set("volumes", [{"name": "h", "hostPath": {"path": "/"}}]), "hostPath"),
}


def test_a_compliant_pod_passes() -> None:
    assert restricted_violations(compliant_pod()) == []


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_the_check_fails_when_one_rule_is_broken(mutation: str) -> None:
    mutate, expected = MUTATIONS[mutation]
    pod = copy.deepcopy(compliant_pod())
    mutate(pod)
    problems = restricted_violations(pod)
    assert any(expected in p for p in problems), problems


def test_a_container_level_context_may_stand_in_for_the_pod_one() -> None:
    pod = compliant_pod()
    pod["containers"][0]["securityContext"].update(pod.pop("securityContext"))
    assert restricted_violations(pod) == []


def trainjob_node_pod(tmp_path: Path) -> dict[str, Any]:
    config = load_config("llava15_7b", ["pipeline.num_nodes=2", "train.global_batch_size=32"])
    job = build_trainjob(config, name="j", namespace="ml", image=IMAGE, workdir=tmp_path, model="m")
    (patch,) = job["spec"]["runtimePatches"]
    (replicated,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    return dict(replicated["template"]["spec"]["template"]["spec"])


def test_trainjob_node_pods_are_restricted(tmp_path: Path) -> None:
    pod = trainjob_node_pod(tmp_path)
    assert restricted_violations(pod) == []
    assert pod["securityContext"]["runAsUser"] == 10001
    broken = copy.deepcopy(pod)
    del broken["containers"][0]["securityContext"]["capabilities"]
    assert restricted_violations(broken) == ["container 'node' does not drop ALL capabilities"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
def test_every_manifest_workload_is_restricted() -> None:
    from tests.unit.pipelines.test_manifests import TARGETS, build, pod_specs

    seen = 0
    for target in TARGETS:
        for name, spec in pod_specs(build(target)):
            assert restricted_violations(spec) == [], f"{target}: {name}"
            broken = copy.deepcopy(spec)
            del broken["securityContext"]["runAsNonRoot"]
            assert restricted_violations(broken), f"{target}: {name} passes without runAsNonRoot"
            seen += 1
    assert seen >= 3


def task_pod(executor: dict[str, Any]) -> dict[str, Any]:
    """The task pod the KFP backend builds from an executor's platform spec (security and volumes)."""
    identity = executor.get("securityContext", {})
    # proto JSON writes int64 as a string: the pod gets the number
    context = {**KFP_CONTAINER_DEFAULTS,
               **{k: v if isinstance(v, bool) else int(v) for k, v in identity.items()}}
    volumes = [{"name": v["volumeName"], "emptyDir": {}} for v in executor.get("emptyDirMounts", [])]
    volumes += [{"name": v["mountPath"], "persistentVolumeClaim": {"claimName": "c"}}
                for v in executor.get("pvcMount", [])]
    return {"securityContext": dict(KFP_POD_DEFAULTS), "volumes": volumes,
            "containers": [{"name": "main", "image": IMAGE, "securityContext": context}]}


@pytest.mark.parametrize("layout", [(), ("pipeline.num_nodes=2", "train.global_batch_size=32")])
def test_every_pipeline_task_runs_non_root(tmp_path: Path, layout: tuple[str, ...]) -> None:
    spec, executors = compile_docs(tmp_path, "llava15_7b", layout)
    assert set(executors) == set(spec["deploymentSpec"]["executors"]), "a task lacks its kubernetes config"
    for name, executor in executors.items():
        assert executor["securityContext"] == {"runAsUser": "10001", "runAsGroup": "10001",
                                               "runAsNonRoot": True}, name
        assert restricted_violations(task_pod(executor)) == [], name
        broken = copy.deepcopy(executor)
        del broken["securityContext"]["runAsNonRoot"]
        assert restricted_violations(task_pod(broken)), f"{name} passes without runAsNonRoot"


def test_hub_token_endpoint_and_offline_reach_only_the_model_tasks(tmp_path: Path) -> None:
    spec, executors = compile_docs(tmp_path, "llava15_7b", ("hub.token_secret=damo-hf-token",
                                                            "hub.endpoint=https://hf-mirror.internal",
                                                            "hub.offline=true"))
    readers, seen = {"score", "reference", "train", "evaluate"}, set()
    for name, executor in executors.items():
        step = name.removeprefix("exec-").split("-")[0]
        tokens = [s for s in executor.get("secretAsEnv", []) if s["secretName"] == "damo-hf-token"]
        container = spec["deploymentSpec"]["executors"][name]["container"]
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        if step in readers:
            assert tokens and tokens[0]["keyToEnv"] == [{"secretKey": "HF_TOKEN", "envVar": "HF_TOKEN"}], name
            assert env["HF_ENDPOINT"] == "https://hf-mirror.internal" and env["HF_HUB_OFFLINE"] == "1", name
            seen.add(step)
        else:
            assert not tokens and "HF_ENDPOINT" not in env, name
    assert seen == readers
