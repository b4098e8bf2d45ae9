"""The Data Platform's resources: one record class each, used for storage and for responses."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lakekit.ids import NAME_PATTERN


def utcnow() -> datetime:
    return datetime.now(UTC)


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"

    def is_terminal(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED)


# The one table of allowed moves; nothing leaves a terminal state.
TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.PENDING: frozenset({TaskStatus.RUNNING, TaskStatus.FAILED}),
    TaskStatus.RUNNING: frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED}),
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.FAILED: frozenset(),
}


class FailureReason(StrEnum):
    EXCEPTION = "exception"  # run() raised
    BAD_RESULT = "bad_result"  # run() returned something other than a JSON-able dict
    CRASHED = "crashed"  # the process exited without a result
    KILLED = "killed"  # the process died from a signal we did not send
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    MEMORY = "memory"  # the process tree outgrew the memory limit
    INTERRUPTED = "interrupted"  # the platform restarted while it ran
    REJECTED = "rejected"  # could not start (script vanished, output locked)


class TaskError(BaseModel):
    reason: FailureReason
    type: str | None = None
    message: str


class TaskCreate(BaseModel):
    """What a client submits to run a script."""

    model_config = ConfigDict(extra="forbid")

    script: str = Field(min_length=1, max_length=512, description="Path under the scripts root.")
    input: str = Field(
        "",
        max_length=1024,
        description="'datasets/NAME', 'models/NAME', or a path under the data root.",
    )
    output: str = Field(
        min_length=1, max_length=256, description="'datasets/NAME' or 'models/NAME'."
    )
    params: dict[str, Any] = Field(default_factory=dict)
    id: str | None = Field(None, pattern=NAME_PATTERN, description="Optional client-chosen id.")
    kind: str = Field("task", pattern=NAME_PATTERN, description="Free-form category.")
    name: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="Optional name; at most one pending or running task per kind and name.",
    )


class Task(BaseModel):
    """A task record, as stored and as answered."""

    id: str
    kind: str = "task"
    name: str | None = None
    status: TaskStatus = TaskStatus.PENDING
    script: str
    input: str
    output: str
    params: dict[str, Any] = Field(default_factory=dict)
    input_path: str
    output_path: str
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: TaskError | None = None
    progress: dict[str, Any] | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)
    output_version_before: int | None = Field(None, description="Lance version restored on fail.")
    output_version: int | None = None
    pid: int | None = None


class Dataset(BaseModel):
    id: str
    path: str
    schema_: dict[str, str] = Field(alias="schema", serialization_alias="schema")
    num_rows: int
    size_bytes: int
    version: int
    created_at: datetime | None
    updated_at: datetime | None
    metadata: dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(populate_by_name=True)


class DatasetVersion(BaseModel):
    version: int
    timestamp: datetime | None
    num_rows: int | None = None


class Model(BaseModel):
    id: str
    path: str
    version: int
    size_bytes: int
    weights_bytes: int
    created_at: datetime | None
    architecture: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    history: list[dict[str, Any]] = Field(default_factory=list)
    source: dict[str, Any] = Field(default_factory=dict)
    input_spec: dict[str, Any] = Field(default_factory=dict)
    info: dict[str, Any] = Field(default_factory=dict, description="Everything else recorded.")
