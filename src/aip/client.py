"""The AI Platform client: one class per resource, each method one REST call.

from aip import Client

with Client() as client:                       # AIP_URL / AIP_API_KEY, or arguments
    task = client.ingestion.submit(
        name="mnist", input="raw/mnist", script="pipelines/mnist_clean.py", output="mnist"
    )
    task.wait(on_progress=lambda t: print(t.progress))
"""

from __future__ import annotations

import builtins
import os
from typing import Any

import httpx

from aip.errors import (
    InvalidRequest,
    PlatformError,
    PlatformUnreachable,
    ServiceNotFound,
    TaskNotFound,
    error_from_response,
)
from aip.handles import ServiceHandle, TaskHandle
from aip.records import Dataset, DatasetVersion, Model, Service, Task

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0
# Creating a service waits for the model to load (60 s by default on the server), so that one
# call gets more than the usual timeout.
SERVICE_CREATE_TIMEOUT = 300.0
API = "/api/v1"

_DEFAULT: Any = object()  # "the client's timeout", as opposed to None (no timeout)


class Client:
    """A connection to the AI Platform.

    Args:
        base_url: the platform's URL; default ``$AIP_URL``, else http://127.0.0.1:8000.
        api_key: sent as ``Authorization: Bearer <key>``; default ``$AIP_API_KEY``.
        timeout: seconds for one request (connecting is capped at 10 s).
        transport: an httpx transport (tests: ``httpx.MockTransport``).

    Attributes:
        datasets: :class:`DatasetsAPI`.
        models: :class:`ModelsAPI`.
        ingestion: :class:`TasksAPI` for ingestion tasks.
        training: :class:`TasksAPI` for training tasks.
        services: :class:`ServicesAPI` for inference services.

    A client holds a connection pool: ``close()`` it, or use it as a context manager.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get("AIP_URL") or DEFAULT_URL).rstrip("/")
        if api_key is None:
            api_key = os.environ.get("AIP_API_KEY") or None
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=self._timeout(timeout),
            transport=transport,
        )
        self.datasets = DatasetsAPI(self)
        self.models = ModelsAPI(self)
        self.ingestion = TasksAPI(self, "ingestion")
        self.training = TasksAPI(self, "training")
        self.services = ServicesAPI(self)

    @staticmethod
    def _timeout(seconds: float | None) -> httpx.Timeout:
        # A refused or unroutable address should fail fast even when reads may take long.
        return httpx.Timeout(seconds, connect=10.0 if seconds is None else min(seconds, 10.0))

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- platform-wide -------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``{"status": "ok", ...}`` when the platform answers.

        Raises:
            PlatformUnreachable: it does not.
        """
        return self._json("GET", "/health")

    def task(self, task_id: str) -> TaskHandle:
        """A handle on any task, ingestion or training, by id.

        Raises:
            TaskNotFound: no such task (or an id that is neither ``ingest-…`` nor ``train-…``).
        """
        return self._tasks_api(task_id).get(task_id)

    def list_tasks(self, kind: str | None = None, status: str | None = None) -> list[Task]:
        """Tasks of both kinds (or ``kind``: ``ingestion``/``training``), newest first.

        Args:
            kind: only this kind.
            status: only ``pending``, ``running``, ``completed`` or ``failed``.

        Raises:
            InvalidRequest: an unknown status or kind.
        """
        by_kind = {"ingestion": [self.ingestion], "training": [self.training]}
        if kind is None:
            apis = [self.ingestion, self.training]
        elif kind in by_kind:
            apis = by_kind[kind]
        else:
            raise InvalidRequest(f"unknown task kind {kind!r}: use ingestion or training")
        tasks = [t for api in apis for t in api.list(status=status)]
        return sorted(tasks, key=lambda t: t.created_at, reverse=True)

    def _tasks_api(self, task_id: str) -> TasksAPI:
        for api in (self.ingestion, self.training):
            if task_id.startswith(api.prefix + "-"):
                return api
        raise TaskNotFound(
            f"Task '{task_id}' does not exist (task ids start with 'ingest-' or 'train-')"
        )

    # -- transport -----------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: Any = _DEFAULT,
    ) -> httpx.Response:
        """One request; an error answer raises the server's ``PlatformError``."""
        limit = httpx.USE_CLIENT_DEFAULT if timeout is _DEFAULT else self._timeout(timeout)
        try:
            response = self._http.request(method, path, json=json, params=params, timeout=limit)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise _error(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def _stream(self, method: str, path: str, params: dict[str, Any]) -> httpx.Response:
        """Open a streamed response now, without a read timeout; errors raise here."""
        request = self._http.build_request(method, path, params=params, timeout=self._timeout(None))
        try:
            response = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            try:
                response.read()
            finally:
                response.close()
            raise _error(response)
        return response

    def _unreachable(self, exc: Exception) -> PlatformUnreachable:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            why = "cannot connect (is it running? `aip up` starts it)"
        elif isinstance(exc, httpx.TimeoutException):
            why = f"no answer within the timeout ({type(exc).__name__})"
        else:
            why = f"{type(exc).__name__}: {exc}"
        return PlatformUnreachable(
            f"the AI Platform at {self.base_url} is unreachable: {why}", url=self.base_url
        )


def _error(response: httpx.Response) -> PlatformError:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return error_from_response(response.status_code, body)


class DatasetsAPI:
    """Datasets in the lake (``/api/v1/datasets``)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> list[Dataset]:
        """Every dataset in the lake."""
        return [Dataset.from_raw(d) for d in self._client._json("GET", f"{API}/datasets")]

    def get(self, dataset_id: str) -> Dataset:
        """One dataset: path, schema, rows, size, Lance version.

        Raises:
            DatasetNotFound: no such dataset.
            InvalidRequest: not a valid name.
        """
        return Dataset.from_raw(self._client._json("GET", f"{API}/datasets/{dataset_id}"))

    def versions(self, dataset_id: str) -> builtins.list[DatasetVersion]:
        """The dataset's Lance versions, oldest first.

        Raises:
            DatasetNotFound: no such dataset.
        """
        path = f"{API}/datasets/{dataset_id}/versions"
        return [DatasetVersion.from_raw(v) for v in self._client._json("GET", path)]

    def delete(self, dataset_id: str) -> None:
        """Delete a dataset and all its versions.

        Raises:
            DatasetNotFound: no such dataset.
        """
        self._client._request("DELETE", f"{API}/datasets/{dataset_id}")


class ModelsAPI:
    """Trained models in the lake (``/api/v1/models``)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> list[Model]:
        """Every model in the lake."""
        return [Model.from_raw(m) for m in self._client._json("GET", f"{API}/models")]

    def get(self, model_id: str) -> Model:
        """One model with metrics, params, per-epoch history and its source dataset version.

        Raises:
            ModelNotFound: no such model.
        """
        return Model.from_raw(self._client._json("GET", f"{API}/models/{model_id}"))

    def delete(self, model_id: str) -> None:
        """Delete a model and all its versions.

        Raises:
            ModelNotFound: no such model.
        """
        self._client._request("DELETE", f"{API}/models/{model_id}")


class TasksAPI:
    """Ingestion or training tasks (``/api/v1/ingestion-tasks``, ``/api/v1/training-tasks``)."""

    def __init__(self, client: Client, kind: str) -> None:
        self._client = client
        self.kind = kind
        self.prefix = "train" if kind == "training" else "ingest"
        self._base = f"{API}/{kind}-tasks"

    def _path(self, task_id: str, *rest: str) -> str:
        return "/".join((self._base, task_id, *rest))

    def submit(
        self,
        name: str,
        input: str,
        script: str,
        output: str,
        params: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Submit a task; it runs in the background (``wait()`` on the handle to block).

        Args:
            name: task name; one pending or running task per name.
            input: ingestion: a raw data path under the data root (``raw/mnist``);
                training: a dataset name.
            script: a path under the scripts root (``pipelines/mnist_clean.py``).
            output: ingestion: a dataset name; training: a model name.
            params: passed to the script's ``run(input, output, params)``.

        Raises:
            TaskAlreadyRunning: a task with this name is pending or running.
            DatasetNotFound: training on a dataset that does not exist.
            InvalidRequest: a bad name, script or input.
        """
        body = {
            "name": name,
            "input": input,
            "script": script,
            "output": output,
            "params": params or {},
        }
        return TaskHandle(self, Task.from_raw(self._client._json("POST", self._base, json=body)))

    def list(self, status: str | None = None) -> list[Task]:
        """Tasks of this kind, newest first.

        Args:
            status: only ``pending``, ``running``, ``completed`` or ``failed``.
        """
        params = {"status": status} if status else None
        return [Task.from_raw(t) for t in self._client._json("GET", self._base, params=params)]

    def get(self, task_id: str) -> TaskHandle:
        """A handle on one task, with its current record.

        Raises:
            TaskNotFound: no such task of this kind.
        """
        return TaskHandle(self, Task.from_raw(self._client._json("GET", self._path(task_id))))

    def cancel(self, task_id: str) -> Task:
        """Cancel a task; idempotent (see :meth:`TaskHandle.cancel`).

        Raises:
            TaskNotFound: no such task.
        """
        return self.get(task_id).cancel()

    def logs(self, task_id: str, tail: int | None = None) -> str:
        """A task's log (see :meth:`TaskHandle.logs`).

        Raises:
            TaskNotFound: no such task.
        """
        params = {"tail": tail} if tail is not None else None
        return self._client._request("GET", self._path(task_id, "logs"), params=params).text


class ServicesAPI:
    """Inference services (``/api/v1/inference-services``)."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._base = f"{API}/inference-services"

    def _path(self, service_id: str, *rest: str) -> str:
        return "/".join((self._base, service_id, *rest))

    def create(
        self,
        name: str,
        model: str,
        device: str = "cpu",
        port: int | None = None,
        *,
        timeout: float | None = SERVICE_CREATE_TIMEOUT,
    ) -> ServiceHandle:
        """Start a model server for a model in the lake; returns once it serves.

        Args:
            name: service name (unique).
            model: a model name in the lake.
            device: ``cpu``, ``cuda`` or ``cuda:N``.
            port: the model server's port; None picks a free one.
            timeout: seconds to wait for the model to load.

        Raises:
            ModelNotFound: no such model.
            ServiceAlreadyExists: the name is taken.
            PortInUse: the port is taken.
            ServiceUnavailable: the model server did not come up (the record says why).
        """
        body: dict[str, Any] = {"name": name, "model": model, "device": device}
        if port is not None:
            body["port"] = port
        raw = self._client._json("POST", self._base, json=body, timeout=timeout)
        return ServiceHandle(self, Service.from_raw(raw))

    def list(self) -> list[Service]:
        """Every inference service, newest first."""
        return [Service.from_raw(s) for s in self._client._json("GET", self._base)]

    def get(self, service: str) -> ServiceHandle:
        """A handle on a service, by id (``serve-…``) or by name.

        Raises:
            ServiceNotFound: no service has this id or name.
        """
        try:
            raw = self._client._json("GET", self._path(service))
        except ServiceNotFound:
            # Names are unique too, and what people remember; ids are what the API takes.
            for record in self.list():
                if record.name == service:
                    return ServiceHandle(self, record)
            raise
        return ServiceHandle(self, Service.from_raw(raw))

    def delete(self, service: str) -> None:
        """Stop a service (by id or name) and free its port.

        Raises:
            ServiceNotFound: no service has this id or name.
        """
        self.get(service).delete()
