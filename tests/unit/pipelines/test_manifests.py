"""The Kubernetes manifests build with kustomize and pass the Kubernetes schema offline, run with
restricted pod security, hold no credential, and grant the pipeline what multi-node training needs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
MANIFESTS = ROOT / "manifests"
TARGETS = ("base", "secrets", "overlays/dev", "overlays/production")
KUBERNETES_VERSION = "1.32.0"
PLACEHOLDER = "CHANGE-ME"
Built = dict[str, list[dict[str, Any]]]

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")


def build(target: str) -> list[dict[str, Any]]:
    out = subprocess.run(["kubectl", "kustomize", str(MANIFESTS / target)], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module")
def built() -> Built:
    return {target: build(target) for target in TARGETS}


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] in ("Deployment", "StatefulSet"):
            specs.append((doc["metadata"]["name"], spec["template"]["spec"]))
        elif doc["kind"] == "CronJob":
            specs.append((doc["metadata"]["name"], spec["jobTemplate"]["spec"]["template"]["spec"]))
    return specs


def test_every_target_passes_the_kubernetes_schema(built: Built) -> None:
    for target, docs in built.items():
        assert docs, target
        for doc in docs:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_schema_validation_catches_a_broken_manifest() -> None:
    broken = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
              "spec": {"replicas": "two", "selector": {}, "template": {"spec": {"containers": []}}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_expected_parts_are_deployed(built: Built) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in built["base"]}
    assert {("Deployment", "damo-mlflow"), ("Service", "damo-mlflow"), ("StatefulSet", "damo-postgres"),
            ("ServiceAccount", "damo-pipeline"), ("Role", "damo-pipeline"), ("RoleBinding", "damo-pipeline"),
            ("PersistentVolumeClaim", "damo-workspace"), ("CronJob", "damo-retrain")} <= kinds
    assert not any(d["kind"] == "Secret" for d in built["base"]), "base must never overwrite real secrets"


def test_mlflow_uses_postgres_proxied_s3_artifacts_and_basic_auth(built: Built) -> None:
    (mlflow,) = [d for d in built["base"] if d["kind"] == "Deployment"]
    container = mlflow["spec"]["template"]["spec"]["containers"][0]
    assert "--serve-artifacts" in container["args"] and "--app-name=basic-auth" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
    secrets = {ref["secretRef"]["name"] for ref in container["envFrom"]}
    assert secrets == {"damo-mlflow-server", "damo-s3-credentials"}
    (secret_tpl,) = [d for d in built["secrets"] if d["metadata"]["name"] == "damo-mlflow-server"]
    assert "MLFLOW_BACKEND_STORE_URI" in secret_tpl["stringData"]
    assert "postgresql://" in (MANIFESTS / "secrets" / "mlflow-server.yaml").read_text()


def test_pods_meet_restricted_pod_security(built: Built) -> None:
    (ns,) = [d for d in built["base"] if d["kind"] == "Namespace"]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    specs = pod_specs(built["base"])
    assert len(specs) == 3
    for name, spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for c in spec["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], name
            assert "limits" in c["resources"] and "memory" in c["resources"]["limits"], name


def test_pipeline_may_create_and_watch_trainjobs_and_no_more(built: Built) -> None:
    (role,) = [d for d in built["base"] if d["kind"] == "Role"]
    rules = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"]
             for r in rule["resources"]}
    assert {"create", "get", "watch"} <= rules[("trainer.kubeflow.org", "trainjobs")]
    assert all("*" not in verbs for verbs in rules.values())
    assert not any(r == "secrets" for _, r in rules)
    (binding,) = [d for d in built["base"] if d["kind"] == "RoleBinding"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "damo-pipeline", "namespace": "damo"}]


def test_secret_templates_hold_only_placeholders(built: Built) -> None:
    secrets = [d for d in built["secrets"] if d["kind"] == "Secret"]
    assert {s["metadata"]["name"] for s in secrets} >= {"damo-s3-credentials", "damo-mlflow-credentials"}
    sensitive = ("SECRET", "PASSWORD", "KEY", "STORE_URI", "TOKEN")
    for secret in secrets:
        assert "data" not in secret, "templates use readable stringData"
        for key, value in secret["stringData"].items():
            if any(word in key for word in sensitive):
                assert value == PLACEHOLDER, f"{secret['metadata']['name']}.{key} must be {PLACEHOLDER}"
            if key.endswith(".ini"):
                assert f"database_uri = {PLACEHOLDER}" in value


def test_overlays_change_what_they_say(built: Built) -> None:
    dev = {(d["kind"], d["metadata"]["name"]): d for d in built["overlays/dev"]}
    assert ("Namespace", "damo-dev") in dev
    assert dev[("CronJob", "damo-retrain")]["spec"]["suspend"] is True
    assert all(d["metadata"].get("namespace", "damo-dev") == "damo-dev" for d in built["overlays/dev"])
    prod = {(d["kind"], d["metadata"]["name"]): d for d in built["overlays/production"]}
    assert prod[("Deployment", "damo-mlflow")]["spec"]["replicas"] == 2
