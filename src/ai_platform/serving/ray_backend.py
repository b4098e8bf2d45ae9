"""Level 2: each inference service is a Ray Serve application on a Ray we join or start.

The application wraps Level 1's model server app (``model_server.create_model_app``) with
``serve.ingress``, so routes (``/health``, ``/v1/model``, ``/predict``) and the error envelope
are identical. It is named after the service and routed at ``/{service_id}``.

Where it answers. Serve's proxy serves every app on one HTTP port, at
``http://HOST:SERVE_PORT/{service_id}``. With Serve's direct ingress (on in a Ray the platform
starts, see ``serverkit.ray_runtime.DIRECT_INGRESS_ENV``) each replica also answers on a port
of its own, at ``http://HOST:REPLICA_PORT/{service_id}``, without the proxy's hops: once a
replica runs, that is the service's endpoint, and the platform route spreads requests over
all of them (``urls``). The replicas' ports come from Serve's controller (its target groups,
as Serve's own HAProxy balancer learns them), refreshed by the manager's monitor. A service
asks for no port of its own: one asked for is refused (400 INVALID_REQUEST).

Apps are created and deleted imperatively (``serve.run``-style, one app per call), never by a
declarative config, which would replace every application on the cluster; a lock still
serialises them so that two deploys never race in the controller.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from ray.serve._private.common import RequestProtocol  # the target groups' protocol
from ray.serve.context import _get_global_client  # the port of a Serve already running
from ray.serve.schema import ApplicationStatus

import ray
from ai_platform.serving.backend import ServingBackend
from ai_platform.settings import AIPlatformSettings
from lakeapi.errors import InvalidRequest, PlatformError
from lakeapi.schemas import Service
from ray import serve
from serverkit.net import free_port
from serverkit.ray_runtime import SERVE_REPLICA_ENV, RayConnection, lake_env

log = logging.getLogger(__name__)

# Serve's default (5) queues the rest of the requests in the proxy, so the model server's
# batcher never sees more than 5 at once; it batches whatever is in flight instead.
MAX_ONGOING_REQUESTS = 256

_GONE = (ApplicationStatus.NOT_STARTED, ApplicationStatus.DELETING)
STATUS_TIMEOUT = 30.0  # seconds for the controller to list the replicas' ports


def _load_model_app(
    model_path: str, device: str, log_file: str, model_name: str, api_key: str | None = None
) -> FastAPI:
    """Runs in the replica: Level 1's model server app, logging to the service's log (when
    the replica's node has that folder: on another node its log stays in Ray's)."""
    root = logging.getLogger()
    try:
        handler = logging.FileHandler(log_file)
    except OSError:
        pass
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    import torch

    from ai_platform.serving.model_server import create_model_app

    torch.set_num_threads(1)  # as model_server: requests already run in parallel threads
    log.info("loading %s in Ray Serve replica (pid %d)", model_path, os.getpid())
    try:
        app = create_model_app(model_path, device=device, model_name=model_name, api_key=api_key)
    except PlatformError as exc:
        # One line both in our log and in Serve's status, not a traceback.
        reason = f"cannot serve {model_path}: {exc.code}: {exc.message}"
        log.error("%s", reason)
        raise RuntimeError(reason) from None
    except Exception:
        log.exception("cannot serve %s", model_path)
        raise
    log.info("serving %s", model_path)
    return app


@dataclass(frozen=True)
class Replicas:
    """How many replicas each service gets, and where.

    ``per_node=1`` spreads them one per node (Serve's ``max_replicas_per_node``): a node lost
    then takes one replica, not all. ``storage_options`` reach the replicas' environment, so
    a replica on any node reads the model from an object-store lake.
    """

    count: int = 1
    per_node: int | None = None
    num_cpus: float = 0.0
    storage_options: dict[str, str] = field(default_factory=dict)
    # The key every route but the liveness probes needs, as for a Level 1 model server:
    # handed to the replica as an argument (never its environment, which its logs may show).
    api_key: str | None = field(default=None, repr=False)


def model_application(service: Service, log_path: Path, replicas: Replicas) -> Any:
    """The Serve application of one service: ``replicas.count`` replicas of the model app."""
    model_path, device, log_file = service.model_path, service.device, str(log_path)
    name = service.name  # OIP clients address the model by the service's name
    api_key = replicas.api_key

    def build() -> FastAPI:  # a plain function: Serve calls it in the replica at start
        return _load_model_app(model_path, device, log_file, name, api_key)

    # Serve's replica switches travel with the replica: on a cluster we joined, its nodes'
    # environment is not ours to set. With storage options, the model server opens the
    # record as Lance does by default: AWS_* variables.
    env_vars = dict(SERVE_REPLICA_ENV)
    if replicas.storage_options:
        env_vars.update(lake_env(replicas.storage_options))
    actor_options: dict[str, Any] = {
        "num_cpus": replicas.num_cpus,
        "runtime_env": {"env_vars": env_vars},
    }
    deployment = serve.deployment(
        serve.ingress(build)(),
        name="model",
        num_replicas=replicas.count,
        ray_actor_options=actor_options,
        # A model that cannot load will not load on a retry either: fail after one try.
        max_constructor_retry_count=1,
        max_ongoing_requests=MAX_ONGOING_REQUESTS,
        # Serve's access log writes (and flushes) a line per request in the replica; the
        # model server's /metrics already counts requests per route and status.
        logging_config={"enable_access_log": False},
    )
    if replicas.per_node:
        deployment = deployment.options(  # type: ignore[attr-defined]  # a Deployment
            max_replicas_per_node=replicas.per_node
        )
    return deployment.bind()  # type: ignore[attr-defined]  # serve.deployment(app): a Deployment


def serve_start_options(path: Path, defaults: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Serve's ``http_options`` and ``proxy_location`` from a ``ServeDeploySchema`` file
    (checked by Ray's own schema: an unknown key is an error); ``defaults`` fill the
    options the file leaves out. Its ``applications`` are not deployed (see the module)."""
    import yaml
    from ray.serve.schema import ServeDeploySchema

    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    config = ServeDeploySchema.model_validate(raw)
    unknown = unknown_keys(config, raw)
    if unknown:  # Ray's schema drops them silently: a misspelt option would be lost
        raise ValueError(f"{path}: unknown Serve setting(s): {', '.join(unknown)}")
    http = {**defaults, **(raw.get("http_options") or {})}
    location = config.proxy_location
    return http, str(getattr(location, "value", location) or "HeadOnly")


def unknown_keys(model: Any, raw: Any, where: str = "") -> list[str]:
    """Keys of ``raw`` that ``model`` (parsed from it) has no field for, recursively."""
    if not isinstance(raw, dict):
        return []
    fields = type(model).model_fields
    names = {info.alias or name: name for name, info in fields.items()} | {n: n for n in fields}
    found = []
    for key, value in raw.items():
        if key not in names:
            found.append(f"{where}{key}")
        elif hasattr(parsed := getattr(model, names[key]), "model_fields"):
            found += unknown_keys(parsed, value, f"{where}{key}.")
    return found


class RayServeBackend(ServingBackend):
    """Inference services as Ray Serve applications (``AIP_RUNTIME=ray``)."""

    def __init__(
        self,
        settings: AIPlatformSettings,
        replicas: int = 1,
        replicas_per_node: int | None = None,
        serve_config: Path | None = None,
        direct_ingress: bool = True,
    ) -> None:
        """Args beyond ``settings`` (``make_backend`` passes ``AIP_RAY_REPLICAS``,
        ``AIP_RAY_REPLICAS_PER_NODE``, ``AIP_SERVE_CONFIG``, ``AIP_RAY_DIRECT_INGRESS``):
        replicas per service, at most ``replicas_per_node`` on a node, Serve's settings file
        (a ``ServeDeploySchema``; its ``http_options`` and ``proxy_location`` start Serve),
        and whether a Ray we start ourselves has Serve's direct ingress."""
        self.replicas = Replicas(
            count=replicas,
            per_node=replicas_per_node,
            num_cpus=settings.ray_replica_cpus,
            storage_options=settings.model_storage_options,
            api_key=settings.api_key,
        )
        self.ray = RayConnection(
            settings.ray_address,
            settings.ray_auth_token_path,
            namespace="lakekit-ai-platform",
            direct_ingress=direct_ingress,
        ).open()
        try:
            port = settings.ray_serve_port or free_port(settings.serving_host)
            http_options: dict[str, Any] = {"host": settings.serving_host, "port": port}
            proxy_location = "HeadOnly"
            if serve_config is not None:
                http_options, proxy_location = serve_start_options(serve_config, http_options)
            serve.start(http_options=http_options, proxy_location=proxy_location)
            # A Serve that already ran on the cluster keeps its own host and port.
            serve_client = _get_global_client()
            if serve_client is None:
                raise RuntimeError("Ray Serve did not start")
            config = serve_client.http_config
        except BaseException:
            self.ray.close()
            raise
        host = settings.serving_host if config.host in ("0.0.0.0", "::", "") else config.host
        self.port: int = config.port
        self.base_url = f"http://{host}:{self.port}"
        self._lock = threading.Lock()  # deploys, deletes and status fetches, one at a time
        self._apps: set[str] = set()
        self._status: dict[str, Any] = {}  # replaced whole by refresh(): read without a lock
        self._replicas: dict[str, tuple[str, ...]] = {}  # the same: app -> replicas' URLs
        self._controller: Any = serve_client._controller  # an actor handle

    def _endpoint(self, service_id: str) -> str:
        return f"{self.base_url}/{service_id}"

    def place(self, service_id: str, port: int | None, taken: set[int]) -> tuple[int, str]:
        if port and port != self.port:
            raise InvalidRequest(
                f"with the ray runtime every service is served on Ray Serve's port {self.port};"
                f" leave the port out (or ask for {self.port})"
            )
        return self.port, self._endpoint(service_id)

    def revived(self, service: Service) -> Service:
        # The Ray (hence Serve's port) may be a new one since the record was written.
        return service.model_copy(
            update={"port": self.port, "endpoint": self._endpoint(service.id)}
        )

    def start(self, service: Service, log_path: Path) -> int | None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        app = model_application(service, log_path, self.replicas)
        with self._lock:
            # Not serve.run: it waits for RUNNING without a time limit. The manager waits for
            # /health under its own start timeout, as on Level 1. (_run is marked stable.)
            serve._run(app, name=service.id, route_prefix=f"/{service.id}", _blocking=False)
            self._apps.add(service.id)
            self._fetch_status()  # the new app is known (DEPLOYING) before its status is read
        return None  # the replica's process belongs to Ray

    def refresh(self) -> None:
        # serve.status() is a blocking RPC to the controller: only the monitor thread (and
        # start, already off the event loop) call it; predict reads the cached answer. Under
        # the deploy lock, so an answer fetched before a deploy never replaces one after it.
        with self._lock:
            self._fetch_status()

    def _fetch_status(self) -> None:
        self._status = dict(serve.status().applications)
        self._replicas = self._replica_urls()

    def _replica_urls(self) -> dict[str, tuple[str, ...]]:
        """The URL of every running replica that answers HTTP itself, by app (none without
        direct ingress: then the controller's only targets are the proxies)."""
        groups = ray.get(self._controller.get_target_groups.remote(), timeout=STATUS_TIMEOUT)
        found: dict[str, tuple[str, ...]] = {}
        for group in groups:
            if group.protocol != RequestProtocol.HTTP or not group.app_name:
                continue
            # An app with no running replica is routed to the proxies: they are not its own.
            urls = sorted(
                f"http://{t.ip}:{t.port}{group.route_prefix}"
                for t in group.targets
                if t.port != self.port
            )
            if urls:
                found[group.app_name] = tuple(urls)
        return found

    def urls(self, service: Service) -> tuple[str, ...]:
        # Before a replica runs (and without direct ingress), the proxy's route.
        return self._replicas.get(service.id) or (self._endpoint(service.id),)

    def exit_status(self, service: Service) -> str | None:
        app = self._status.get(service.id)
        if app is None or app.status in _GONE:
            return "the Ray Serve application is gone"
        if app.status == ApplicationStatus.DEPLOY_FAILED:
            details = [d.message for d in app.deployments.values() if d.message] or [app.message]
            last = [line for line in "\n".join(details).splitlines() if line.strip()][-1:]
            return "the Ray Serve application failed to deploy" + (f": {last[0]}" if last else "")
        return None  # RUNNING, DEPLOYING, or UNHEALTHY while Serve replaces a replica

    def stop(self, service: Service) -> None:
        with self._lock:
            serve.delete(service.id)  # returns once the app is gone: its route answers 404
            self._apps.discard(service.id)
            self._status = {k: v for k, v in self._status.items() if k != service.id}
            self._replicas = {k: v for k, v in self._replicas.items() if k != service.id}

    def reclaim(self, service: Service) -> None:
        # An app a previous AI Platform left on a cluster that outlived it.
        if service.id in self._status:  # refreshed before the records are reclaimed
            self.stop(service)

    def close(self) -> None:
        if self.ray.head is None:  # a shared cluster: take our apps away, leave Serve
            with self._lock:
                for name in self._apps:
                    serve.delete(name, _blocking=False)
                self._apps.clear()
        self.ray.close()  # stops the Ray (and Serve with it) if we started it
