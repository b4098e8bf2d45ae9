"""deploy/: the image and the Kubernetes manifests, checked offline.

Core kinds against the Kubernetes schemas (kubernetes-validate, strict: unknown fields are
errors), the RayCluster against the fields KubeRay defines (see ``kuberay.py``), the Serve
config against Ray's own ``ServeDeploySchema`` with unknown keys refused, references between
the objects, and the RayCluster's pods replayed as local processes into a working cluster.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from pydantic import BaseModel

from serverkit.net import free_port
from serverkit.ray_runtime import QUIET_ENV, SERVE_ENV
from tests.level3 import kuberay
from tests.level3.kuberay import DEPLOY, K8S, K8S_VERSION
from tests.level3.ray_cluster import (
    HEALTH_CHECK_ENV,
    RayCluster,
    RayNode,
    driver_result,
    new_root,
    node_port_params,
    write_token,
)
from tests.level3.s3 import S3Endpoint
from tests.support import REPO

pytestmark = [
    pytest.mark.level3,
    # Popen forks the test process, which has lance loaded, and execs at once: safe.
    pytest.mark.filterwarnings("ignore:lance is not fork-safe"),
]

START_TIMEOUT = 180.0  # seconds; ~30 on an idle 2-core machine, far more when it is shared
CORE_KINDS = {"Namespace", "Secret", "Deployment", "Service"}


def test_every_core_object_is_valid_for_kubernetes_with_no_unknown_field() -> None:
    seen = set()
    for _, doc in kuberay.manifests():
        if doc["kind"] == "RayCluster":
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        seen.add(doc["kind"])
    assert seen == CORE_KINDS


def test_a_wrong_field_in_a_deployment_is_caught() -> None:
    """The check above is not vacuous: strict validation refuses a misspelt field."""
    deployment = next(d for _, d in kuberay.manifests() if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["enviroment"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_the_raycluster_uses_only_kuberay_fields_and_valid_pod_templates() -> None:
    cluster = kuberay.raycluster()
    jsonschema.validate(cluster, kuberay.RAYCLUSTER_SCHEMA)
    groups = [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]
    for group in groups:
        pod_template = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": group.get("groupName", "head")},
            "template": group["template"],
        }
        kubernetes_validate.validate(pod_template, K8S_VERSION, strict=True)

    broken = json.loads(json.dumps(cluster))
    broken["spec"]["workerGroupSpecs"][0]["rayStartParams"]["num-cpus"] = 4
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, kuberay.RAYCLUSTER_SCHEMA)


def test_the_pods_ray_start_commands_are_those_kuberay_builds_from_the_manifest() -> None:
    cluster = kuberay.raycluster()
    head_group = cluster["spec"]["headGroupSpec"]
    worker_group = cluster["spec"]["workerGroupSpecs"][0]
    address = kuberay.head_service(cluster)
    head = kuberay.ray_start_argv(
        head_group["rayStartParams"],
        head_group["template"]["spec"]["containers"][0],
        True,
        address,
        {},
    )
    worker = kuberay.ray_start_argv(
        worker_group["rayStartParams"],
        worker_group["template"]["spec"]["containers"][0],
        False,
        address,
        {},
    )

    assert head[0] == "--head"
    assert {"--num-cpus=0", "--port=6379", "--dashboard-host=0.0.0.0", "--block"} <= set(head)
    assert "--disable-usage-stats" in head
    assert "--address=lake-ray-head-svc:6379" in worker
    assert {"--num-cpus=4", '--resources={"lake-worker": 4}', "--block"} <= set(worker)
    assert f"--memory={16 * 2**30}" in worker  # from the container's limit, as KubeRay does
    assert f"--object-store-memory={2 * 2**30}" in worker


def _unknown_keys(model: BaseModel, raw: Any, where: str = "") -> list[str]:
    """Keys of ``raw`` that ``model`` (parsed from it) has no field for, recursively: Ray's
    schemas accept and drop them silently, so a misspelt option would be lost."""
    if not isinstance(raw, dict):
        return []
    fields = type(model).model_fields
    by_name = {info.alias or name: name for name, info in fields.items()} | {n: n for n in fields}
    unknown = []
    for key, value in raw.items():
        if key not in by_name:
            unknown.append(f"{where}{key}")
            continue
        parsed = getattr(model, by_name[key])
        if isinstance(parsed, BaseModel):
            unknown += _unknown_keys(parsed, value, f"{where}{key}.")
        elif isinstance(parsed, list) and isinstance(value, list):
            for i, (item, raw_item) in enumerate(zip(parsed, value, strict=False)):
                if isinstance(item, BaseModel):
                    unknown += _unknown_keys(item, raw_item, f"{where}{key}[{i}].")
    return unknown


def _serve_config() -> dict[str, Any]:
    return kuberay.load_docs(K8S / "serve-config.yaml")[0]


def test_the_serve_config_is_valid_for_ray_serve_with_no_unknown_key() -> None:
    from ray.serve.schema import ServeDeploySchema

    raw = _serve_config()
    config = ServeDeploySchema.model_validate(raw)
    assert _unknown_keys(config, raw) == []

    misspelt = {**raw, "http_options": {**raw["http_options"], "prot": 8000}}
    assert _unknown_keys(ServeDeploySchema.model_validate(misspelt), misspelt) == [
        "http_options.prot"
    ]


def _container(kind: str, name: str) -> dict[str, Any]:
    doc = next(
        d for _, d in kuberay.manifests() if d["kind"] == kind and d["metadata"]["name"] == name
    )
    container: dict[str, Any] = doc["spec"]["template"]["spec"]["containers"][0]
    return container


def test_the_serve_config_agrees_with_the_ai_platform_and_the_ray_head() -> None:
    http = _serve_config()["http_options"]
    aip = {v["name"]: v.get("value") for v in _container("Deployment", "lake-ai-platform")["env"]}
    head = kuberay.raycluster()["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]

    assert aip["AIP_RAY_SERVE_PORT"] == str(http["port"])
    assert aip["AIP_SERVING_HOST"] == http["host"]
    assert {"name": "serve", "containerPort": http["port"]} in head["ports"]
    # The services join the cluster through KubeRay's head Service, at the GCS port.
    address = f"lake-ray-head-svc.lake.svc.cluster.local:{head_port()}"
    assert aip["AIP_RAY_ADDRESS"] == aip["RAY_JOIN_ADDRESS"] == address
    dp = {v["name"]: v.get("value") for v in _container("Deployment", "lake-data-platform")["env"]}
    assert dp["DP_RAY_ADDRESS"] == dp["RAY_JOIN_ADDRESS"] == address
    assert kuberay.head_service(kuberay.raycluster()) == f"lake-ray-head-svc:{head_port()}"


def test_the_ray_pods_run_serve_and_ray_as_the_platform_starts_them() -> None:
    """The switches serverkit.ray_runtime gives the Ray it starts reach every Ray pod too."""
    spec = kuberay.raycluster()["spec"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    for group in groups:
        env = {v["name"]: v.get("value") for v in group["template"]["spec"]["containers"][0]["env"]}
        assert {**SERVE_ENV, **QUIET_ENV}.items() <= env.items()


def head_port() -> str:
    return kuberay.raycluster()["spec"]["headGroupSpec"]["rayStartParams"]["port"]


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every mapping inside a parsed manifest."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def test_every_secret_and_config_map_referenced_exists_with_its_key() -> None:
    secrets = kuberay.secrets()
    kustomization = kuberay.load_docs(K8S / "kustomization.yaml")[0]
    config_maps = {g["name"] for g in kustomization["configMapGenerator"]}
    checked = 0
    for _, doc in kuberay.manifests():
        for node in _walk(doc):
            if "secretKeyRef" in node:
                ref = node["secretKeyRef"]
                assert ref["key"] in secrets[ref["name"]], f"{ref['name']} has no {ref['key']}"
            elif "secretRef" in node:
                assert node["secretRef"]["name"] in secrets
            elif "secretName" in node:
                assert node["secretName"] in secrets
                for item in node.get("items", []):
                    assert item["key"] in secrets[node["secretName"]]
            elif "configMap" in node:
                assert node["configMap"]["name"] in config_maps
            else:
                continue
            checked += 1
    assert checked >= 10  # the token, object-store and API-key references of four pod templates
    for group in kustomization["configMapGenerator"]:
        for entry in group["files"]:
            assert (K8S / entry.split("=")[-1]).is_file()
    # Every manifest of the folder is applied by the kustomization.
    applied = set(kustomization["resources"]) | {"kustomization.yaml", "serve-config.yaml"}
    assert {p.name for p in K8S.glob("*.yaml")} == applied


def test_the_dockerfile_copies_what_exists_and_enters_through_a_valid_script() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.M):
        *sources, _ = line.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
    entrypoint = DEPLOY / "docker-entrypoint.sh"
    assert entrypoint.stat().st_mode & stat.S_IXUSR
    subprocess.run(["bash", "-n", str(entrypoint)], check=True)
    assert 'ENTRYPOINT ["docker-entrypoint.sh"]' in dockerfile
    assert 'pip install -c constraints.txt ".[ray]"' in dockerfile
    roles = set(re.findall(r"^\s+([\w-]+)\)", entrypoint.read_text(), re.M))
    for name in ("lake-ai-platform", "lake-data-platform"):
        assert set(_container("Deployment", name)["args"]) <= roles


def _recording_stub(bin_dir: Path, name: str, record: Path) -> None:
    stub = bin_dir / name
    stub.write_text(f'#!/bin/sh\necho "{name} $*" >> {record}\n')
    stub.chmod(0o755)


def test_the_entrypoint_joins_ray_first_then_runs_the_role(tmp_path: Path) -> None:
    """Which commands each role runs, in order: `ray` and `python` are stubs that record their
    arguments (what they then do is Ray's and the services' own business, tested elsewhere)."""
    record = tmp_path / "calls"
    for name in ("ray", "python"):
        _recording_stub(tmp_path, name, record)
    entrypoint = str(DEPLOY / "docker-entrypoint.sh")
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}

    joined = {**env, "RAY_JOIN_ADDRESS": "lake-ray-head-svc:6379"}
    subprocess.run([entrypoint, "data-platform"], env=joined, check=True)
    calls = record.read_text().splitlines()
    assert calls[0].startswith("ray start --address=lake-ray-head-svc:6379 --num-cpus=0 ")
    assert calls[1:] == ["python -m data_platform"]

    record.unlink()
    env.pop("RAY_JOIN_ADDRESS", None)
    subprocess.run([entrypoint, "ai-platform"], env=env, check=True)
    subprocess.run([entrypoint, "ray", "status"], env=env, check=True)
    echo = subprocess.run([entrypoint, "echo", "hi"], capture_output=True, text=True, check=True)
    assert record.read_text().splitlines() == ["python -m ai_platform", "ray status"]
    assert echo.stdout == "hi\n"


PINNED_LAKE_TASK = """
import os, sys
import lance, pyarrow as pa

@ray.remote(resources={"lake-worker": 1}, num_cpus=1, max_retries=0)
def write_on_worker(uri):
    # Only what the pod's environment gives: no storage options passed.
    lance.write_dataset(pa.table({"n": [1, 2, 3]}), uri)
    return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

result = ray.get(write_on_worker.remote(sys.argv[1]), timeout=120)
result["rows"] = lance.dataset(sys.argv[1]).count_rows()
report(result)
"""


def _local_pods(s3: S3Endpoint) -> RayCluster:
    """The RayCluster's head and one worker pod as local processes on 127.0.0.2 and .3.

    From the manifest: each group's rayStartParams and container env (Secrets resolved, the
    object-store one pointing at the test's endpoint), the token Secret mounted as a file.
    Replaced for one machine: addresses, ports (free ones), temp dirs and the object store
    size (the pods' 1-2 GiB of shared memory would not fit here).
    """
    manifest = kuberay.raycluster()
    gcs_port = free_port("127.0.0.2")
    secret_values = kuberay.secrets()
    object_store = {
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_REGION": s3.region,
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_ALLOW_HTTP": "true",
    }
    assert set(object_store) == set(secret_values["lake-object-store"])
    secret_values["lake-object-store"] = object_store
    secret_values["lake-ray-token"] = {"token": "unused: mounted as a file"}
    root = new_root()  # from here on, the caller's cluster.stop() removes it
    cluster = RayCluster(root=root, token_path=write_token(root / "auth_token"), gcs_port=gcs_port)
    cluster.dashboard_port = free_port("127.0.0.2")
    spec = manifest["spec"]
    groups = [
        ("head", "127.0.0.2", spec["headGroupSpec"]),
        ("worker", "127.0.0.3", spec["workerGroupSpecs"][0]),
    ]
    for name, ip, group in groups:
        container = group["template"]["spec"]["containers"][0]
        env = kuberay.container_env(container, secret_values)
        # The token Secret's mount path, as the local token file.
        env = {k: v.replace("/etc/ray-auth/token", str(cluster.token_path)) for k, v in env.items()}
        overrides = {
            "node-ip-address": ip,
            "object-store-memory": str(100 * 1024 * 1024),
            **node_port_params(),
        }
        if name == "head":
            overrides |= {
                "port": str(gcs_port),
                "dashboard-host": ip,
                "dashboard-port": str(cluster.dashboard_port),
                "ray-client-server-port": str(free_port()),
            }
        argv = kuberay.ray_start_argv(
            group["rayStartParams"], container, name == "head", f"127.0.0.2:{gcs_port}", overrides
        )
        argv.remove("--block")  # RayNode adds it, with the temp dir
        cluster.nodes.append(RayNode(name, ip, argv, env, root / name))
    return cluster


@pytest.mark.slow
def test_the_raycluster_pods_run_as_local_processes_form_a_cluster_that_runs_a_task(
    s3: S3Endpoint,
) -> None:
    cluster = _local_pods(s3)
    uri = s3.uri("pods/written-on-worker.lance")
    try:
        head_env = cluster.head.env
        assert head_env["RAY_AUTH_MODE"] == "token"
        assert set(HEALTH_CHECK_ENV) & set(head_env), "the manifest tightens Ray's health checks"
        cluster.start(timeout=START_TIMEOUT)
        worker = cluster.node("worker")
        argv, env = cluster.driver(PINNED_LAKE_TASK)
        env |= {k: v for k, v in worker.env.items() if k.startswith("AWS_")}
        done = subprocess.run(
            [*argv, uri], env=env, capture_output=True, text=True, timeout=180, check=False
        )
        assert done.returncode == 0, done.stderr[-3000:]
        result = driver_result(done.stdout)
        nodes = {n["ip"]: n for n in cluster.list_nodes() if n["alive"]}
    finally:
        cluster.stop()

    assert result["node"] == worker.node_id, "the head has no CPUs: the task ran on the worker"
    assert result["rows"] == 3
    assert nodes["127.0.0.2"]["resources"].get("CPU", 0) == 0
    assert nodes["127.0.0.3"]["resources"]["lake-worker"] == 4
    assert not cluster.pids(), "every process of both pods is gone"
    assert not cluster.root.exists()
