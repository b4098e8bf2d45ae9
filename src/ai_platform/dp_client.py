"""The Data Platform as the AI Platform sees it: an HTTP API, nothing more.

Async (``httpx.AsyncClient``) so that a slow Data Platform holds no thread of ours, and typed:
every answer is parsed into the one set of wire records (``lakeapi.schemas``). Errors come back
as the ``PlatformError`` the Data Platform raised; a 5xx without a code of ours, or no
connection, is ``UpstreamUnavailable`` (502); no answer within the deadline is
``UpstreamTimeout`` (504). Every call has a connect and a read deadline (reads and writes have
their own), so a hung Data Platform costs a caller seconds, not a minute.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import httpx
from pydantic import BaseModel, TypeAdapter

from lakeapi.errors import (
    PlatformError,
    UpstreamTimeout,
    UpstreamUnavailable,
    error_from_response,
)
from lakeapi.lakeops import (
    IndexCreate,
    IndexInfo,
    Lineage,
    ReproduceCreate,
    Reproduction,
    SearchCreate,
    SearchResult,
)
from lakeapi.pages import NEXT_CURSOR
from lakeapi.schemas import (
    Dataset,
    DatasetVersion,
    Model,
    ModelVersion,
    Restored,
    Tag,
    Task,
    TaskCreate,
)

R = TypeVar("R", bound=BaseModel)
T = TypeVar("T")

_DATASETS = TypeAdapter(list[Dataset])
_VERSIONS = TypeAdapter(list[DatasetVersion])
_MODELS = TypeAdapter(list[Model])
_TASKS = TypeAdapter(list[Task])
_INDEXES = TypeAdapter(list[IndexInfo])
_MODEL_VERSIONS = TypeAdapter(list[ModelVersion])
_TAGS = TypeAdapter(list[Tag])
SEARCH_BY_INPUT_SECONDS = 120.0
INDEX_BUILD_SECONDS = 600.0


@dataclass(frozen=True)
class Deadlines:
    """Seconds a Data Platform call may take: to connect, then to answer.

    ``read`` is for GETs, ``write`` for POST and DELETE (a commit to the lake); a log stream
    must connect and send its first bytes within ``connect`` and ``read``, and then has no limit.
    """

    connect: float = 2.0
    read: float = 10.0
    write: float = 30.0


class LogStream:
    """An open log stream: iterate for bytes; ``aclose`` (idempotent) lets go of it upstream."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_bytes():
                yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        # Shielded: this runs when the client left, inside a cancelled scope, and must still
        # give the connection back (which ends the Data Platform's follower too).
        with anyio.CancelScope(shield=True):
            await self._response.aclose()


class DataPlatformClient:
    """Typed async client of the Data Platform's REST API.

    Args:
        base_url: the Data Platform, e.g. ``http://127.0.0.1:8001``.
        api_key: sent as ``Authorization: Bearer <key>`` when set.
        timeout: connect and answer deadlines; a bare number is the read and write deadline.
    """

    def __init__(
        self, base_url: str, api_key: str | None = None, timeout: Deadlines | float = Deadlines()
    ) -> None:
        deadlines = timeout
        if not isinstance(deadlines, Deadlines):
            deadlines = Deadlines(min(2.0, deadlines), deadlines, deadlines)
        self.deadlines = deadlines
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self._reads = httpx.Timeout(deadlines.read, connect=deadlines.connect)
        self._writes = httpx.Timeout(deadlines.write, connect=deadlines.connect)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=self._reads,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
        )
        # Log followers get their own pool: however many are open, a call never waits for one.
        self._streams = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(deadlines.read, connect=deadlines.connect, read=None),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
        )

    async def aclose(self) -> None:
        await self._streams.aclose()
        await self._http.aclose()

    async def _call(
        self, method: str, path: str, timeout: httpx.Timeout | None = None, **kwargs: Any
    ) -> httpx.Response:
        timeout = timeout or (self._reads if method == "GET" else self._writes)
        try:
            response = await self._http.request(method, path, timeout=timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise _error(response)
        return response

    def _unreachable(self, exc: Exception) -> UpstreamUnavailable:
        if isinstance(exc, httpx.ConnectTimeout):
            return UpstreamTimeout(
                f"the Data Platform at {self.base_url} did not accept a connection within "
                f"{self.deadlines.connect:g} s"
            )
        if isinstance(exc, httpx.TimeoutException | TimeoutError):
            return UpstreamTimeout(
                f"the Data Platform at {self.base_url} did not answer within the deadline "
                f"({type(exc).__name__})"
            )
        return UpstreamUnavailable(
            f"the Data Platform at {self.base_url} is unreachable: {type(exc).__name__}"
        )

    async def ping(self, timeout: float) -> str:
        """``ok``, ``slow`` (no answer to ``/health`` within ``timeout``) or ``unreachable``."""
        try:
            # On the pool that keeps no connection: a check every second must not hold one.
            response = await self._streams.get("/health", timeout=timeout)
        except httpx.TimeoutException:
            return "slow"
        except httpx.HTTPError:
            return "unreachable"
        return "ok" if response.status_code == 200 else "unreachable"

    async def _record(self, cls: type[R], method: str, path: str, **kwargs: Any) -> R:
        response = await self._call(method, path, **kwargs)
        return _parsed(lambda: cls.model_validate_json(response.content), path)

    async def _records(self, adapter: TypeAdapter[list[R]], path: str, **kwargs: Any) -> list[R]:
        response = await self._call("GET", path, **kwargs)
        return _parsed(lambda: adapter.validate_json(response.content), path)

    async def _page(
        self, adapter: TypeAdapter[list[R]], path: str, params: dict[str, Any]
    ) -> tuple[list[R], str | None]:
        """One page of a list, and the cursor of the next (None: the last page)."""
        query = {k: v for k, v in params.items() if v is not None}
        response = await self._call("GET", path, params=query)
        records = _parsed(lambda: adapter.validate_json(response.content), path)
        return records, response.headers.get(NEXT_CURSOR)

    # datasets and models
    async def list_datasets(
        self, limit: int | None = None, cursor: str | None = None
    ) -> tuple[list[Dataset], str | None]:
        return await self._page(_DATASETS, "/api/v1/datasets", {"limit": limit, "cursor": cursor})

    async def get_dataset(self, name: str) -> Dataset:
        return await self._record(Dataset, "GET", f"/api/v1/datasets/{name}")

    async def dataset_versions(self, name: str) -> list[DatasetVersion]:
        return await self._records(_VERSIONS, f"/api/v1/datasets/{name}/versions")

    async def delete_dataset(self, name: str, force: bool = False) -> None:
        params = {"force": "true"} if force else None
        await self._call("DELETE", f"/api/v1/datasets/{name}", params=params)

    async def list_models(
        self, limit: int | None = None, cursor: str | None = None
    ) -> tuple[list[Model], str | None]:
        return await self._page(_MODELS, "/api/v1/models", {"limit": limit, "cursor": cursor})

    async def get_model(self, name: str) -> Model:
        return await self._record(Model, "GET", f"/api/v1/models/{name}")

    async def delete_model(self, name: str, force: bool = False) -> None:
        params = {"force": "true"} if force else None
        await self._call("DELETE", f"/api/v1/models/{name}", params=params)

    async def model_versions(self, name: str) -> list[ModelVersion]:
        return await self._records(_MODEL_VERSIONS, f"/api/v1/models/{name}/versions")

    # tags and restore; kind is "datasets" or "models"
    async def tags(self, kind: str, name: str) -> list[Tag]:
        return await self._records(_TAGS, f"/api/v1/{kind}/{name}/tags")

    async def create_tag(self, kind: str, name: str, tag: str, version: int | str) -> Tag:
        body = {"tag": tag, "version": version}
        return await self._record(Tag, "POST", f"/api/v1/{kind}/{name}/tags", json=body)

    async def move_tag(self, kind: str, name: str, tag: str, version: int | str) -> Tag:
        path = f"/api/v1/{kind}/{name}/tags/{tag}"
        return await self._record(Tag, "PUT", path, json={"version": version})

    async def delete_tag(self, kind: str, name: str, tag: str) -> None:
        await self._call("DELETE", f"/api/v1/{kind}/{name}/tags/{tag}")

    async def restore(self, kind: str, name: str, version: int | str) -> Restored:
        path = f"/api/v1/{kind}/{name}/restore"
        return await self._record(Restored, "POST", path, json={"version": version})

    # search, lineage, reproduce
    async def search(self, name: str, req: SearchCreate) -> SearchResult:
        body = req.model_dump(mode="json", exclude_none=True)
        # A query by input may be the one that loads torch and the model in the Data
        # Platform (unless warmed): seconds, more on busy cores. A vector query is fast.
        deadline = max(self.deadlines.write, SEARCH_BY_INPUT_SECONDS) if req.input else None
        timeout = httpx.Timeout(deadline, connect=self.deadlines.connect) if deadline else None
        return await self._record(
            SearchResult, "POST", f"/api/v1/datasets/{name}/search", json=body, timeout=timeout
        )

    async def build_index(self, name: str, req: IndexCreate) -> IndexInfo:
        body = req.model_dump(mode="json", exclude_none=True)
        # The answer comes once the index is trained and committed: tens of seconds for 70k
        # rows on busy cores, more for larger tables.
        deadline = max(self.deadlines.write, INDEX_BUILD_SECONDS)
        timeout = httpx.Timeout(deadline, connect=self.deadlines.connect)
        path = f"/api/v1/datasets/{name}/indexes"
        return await self._record(IndexInfo, "POST", path, json=body, timeout=timeout)

    async def list_indexes(self, name: str) -> list[IndexInfo]:
        return await self._records(_INDEXES, f"/api/v1/datasets/{name}/indexes")

    async def lineage(self, name: str) -> Lineage:
        return await self._record(Lineage, "GET", f"/api/v1/models/{name}/lineage")

    async def reproduce(self, name: str, req: ReproduceCreate) -> Reproduction:
        body = req.model_dump(mode="json", exclude_none=True)
        return await self._record(
            Reproduction, "POST", f"/api/v1/models/{name}/reproduce", json=body
        )

    async def reproduction(self, name: str, task_id: str) -> Reproduction:
        path = f"/api/v1/models/{name}/reproductions/{task_id}"
        return await self._record(Reproduction, "GET", path)

    # tasks
    async def submit_task(self, req: TaskCreate) -> Task:
        body = req.model_dump(mode="json", exclude_none=True)
        return await self._record(Task, "POST", "/api/v1/tasks", json=body)

    async def list_tasks(self, **filters: Any) -> tuple[list[Task], str | None]:
        """A page of tasks (filters: status, kind, name, limit, cursor), and the next cursor."""
        return await self._page(_TASKS, "/api/v1/tasks", filters)

    async def get_task(self, task_id: str) -> Task:
        return await self._record(Task, "GET", f"/api/v1/tasks/{task_id}")

    async def cancel_task(self, task_id: str) -> Task:
        return await self._record(Task, "POST", f"/api/v1/tasks/{task_id}/cancel")

    async def task_logs(self, task_id: str, tail: int | None = None) -> str:
        params = {"tail": tail} if tail is not None else {}
        return (await self._call("GET", f"/api/v1/tasks/{task_id}/logs", params=params)).text

    async def follow_task_logs(self, task_id: str, tail: int | None = None) -> LogStream:
        """Open the Data Platform's log stream now (its errors raise here)."""
        params: dict[str, Any] = {"follow": True}
        if tail is not None:
            params["tail"] = tail
        request = self._streams.build_request("GET", f"/api/v1/tasks/{task_id}/logs", params=params)
        try:
            # The stream's head has the read deadline; its body then has none.
            with anyio.fail_after(self.deadlines.connect + self.deadlines.read):
                response = await self._streams.send(request, stream=True)
        except (httpx.HTTPError, TimeoutError) as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            try:
                await response.aread()  # the error body of a streamed response
            finally:
                await response.aclose()
            raise _error(response)
        return LogStream(response)


def _error(response: httpx.Response) -> PlatformError:
    """The error the Data Platform answered, as ours; a bare 5xx means it failed."""
    try:
        body = response.json()
    except ValueError:
        body = response.text
    err = error_from_response(response.status_code, body)
    if type(err) is PlatformError and response.status_code >= 500:
        return UpstreamUnavailable(f"the Data Platform failed: {err.message}")
    return err


def _parsed(parse: Callable[[], T], path: str) -> T:
    """A record parsed from an answer; one that is not our schema is the upstream's failure."""
    try:
        return parse()
    except ValueError as exc:  # pydantic's ValidationError included
        raise UpstreamUnavailable(
            f"the Data Platform answered {path} with an unexpected body: {str(exc)[:300]}"
        ) from exc
