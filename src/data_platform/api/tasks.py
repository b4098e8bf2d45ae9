from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse, StreamingResponse

from data_platform.api.deps import Manager
from lakeapi.names import NAME_PATTERN
from lakeapi.pages import page
from lakeapi.schemas import Task, TaskCreate, TaskStatus
from serverkit.paging import Cursor, Limit, set_next_cursor

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"])


@router.post("", response_model=Task, status_code=201)
def submit_task(req: TaskCreate, manager: Manager) -> Task:
    """Submit a script to run as a task; it starts when a slot is free."""
    return manager.submit(req)


@router.get("", response_model=list[Task])
def list_tasks(
    manager: Manager,
    response: Response,
    status: TaskStatus | None = None,
    kind: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    name: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> list[Task]:
    """List tasks, newest first, a page at a time (``X-Next-Cursor``); progress histories
    are left to ``GET /tasks/{id}``."""
    tasks, next_cursor = page(
        manager.list(status=status, kind=kind, name=name),
        lambda t: (t.created_at.isoformat(), t.id),
        limit,
        cursor,
        newest_first=True,
    )
    set_next_cursor(response, next_cursor)
    return [t.model_copy(update={"history": []}) for t in tasks]


@router.get("/{task_id}", response_model=Task)
def get_task(task_id: str, manager: Manager) -> Task:
    """One task with its status, result or error, and progress."""
    return manager.get(task_id)


@router.post("/{task_id}/cancel", response_model=Task)
def cancel_task(task_id: str, manager: Manager) -> Task:
    """Cancel a task; 409 TASK_ALREADY_FINISHED if it already ended."""
    return manager.cancel(task_id)


@router.get("/{task_id}/logs", response_class=PlainTextResponse)
async def task_logs(
    task_id: str,
    manager: Manager,
    tail: Annotated[int | None, Query(ge=0, le=100000)] = None,
    follow: bool = False,
) -> Response:
    """The task's combined stdout and stderr: ``?tail=N`` for the last N lines, ``?follow=true``
    to stream new output until the task ends."""
    if follow:  # async end to end: a follower holds no thread
        return StreamingResponse(manager.follow_logs(task_id, tail), media_type="text/plain")
    return PlainTextResponse(await manager.logs(task_id, tail))
