"""What KubeRay makes of our RayCluster, checked and replayed without Kubernetes.

``RAYCLUSTER_SCHEMA``: the fields of ``ray.io/v1`` RayCluster that our manifest uses, as a
small explicit JSON Schema that refuses any other field. No installed package ships KubeRay's
CRD (kubernetes-validate covers only the core kinds), so this is written from KubeRay's API
(``ray-operator/apis/ray/v1/raycluster_types.go``); the pod templates inside are checked
against the real core schema (as a ``PodTemplate``) by the tests.

``ray_start_argv``: the ``ray start`` command KubeRay builds for a group's pods, as its
``ray-operator/controllers/ray/common/pod.go`` does (v1.7): ``setMissingRayStartParams`` adds
``address`` (workers), ``dashboard-host`` (head), ``metrics-export-port``,
``dashboard-agent-listen-port`` and ``block``; ``generateRayStartCommand`` adds ``num-cpus``
and ``memory`` from the container's resources; ``convertParamMap`` writes the parameters in
sorted order as ``--KEY=VALUE``, a ``"true"`` as the bare flag and a ``"false"`` not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.support import REPO

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
K8S_VERSION = "1.33.0"

_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_META = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}, "labels": _STR_MAP},
}
_TEMPLATE = {"type": "object", "required": ["spec"]}  # checked as a core PodTemplate
_GROUP_COMMON = {
    # KubeRay passes every value through as text: a number here would be refused by it.
    "rayStartParams": _STR_MAP,
    "template": _TEMPLATE,
}
RAYCLUSTER_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayCluster"},
        "metadata": _META,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["headGroupSpec"],
            "properties": {
                "rayVersion": {"type": "string"},
                "enableInTreeAutoscaling": {"type": "boolean"},
                "headGroupSpec": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["template"],
                    "properties": {
                        **_GROUP_COMMON,
                        "serviceType": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                    },
                },
                "workerGroupSpecs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["groupName", "template"],
                        "properties": {
                            **_GROUP_COMMON,
                            "groupName": {"type": "string"},
                            "replicas": {"type": "integer", "minimum": 0},
                            "minReplicas": {"type": "integer", "minimum": 0},
                            "maxReplicas": {"type": "integer", "minimum": 0},
                        },
                    },
                },
            },
        },
    },
}


def load_docs(path: Path) -> list[dict[str, Any]]:
    with open(path) as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc]


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object of deploy/k8s (the kustomization's resources)."""
    kustomization = load_docs(K8S / "kustomization.yaml")[0]
    return [
        (K8S / name, doc) for name in kustomization["resources"] for doc in load_docs(K8S / name)
    ]


def raycluster() -> dict[str, Any]:
    return next(doc for _, doc in manifests() if doc["kind"] == "RayCluster")


def secrets() -> dict[str, dict[str, str]]:
    """Secret name -> its template's stringData."""
    return {
        doc["metadata"]["name"]: doc.get("stringData", {})
        for _, doc in manifests()
        if doc["kind"] == "Secret"
    }


def head_service(cluster: Mapping[str, Any]) -> str:
    """The head's Service KubeRay creates: ``<cluster>-head-svc``, the GCS on ``port``."""
    head = cluster["spec"]["headGroupSpec"]["rayStartParams"]
    return f"{cluster['metadata']['name']}-head-svc:{head.get('port', '6379')}"


# Options whose value may be "true"/"false" as text (convertParamMap's list).
_TEXT_BOOLEANS = ("log-color", "include-dashboard", "include-log-monitor")
_BINARY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
DEFAULT_METRICS_PORT = "8080"
DEFAULT_DASHBOARD_AGENT_LISTEN_PORT = "52365"


def quantity_bytes(quantity: str) -> int:
    for unit, factor in _BINARY_UNITS.items():
        if quantity.endswith(unit):
            return int(quantity.removesuffix(unit)) * factor
    return int(quantity)


def quantity_cpus(quantity: str) -> int:
    """A CPU quantity as Kubernetes' ``Value()`` gives it: whole CPUs, rounded up."""
    if quantity.endswith("m"):
        return -(-int(quantity.removesuffix("m")) // 1000)
    return int(quantity)


def ray_start_argv(
    params: Mapping[str, str],
    container: Mapping[str, Any],
    head: bool,
    head_address: str,
    overrides: Mapping[str, str],
) -> list[str]:
    """``ray start`` as KubeRay runs it for a group (without ``ray start`` itself), then
    ``overrides`` replacing or adding parameters: what differs between a pod and a local
    process (addresses, ports, sizes)."""
    merged = dict(params)
    if head:
        merged.setdefault("dashboard-host", "0.0.0.0")
    else:
        merged.setdefault("address", head_address)
    merged.setdefault("metrics-export-port", DEFAULT_METRICS_PORT)
    merged["block"] = "true"
    merged.setdefault("dashboard-agent-listen-port", DEFAULT_DASHBOARD_AGENT_LISTEN_PORT)
    resources = container.get("resources", {})
    limits, requests = resources.get("limits", {}), resources.get("requests", {})
    cpu = limits.get("cpu") or requests.get("cpu")
    if cpu and "num-cpus" not in merged:
        merged["num-cpus"] = str(quantity_cpus(cpu))
    if limits.get("memory") and "memory" not in merged:
        merged["memory"] = str(quantity_bytes(limits["memory"]))
    merged.update(overrides)
    argv = ["--head"] if head else []
    for key in sorted(merged):
        value = merged[key]
        if value.lower() in ("true", "false") and key not in _TEXT_BOOLEANS:
            if value.lower() == "true":
                argv.append(f"--{key}")
        else:
            argv.append(f"--{key}={value}")
    return argv


def container_env(
    container: Mapping[str, Any], secret_values: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """The environment a container gets: ``envFrom`` Secrets, then ``env`` (later wins, as
    in Kubernetes), Secret references resolved from ``secret_values``."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(secret_values[source["secretRef"]["name"]])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secret_values[ref["name"]][ref["key"]]
    return env
