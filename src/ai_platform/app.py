"""The AI Platform's FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from prometheus_client import Gauge

from ai_platform import ui
from ai_platform.api import batch, jobs, lake, lineage, search, services
from ai_platform.api.predict_path import OIP_PATHS, PredictFastPath
from ai_platform.dp_client import DataPlatformClient, Deadlines
from ai_platform.jobs import INGESTION, TRAINING, JobManager
from ai_platform.serving.backend import LocalProcessBackend, ServingBackend
from ai_platform.serving.health import ProbePolicy
from ai_platform.serving.manager import ServingManager
from ai_platform.settings import AIPlatformSettings
from lakeapi.schemas import ServiceStatus
from serverkit.docs import install_offline_docs
from serverkit.http import Guard, install_error_handlers, trusted_hosts
from serverkit.lakelock import LakeLock
from serverkit.metrics import install_metrics
from serverkit.recordstore import RecordTable


def make_backend(settings: AIPlatformSettings) -> ServingBackend:
    if settings.runtime == "ray":
        from serverkit.ray_runtime import use_loopback

        use_loopback()  # before ray is imported
        from ai_platform.serving.ray_backend import RayServeBackend  # optional extra

        return RayServeBackend(
            settings,
            replicas=settings.ray_replicas,
            replicas_per_node=settings.ray_replicas_per_node,
            direct_ingress=settings.ray_direct_ingress,
            serve_config=settings.serve_config,
        )
    return LocalProcessBackend(
        settings.serving_host, settings.api_key, settings.model_storage_options
    )


def with_state_lease(settings: AIPlatformSettings, lifespan: Any) -> Any:
    """``lifespan`` inside the state dir's lease: one AI Platform per state, taken before
    anything reads it (a second instance refuses to start, saying who holds it)."""

    @asynccontextmanager
    async def leased(app: FastAPI) -> AsyncIterator[None]:
        with LakeLock(settings.state_uri, "ai-platform", settings.port, settings.state_options):
            async with lifespan(app):
                yield

    return leased


def create_app(settings: AIPlatformSettings | None = None) -> FastAPI:
    """Build the app; services are recovered when it starts serving."""
    settings = settings or AIPlatformSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = DataPlatformClient(
            settings.data_platform_url,
            settings.data_platform_api_key,
            Deadlines(
                settings.dp_connect_timeout, settings.dp_read_timeout, settings.dp_write_timeout
            ),
        )
        serving = ServingManager(
            RecordTable(f"{settings.state_uri}/services.lance", settings.state_options),
            settings.logs_dir,
            client,
            make_backend(settings),
            settings.serving_start_timeout,
            settings.predict_timeout,
            api_key=settings.api_key,
            storage_options=settings.model_storage_options,
            alias_poll=settings.alias_poll_interval,
            probe=ProbePolicy(
                settings.health_probe_interval,
                settings.health_probe_timeout,
                settings.health_probe_failures,
            ),
        )
        await serving.start()
        app.state.client = client
        app.state.serving = serving
        app.state.ingestion = JobManager(client, INGESTION)
        app.state.training = JobManager(client, TRAINING)
        app.state.data_platform = "unknown"
        watch = asyncio.create_task(_watch_data_platform(app, client), name="dp-health")
        try:
            yield
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            await serving.aclose()
            await client.aclose()

    app = FastAPI(
        title="AI Platform",
        version="0.1.0",
        description="Ingestion and training tasks on a Lance lake, and inference services.",
        lifespan=with_state_lease(settings, lifespan),
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
        """Liveness, without an API key, at once: ``degraded`` when the Data Platform is not
        ``ok`` (``slow``, ``unreachable``; ``unknown`` before the first check)."""
        data_platform = getattr(app.state, "data_platform", "unknown")
        return {
            "status": "ok" if data_platform == "ok" else "degraded",
            "service": "ai-platform",
            "runtime": settings.runtime,
            "data_platform": data_platform,
        }

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
        allowed_hosts=trusted_hosts(settings.host, settings.allowed_hosts),
        binary_suffixes=("/infer",),  # the Open Inference Protocol's binary tensors
        oip_paths=OIP_PATHS,  # its refusals there in OIP's own shape, {"error": "..."}
    )
    # Outermost, so requests Guard refuses are counted. /metrics stays behind the API key
    # when one is set (service names are in it): Prometheus sends it as a bearer token.
    _install_metrics(app)
    return app


DP_CHECK_SECONDS = 1.0


async def _watch_data_platform(app: FastAPI, client: DataPlatformClient) -> None:
    """Keep ``app.state.data_platform`` current, so that ``/health`` never waits on it."""
    while True:
        app.state.data_platform = await client.ping(DP_CHECK_SECONDS)
        await asyncio.sleep(DP_CHECK_SECONDS)


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
