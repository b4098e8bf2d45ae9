"""The records every resource answers with, defined once.

The Data Platform stores and answers :class:`Task`, :class:`Dataset`, :class:`Model`; the AI
Platform answers :class:`IngestionTask`, :class:`TrainingTask`, :class:`Service` and passes
datasets and models through typed; the SDK subclasses them to keep the raw JSON and add
helpers. Records read from the wire ignore fields they do not know (a newer server never
breaks an older reader); request bodies (``XCreate``) forbid them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, computed_field

from lakeapi.errors import InvalidRequest
from lakeapi.names import NAME_PATTERN, split_at, split_uri


def utcnow() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    """A record read from storage or the wire: unknown fields are ignored."""

    # protected_namespaces=(): fields such as ``model_version`` are ours, not pydantic's.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, protected_namespaces=())


class Request(BaseModel):
    """A request body: unknown fields are refused (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


# -- params: what a task's script receives ---------------------------------------------------

PARAMS_MAX_DEPTH = 32  # nesting of lists and objects in a task's params
PARAMS_MAX_NUMBER = 2.0**63  # magnitude; a larger number is no count or size any script means


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """Params must survive a JSON round trip as they are: finite numbers, bounded nesting.

    ``NaN``, ``Infinity`` and ``1e400`` (which JSON parsers read as infinity) are refused, not
    stored as something else; so is nesting deeper than :data:`PARAMS_MAX_DEPTH`, which breaks
    recursive readers further down (a list endpoint, a script's own parser).
    """
    stack: list[tuple[Any, int]] = [(params, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > PARAMS_MAX_DEPTH:
                raise ValueError(f"params are nested deeper than {PARAMS_MAX_DEPTH} levels")
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"params hold a non-finite number ({value}); use a finite one")
        elif (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and abs(value) >= PARAMS_MAX_NUMBER
        ):
            # Not formatted as a float: a huge integer has none (OverflowError, a 500).
            shown = f"{value:.3g}" if isinstance(value, float) else f"{value.bit_length()} bits"
            raise ValueError(f"params hold a number out of range ({shown}; at most 2**63)")
    return params


Params = Annotated[
    dict[str, Any],
    AfterValidator(check_params),
    Field(
        default_factory=dict,
        description=f"Handed to the script's run(); finite numbers, at most "
        f"{PARAMS_MAX_DEPTH} levels deep.",
    ),
]


# -- tasks ---------------------------------------------------------------------------------


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"

    def is_terminal(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED)


# The one table of allowed moves; nothing leaves a terminal state.
TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.PENDING: frozenset({TaskStatus.RUNNING, TaskStatus.FAILED}),
    TaskStatus.RUNNING: frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED}),
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.FAILED: frozenset(),
}


class FailureReason(StrEnum):
    EXCEPTION = "exception"  # run() raised
    BAD_RESULT = "bad_result"  # run() returned something other than a JSON-able dict
    CRASHED = "crashed"  # the process exited without a result
    KILLED = "killed"  # the process died from a signal we did not send
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    MEMORY = "memory"  # the process tree outgrew the memory limit
    INTERRUPTED = "interrupted"  # the platform restarted or shut down while it ran
    NODE_LOST = "node lost"  # the node running the task went away
    REJECTED = "rejected"  # could not start (script vanished, executor refused it)


class TaskError(Record):
    """Why a task failed."""

    reason: FailureReason
    type: str | None = None
    message: str


class WriteMode(StrEnum):
    """How a task writes its output. ``overwrite`` (the default, as before) makes a new
    version with only the new content, the old versions kept; ``create`` is refused (409
    ALREADY_EXISTS) when the output exists; ``append`` adds rows to a dataset's latest."""

    CREATE = "create"
    OVERWRITE = "overwrite"
    APPEND = "append"


class TaskKind(StrEnum):
    """The kinds the AI Platform submits; the Data Platform takes any name as a kind."""

    INGESTION = "ingestion"
    TRAINING = "training"
    BATCH_INFERENCE = "batch_inference"


# A task's resource request: what it needs from the node that runs it (design 2.2, Level 3).
# Strict numbers: "2" or true is a mistake, not a count; JSON's 1e400 reads as infinity.
ResourceAmount = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
ResourceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:/-]{1,64}$")]
RESOURCES_DESCRIPTION = (
    "What the task needs from the node that runs it: 'cpus', 'memory_mb', any other key a "
    "custom resource of the cluster ({'worker1': 1}). Level 1 checks cpus and memory_mb "
    "against the machine; Level 3 places the task by it."
)


class TaskCreate(Request):
    """What a client submits to the Data Platform to run a script."""

    script: str = Field(
        "",
        max_length=512,
        description="Path under the scripts root; omitted for the platform's own kinds "
        "(batch_inference).",
    )
    input: str = Field(
        "",
        max_length=1024,
        description="'datasets/NAME', 'models/NAME' (either with @VERSION or @TAG: that exact "
        "version, pinned at submit), or a path under the data root.",
    )
    output: str = Field(
        min_length=1, max_length=256, description="'datasets/NAME' or 'models/NAME'."
    )
    params: Params
    id: str | None = Field(None, pattern=NAME_PATTERN, description="Optional client-chosen id.")
    kind: str = Field("task", pattern=NAME_PATTERN, description="Free-form category.")
    name: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="Optional name; at most one pending or running task per kind and name.",
    )
    mode: WriteMode = Field(
        WriteMode.OVERWRITE, description="create, overwrite (default) or append the output."
    )
    retries: int = Field(
        0, ge=0, le=10, description="Attempts after a failed one; its output is rolled back first."
    )
    retry_backoff_seconds: float = Field(
        1.0, ge=0, le=600, description="Wait before the first retry; doubled for each next one."
    )
    resources: dict[ResourceName, ResourceAmount] | None = Field(
        None, max_length=16, description=RESOURCES_DESCRIPTION
    )


class Attempt(Record):
    """One failed attempt of a task that retries."""

    attempt: int
    error: TaskError
    ended_at: datetime = Field(default_factory=utcnow)


class QueuePlace(Record):
    """Why a pending task waits: its place in the queue and what holds the slots now."""

    position: int = Field(description="1: the next task to start.")
    running: list[str] = Field(default_factory=list, description="Tasks holding the slots.")
    slots: int = Field(description="How many tasks run at once.")


class Task(Record):
    """A Data Platform task record, as stored and as answered."""

    id: str
    kind: str = "task"
    name: str | None = None
    status: TaskStatus = TaskStatus.PENDING
    script: str
    input: str
    output: str
    params: dict[str, Any] = Field(default_factory=dict)
    input_path: str
    output_path: str
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: TaskError | None = None
    progress: dict[str, Any] | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)
    output_version_before: int | None = Field(None, description="Lance version restored on fail.")
    output_version: int | None = None
    mode: WriteMode = WriteMode.OVERWRITE
    pid: int | None = None
    node: str | None = Field(None, description="Where the task's process runs (if known).")
    queue: QueuePlace | None = Field(None, description="A pending task's place in the queue.")
    # Provenance, stamped at submit: what lineage and reproduce read back.
    script_sha256: str | None = Field(None, description="Of the script as submitted.")
    input_checksums: dict[str, str] = Field(
        default_factory=dict, description="sha256 per raw input file (path under the input)."
    )
    retries: int = 0
    retry_backoff_seconds: float = 1.0
    resources: dict[str, float] | None = Field(None, description=RESOURCES_DESCRIPTION)
    attempts: list[Attempt] = Field(default_factory=list, description="Failed attempts so far.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def input_version(self) -> int | None:
        """The exact input version the task reads, when its input named one (``@12``,
        ``@tag``: resolved at submit)."""
        return split_uri(self.input_path)[1]


class JobCreate(Request):
    """The request shared by ingestion and training tasks (design 2.3)."""

    name: str = Field(pattern=NAME_PATTERN, description="Task name; one active task per name.")
    input: str = Field(
        max_length=1024,
        description="Ingestion: raw data path under the data root. Training: a dataset name, "
        "or NAME@12 / NAME@tag for an exact version.",
    )
    script: str = Field(min_length=1, max_length=512, description="Path under the scripts root.")
    params: Params
    output: str = Field(
        pattern=NAME_PATTERN, description="Ingestion: a dataset name. Training: a model name."
    )
    mode: WriteMode = Field(
        WriteMode.OVERWRITE, description="create, overwrite (default) or append the output."
    )
    resources: dict[ResourceName, ResourceAmount] | None = Field(
        None, max_length=16, description=RESOURCES_DESCRIPTION
    )


class Job(Record):
    """An ingestion or training task as users see it."""

    id: str
    kind: TaskKind
    name: str
    status: TaskStatus
    input: str
    script: str
    params: dict[str, Any] = Field(default_factory=dict)
    output: str
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: TaskError | None = None
    progress: dict[str, Any] | None = Field(None, description="Latest progress point.")
    history: list[dict[str, Any]] = Field(default_factory=list, description="Every point.")
    queue: QueuePlace | None = Field(None, description="A pending task's place in the queue.")


class IngestionTask(Job):
    kind: TaskKind = TaskKind.INGESTION
    stats: dict[str, Any] | None = Field(None, description="What the script returned.")


class TrainingTask(Job):
    kind: TaskKind = TaskKind.TRAINING
    metrics: dict[str, Any] | None = Field(None, description="What the script returned.")


class BatchInferenceTask(Job):
    """A batch inference as the AI Platform answers it (a Data Platform task underneath)."""

    kind: TaskKind = TaskKind.BATCH_INFERENCE
    stats: dict[str, Any] | None = Field(
        None, description="Rows written, columns, model version, bytes written, accuracy."
    )
    output_version: int | None = Field(None, description="The dataset version it wrote.")
    retries: int = 0
    attempts: list[Attempt] = Field(default_factory=list)

    @classmethod
    def of(cls, task: Task) -> BatchInferenceTask:
        fields = task.model_dump(exclude={"kind", "name", "result"})
        return cls(**fields, name=task.name or task.id, stats=task.result)


# -- datasets and models -------------------------------------------------------------------


class DatasetStats(Record):
    total_records: int
    size_bytes: int


class Dataset(Record):
    id: str
    path: str
    schema_: dict[str, str] = Field(
        default_factory=dict, alias="schema", serialization_alias="schema"
    )
    num_rows: int
    size_bytes: int
    version: int
    created_at: datetime | None = None
    updated_at: datetime | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, int] = Field(default_factory=dict, description="Tag -> version.")

    # The design's own names for the same facts (design 4.2, step 3), so a client written
    # from the design reads them where it expects them.
    @computed_field  # type: ignore[prop-decorator]
    @property
    def storage_path(self) -> str:
        return self.path

    @computed_field  # type: ignore[prop-decorator]
    @property
    def stats(self) -> DatasetStats:
        return DatasetStats(total_records=self.num_rows, size_bytes=self.size_bytes)


class DatasetVersion(Record):
    version: int
    timestamp: datetime | None = None
    num_rows: int | None = None
    tags: list[str] = Field(default_factory=list, description="Tags on this version.")


class ModelVersion(DatasetVersion):
    """One version of a model record, with where it came from."""

    created_at: datetime | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    source: dict[str, Any] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(
        default_factory=dict, description="task_id, script, script_sha256 of the training task."
    )


class Tag(Record):
    """A name on one version of a dataset or model (a model's tags are its aliases).

    Tags the platform sets itself start with ``model-`` (a dataset version a model was
    trained on) or ``service-`` (a model version a service runs)."""

    name: str
    version: int
    created_at: datetime | None = None
    updated_at: datetime | None = None


class TagCreate(Request):
    tag: str = Field(pattern=NAME_PATTERN, description="Not all digits.")
    version: int | str = Field(description="A version number, or a tag to copy.")


class TagMove(Request):
    version: int | str = Field(description="A version number, or a tag to copy.")


class Restored(Record):
    version: int = Field(description="The new latest version.")
    restored_from: int = Field(description="The version whose content it holds.")


class RestoreRequest(Request):
    version: int | str = Field(
        description="The version (or tag) whose content becomes the new latest version."
    )


class Model(Record):
    id: str
    path: str
    version: int
    size_bytes: int
    weights_bytes: int
    created_at: datetime | None = None
    architecture: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    history: list[dict[str, Any]] = Field(default_factory=list, description="One per epoch.")
    source: dict[str, Any] = Field(default_factory=dict)
    input_spec: dict[str, Any] = Field(default_factory=dict)
    signature: dict[str, Any] | None = Field(
        None, description="Named inputs and outputs: dtype and shape (-1: any length)."
    )
    labels: list[str] = Field(default_factory=list, description="Class labels, by class id.")
    preprocessing: dict[str, Any] | None = Field(
        None, description="How raw requests become inputs (e.g. kind 'image'); none: tensors."
    )
    info: dict[str, Any] = Field(default_factory=dict, description="Everything else recorded.")
    provenance: dict[str, Any] = Field(
        default_factory=dict, description="task_id, script, script_sha256 of the training task."
    )
    tags: dict[str, int] = Field(default_factory=dict, description="Alias (tag) -> version.")


# -- inference services --------------------------------------------------------------------


class ServiceStatus(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    UNHEALTHY = "unhealthy"  # running, but missing its health probes: predict fails fast
    FAILED = "failed"


def _model_ref(value: str) -> str:
    try:
        split_at(value, "model")
    except InvalidRequest as exc:  # pydantic reports a ValueError as the field's error
        raise ValueError(exc.message) from None
    return value


class ServiceCreate(Request):
    name: str = Field(pattern=NAME_PATTERN)
    model: Annotated[str, AfterValidator(_model_ref)] = Field(
        max_length=129,
        description="A model name in the lake: 'NAME' (its latest version), 'NAME@3' or "
        "'NAME@prod' (follow the alias: moving it rolls the service).",
    )
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:[0-9]{1,2})?)$")
    port: int | None = Field(None, ge=0, le=65535, description="0 or absent: a free port.")


class Service(Record):
    """An inference service, as stored and as answered."""

    id: str
    name: str
    model: str
    model_path: str
    model_version: int | None = None
    follows: str | None = Field(None, description="The alias (model tag) the service follows.")
    device: str = "cpu"
    port: int
    status: ServiceStatus = ServiceStatus.STARTING
    endpoint: str
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    error: str | None = None
    pid: int | None = None
    restarts: int = 0


class Prediction(Record):
    """One image's answer: the class, its probability, and every class's probability."""

    prediction: int
    confidence: float
    probabilities: list[float] = Field(default_factory=list)
