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

from aip import lakeops
from aip.errors import InvalidRequest, ServiceNotFound, TaskNotFound
from aip.handles import ServiceHandle, TaskHandle, task_logs
from aip.records import Dataset, DatasetVersion, Model, ModelVersion, Service, Task
from aip.transport import API, Transport, join
from aip.versions import VersionedAPI
from lakeapi.names import check_name, split_at

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0
# Creating a service waits for the model to load (60 s by default on the server), so that one
# call gets more than the usual timeout.
SERVICE_CREATE_TIMEOUT = 300.0


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
        batch_inference: :class:`~aip.lakeops.BatchInferenceAPI`: model outputs as columns.
        http: the :class:`~aip.transport.Transport` they all share (for calls the SDK lacks).

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
        self.http = Transport(self.base_url, api_key, timeout, transport)
        self.datasets = DatasetsAPI(self.http)
        self.models = ModelsAPI(self.http)
        self.ingestion = TasksAPI(self.http, "ingestion")
        self.training = TasksAPI(self.http, "training")
        self.services = ServicesAPI(self.http)
        self.batch_inference = lakeops.BatchInferenceAPI(self.http)

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

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
        answer: dict[str, Any] = self.http.json("GET", "/health")
        return answer

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
        # The REST routes are per kind; the id's prefix is the only thing that says which.
        for api in (self.ingestion, self.training):
            if task_id.startswith(api.prefix + "-"):
                return api
        raise TaskNotFound(
            f"Task '{task_id}' does not exist (task ids start with 'ingest-' or 'train-')"
        )


class DatasetsAPI(VersionedAPI):
    """Datasets in the lake (``/api/v1/datasets``); tags and restore in VersionedAPI."""

    kind = "datasets"

    def list(self) -> list[Dataset]:
        """Every dataset in the lake."""
        return [Dataset.from_raw(d) for d in self._http.every(join(API, "datasets"))]

    def get(self, dataset_id: str) -> Dataset:
        """One dataset: path, schema, rows, size, Lance version.

        Raises:
            DatasetNotFound: no such dataset.
            InvalidRequest: not a valid name.
        """
        return Dataset.from_raw(self._http.json("GET", join(API, "datasets", dataset_id)))

    def versions(self, dataset_id: str) -> builtins.list[DatasetVersion]:
        """The dataset's Lance versions, oldest first.

        Raises:
            DatasetNotFound: no such dataset.
        """
        path = join(API, "datasets", dataset_id, "versions")
        return [DatasetVersion.from_raw(v) for v in self._http.json("GET", path)]

    def search(self, dataset_id: str, **query: Any) -> lakeops.SearchResult:
        """Nearest rows by ``vector``, ``row_id`` or ``input`` + ``model`` (see
        :func:`aip.lakeops.search`)."""
        return lakeops.search(self._http, dataset_id, **query)

    def build_index(self, dataset_id: str, **options: Any) -> lakeops.IndexInfo:
        """Build a vector index on an embedding column (``column``, ``index_type``)."""
        return lakeops.build_index(self._http, dataset_id, **options)


class ModelsAPI(VersionedAPI):
    """Trained models in the lake (``/api/v1/models``); aliases (tags) and restore in
    VersionedAPI."""

    kind = "models"

    def list(self) -> list[Model]:
        """Every model in the lake."""
        return [Model.from_raw(m) for m in self._http.every(join(API, "models"))]

    def get(self, model_id: str) -> Model:
        """One model with metrics, params, per-epoch history and its source dataset version.

        Raises:
            ModelNotFound: no such model.
        """
        return Model.from_raw(self._http.json("GET", join(API, "models", model_id)))

    def versions(self, model_id: str) -> builtins.list[ModelVersion]:
        """The model's versions, oldest first, each with its metrics, source dataset version
        and provenance (task, script and its sha256).

        Raises:
            ModelNotFound: no such model.
        """
        path = join(API, "models", model_id, "versions")
        return [ModelVersion.from_raw(v) for v in self._http.json("GET", path)]

    def lineage(self, model_id: str) -> lakeops.Lineage:
        """Model version -> training task -> dataset version -> the tasks that wrote it."""
        return lakeops.lineage(self._http, model_id)

    def reproduce(self, model_id: str, **options: Any) -> lakeops.Reproduction:
        """Retrain from the exact inputs (see :func:`aip.lakeops.reproduce`)."""
        return lakeops.reproduce(self._http, model_id, **options)


class TasksAPI:
    """Ingestion or training tasks (``/api/v1/ingestion-tasks``, ``/api/v1/training-tasks``)."""

    def __init__(self, http: Transport, kind: str) -> None:
        self._http = http
        self.kind = kind
        self.prefix = "train" if kind == "training" else "ingest"
        self._base = join(API, f"{kind}-tasks")

    def _handle(self, raw: dict[str, Any]) -> TaskHandle:
        record = Task.from_raw(raw)
        return TaskHandle(self._http, join(self._base, record.id), record)

    def submit(
        self,
        name: str,
        input: str,
        script: str,
        output: str,
        params: dict[str, Any] | None = None,
        mode: str | None = None,
    ) -> TaskHandle:
        """Submit a task; it runs in the background (``wait()`` on the handle to block).

        Args:
            name: task name; one pending or running task per name.
            input: ingestion: a raw data path under the data root (``raw/mnist``);
                training: a dataset name, or ``NAME@12`` / ``NAME@tag`` for an exact version.
            script: a path under the scripts root (``pipelines/mnist_clean.py``).
            output: ingestion: a dataset name; training: a model name.
            params: passed to the script's ``run(input, output, params)``.
            mode: ``create`` (refused if the output exists), ``overwrite`` (the server's
                default: a new version) or ``append`` (datasets only).

        Raises:
            TaskAlreadyRunning: a task with this name is pending or running.
            DatasetNotFound: training on a dataset that does not exist.
            InvalidRequest: a bad name, script or input.
        """
        check_name(name, "task name")
        check_name(output, "dataset name" if self.kind == "ingestion" else "model name")
        body = {
            "name": name,
            "input": input,
            "script": script,
            "output": output,
            "params": params or {},
        }
        if mode is not None:
            body["mode"] = mode
        return self._handle(self._http.json("POST", self._base, json=body))

    def list(self, status: str | None = None) -> list[Task]:
        """Tasks of this kind, newest first.

        Args:
            status: only ``pending``, ``running``, ``completed`` or ``failed``.
        """
        params = {"status": status} if status else None
        return [Task.from_raw(t) for t in self._http.every(self._base, params)]

    def get(self, task_id: str) -> TaskHandle:
        """A handle on one task, with its current record.

        Raises:
            TaskNotFound: no such task of this kind.
        """
        return self._handle(self._http.json("GET", join(self._base, task_id)))

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
        return task_logs(self._http, join(self._base, task_id), tail)


class ServicesAPI:
    """Inference services (``/api/v1/inference-services``)."""

    def __init__(self, http: Transport) -> None:
        self._http = http
        self._base = join(API, "inference-services")

    def _handle(self, record: Service) -> ServiceHandle:
        return ServiceHandle(self._http, join(self._base, record.id), record)

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
            model: a model name in the lake (its latest version), ``NAME@3``, or
                ``NAME@alias`` to follow the alias (moving it rolls the service).
            device: ``cpu``, ``cuda`` or ``cuda:N``.
            port: the model server's port; None picks a free one.
            timeout: seconds to wait for the model to load.

        Raises:
            ModelNotFound: no such model.
            ServiceAlreadyExists: the name is taken.
            PortInUse: the port is taken.
            ServiceUnavailable: the model server did not come up (the record says why).
        """
        check_name(name, "service name")
        split_at(model, "model name")
        body: dict[str, Any] = {"name": name, "model": model, "device": device}
        if port is not None:
            body["port"] = port
        raw = self._http.json("POST", self._base, json=body, timeout=timeout)
        return self._handle(Service.from_raw(raw))

    def list(self) -> list[Service]:
        """Every inference service, newest first."""
        return [Service.from_raw(s) for s in self._http.every(self._base)]

    def get(self, service: str) -> ServiceHandle:
        """A handle on a service, by id (``serve-…``) or by name.

        Raises:
            ServiceNotFound: no service has this id or name.
        """
        try:
            raw = self._http.json("GET", join(self._base, service))
        except ServiceNotFound:
            # Names are unique too, and what people remember; ids are what the API takes.
            for record in self.list():
                if record.name == service:
                    return self._handle(record)
            raise
        return self._handle(Service.from_raw(raw))

    def delete(self, service: str) -> None:
        """Stop a service (by id or name) and free its port.

        Raises:
            ServiceNotFound: no service has this id or name.
        """
        self.get(service).delete()
