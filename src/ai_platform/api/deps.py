"""Dependencies the routers take, from the app's state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ai_platform.dp_client import DataPlatformClient
from ai_platform.jobs import JobManager
from ai_platform.serving.manager import ServingManager


def _client(request: Request) -> DataPlatformClient:
    return request.app.state.client


def _ingestion(request: Request) -> JobManager:
    return request.app.state.ingestion


def _training(request: Request) -> JobManager:
    return request.app.state.training


def _serving(request: Request) -> ServingManager:
    return request.app.state.serving


Client = Annotated[DataPlatformClient, Depends(_client)]
Ingestion = Annotated[JobManager, Depends(_ingestion)]
Training = Annotated[JobManager, Depends(_training)]
Serving = Annotated[ServingManager, Depends(_serving)]
