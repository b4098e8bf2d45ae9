"""Typed views of what the platform answers; every one keeps the decoded JSON as ``.raw``.

The fields are the wire schemas of :mod:`lakeapi.schemas`, defined once for the servers and
the SDK. Unknown fields are kept here (``extra="allow"``), so a newer server never breaks an
older SDK.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import ConfigDict, PrivateAttr

from lakeapi import schemas

TERMINAL = ("completed", "failed")


class Record(schemas.Record):
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


class Dataset(Record, schemas.Dataset):
    pass


class DatasetVersion(Record, schemas.DatasetVersion):
    pass


class Model(Record, schemas.Model):
    pass


class ModelVersion(Record, schemas.ModelVersion):
    """One version of a model, with its metrics, source dataset version and provenance."""


class Tag(Record, schemas.Tag):
    """A tag on a version (a model's tags are its aliases)."""


class Restored(Record, schemas.Restored):
    """The new version a restore made, and the version whose content it holds."""


class TaskFailure(Record, schemas.TaskError):
    """Why a task failed."""

    message: str = ""

    def describe(self) -> str:
        """``reason: Type: message`` without the parts that are empty."""
        message = "" if self.message == self.reason else self.message  # "cancelled: cancelled"
        detail = f"{self.type}: {message}" if self.type else message
        return f"{self.reason}: {detail}" if detail else str(self.reason)


class QueuePlace(Record, schemas.QueuePlace):
    """Why a pending task waits: its place, the tasks holding the slots, how many slots."""


class Task(Record, schemas.Job):
    """An ingestion task (result in ``stats``) or training task (result in ``metrics``)."""

    error: TaskFailure | None = None
    stats: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    queue: QueuePlace | None = None

    @property
    def queue_position(self) -> int | None:
        """A pending task's place in the queue (1: the next to start), when the server says."""
        return self.queue.position if self.queue is not None else None

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


class Service(Record, schemas.Service):
    """An inference service (``serve-…``)."""

    model_path: str = ""


class Prediction(Record, schemas.Prediction):
    """One image's answer: the digit, its probability, and all ten probabilities."""
