"""Inference services and predict; a service is addressed by its id or its name."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from ai_platform.api.deps import Serving
from ai_platform.serving.manager import OIP_HEADERS
from lakeapi.errors import PlatformError
from lakeapi.pages import page
from lakeapi.schemas import Service, ServiceCreate
from serverkit.paging import Cursor, Limit, set_next_cursor

router = APIRouter(prefix="/api/v1/inference-services", tags=["inference-services"])


@router.get("", response_model=list[Service])
async def list_services(
    serving: Serving, response: Response, limit: Limit = None, cursor: Cursor = None
) -> list[Service]:
    """List inference services, newest first, a page at a time (``X-Next-Cursor``)."""
    services, next_cursor = page(
        serving.list(),
        lambda s: (s.created_at.isoformat(), s.id),
        limit,
        cursor,
        newest_first=True,
    )
    set_next_cursor(response, next_cursor)
    return services


@router.post("", response_model=Service, status_code=201)
async def create_service(req: ServiceCreate, serving: Serving) -> Service:
    """Start a model server for a model in the lake; answers once it serves."""
    return await serving.create(req)


@router.get("/{service}", response_model=Service)
async def get_service(service: str, serving: Serving) -> Service:
    """One service (by id or name): status, endpoint, model and its Lance version."""
    return serving.get(service)


@router.delete("/{service}", status_code=204)
async def delete_service(service: str, serving: Serving) -> Response:
    """Stop the service (by id or name) and free its port."""
    await serving.delete(service)
    return Response(status_code=204)


@router.get("/{service}/logs", response_class=PlainTextResponse)
async def service_logs(
    service: str,
    serving: Serving,
    tail_bytes: Annotated[int | None, Query(ge=0, le=10_000_000)] = None,
) -> str:
    """The model server's log."""
    return await asyncio.to_thread(serving.logs, service, tail_bytes)


@router.post("/{service}/predict")
async def predict(service: str, request: Request, serving: Serving) -> Response:
    """Predict through the platform: ``{"image": b64}`` or ``{"images": [b64, ...]}``."""
    status, content = await serving.predict(service, await request.body())
    return Response(content=content, status_code=status, media_type="application/json")


@router.api_route(
    "/{service}/v2/{path:path}",
    methods=["GET", "POST"],
    include_in_schema=False,  # OIP's own spec describes it; its errors are not our envelope
)
async def open_inference_protocol(
    service: str, path: str, request: Request, serving: Serving
) -> Response:
    """The Open Inference Protocol v2 of the service's model server, forwarded unchanged."""
    headers = [(k, v) for k, v in request.headers.items() if k in OIP_HEADERS]
    target = f"/v2/{path}".rstrip("/") + (f"?{request.url.query}" if request.url.query else "")
    try:
        status, kept, body = await serving.forward(
            service, request.method, target, await request.body(), headers
        )
    except PlatformError as err:
        return JSONResponse({"error": err.message}, status_code=err.status)
    return Response(body, status_code=status, headers=dict(kept))
