"""Inference services and predict."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse

from ai_platform.api.deps import Serving
from lakeapi.schemas import Service, ServiceCreate

router = APIRouter(prefix="/api/v1/inference-services", tags=["inference-services"])


@router.get("", response_model=list[Service])
def list_services(serving: Serving) -> list[Service]:
    """List inference services, newest first."""
    return serving.list()


@router.post("", response_model=Service, status_code=201)
def create_service(req: ServiceCreate, serving: Serving) -> Service:
    """Start a model server for a model in the lake; answers once it serves."""
    return serving.create(req)


@router.get("/{service_id}", response_model=Service)
def get_service(service_id: str, serving: Serving) -> Service:
    """One service: status, endpoint, model and its Lance version."""
    return serving.get(service_id)


@router.delete("/{service_id}", status_code=204)
async def delete_service(service_id: str, serving: Serving) -> Response:
    """Stop the service and free its port."""
    await run_in_threadpool(serving.delete, service_id)
    return Response(status_code=204)


@router.get("/{service_id}/logs", response_class=PlainTextResponse)
def service_logs(
    service_id: str,
    serving: Serving,
    tail_bytes: Annotated[int | None, Query(ge=0, le=10_000_000)] = None,
) -> str:
    """The model server's log."""
    return serving.logs(service_id, tail_bytes)


@router.post("/{service_id}/predict")
async def predict(service_id: str, request: Request, serving: Serving) -> Response:
    """Predict through the platform: ``{"image": b64}`` or ``{"images": [b64, ...]}``."""
    status, content = await serving.predict(service_id, await request.body())
    return Response(content=content, status_code=status, media_type="application/json")
