"""Ingestion and training tasks: the same routes over two job kinds.

No `from __future__ import annotations` here: the routes are built in a function, and FastAPI
must see their dependency annotations as objects, not strings.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.background import BackgroundTask

from ai_platform.api.deps import Ingestion, Training
from ai_platform.jobs import JobManager
from lakeapi.names import NAME_PATTERN
from lakeapi.schemas import IngestionTask, JobCreate, TrainingTask
from serverkit.paging import Cursor, Limit, set_next_cursor

Status = Annotated[str | None, Query(pattern="^(pending|running|completed|failed)$")]
Tail = Annotated[int | None, Query(ge=0, le=100000)]
Name = Annotated[str | None, Query(pattern=NAME_PATTERN)]


def _routes(router: APIRouter, record: type[Any], dep: Any, noun: str) -> None:
    @router.post("", response_model=record, status_code=201, summary=f"Submit a {noun} task")
    async def submit(req: JobCreate, jobs: dep) -> Any:
        return await jobs.submit(req)

    @router.get(
        "",
        response_model=list[record],  # type: ignore[valid-type]
        summary=f"List {noun} tasks, newest first",
    )
    async def list_jobs(
        jobs: dep,
        response: Response,
        status: Status = None,
        name: Name = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> Any:
        """A page at a time (``X-Next-Cursor``); progress histories are left to
        ``GET /{id}``."""
        tasks, next_cursor = await jobs.list(status, limit, cursor, name)
        set_next_cursor(response, next_cursor)
        return tasks

    @router.get("/{task_id}", response_model=record, summary=f"One {noun} task")
    async def get(task_id: str, jobs: dep) -> Any:
        return await jobs.get(task_id)

    @router.post("/{task_id}/cancel", response_model=record, summary=f"Cancel a {noun} task")
    async def cancel(task_id: str, jobs: dep) -> Any:
        return await jobs.cancel(task_id)

    @router.get("/{task_id}/logs", response_class=PlainTextResponse, summary=f"A {noun} task's log")
    async def logs(task_id: str, jobs: dep, tail: Tail = None, follow: bool = False) -> Response:
        """``?tail=N`` for the last N lines; ``?follow=true`` streams until the task ends."""
        manager: JobManager = jobs
        if not follow:
            return PlainTextResponse(await manager.logs(task_id, tail))
        stream = await manager.follow_logs(task_id, tail)
        # The background task runs when the client left too: the upstream stream is let go
        # even if the body iterator was cancelled between two chunks.
        return StreamingResponse(
            aiter(stream), media_type="text/plain", background=BackgroundTask(stream.aclose)
        )


ingestion = APIRouter(prefix="/api/v1/ingestion-tasks", tags=["ingestion-tasks"])
training = APIRouter(prefix="/api/v1/training-tasks", tags=["training-tasks"])
_routes(ingestion, IngestionTask, Ingestion, "ingestion")
_routes(training, TrainingTask, Training, "training")
