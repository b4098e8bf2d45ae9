"""The typed Data Platform client against a hostile stand-in server (real HTTP, uvicorn).

The stand-in answers what a broken or foreign upstream might: bodies that are not our records,
5xx without an envelope, envelopes with our codes, and a log stream that never ends.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ai_platform.dp_client import DataPlatformClient
from lakeapi.errors import ModelNotFound, TaskAlreadyRunning, UpstreamUnavailable
from lakeapi.schemas import Dataset, TaskCreate
from serverkit.net import free_port
from tests.support import wait_until

DATASET = {
    "id": "digits",
    "path": "/lake/datasets/digits.lance",
    "schema": {"id": "int64"},
    "num_rows": 3,
    "size_bytes": 10,
    "version": 2,
    "newer_field": "ignored",
}


class StandIn:
    def __init__(self) -> None:
        self.open_streams = 0
        routes = [
            Route("/api/v1/datasets", self.datasets),
            Route("/api/v1/datasets/{name}", self.dataset),
            Route("/api/v1/models/{name}", self.model),
            Route("/api/v1/tasks", self.submit, methods=["POST"]),
            Route("/api/v1/tasks/{task_id}/logs", self.logs),
        ]
        self.app = Starlette(routes=routes)

    async def datasets(self, request: Request) -> Response:
        return JSONResponse([DATASET])

    async def dataset(self, request: Request) -> Response:
        return JSONResponse({"id": request.path_params["name"]})  # not a Dataset record

    async def model(self, request: Request) -> Response:
        if request.path_params["name"] == "crash":
            return PlainTextResponse("Internal Server Error", status_code=500)
        body = {"error": {"code": "MODEL_NOT_FOUND", "message": "Model 'x' does not exist"}}
        return JSONResponse(body, status_code=404)

    async def submit(self, request: Request) -> Response:
        body = {"error": {"code": "TASK_ALREADY_RUNNING", "message": "busy"}}
        return JSONResponse(body, status_code=409)

    async def logs(self, request: Request) -> Response:
        if request.path_params["task_id"] == "broken":
            return PlainTextResponse("<html>bad gateway</html>", status_code=503)

        async def forever() -> AsyncIterator[bytes]:
            self.open_streams += 1
            try:
                yield b"line 1\n"
                while True:
                    await asyncio.sleep(0.05)
                    yield b"."
            finally:
                self.open_streams -= 1

        return StreamingResponse(forever(), media_type="text/plain")


@pytest.fixture(scope="module")
def stand_in() -> Iterator[tuple[StandIn, str]]:
    server_app = StandIn()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(server_app.app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10)
    yield server_app, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def run(url: str, scenario: Callable[[DataPlatformClient], Awaitable[None]]) -> None:
    async def main() -> None:
        client = DataPlatformClient(url, timeout=5)
        try:
            await scenario(client)
        finally:
            await client.aclose()

    asyncio.run(main())


def test_answers_are_typed_records_and_unknown_fields_are_ignored(stand_in):
    async def scenario(client: DataPlatformClient) -> None:
        datasets, next_cursor = await client.list_datasets()
        assert datasets == [Dataset.model_validate(DATASET)] and next_cursor is None
        assert datasets[0].schema_ == {"id": "int64"} and datasets[0].version == 2

    run(stand_in[1], scenario)


def test_errors_come_back_as_the_upstream_raised_them(stand_in):
    async def scenario(client: DataPlatformClient) -> None:
        with pytest.raises(ModelNotFound, match="does not exist"):
            await client.get_model("x")
        with pytest.raises(TaskAlreadyRunning):
            await client.submit_task(TaskCreate(script="s.py", output="datasets/x"))
        with pytest.raises(UpstreamUnavailable, match="Data Platform failed"):
            await client.get_model("crash")  # a 5xx without an envelope
        with pytest.raises(UpstreamUnavailable, match="unexpected body"):
            await client.get_dataset("digits")  # 200, but not a Dataset
        with pytest.raises(UpstreamUnavailable, match="Data Platform failed"):
            await client.follow_task_logs("broken")  # the stream's error, before any byte

    run(stand_in[1], scenario)


def test_a_closed_log_stream_ends_upstream(stand_in):
    server, url = stand_in

    async def scenario(client: DataPlatformClient) -> None:
        streams = [await client.follow_task_logs(f"t{i}") for i in range(5)]
        readers = [aiter(stream) for stream in streams]  # kept: not closed by the GC
        firsts = [await anext(reader) for reader in readers]
        assert all(chunk.startswith(b"line 1") for chunk in firsts)
        assert server.open_streams == 5
        for stream in streams:
            await stream.aclose()
        deadline = time.monotonic() + 5
        while server.open_streams and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert server.open_streams == 0

    run(url, scenario)


def test_an_unreachable_data_platform_is_502():
    async def scenario(client: DataPlatformClient) -> None:
        with pytest.raises(UpstreamUnavailable, match="unreachable"):
            await client.list_models()
        with pytest.raises(UpstreamUnavailable, match="unreachable"):
            await client.follow_task_logs("t")

    run(f"http://127.0.0.1:{free_port()}", scenario)


def test_a_silent_data_platform_is_504_within_each_deadline():
    from ai_platform.dp_client import Deadlines, UpstreamTimeout

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)  # accepts, as a SIGSTOPped server's kernel does, never answers

    async def main() -> None:
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        client = DataPlatformClient(url, timeout=Deadlines(connect=1, read=0.5, write=1.0))
        loop = asyncio.get_running_loop()
        req = TaskCreate(script="s.py", output="datasets/x")
        for call, deadline in (
            (client.list_datasets(), 0.5),
            (client.submit_task(req), 1.0),
            (client.follow_task_logs("ingest-1"), 1.5),  # connect + read for its head
        ):
            started = loop.time()
            with pytest.raises(UpstreamTimeout) as caught:
                await call
            took = loop.time() - started
            assert deadline <= took < deadline + 0.5, took
            assert caught.value.status == 504 and caught.value.code == "UPSTREAM_TIMEOUT"
        assert await client.ping(0.3) == "slow"
        await client.aclose()
        server.close()
        gone = DataPlatformClient(f"http://127.0.0.1:{free_port()}")
        with pytest.raises(UpstreamUnavailable) as refused:
            await gone.list_datasets()
        assert refused.value.status == 502 and not isinstance(refused.value, UpstreamTimeout)
        assert await gone.ping(0.3) == "unreachable"
        await gone.aclose()

    asyncio.run(main())
