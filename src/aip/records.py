"""Typed views of what the platform answers; every one keeps the decoded JSON as ``.raw``.

Unknown fields are kept (``extra="allow"``), so a newer server never breaks an older SDK.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

TERMINAL = ("completed", "failed")


class Record(BaseModel):
    # protected_namespaces=(): fields such as ``model_version`` are the server's names.
    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_raw(cls, data: dict[str, Any]) -> Self:
        """Validate ``data`` (a decoded JSON object) and keep it as ``.raw``."""
        record = cls.model_validate(data)
        record._raw = data
        return record

    @property
    def raw(self) -> dict[str, Any]:
        """The JSON object as the server sent it."""
        return self._raw


class Dataset(Record):
    id: str
    path: str
    schema_: dict[str, str] = Field(default_factory=dict, alias="schema")
    num_rows: int
    size_bytes: int
    version: int
    created_at: datetime | None = None
    updated_at: datetime | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class DatasetVersion(Record):
    version: int
    timestamp: datetime | None = None
    num_rows: int | None = None


class Model(Record):
    id: str
    path: str
    version: int
    size_bytes: int
    weights_bytes: int
    created_at: datetime | None = None
    architecture: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    history: list[dict[str, Any]] = Field(default_factory=list, description="One per epoch.")
    source: dict[str, Any] = Field(default_factory=dict)
    input_spec: dict[str, Any] = Field(default_factory=dict)
    info: dict[str, Any] = Field(default_factory=dict)


class TaskFailure(Record):
    """Why a task failed."""

    reason: str
    type: str | None = None
    message: str = ""

    def describe(self) -> str:
        """``reason: Type: message`` without the parts that are empty."""
        message = "" if self.message == self.reason else self.message  # "cancelled: cancelled"
        detail = f"{self.type}: {message}" if self.type else message
        return f"{self.reason}: {detail}" if detail else self.reason


class Task(Record):
    """An ingestion task (``ingest-…``, result in ``stats``) or training task (``train-…``)."""

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
    error: TaskFailure | None = None
    progress: dict[str, Any] | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)
    stats: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None

    @property
    def kind(self) -> str:
        """``ingestion`` or ``training``, from the id."""
        return "training" if self.id.startswith("train-") else "ingestion"

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def cancelled(self) -> bool:
        return self.error is not None and self.error.reason == "cancelled"

    @property
    def result(self) -> dict[str, Any] | None:
        """What the script returned: ``stats`` (ingestion) or ``metrics`` (training)."""
        return self.metrics if self.kind == "training" else self.stats

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (or None if it has not both started and ended)."""
        if self.started_at is None or self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds()


class Service(Record):
    """An inference service (``serve-…``)."""

    id: str
    name: str
    model: str
    model_version: int | None = None
    device: str = "cpu"
    port: int
    status: str
    endpoint: str
    created_at: datetime | None = None
    started_at: datetime | None = None
    error: str | None = None


class Prediction(Record):
    """One image's answer: the digit, its probability, and all ten probabilities."""

    prediction: int
    confidence: float
    probabilities: list[float] = Field(default_factory=list)
