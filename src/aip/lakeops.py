"""What the lake makes possible, in the SDK: batch inference into new columns, similar-example
search and vector indexes, a model's lineage and its reproduction.

    with Client() as c:
        task = c.batch_inference.submit("mnist_cnn", "mnist").wait()
        hits = c.datasets.search("mnist", input=image, model="mnist_cnn", k=10)
        chain = c.models.lineage("mnist_cnn")
        rep = c.models.reproduce("mnist_cnn", wait=True)  # both metrics side by side
"""

from __future__ import annotations

import builtins
import time
from typing import Any

from aip.handles import TaskHandle
from aip.images import ImageLike, encode_image
from aip.records import Record, Task
from aip.transport import API, Transport, join
from lakeapi import lakeops as wire
from lakeapi.names import check_name


class SearchResult(Record, wire.SearchResult):
    """The nearest rows, nearest first; ``indexed`` says whether an index answered."""


class IndexInfo(Record, wire.IndexInfo):
    pass


class Lineage(Record, wire.Lineage):
    """Model version -> training task -> dataset version -> the tasks that wrote it."""


class Reproduction(Record, wire.Reproduction):
    """A retraining from the same inputs; ``differences`` once it completed."""


class BatchInferenceAPI:
    """Batch-inference tasks (``/api/v1/batch-inference-tasks``)."""

    def __init__(self, http: Transport) -> None:
        self._http = http
        self._base = join(API, "batch-inference-tasks")

    def _handle(self, raw: dict[str, Any]) -> TaskHandle:
        record = Task.from_raw(raw)
        return TaskHandle(self._http, join(self._base, record.id), record)

    def submit(
        self,
        model: str,
        dataset: str,
        *,
        model_version: int | None = None,
        filter: str | None = None,
        layer: str | None = None,
        input_column: str = "image",
        prefix: str = "",
        batch_size: int = 1024,
        name: str | None = None,
        retries: int = 0,
    ) -> TaskHandle:
        """Run ``model`` over ``dataset`` and add ``prediction``, ``confidence`` and
        ``embedding`` columns (a new dataset version; existing data files stay untouched).

        Args:
            model: a model name; ``model_version`` pins a version (default: the latest).
            dataset: the dataset that gets the columns.
            filter: SQL; the other rows get nulls.
            layer: where the embedding comes from (default: the penultimate layer).
            prefix: prefix of the new columns' names.

        Raises:
            ModelNotFound, DatasetNotFound: no such model or dataset.
            TaskAlreadyRunning: a batch inference with this name (default: the dataset's).
        """
        body: dict[str, Any] = {
            "model": check_name(model, "model name"),
            "dataset": check_name(dataset, "dataset name"),
            "input_column": input_column,
            "prefix": prefix,
            "batch_size": batch_size,
            "retries": retries,
        }
        extra = {"model_version": model_version, "filter": filter, "layer": layer, "name": name}
        body.update({k: v for k, v in extra.items() if v is not None})
        return self._handle(self._http.json("POST", self._base, json=body))

    def list(self, status: str | None = None) -> builtins.list[Task]:
        params = {"status": status} if status else None
        return [Task.from_raw(t) for t in self._http.every(self._base, params)]

    def get(self, task_id: str) -> TaskHandle:
        return self._handle(self._http.json("GET", join(self._base, task_id)))

    def cancel(self, task_id: str) -> Task:
        return self.get(task_id).cancel()


def search(
    http: Transport,
    dataset: str,
    *,
    vector: builtins.list[float] | None = None,
    row_id: int | None = None,
    input: ImageLike | builtins.list[float] | None = None,
    model: str | None = None,
    k: int = 10,
    filter: str | None = None,
    columns: builtins.list[str] | None = None,
    column: str = "embedding",
    **tuning: Any,
) -> SearchResult:
    """The ``k`` nearest rows of ``dataset`` to a vector, a row, or an input a model embeds
    (an image: a path, bytes, a PIL image or a 28x28 array)."""
    if input is not None and not isinstance(input, list):
        input = encode_image(input)
    body = {
        "vector": vector,
        "row_id": row_id,
        "input": input,
        "model": model,
        "k": k,
        "filter": filter,
        "columns": columns,
        "column": column,
        **tuning,
    }
    path = join(API, "datasets", check_name(dataset, "dataset id"), "search")
    raw = http.json("POST", path, json={k: v for k, v in body.items() if v is not None})
    return SearchResult.from_raw(raw)


def build_index(http: Transport, dataset: str, **options: Any) -> IndexInfo:
    """Build (or replace) a vector index (``index_type``: IVF_FLAT, IVF_PQ, IVF_HNSW_SQ)."""
    path = join(API, "datasets", check_name(dataset, "dataset id"), "indexes")
    return IndexInfo.from_raw(http.json("POST", path, json=options))


def lineage(http: Transport, model: str) -> Lineage:
    path = join(API, "models", check_name(model, "model id"), "lineage")
    return Lineage.from_raw(http.json("GET", path))


def reproduce(
    http: Transport,
    model: str,
    *,
    use_current_script: bool = False,
    wait: bool = False,
    timeout: float | None = None,
    poll: float = 1.0,
) -> Reproduction:
    """Retrain ``model`` from its exact inputs; with ``wait``, until both metrics compare.

    Raises:
        PlatformError: code ``SCRIPT_CHANGED`` (409) when the script changed since.
        TaskTimeoutError-like TimeoutError: ``timeout`` passed first.
    """
    base = join(API, "models", check_name(model, "model id"))
    body = {"use_current_script": use_current_script}
    rep = Reproduction.from_raw(http.json("POST", join(base, "reproduce"), json=body))
    deadline = None if timeout is None else time.monotonic() + timeout
    while wait and rep.task.status not in ("completed", "failed"):
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"reproduction {rep.task.id} still runs after {timeout} s")
        time.sleep(poll)
        rep = Reproduction.from_raw(http.json("GET", join(base, "reproductions", rep.task.id)))
    return rep
