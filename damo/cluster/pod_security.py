"""The Kubernetes ``restricted`` Pod Security Standard, as a check on a pod spec (dict form).

Every pod the project creates is held to it (the namespace of ``manifests/`` enforces it): TrainJob
node pods (:mod:`damo.cluster.trainjob`), the manifests' workloads, and the compiled pipeline's task
pods. The rules checked are the standard's (kubernetes.io/docs/concepts/security/pod-security-standards):

- no host namespaces (``hostNetwork``/``hostPID``/``hostIPC``), no ``hostPath`` volume, and only the
  volume types restricted allows;
- no privileged container, ``allowPrivilegeEscalation: false`` and ``capabilities.drop: [ALL]`` on every
  container (adding back at most ``NET_BIND_SERVICE``);
- ``runAsNonRoot: true`` and a ``RuntimeDefault``/``Localhost`` seccomp profile, on the pod or on every
  container; no ``runAsUser: 0``.
"""

from __future__ import annotations

from typing import Any

ALLOWED_VOLUMES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                             "persistentVolumeClaim", "projected", "secret"})
HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")
SECCOMP_TYPES = frozenset({"RuntimeDefault", "Localhost"})
ADDABLE_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})

# The container context every damo-made container carries (the pod adds runAsNonRoot + seccomp).
CONTAINER_CONTEXT: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
POD_CONTEXT: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    kinds = ("initContainers", "containers", "ephemeralContainers")
    return [container for kind in kinds for container in spec.get(kind, [])]


def _pod_level(spec: dict[str, Any]) -> list[str]:
    problems = [f"{key} is true" for key in HOST_NAMESPACES if spec.get(key)]
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            problems.append(f"volume {volume.get('name')!r} of type {sorted(kinds - ALLOWED_VOLUMES)}")
    return problems


def _inherited(key: str, pod: dict[str, Any], container: dict[str, Any]) -> Any:
    own = container.get(key)
    return own if own is not None else pod.get(key)


def _container_level(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    name, ctx = container.get("name", "?"), container.get("securityContext") or {}
    problems = []
    if ctx.get("privileged"):
        problems.append(f"container {name!r} is privileged")
    if ctx.get("allowPrivilegeEscalation") is not False:
        problems.append(f"container {name!r} lacks allowPrivilegeEscalation: false")
    capabilities = ctx.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        problems.append(f"container {name!r} does not drop ALL capabilities")
    if set(capabilities.get("add") or []) - ADDABLE_CAPABILITIES:
        problems.append(f"container {name!r} adds capabilities {capabilities['add']}")
    if _inherited("runAsNonRoot", pod, ctx) is not True:
        problems.append(f"container {name!r} may run as root (runAsNonRoot not true)")
    if _inherited("runAsUser", pod, ctx) == 0:
        problems.append(f"container {name!r} runs as user 0")
    seccomp = _inherited("seccompProfile", pod, ctx) or {}
    if seccomp.get("type") not in SECCOMP_TYPES:
        problems.append(f"container {name!r} has no RuntimeDefault/Localhost seccomp profile")
    return problems


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """What in the pod spec ``spec`` breaks the restricted standard (empty: it is admitted)."""
    pod = spec.get("securityContext") or {}
    containers = _containers(spec)
    problems = _pod_level(spec)
    if not containers:
        problems.append("pod spec has no containers")
    for container in containers:
        problems += _container_level(pod, container)
    return problems
