"""Which exact model version a service runs, and moving a service to another version.

A service names its model as ``NAME`` (the latest version), ``NAME@3`` or ``NAME@alias``; it
is resolved once, at create, to one version, and the record's ``model_path`` is pinned to it
(``...?version=N``, which the model server's ``lakekit`` opens), so a service started again
after a restart loads the version its record shows, never a newer one. Each running service
tags the version it runs on the model (``service-NAME``): housekeeping keeps that version and
the model's deletion is refused while the service runs.

A service that follows an alias rolls when the alias moves: a server for the new version starts
beside the old one, the service's name switches to it once it answers, and the old server is
stopped after the requests it holds are done. The service gets a new id then (the backends
keep one server per id); its name stays, and so does every request sent by name.

A move through the AI Platform rolls its services before the answer comes. An alias moved
anywhere else (at the Data Platform, by another AI Platform on the lake) is seen by a watch
that reads the followed aliases every few seconds, and rolls them the same way. One roll at a
time per service: a move made while its service rolls is picked up by the next watch.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from lakeapi.errors import InvalidRequest, NotFound, PlatformError, TagNotFound, VersionNotFound
from lakeapi.names import (
    new_id,
    pinned_uri,
    split_at,
    split_uri,
)
from lakeapi.schemas import Model, Service, ServiceStatus
from lakekit.models import check_model_record

if TYPE_CHECKING:
    from ai_platform.dp_client import DataPlatformClient
    from ai_platform.serving.manager import ServingManager

log = logging.getLogger(__name__)

SERVICE_TAG_PREFIX = "service-"  # what data_platform.store.SERVICE_PREFIX expects
DRAIN_SECONDS = 2.0  # the old server keeps answering what was sent to it before the switch


async def resolve(client: DataPlatformClient, ref: str) -> tuple[Model, int, str | None]:
    """The model a service asks for, the exact version, and the alias it follows (if any).

    Raises:
        ModelNotFound, VersionNotFound, TagNotFound, InvalidRequest.
    """
    name, at = split_at(ref, "model id")
    model = await client.get_model(name)
    if at is None:
        return model, model.version, None
    if isinstance(at, str):
        if at not in model.tags:
            raise TagNotFound(f"Model '{name}' has no tag '{at}'")
        return model, model.tags[at], at
    if at not in {v.version for v in await client.model_versions(name)}:
        raise VersionNotFound(f"Model '{name}' has no version {at}")
    return model, at, None


def pinned(service: Service) -> Service:
    """The record with its model path pinned to its recorded version (older records lack
    the pin: without it, a revived service would load the model's latest version)."""
    base, version = split_uri(service.model_path)
    if version is None and service.model_version is not None:
        return service.model_copy(update={"model_path": pinned_uri(base, service.model_version)})
    return service


def service_tag(service: Service) -> str:
    return f"{SERVICE_TAG_PREFIX}{service.name}"


async def pin(client: DataPlatformClient, service: Service) -> None:
    """Tag the version the service runs; a lake that refuses only costs the protection."""
    if service.model_version is None:
        return
    try:
        await client.move_tag("models", service.model, service_tag(service), service.model_version)
    except PlatformError as exc:
        log.warning("could not tag %s for %s: %s", service.model, service.name, exc.message)


async def unpin(client: DataPlatformClient, service: Service) -> None:
    try:
        await client.delete_tag("models", service.model, service_tag(service))
    except NotFound:
        pass  # already gone, or the model was deleted
    except PlatformError as exc:
        log.warning("could not untag %s for %s: %s", service.model, service.name, exc.message)


async def follow(manager: ServingManager, model: str, tag: str, version: int) -> list[Service]:
    """Roll every running service that follows ``model@tag`` to ``version``; returns the
    services as they run now (a service whose new server failed keeps its old one)."""
    rolled = []
    for service in manager.list():
        if (
            service.model == model
            and service.follows == tag
            and service.status is ServiceStatus.RUNNING
            and service.model_version != version
            and manager.get(service.name).id == service.id  # not a rollover's old half
            and service.name not in manager.rolling
        ):
            try:
                rolled.append(await roll(manager, service, version))
            except PlatformError as exc:
                log.warning("rolling %s to version %d failed: %s", service.name, version, exc)
    return rolled


async def roll(manager: ServingManager, old: Service, version: int) -> Service:
    """Start ``old``'s model at ``version`` beside it, switch its name over, stop ``old``.

    Raises:
        InvalidRequest: that version cannot be served (nothing was started).
        ServiceUnavailable: the new server did not come up (``old`` still serves).
    """
    manager.rolling.add(old.name)
    try:
        return await _roll(manager, old, version)
    finally:
        manager.rolling.discard(old.name)


async def _roll(manager: ServingManager, old: Service, version: int) -> Service:
    model_path = pinned_uri(split_uri(old.model_path)[0], version)
    problem = await asyncio.to_thread(check_model_record, model_path, manager.storage_options)
    if problem:
        raise InvalidRequest(f"model '{old.model}' version {version} cannot be served: {problem}")
    with manager._lock:
        service_id = new_id("serve")
        taken = {s.port for s in manager._services.values()}
        port, endpoint = manager.backend.place(service_id, None, taken)
        new = old.model_copy(
            update={
                "id": service_id,
                "model_path": model_path,
                "model_version": version,
                "port": port,
                "endpoint": endpoint,
                "status": ServiceStatus.STARTING,
                "started_at": None,
                "error": None,
                "pid": None,
                "restarts": 0,
            }
        )
        manager._services[new.id] = new  # by id only: requests by name still reach old
    try:
        running = await manager._launch(new)
    except PlatformError:
        manager._forget(new)  # a failed half is not a second service of that name
        raise
    with manager._lock:
        manager._ids_by_name[old.name] = running.id  # the switch
    log.info("%s: version %s -> %d", old.name, old.model_version, version)
    await asyncio.sleep(DRAIN_SECONDS)
    await manager.delete(old.id)
    await pin(manager.client, running)
    return running


async def watch_aliases(manager: ServingManager, every: float) -> None:
    """Every ``every`` seconds, roll the services whose alias now names another version."""
    while True:
        await asyncio.sleep(every)
        followed = {
            (s.model, s.follows)
            for s in manager.list()
            if s.follows and s.status is ServiceStatus.RUNNING
        }
        for model, tag in sorted(followed):
            try:
                await _check_alias(manager, model, tag)
            except Exception:  # the watch outlives any one failure
                log.exception("checking alias %s@%s failed", model, tag)


async def _check_alias(manager: ServingManager, model: str, tag: str) -> None:
    try:
        tags = (await manager.client.get_model(model)).tags
    except PlatformError as exc:  # the Data Platform away or the model gone: next time
        log.debug("alias %s@%s not read: %s", model, tag, exc.message)
        return
    if tag in tags:  # a deleted alias leaves its services on the version they run
        await follow(manager, model, tag, tags[tag])
