"""Ingestion and training tasks: one manager, two configurations, both over the Data Platform.

The Data Platform keeps the records (``kind`` and ``name`` on each task), so they survive a
restart of either service and this side holds no task state at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ai_platform.dp_client import DataPlatformClient
from lakeapi.errors import TaskNotFound
from lakeapi.names import check_name, new_id
from lakeapi.schemas import IngestionTask, Job, JobCreate, TrainingTask


@dataclass(frozen=True)
class JobKind:
    kind: str  # the Data Platform task kind
    prefix: str  # id prefix
    output_kind: str  # "datasets" or "models"
    result_field: str  # "stats" or "metrics"
    record: type[Job]
    input_is_dataset: bool


INGESTION = JobKind("ingestion", "ingest", "datasets", "stats", IngestionTask, False)
TRAINING = JobKind("training", "train", "models", "metrics", TrainingTask, True)


class JobManager:
    """Submits, lists, cancels tasks of one kind through the Data Platform."""

    def __init__(self, client: DataPlatformClient, spec: JobKind) -> None:
        self.client = client
        self.spec = spec

    def _view(self, task: dict[str, Any]) -> Job:
        if task.get("kind") != self.spec.kind:
            raise TaskNotFound(f"Task '{task.get('id')}' does not exist")
        data = {
            "id": task["id"],
            "kind": self.spec.kind,
            "name": task.get("name") or "",
            "status": task["status"],
            "input": self._user_input(task.get("input", "")),
            "script": task["script"],
            "params": task.get("params") or {},
            "output": task["output"].partition("/")[2],
            "created_at": task["created_at"],
            "started_at": task.get("started_at"),
            "completed_at": task.get("completed_at"),
            "error": task.get("error"),
            "progress": task.get("progress"),
            "history": task.get("history") or [],
            self.spec.result_field: task.get("result"),
        }
        return self.spec.record.model_validate(data)

    def _user_input(self, value: str) -> str:
        if self.spec.input_is_dataset:
            return value.removeprefix("datasets/")
        return value

    def submit(self, req: JobCreate) -> Job:
        """Raises DatasetNotFound (training input), TaskAlreadyRunning, InvalidRequest."""
        if self.spec.input_is_dataset:
            self.client.get_dataset(check_name(req.input, "dataset name"))
            task_input = f"datasets/{req.input}"
        else:
            task_input = req.input
        body = {
            "id": new_id(self.spec.prefix),
            "kind": self.spec.kind,
            "name": req.name,
            "script": req.script,
            "input": task_input,
            "output": f"{self.spec.output_kind}/{req.output}",
            "params": req.params,
        }
        return self._view(self.client.submit_task(body))

    def list(self, status: str | None = None) -> list[Job]:
        tasks = self.client.list_tasks(kind=self.spec.kind, status=status)
        return [self._view(t) for t in tasks]

    def get(self, task_id: str) -> Job:
        return self._view(self._own(task_id))

    def cancel(self, task_id: str) -> Job:
        self._own(task_id)
        return self._view(self.client.cancel_task(task_id))

    def logs(self, task_id: str, tail: int | None = None) -> str:
        self._own(task_id)
        return self.client.task_logs(task_id, tail)

    def follow_logs(self, task_id: str, tail: int | None = None) -> Iterator[bytes]:
        self._own(task_id)
        return self.client.follow_task_logs(task_id, tail)

    def _own(self, task_id: str) -> dict[str, Any]:
        check_name(task_id, "task id")
        if not task_id.startswith(self.spec.prefix + "-"):
            raise TaskNotFound(f"Task '{task_id}' does not exist")
        task = self.client.get_task(task_id)
        if task.get("kind") != self.spec.kind:
            raise TaskNotFound(f"Task '{task_id}' does not exist")
        return task
