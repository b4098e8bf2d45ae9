"""Inference services: records, model-server life cycle, and predict forwarding.

Records are kept in a Lance table under the AI Platform's state directory, so a restart knows
every service. Services that were running when the platform stopped are started again on the
same port (their status reads ``starting`` until the model has loaded).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ai_platform.dp_client import DataPlatformClient
from ai_platform.serving.backend import ServingBackend
from lakeapi.errors import (
    ServiceAlreadyExists,
    ServiceNotFound,
    ServiceUnavailable,
)
from lakeapi.names import new_id
from lakeapi.schemas import Service, ServiceCreate, ServiceStatus
from serverkit.recordstore import RecordTable
from serverkit.upstream import UpstreamError, UpstreamPool

log = logging.getLogger(__name__)

MONITOR_SECONDS = 0.5
LOG_TAIL_BYTES = 2000


class ServingManager:
    def __init__(
        self,
        state_dir: Path,
        client: DataPlatformClient,
        backend: ServingBackend,
        start_timeout: float,
        upstream_timeout: float,
    ) -> None:
        self.state_dir = state_dir
        self.client = client
        self.backend = backend
        self.start_timeout = start_timeout
        self.table = RecordTable(state_dir / "services.lance")
        self._services: dict[str, Service] = {}
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._monitor: threading.Thread | None = None
        # Idle connections are dropped before uvicorn's 5 s keep-alive closes them.
        self._upstream = UpstreamPool(upstream_timeout, idle_seconds=2.0)

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        revive = []
        for data in self.table.load_all():
            service = Service.model_validate(data)
            self._services[service.id] = service
            self.backend.reclaim(service)  # nothing of the last process may linger
            if service.status is not ServiceStatus.FAILED:
                revive.append(service)
        if revive:
            threading.Thread(
                target=self._revive, args=(revive,), name="revive", daemon=True
            ).start()
        self._monitor = threading.Thread(target=self._watch, name="serving-monitor", daemon=True)
        self._monitor.start()

    def close(self) -> None:
        self._closed.set()
        self.backend.close()

    def _revive(self, services: list[Service]) -> None:
        for service in services:
            if self._closed.is_set():
                return
            try:
                revived = service.model_copy(update={"restarts": service.restarts + 1})
                self._launch(self.backend.revived(revived))
            except ServiceUnavailable as exc:
                log.warning("could not restart %s: %s", service.id, exc.message)

    # -- records -------------------------------------------------------------------------

    def list(self) -> list[Service]:
        with self._lock:
            return sorted(self._services.values(), key=lambda s: s.created_at, reverse=True)

    def get(self, service_id: str) -> Service:
        with self._lock:
            service = self._services.get(service_id)
        if service is None:
            raise ServiceNotFound(f"Inference service '{service_id}' does not exist")
        return service

    def _put(self, service: Service) -> Service:
        with self._lock:
            if service.id in self._services:  # not deleted meanwhile
                self._services[service.id] = service
                self.table.upsert(service.model_dump(mode="json"))
        return service

    def log_path(self, service_id: str) -> Path:
        return self.state_dir / "logs" / f"{service_id}.log"

    def logs(self, service_id: str, tail_bytes: int | None = None) -> str:
        self.get(service_id)
        try:
            data = self.log_path(service_id).read_bytes()
        except FileNotFoundError:
            return ""
        if tail_bytes is not None:
            data = data[-tail_bytes:]
        return data.decode("utf-8", errors="replace")

    # -- create and delete ---------------------------------------------------------------

    def create(self, req: ServiceCreate) -> Service:
        """Load the model in a new server and wait until it answers.

        Raises:
            ServiceAlreadyExists: the name is taken (409).
            ModelNotFound: no such model in the lake (404).
            PortInUse: the requested port is taken (409).
            InvalidRequest: the backend cannot serve on the requested port (400; Ray Serve
                serves every service on its one HTTP port).
            ServiceUnavailable: the server did not come up (503; the record shows why).
        """
        model = self.client.get_model(req.model)
        with self._lock:
            if any(s.name == req.name for s in self._services.values()):
                raise ServiceAlreadyExists(f"Inference service '{req.name}' already exists")
            service_id = new_id("serve")
            taken = {s.port for s in self._services.values()}
            port, endpoint = self.backend.place(service_id, req.port, taken)
            service = Service(
                id=service_id,
                name=req.name,
                model=req.model,
                model_path=model["path"],
                model_version=model.get("version"),
                device=req.device,
                port=port,
                endpoint=endpoint,
            )
            self._services[service.id] = service
            self.table.upsert(service.model_dump(mode="json"))
        return self._launch(service)

    def _launch(self, service: Service) -> Service:
        service = self._put(
            service.model_copy(update={"status": ServiceStatus.STARTING, "error": None})
        )
        pid = self.backend.start(service, self.log_path(service.id))
        service = self._put(service.model_copy(update={"pid": pid}))
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            ended = self.backend.exit_status(service)
            if ended is not None:
                return self._fail(service, ended, raise_=True)
            try:
                if httpx.get(f"{service.endpoint}/health", timeout=1).status_code == 200:
                    return self._put(
                        service.model_copy(
                            update={
                                "status": ServiceStatus.RUNNING,
                                "started_at": datetime.now(UTC),
                            }
                        )
                    )
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.backend.stop(service)
        return self._fail(service, f"model did not load within {self.start_timeout:g} s", True)

    def _fail(self, service: Service, why: str, raise_: bool = False) -> Service:
        tail = self.logs(service.id, LOG_TAIL_BYTES).strip().splitlines()[-5:]
        message = why + (": " + " | ".join(tail) if tail else "")
        failed = self._put(
            service.model_copy(update={"status": ServiceStatus.FAILED, "error": message})
        )
        if raise_:
            raise ServiceUnavailable(f"inference service '{service.name}' failed: {message}")
        return failed

    def delete(self, service_id: str) -> None:
        service = self.get(service_id)
        self.backend.stop(service)
        with self._lock:
            self._services.pop(service_id, None)
            self.table.delete(service_id)
        self.log_path(service_id).unlink(missing_ok=True)

    # -- health and predict --------------------------------------------------------------

    def _watch(self) -> None:
        while not self._closed.wait(MONITOR_SECONDS):
            for service in self.list():
                if service.status is not ServiceStatus.RUNNING:
                    continue
                ended = self.backend.exit_status(service)
                if ended is not None:
                    log.warning("%s: %s", service.id, ended)
                    self._fail(service, ended)

    def _ready(self, service_id: str) -> Service:
        service = self.get(service_id)
        if service.status is not ServiceStatus.RUNNING:
            detail = f": {service.error}" if service.error else ""
            raise ServiceUnavailable(
                f"inference service '{service.name}' is {service.status}{detail}"
            )
        ended = self.backend.exit_status(service)
        if ended is not None:
            self._fail(service, ended)
            raise ServiceUnavailable(f"inference service '{service.name}' failed: {ended}")
        return service

    async def predict(self, service_id: str, body: bytes) -> tuple[int, bytes]:
        """Forward a predict request as-is; the model server's status and body come back.

        Through ``serverkit.upstream`` rather than a general client: on this hot path the hop's
        CPU is what the platform route adds to every prediction.
        """
        service = self._ready(service_id)
        host, port, path = _predict_target(service.endpoint)
        try:
            return await self._upstream.post(host, port, path, body)
        except UpstreamError as exc:
            self._ready(service_id)  # a dead server is reported as such
            raise ServiceUnavailable(
                f"inference service '{service.name}' did not answer: {exc}"
            ) from exc

    async def aclose(self) -> None:
        await self._upstream.close()


@functools.lru_cache(maxsize=1024)
def _predict_target(endpoint: str) -> tuple[str, int, str]:
    """Host, port and predict path of a service endpoint (parsed once, not per request)."""
    url = urlsplit(endpoint)
    return url.hostname or "", url.port or 80, f"{url.path.rstrip('/')}/predict"
