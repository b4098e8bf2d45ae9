"""The records of the lake's own operations: batch inference, search, indexes, lineage and
reproduce (the same contract as :mod:`lakeapi.schemas`, whose ``Record`` and ``Request`` they
extend)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from lakeapi.names import NAME_PATTERN
from lakeapi.schemas import Record, Request, Task, TaskStatus


class BatchInferenceCreate(Request):
    """Run a model over a dataset and add its outputs as new columns (a new Lance version)."""

    name: str | None = Field(None, pattern=NAME_PATTERN, description="Optional task name.")
    model: str = Field(pattern=NAME_PATTERN, description="A model name in the lake.")
    model_version: int | None = Field(None, ge=1, description="Default: the latest.")
    dataset: str = Field(pattern=NAME_PATTERN, description="The dataset that gets the columns.")
    input_column: str = Field("image", min_length=1, max_length=256)
    filter: str | None = Field(
        None, max_length=4096, description="SQL; other rows get nulls in the new columns."
    )
    layer: str | None = Field(
        None,
        max_length=256,
        description="Where the embedding comes from: a graph node or output name; "
        "default: the input of the last linear layer (the penultimate layer).",
    )
    prefix: str = Field(
        "", pattern=r"^([A-Za-z][A-Za-z0-9_]{0,63})?$", description="Prefix of the new columns."
    )
    batch_size: int = Field(1024, ge=1, le=65536)
    retries: int = Field(0, ge=0, le=10)


class SearchCreate(Request):
    """Nearest rows of a dataset by an embedding column: give exactly one of vector, row_id
    or input (with model)."""

    vector: list[float] | None = Field(None, min_length=1, max_length=65536)
    row_id: int | None = Field(None, ge=0, description="Search with this row's own vector.")
    input: Any = Field(
        None, description="What /predict takes (a base64 PNG or 784 pixels): model embeds it."
    )
    model: str | None = Field(None, pattern=NAME_PATTERN)
    model_version: int | None = Field(None, ge=1)
    layer: str | None = Field(None, max_length=256)
    column: str = Field("embedding", min_length=1, max_length=256)
    k: int = Field(10, ge=1, le=1000)
    filter: str | None = Field(None, max_length=4096)
    columns: list[str] | None = Field(
        None, max_length=256, description="Columns to return (default: all but vectors)."
    )
    nprobes: int | None = Field(None, ge=1, le=4096, description="Index partitions to probe.")
    refine_factor: int | None = Field(None, ge=1, le=100)


class SearchHit(Record):
    row_id: int
    distance: float
    values: dict[str, Any] = Field(default_factory=dict)


class SearchResult(Record):
    hits: list[SearchHit]
    indexed: bool = Field(description="An ANN index answered (else a flat scan).")
    dataset_version: int
    seconds: float


class IndexCreate(Request):
    column: str = Field("embedding", min_length=1, max_length=256)
    index_type: str = Field("IVF_FLAT", pattern=r"^(IVF_FLAT|IVF_PQ|IVF_HNSW_SQ)$")
    metric: str = Field("l2", pattern=r"^(l2|cosine|dot)$")
    num_partitions: int | None = Field(None, ge=1, le=65536)
    num_sub_vectors: int | None = Field(None, ge=1, le=4096)


class IndexInfo(Record):
    name: str
    column: str
    index_type: str
    dataset_version: int


class TaskRef(Record):
    """A task as lineage shows it: what ran, on what, and what it wrote."""

    id: str
    kind: str
    status: TaskStatus
    script: str
    script_sha256: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    input: str
    input_version: int | None = None
    input_checksums: dict[str, str] = Field(default_factory=dict)
    output: str
    output_version: int | None = None
    completed_at: datetime | None = None
    result: dict[str, Any] | None = None


class Lineage(Record):
    """Model version -> training task -> dataset version -> the tasks that wrote it."""

    model: str
    model_version: int
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: TaskRef | None = None
    dataset: str | None = None
    dataset_path: str | None = None
    dataset_version: int | None = None
    producers: list[TaskRef] = Field(
        default_factory=list, description="Writers of that dataset version, newest first."
    )
    missing: list[str] = Field(default_factory=list, description="What is not recorded.")


class ReproduceCreate(Request):
    use_current_script: bool = Field(False, description="Run even if the script changed.")
    name: str | None = Field(None, pattern=NAME_PATTERN, description="Optional task name.")


class Reproduction(Record):
    """A retraining of a model version from its exact inputs, and how its metrics compare."""

    task: Task
    model: str
    original_version: int
    original_metrics: dict[str, Any] = Field(default_factory=dict)
    dataset: str | None = None
    dataset_version: int | None = None
    script_changed: bool = False
    new_version: int | None = Field(None, description="Once the task completed.")
    new_metrics: dict[str, Any] | None = None
    differences: dict[str, float] = Field(
        default_factory=dict, description="new - original, per numeric metric."
    )
