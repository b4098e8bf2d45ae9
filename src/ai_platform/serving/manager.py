"""Inference services: records, model-server life cycle, and predict forwarding.

Records live in memory under a lock that is only ever held for dictionary work, and are
persisted by one ordered ``RecordWriter`` (a Lance table under the AI Platform's state URI),
so a restart knows every service. A route that promises a record (create, delete) answers once
the writer made it durable; predict and the monitor never wait for a commit. Services that were
running when the platform stopped are started again on the same port (their status reads
``starting`` until the model has loaded).

The event loop never blocks here: model servers are started and stopped in worker threads,
health is polled asynchronously, and the backend's own status calls (Ray Serve's are blocking
RPCs) run on the monitor thread, which caches what predict reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from ai_platform.dp_client import DataPlatformClient
from ai_platform.serving import rollover
from ai_platform.serving.backend import ServingBackend
from ai_platform.serving.health import PROBED, UNHEALTHY, HealthProber, ProbePolicy
from lakeapi.errors import (
    InvalidRequest,
    ServiceAlreadyExists,
    ServiceNotFound,
    ServiceUnavailable,
)
from lakeapi.names import new_id, pinned_uri
from lakeapi.schemas import Service, ServiceCreate, ServiceStatus
from lakekit.models import check_model_record
from serverkit.recordstore import RecordTable, RecordWriter
from serverkit.upstream import UpstreamError, UpstreamPool, split_endpoint

log = logging.getLogger(__name__)
Headers = Sequence[tuple[str, str]]
T = TypeVar("T")

MONITOR_SECONDS = 0.5
HEALTH_POLL_SECONDS = 0.1
LOG_TAIL_BYTES = 2000
CAUSE_PREFIX = "cannot serve "  # how model_server says why it exits (ray_backend too)
_EXCEPTION = re.compile(r"[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")
COMPACT_EVERY_COMMITS = 200


class ServingManager:
    """Services by id or by name; one writer persists them.

    Args:
        table: where the service records are kept.
        log_dir: model-server logs (local: the servers run on this machine).
        client: the Data Platform (models are looked up there).
        backend: where model servers run.
        start_timeout: seconds a model may take to load.
        upstream_timeout: seconds for a prediction forwarded to a model server.
        api_key: sent to the model servers (they need it when it is set).
        probe: how running model servers are probed for health.
        storage_options: Lance storage options of the lake, for the model check.
        alias_poll: seconds between checks of the aliases services follow (0: only moves
            made through this service roll them).
    """

    def __init__(
        self,
        table: RecordTable,
        log_dir: Path,
        client: DataPlatformClient,
        backend: ServingBackend,
        start_timeout: float,
        upstream_timeout: float,
        api_key: str | None = None,
        probe: ProbePolicy | None = None,
        storage_options: dict[str, str] | None = None,
        alias_poll: float = 0.0,
    ) -> None:
        self.log_dir = log_dir
        # The lake's options: a model on object storage is checked with the platform's own
        # settings, not only with whatever AWS_* variables this process happens to have.
        self.storage_options = dict(storage_options or {})
        self.client = client
        self.backend = backend
        self.start_timeout = start_timeout
        self.writer = RecordWriter(table, compact_every=COMPACT_EVERY_COMMITS, name="services")
        self._services: dict[str, Service] = {}
        self._ids_by_name: dict[str, str] = {}
        self._lock = threading.Lock()  # dictionary work only: never held across I/O
        self._closed = threading.Event()
        self._monitor: threading.Thread | None = None
        self._revival: asyncio.Task[None] | None = None
        self.alias_poll = alias_poll
        self._aliases: asyncio.Task[None] | None = None
        self.rolling: set[str] = set()  # names being rolled (event loop only): one roll each
        self._turn = 0  # round robin over a service's replicas (event loop only)
        # Idle connections are dropped before uvicorn's 5 s keep-alive closes them.
        auth = [("Authorization", f"Bearer {api_key}")] if api_key else []
        self._upstream = UpstreamPool(upstream_timeout, idle_seconds=2.0, headers=auth)
        self._probe = httpx.AsyncClient(timeout=1.0)
        self.health = HealthProber(probe or ProbePolicy(), self.list, self._on_health)

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Load the records, reclaim what a previous process left, revive in the background."""
        revive = await asyncio.to_thread(self._load)
        if revive:
            self._revival = asyncio.create_task(self._revive(revive), name="revive")
        self._monitor = threading.Thread(target=self._watch, name="serving-monitor", daemon=True)
        self._monitor.start()
        self.health.start()
        if self.alias_poll:
            watch = rollover.watch_aliases(self, self.alias_poll)
            self._aliases = asyncio.create_task(watch, name="aliases")

    def _load(self) -> list[Service]:
        self.backend.refresh()
        by_name: dict[str, Service] = {}
        for data in self.writer.table.load_all():
            service = Service.model_validate(data)
            self.backend.reclaim(service)  # nothing of the last process may linger
            other = by_name.get(service.name)
            if other is not None:
                # A process that died mid-rollover left both halves: one service per name,
                # and an alias watch rolls the one kept to wherever its alias is now.
                service, dropped = sorted((service, other), key=_survival)[::-1]
                self.writer.delete(dropped.id)
                log.warning("%s: %s dropped, a rollover's other half", service.name, dropped.id)
            by_name[service.name] = service
        with self._lock:
            for service in by_name.values():
                self._services[service.id] = service
                self._ids_by_name[service.name] = service.id
        return [s for s in by_name.values() if s.status is not ServiceStatus.FAILED]

    async def aclose(self) -> None:
        """Stop the monitor, the revival, every model server, then the writer."""
        self._closed.set()
        await self.health.aclose()
        for task in (self._revival, self._aliases):
            if task is not None:
                task.cancel()
        if self._monitor is not None:
            await asyncio.to_thread(self._monitor.join, 5)
        await asyncio.to_thread(self.backend.close)
        await asyncio.to_thread(self.writer.close)
        await self._upstream.close()
        await self._probe.aclose()

    async def _revive(self, services: list[Service]) -> None:
        for service in services:
            if self._closed.is_set():
                return
            try:
                revived = rollover.pinned(service)  # its recorded version, not the latest
                revived = revived.model_copy(update={"restarts": service.restarts + 1})
                await self._launch(self.backend.revived(revived))
            except ServiceUnavailable as exc:
                log.warning("could not restart %s: %s", service.id, exc.message)

    # -- records -------------------------------------------------------------------------

    def list(self) -> list[Service]:
        with self._lock:
            services = list(self._services.values())
        return sorted(services, key=lambda s: s.created_at, reverse=True)

    def get(self, id_or_name: str) -> Service:
        """A service by id, or else by name.

        Raises:
            ServiceNotFound: neither matches (404).
        """
        # No lock: one dictionary read is atomic, and predict comes through here.
        service = self._services.get(id_or_name)
        if service is None:
            service = self._services.get(self._ids_by_name.get(id_or_name, ""))
        if service is None:
            raise ServiceNotFound(f"Inference service '{id_or_name}' does not exist")
        return service

    def _store(self, service: Service) -> Future[None] | None:
        """Replace a service's record in memory and hand it to the writer (in the same order
        as in memory, hence under the lock: handing over is not committing). None: deleted."""
        with self._lock:
            if service.id not in self._services:
                return None
            self._services[service.id] = service
            return self.writer.put(service.model_dump(mode="json"))

    def _update(self, service_id: str, **changes: Any) -> tuple[Service, Future[None]] | None:
        """The current record with ``changes``, stored, and its write's future; None if the
        service was deleted meanwhile."""
        with self._lock:
            current = self._services.get(service_id)
            if current is None:
                return None
            service = current.model_copy(update=changes)
            self._services[service_id] = service
            return service, self.writer.put(service.model_dump(mode="json"))

    def log_path(self, service_id: str) -> Path:
        return self.log_dir / f"{service_id}.log"

    def logs(self, id_or_name: str, tail_bytes: int | None = None) -> str:
        """The model server's log (blocking file read: call it off the event loop)."""
        return self._log_text(self.get(id_or_name).id, tail_bytes)

    def _log_text(self, service_id: str, tail_bytes: int | None) -> str:
        try:
            with open(self.log_path(service_id), "rb") as fh:
                if tail_bytes is not None:
                    fh.seek(max(0, fh.seek(0, 2) - tail_bytes))
                data = fh.read()
        except FileNotFoundError:
            return ""
        return data.decode("utf-8", errors="replace")

    # -- create and delete ---------------------------------------------------------------

    async def create(self, req: ServiceCreate) -> Service:
        """Load the model in a new server and wait until it answers (and its record is durable).

        A failed service of the same name is replaced: its record and its log go.

        Raises:
            ServiceAlreadyExists: the name is taken by a service that has not failed (409).
            ModelNotFound: no such model in the lake (404).
            InvalidRequest: the model's record cannot be served (400; nothing is started).
            PortInUse: the requested port is taken (409).
            InvalidRequest: the backend cannot serve on the requested port (400; Ray Serve
                serves every service on its one HTTP port).
            ServiceUnavailable: the server did not come up (503; the record shows why).
        """
        model, version, follows = await rollover.resolve(self.client, req.model)
        model_path = pinned_uri(model.path, version)
        # The same check a training task's output passes: a bad record is refused here, with
        # what is wrong, rather than by a model server that exits.
        problem = await asyncio.to_thread(check_model_record, model_path, self.storage_options)
        if problem:
            raise InvalidRequest(f"model '{req.model}' cannot be served: {problem}")
        replaced: Service | None = None
        with self._lock:
            taken_by = self._services.get(self._ids_by_name.get(req.name, ""))
            if taken_by is not None:
                if taken_by.status is not ServiceStatus.FAILED:
                    raise ServiceAlreadyExists(f"Inference service '{req.name}' already exists")
                replaced = taken_by
                del self._services[taken_by.id]
                self.writer.delete(taken_by.id)  # ordered before the new record's put
            service_id = new_id("serve")
            taken = {s.port for s in self._services.values()}
            port, endpoint = self.backend.place(service_id, req.port, taken)
            service = Service(
                id=service_id,
                name=req.name,
                model=model.id,
                model_path=model_path,
                model_version=version,
                follows=follows,
                device=req.device,
                port=port,
                endpoint=endpoint,
            )
            self._services[service.id] = service
            self._ids_by_name[service.name] = service.id
            saved = self.writer.put(service.model_dump(mode="json"))
        if replaced is not None:
            await asyncio.to_thread(self._discard, replaced)
        try:
            await asyncio.wrap_future(saved)
        except Exception:
            self._forget(service)
            raise
        running = await self._launch(service)
        await rollover.pin(self.client, running)
        return running

    async def follow(self, model: str, tag: str, version: int) -> Sequence[Service]:
        """An alias moved: roll the services that follow it (see ``rollover``)."""
        return await rollover.follow(self, model, tag, version)

    def _discard(self, service: Service) -> None:
        """What is left of a replaced failed service: its runtime's remains and its log."""
        self.backend.stop(service)
        self.log_path(service.id).unlink(missing_ok=True)

    def _forget(self, service: Service) -> Future[None]:
        with self._lock:
            self._services.pop(service.id, None)
            if self._ids_by_name.get(service.name) == service.id:
                del self._ids_by_name[service.name]
            return self.writer.delete(service.id)

    async def _launch(self, service: Service) -> Service:
        service = service.model_copy(update={"status": ServiceStatus.STARTING, "error": None})
        self._store(service)
        try:
            pid = await asyncio.to_thread(self.backend.start, service, self.log_path(service.id))
        except Exception as exc:  # the runtime refused it: the record must not stay starting
            log.exception("starting %s failed", service.id)
            raise await self._failed(service, f"could not start: {exc}") from None
        started = self._update(service.id, pid=pid)
        if started is None:  # deleted while its server started: that server must go too
            await asyncio.to_thread(self.backend.stop, service)
            raise ServiceNotFound(f"Inference service '{service.name}' was deleted")
        service = started[0]
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            ended = self.backend.exit_status(service)
            if ended is not None:
                raise await self._failed(service, ended)
            if await self._healthy(service):
                # Its replicas may answer on URLs of their own (Ray Serve's direct ingress),
                # known once one runs: the endpoint moves there, and is probed there.
                await asyncio.to_thread(self.backend.refresh)
                if (moved := self._moved(service)) is not None:
                    service = moved
                    continue
                running = service.model_copy(
                    update={"status": ServiceStatus.RUNNING, "started_at": datetime.now(UTC)}
                )
                saved = self._store(running)
                if saved is not None:
                    await asyncio.wrap_future(saved)
                return running
            await asyncio.sleep(HEALTH_POLL_SECONDS)
        await asyncio.to_thread(self.backend.stop, service)
        raise await self._failed(service, f"model did not load within {self.start_timeout:g} s")

    def _moved(self, service: Service) -> Service | None:
        """The record with its endpoint on a replica that answers, if the one it names is not
        among the backend's (a replica started again elsewhere); None if it is."""
        urls = self.backend.urls(service)
        if service.endpoint in urls:
            return None
        return service.model_copy(update={"endpoint": urls[0], "port": split_endpoint(urls[0])[1]})

    async def _healthy(self, service: Service) -> bool:
        try:
            response = await self._probe.get(f"{service.endpoint}/health")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def _fail(self, service: Service, why: str) -> tuple[ServiceUnavailable, Future[None] | None]:
        """Mark the service failed (with the cause its log gives, if any): the error to raise,
        and the future of the failed record's write (None if the service was deleted)."""
        message = why + (f": {cause}" if (cause := self._cause(service.id)) else "")
        stored = self._update(service.id, status=ServiceStatus.FAILED, error=message)
        error = ServiceUnavailable(f"inference service '{service.name}' failed: {message}")
        return error, (stored[1] if stored else None)

    def _cause(self, service_id: str) -> str | None:
        """The model server's own last word on why it stopped (``cannot serve ...``, or the
        exception a traceback ends with); the rest of the log (uvicorn's lines) stays there."""
        tail = self._log_text(service_id, LOG_TAIL_BYTES).strip().splitlines()
        for line in reversed(tail):
            if line.startswith(CAUSE_PREFIX):
                return line.strip()
        if tail and _EXCEPTION.match(tail[-1]):
            return tail[-1].strip()
        return None

    async def _failed(self, service: Service, why: str) -> ServiceUnavailable:
        """``_fail``, answered once the failed record is durable (create's promise)."""
        error, saved = self._fail(service, why)
        if saved is not None:
            await asyncio.wrap_future(saved)
        return error

    async def delete(self, id_or_name: str) -> None:
        """Stop the service, free its port, and forget it once that is durable."""
        service = self.get(id_or_name)
        removed = self._forget(service)  # first: the monitor must not mark it failed now
        await asyncio.to_thread(self.backend.stop, service)
        await asyncio.wrap_future(removed)
        if service.name not in self._ids_by_name:  # not the old half of a rollover
            await rollover.unpin(self.client, service)
        await asyncio.to_thread(self.log_path(service.id).unlink, missing_ok=True)

    # -- health and predict --------------------------------------------------------------

    def _watch(self) -> None:
        while not self._closed.wait(MONITOR_SECONDS):
            try:
                self.backend.refresh()
            except Exception:  # a status call failing must not end the monitor
                log.exception("refreshing the serving backend's status failed")
                continue
            for service in self.list():
                if service.status not in PROBED:
                    continue
                ended = self.backend.exit_status(service)
                if ended is not None:
                    log.warning("%s: %s", service.id, ended)
                    self._fail(service, ended)
                elif (moved := self._moved(service)) is not None:
                    log.info("%s: endpoint now %s", service.id, moved.endpoint)
                    self._update(service.id, endpoint=moved.endpoint, port=moved.port)

    def _ready(self, id_or_name: str) -> Service:
        service = self.get(id_or_name)
        if service.status is not ServiceStatus.RUNNING:
            detail = f": {service.error}" if service.error else ""
            raise ServiceUnavailable(
                f"inference service '{service.name}' is {service.status}{detail}"
            )
        if problem := self.health.problem(service.id):
            raise ServiceUnavailable(f"inference service '{service.name}' is unhealthy: {problem}")
        ended = self.backend.exit_status(service)
        if ended is not None:
            raise self._fail(service, ended)[0]  # predict never waits for a commit
        return service

    def _on_health(self, service: Service, problem: str | None) -> None:
        """The health probe's verdict: the record shows it; a hung server's requests end."""
        current = self._services.get(service.id)
        if current is None or current.status not in PROBED:
            return  # deleted, failed or restarting meanwhile: that record says more
        if problem is None:
            self._update(service.id, status=ServiceStatus.RUNNING, error=None)
            return
        changes: dict[str, Any] = {"status": UNHEALTHY, "error": problem}
        # One replica of several: the probes turn to the next one, which answers in their
        # next round, rather than waiting seconds for Ray Serve to drop a dead replica.
        if others := [url for url in self.backend.urls(current) if url != current.endpoint]:
            changes.update(endpoint=others[0], port=split_endpoint(others[0])[1])
        self._update(service.id, **changes)
        host, port, _ = split_endpoint(current.endpoint)
        self._upstream.abort(host, port)

    async def predict(self, id_or_name: str, body: bytes) -> tuple[int, bytes]:
        """Forward a predict request as-is; the model server's status and body come back.

        Through ``serverkit.upstream`` rather than a general client: on this hot path the hop's
        CPU is what the platform route adds to every prediction.
        """
        service = self._ready(id_or_name)
        return await self._call(
            service,
            lambda host, port, base: self._upstream.post(host, port, base + "/predict", body),
        )

    async def _call(self, service: Service, send: Callable[[str, int, str], Awaitable[T]]) -> T:
        """``send`` (host, port, base path) to the service's next replica in turn; when it
        has several and that one fails, once more to the one after: a replica may be gone
        since the backend last looked (what is forwarded here is idempotent)."""
        urls = self.backend.urls(service)
        self._turn += 1
        *spare, last = [urls[(self._turn + i) % len(urls)] for i in range(min(len(urls), 2))]
        for endpoint in spare:
            with contextlib.suppress(UpstreamError):
                return await send(*split_endpoint(endpoint))
        try:
            return await send(*split_endpoint(last))
        except UpstreamError as exc:
            self._ready(service.id)  # a dead server is reported as such
            raise ServiceUnavailable(
                f"inference service '{service.name}' did not answer: {exc}"
            ) from exc

    async def forward(
        self, id_or_name: str, method: str, target: str, body: bytes, headers: Headers
    ) -> tuple[int, Headers, bytes]:
        """Forward an Open Inference Protocol request (``target``: ``/v2/...`` and its query)
        to the service's model server; its status, OIP headers and body come back unchanged.

        Raises:
            ServiceNotFound: no such service (404).
            ServiceUnavailable: not running, or it did not answer (503).
        """
        service = self._ready(id_or_name)
        return await self._call(
            service,
            lambda host, port, base: self._upstream.request(
                method, host, port, base + target, body, headers, OIP_HEADERS
            ),
        )


# What an OIP exchange carries besides its body (the binary extension's header among them).
OIP_HEADERS = ("content-type", "inference-header-content-length")


def _survival(service: Service) -> tuple[bool, datetime]:
    """Of two records of one name, the one to keep sorts last: running, then started last."""
    started = service.started_at or datetime.min.replace(tzinfo=UTC)
    return service.status is ServiceStatus.RUNNING, started
