"""Ingestion and training tasks: one manager, two configurations, both over the Data Platform.

The Data Platform keeps the records (``kind`` and ``name`` on each task), so they survive a
restart of either service and this side holds no task state at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from ai_platform.dp_client import DataPlatformClient, LogStream
from lakeapi.errors import InvalidRequest, TaskNotFound
from lakeapi.names import check_name, new_id, parse_ref
from lakeapi.schemas import IngestionTask, Job, JobCreate, Task, TaskCreate, TrainingTask


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

    def _view(self, task: Task) -> Job:
        if task.kind != self.spec.kind:
            raise TaskNotFound(f"Task '{task.id}' does not exist")
        data = {
            "id": task.id,
            "kind": self.spec.kind,
            "name": task.name or "",
            "status": task.status,
            "input": self._user_input(task.input),
            "script": task.script,
            "params": task.params,
            "output": task.output.partition("/")[2],
            "created_at": task.created_at,
            "started_at": task.started_at,
            "completed_at": task.completed_at,
            "error": task.error,
            "progress": task.progress,
            "history": task.history,
            "queue": task.queue,
            self.spec.result_field: task.result,
        }
        return self.spec.record.model_validate(data)

    def _user_input(self, value: str) -> str:
        if self.spec.input_is_dataset:
            return value.removeprefix("datasets/")
        return value

    async def submit(self, req: JobCreate) -> Job:
        """Raises DatasetNotFound (training input), TaskAlreadyRunning, InvalidRequest."""
        if self.spec.input_is_dataset:
            ref = parse_ref(req.input, "datasets")
            if ref is None or ref.kind != "datasets":
                raise InvalidRequest(
                    f"input {req.input!r} must name a dataset: NAME, NAME@12 or NAME@tag"
                )
            await self.client.get_dataset(ref.name)
            task_input = str(ref)  # datasets/NAME[@12|@tag]: the Data Platform pins it
        else:
            task_input = req.input
        # JobCreate's rules are stricter than TaskCreate's: this validates.
        task = TaskCreate(
            id=new_id(self.spec.prefix),
            kind=self.spec.kind,
            name=req.name,
            script=req.script,
            input=task_input,
            output=f"{self.spec.output_kind}/{req.output}",
            params=req.params,
            mode=req.mode,
            resources=req.resources,
        )
        return self._view(await self.client.submit_task(task))

    async def list(
        self,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        name: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """A page of this kind's tasks, newest first, and the next page's cursor."""
        tasks, next_cursor = await self.client.list_tasks(
            kind=self.spec.kind, status=status, name=name, limit=limit, cursor=cursor
        )
        return [self._view(t) for t in tasks], next_cursor

    async def get(self, task_id: str) -> Job:
        return self._view(await self._own(task_id))

    async def cancel(self, task_id: str) -> Job:
        await self._own(task_id)
        return self._view(await self.client.cancel_task(task_id))

    async def logs(self, task_id: str, tail: int | None = None) -> str:
        await self._own(task_id)
        return await self.client.task_logs(task_id, tail)

    async def follow_logs(self, task_id: str, tail: int | None = None) -> LogStream:
        """The task's log stream, open (a missing task raises here, before any byte)."""
        await self._own(task_id)
        return await self.client.follow_task_logs(task_id, tail)

    async def _own(self, task_id: str) -> Task:
        check_name(task_id, "task id")
        task = await self.client.get_task(task_id)
        if task.kind != self.spec.kind:
            raise TaskNotFound(f"Task '{task_id}' does not exist")
        return task
