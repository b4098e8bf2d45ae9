"""The AI Platform's FastAPI application."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from prometheus_client import Gauge

from ai_platform import ui
from ai_platform.api import batch, jobs, lake, lineage, search, services
from ai_platform.api.predict_path import PredictFastPath
from ai_platform.dp_client import DataPlatformClient
from ai_platform.jobs import INGESTION, TRAINING, JobManager
from ai_platform.serving.backend import LocalProcessBackend, ServingBackend
from ai_platform.serving.manager import ServingManager
from ai_platform.settings import AIPlatformSettings
from lakeapi.schemas import ServiceStatus
from serverkit.docs import install_offline_docs
from serverkit.http import Guard, install_error_handlers
from serverkit.metrics import install_metrics
from serverkit.recordstore import RecordTable


def make_backend(settings: AIPlatformSettings) -> ServingBackend:
    if settings.runtime == "ray":
        from serverkit.ray_runtime import use_loopback

        use_loopback()  # before ray is imported
        from ai_platform.serving.ray_backend import RayServeBackend  # optional extra

        return RayServeBackend(settings)
    return LocalProcessBackend(settings.serving_host)


def create_app(settings: AIPlatformSettings | None = None) -> FastAPI:
    """Build the app; services are recovered when it starts serving."""
    settings = settings or AIPlatformSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = DataPlatformClient(
            settings.data_platform_url, settings.api_key, settings.upstream_timeout
        )
        serving = ServingManager(
            RecordTable(f"{settings.state_uri}/services.lance", settings.state_storage_options),
            settings.logs_dir,
            client,
            make_backend(settings),
            settings.serving_start_timeout,
            settings.upstream_timeout,
        )
        await serving.start()
        app.state.client = client
        app.state.serving = serving
        app.state.ingestion = JobManager(client, INGESTION)
        app.state.training = JobManager(client, TRAINING)
        try:
            yield
        finally:
            await serving.aclose()
            await client.aclose()

    app = FastAPI(
        title="AI Platform",
        version="0.1.0",
        description="Ingestion and training tasks on a Lance lake, and inference services.",
        lifespan=lifespan,
        docs_url=None,  # install_offline_docs serves /docs and /redoc without a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    install_offline_docs(app)
    app.include_router(lake.datasets)
    app.include_router(lake.models)
    app.include_router(jobs.ingestion)
    app.include_router(jobs.training)
    app.include_router(services.router)
    app.include_router(batch.router)
    app.include_router(search.router)
    app.include_router(lineage.router)
    ui.mount(app)

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        """Liveness: answers without an API key."""
        return {"status": "ok", "service": "ai-platform", "runtime": settings.runtime}

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/ui/")

    # Predictions skip the router (see predict_path); Guard, added last, still wraps them.
    app.add_middleware(PredictFastPath)
    # The UI's static files hold no secrets; the API calls it makes still need the key.
    app.add_middleware(
        Guard,
        api_key=settings.api_key,
        max_body_bytes=settings.max_body_bytes,
        open_paths=("/health", "/", "/ui"),
        open_prefixes=("/ui/",),
    )
    # Outermost, so requests Guard refuses are counted. /metrics stays behind the API key
    # when one is set (service names are in it): Prometheus sends it as a bearer token.
    _install_metrics(app)
    return app


def _install_metrics(app: FastAPI) -> None:
    """Requests per route and status, and inference services by status."""
    metrics = install_metrics(app, namespace="ai_platform")
    services = Gauge(
        "inference_services",
        "Inference services by status",
        ["status"],
        namespace="ai_platform",
        registry=metrics.registry,
    )

    def count(status: ServiceStatus) -> int:
        serving = getattr(app.state, "serving", None)  # none before start-up
        return 0 if serving is None else sum(s.status is status for s in serving.list())

    for status in ServiceStatus:
        services.labels(status.value).set_function(functools.partial(count, status))
