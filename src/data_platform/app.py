"""The Data Platform's FastAPI application."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from data_platform.api import datasets, lineage, models, search, tasks
from data_platform.execution import Executor
from data_platform.local_executor import LocalExecutor
from data_platform.manager import TaskManager
from data_platform.settings import DataPlatformSettings
from data_platform.store import Lake
from lakeapi.schemas import TaskStatus
from serverkit.docs import install_offline_docs
from serverkit.http import Guard, install_error_handlers, trusted_hosts
from serverkit.lakelock import LakeLock, LakeLocked
from serverkit.metrics import install_metrics

log = logging.getLogger(__name__)


def make_executor(settings: DataPlatformSettings) -> Executor:
    if settings.runtime == "ray":
        from serverkit.ray_runtime import use_loopback

        use_loopback()  # before ray is imported
        from data_platform.ray_executor import RayExecutor  # Ray is an optional extra

        return RayExecutor(settings)
    return LocalExecutor(settings.resolved_work_dir, settings.log_max_bytes)


def take_lake_lock(settings: DataPlatformSettings) -> LakeLock:
    """The lake's lease, or exit: one Data Platform per lake.

    Raises:
        LakeLocked: another live Data Platform holds the lake (the message says who).
    """
    lock = LakeLock(
        settings.lake_root / "_system",
        "data-platform",
        port=settings.port,
        storage_options=settings.storage_options,
        on_lost=_fence,
    )
    try:
        return lock.acquire()
    except LakeLocked as exc:
        log.error("refusing to start: %s", exc)
        raise


def _fence(holder: dict[str, Any]) -> None:
    # Another instance took the lake over while this one was frozen: it has recovered the
    # tasks already, so every further write from here would undo its work. Stop at once.
    log.critical("the lake was taken over by %s: stopping now", holder)
    os.kill(os.getpid(), signal.SIGKILL)


def create_app(settings: DataPlatformSettings | None = None) -> FastAPI:
    """Build the app; the lake is opened and tasks recovered when it starts serving."""
    settings = settings or DataPlatformSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        lock = take_lake_lock(settings)  # before recovery: a second instance touches nothing
        try:
            lake = Lake(settings.lake_root, settings.storage_options)
            manager = TaskManager(settings, lake, make_executor(settings))
            manager.start()  # recovery finishes before the first request is served
            app.state.lake, app.state.manager = lake, manager
            try:
                yield
            finally:
                manager.close()
        finally:
            lock.release()

    app = FastAPI(
        title="Data Platform",
        version="0.1.0",
        description="Lance data lake and supervised user-script tasks.",
        lifespan=lifespan,
        docs_url=None,  # install_offline_docs serves /docs and /redoc without a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    install_offline_docs(app)
    app.include_router(datasets.router)
    app.include_router(models.router)
    app.include_router(tasks.router)
    app.include_router(search.router)
    app.include_router(lineage.router)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness: answers without an API key."""
        return {"status": "ok", "service": "data-platform", "runtime": settings.runtime}

    metrics = install_metrics(app, namespace="data_platform")
    metrics.registry.register(TaskStates(app))
    app.add_middleware(
        Guard,
        api_key=settings.api_key,
        max_body_bytes=settings.max_body_bytes,
        allowed_hosts=trusted_hosts(settings.host, settings.allowed_hosts),
    )
    return app


class TaskStates(Collector):
    """``data_platform_tasks{state=...}``: how many tasks are in each state, at scrape time."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("data_platform_tasks", "Tasks by state.", labels=["state"])
        manager: TaskManager | None = getattr(self.app.state, "manager", None)
        counts = manager.counts() if manager is not None else {}
        for state in TaskStatus:
            family.add_metric([state.value], counts.get(state, 0))
        yield family
