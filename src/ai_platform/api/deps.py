"""Dependencies the routers take, from the app's state.

Async, though they only look up an attribute: FastAPI runs a plain ``def`` dependency in its
thread pool, a thread hop per request for nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ai_platform.dp_client import DataPlatformClient
from ai_platform.jobs import JobManager
from ai_platform.serving.manager import ServingManager


async def _client(request: Request) -> DataPlatformClient:
    return request.app.state.client


async def _ingestion(request: Request) -> JobManager:
    return request.app.state.ingestion


async def _training(request: Request) -> JobManager:
    return request.app.state.training


async def _serving(request: Request) -> ServingManager:
    return request.app.state.serving


Client = Annotated[DataPlatformClient, Depends(_client)]
Ingestion = Annotated[JobManager, Depends(_ingestion)]
Training = Annotated[JobManager, Depends(_training)]
Serving = Annotated[ServingManager, Depends(_serving)]
