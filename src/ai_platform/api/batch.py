"""Batch-inference tasks: a model's outputs written back to a dataset as new columns.

They run at the Data Platform as tasks of its own kind ``batch_inference``; the records
answered are the Data Platform's task records, passed through typed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ai_platform.api.deps import Client
from lakeapi.errors import TaskNotFound
from lakeapi.lakeops import BatchInferenceCreate
from lakeapi.names import NAME_PATTERN, check_name
from lakeapi.schemas import BatchInferenceTask, Task, TaskCreate, TaskStatus
from serverkit.paging import Cursor, Limit, set_next_cursor

KIND = "batch_inference"
router = APIRouter(prefix="/api/v1/batch-inference-tasks", tags=["batch inference"])


def task_create(req: BatchInferenceCreate) -> TaskCreate:
    """The Data Platform task that runs this batch inference."""
    params = req.model_dump(
        include={"model_version", "input_column", "filter", "layer", "prefix", "batch_size"},
        exclude_none=True,
    )
    return TaskCreate(
        kind=KIND,
        name=req.name or req.dataset,  # one at a time per dataset unless named
        input=f"models/{req.model}",
        output=f"datasets/{req.dataset}",
        params=params,
        retries=req.retries,
    )


@router.post("", response_model=BatchInferenceTask, status_code=201)
async def submit(req: BatchInferenceCreate, client: Client) -> BatchInferenceTask:
    """Run a model version over a dataset (or its filtered rows) and add prediction,
    confidence and embedding columns as a new version; existing data files stay as they are."""
    return BatchInferenceTask.of(await client.submit_task(task_create(req)))


@router.get("", response_model=list[BatchInferenceTask])
async def list_tasks(
    client: Client,
    response: Response,
    status: TaskStatus | None = None,
    name: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> list[BatchInferenceTask]:
    """Batch-inference tasks, newest first, a page at a time (``X-Next-Cursor``)."""
    filters = {"kind": KIND, "status": status, "name": name, "limit": limit, "cursor": cursor}
    tasks, next_cursor = await client.list_tasks(**{k: v for k, v in filters.items() if v})
    set_next_cursor(response, next_cursor)
    return [BatchInferenceTask.of(t.model_copy(update={"history": []})) for t in tasks]


async def _own(client: Client, task_id: str) -> Task:
    task = await client.get_task(check_name(task_id, "task id"))
    if task.kind != KIND:
        raise TaskNotFound(f"Batch-inference task '{task_id}' does not exist")
    return task


@router.get("/{task_id}", response_model=BatchInferenceTask)
async def get_task(task_id: str, client: Client) -> BatchInferenceTask:
    """One batch-inference task: status, progress (rows, fraction), stats."""
    return BatchInferenceTask.of(await _own(client, task_id))


@router.post("/{task_id}/cancel", response_model=BatchInferenceTask)
async def cancel(task_id: str, client: Client) -> BatchInferenceTask:
    """Cancel it; the dataset keeps its previous version."""
    await _own(client, task_id)
    return BatchInferenceTask.of(await client.cancel_task(task_id))
