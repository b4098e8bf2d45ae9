"""The AI Platform's resources: one record class each; ``XCreate`` for input."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lakekit.ids import NAME_PATTERN


class JobCreate(BaseModel):
    """The request shared by ingestion and training tasks (design 2.3)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Task name; one active task per name.")
    input: str = Field(
        max_length=1024,
        description="Ingestion: raw data path under the data root. Training: a dataset name.",
    )
    script: str = Field(min_length=1, max_length=512, description="Path under the scripts root.")
    params: dict[str, Any] = Field(default_factory=dict)
    output: str = Field(
        pattern=NAME_PATTERN, description="Ingestion: a dataset name. Training: a model name."
    )


class Job(BaseModel):
    """An ingestion or training task as users see it."""

    id: str
    name: str
    status: str
    input: str
    script: str
    params: dict[str, Any] = Field(default_factory=dict)
    output: str
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: dict[str, Any] | None = None
    progress: dict[str, Any] | None = Field(None, description="Latest progress point.")
    history: list[dict[str, Any]] = Field(default_factory=list, description="Every point.")


class IngestionTask(Job):
    stats: dict[str, Any] | None = Field(None, description="What the script returned.")


class TrainingTask(Job):
    metrics: dict[str, Any] | None = Field(None, description="What the script returned.")


class ServiceStatus(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"


class ServiceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    model: str = Field(pattern=NAME_PATTERN, description="A model name in the lake.")
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:[0-9]{1,2})?)$")
    port: int | None = Field(None, ge=0, le=65535, description="0 or absent: a free port.")


class Service(BaseModel):
    """An inference service, as stored and as answered."""

    id: str
    name: str
    model: str
    model_path: str
    model_version: int | None = None
    device: str = "cpu"
    port: int
    status: ServiceStatus = ServiceStatus.STARTING
    endpoint: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    started_at: datetime | None = None
    error: str | None = None
    pid: int | None = None
    restarts: int = 0
