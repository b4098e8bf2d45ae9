"""Errors the SDK raises.

Two families:

* Errors the platform answered with are rebuilt as the ``lakeapi.errors`` classes the server
  raised, so ``err.code`` is the server's code (``DATASET_NOT_FOUND``, ``TASK_ALREADY_RUNNING``,
  ...) and ``except DatasetNotFound`` / ``except NotFound`` / ``except Conflict`` work.
  :class:`PlatformUnreachable` (code ``UPSTREAM_UNAVAILABLE``) is raised when no answer came.
* Outcomes of waiting on a task, which are not HTTP errors: :class:`TaskFailedError` (the task
  ended ``failed``; :class:`TaskCancelledError` is the subclass for a cancelled task, so
  ``except TaskFailedError`` catches both) and :class:`TaskTimeoutError` (``wait`` gave up while
  the task still runs; also a :class:`TimeoutError`). A task the *server* stopped for running
  too long is a :class:`TaskFailedError` with ``reason == "timeout"``, not a TaskTimeoutError.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakeapi.errors import (
    STATUS_BY_CODE,
    AlreadyExists,
    Conflict,
    DatasetNotFound,
    InUse,
    InvalidRequest,
    ModelNotFound,
    NotFound,
    PayloadTooLarge,
    PlatformError,
    PortInUse,
    ServiceAlreadyExists,
    ServiceNotFound,
    ServiceUnavailable,
    TagNotFound,
    TaskAlreadyExists,
    TaskAlreadyFinished,
    TaskAlreadyRunning,
    TaskNotFound,
    Unauthorized,
    UpstreamUnavailable,
    VersionNotFound,
    error_from_response,
)

if TYPE_CHECKING:
    from aip.records import Task, TaskFailure

__all__ = [
    "STATUS_BY_CODE",
    "AlreadyExists",
    "Conflict",
    "DatasetNotFound",
    "InUse",
    "InvalidRequest",
    "ModelNotFound",
    "NotFound",
    "PayloadTooLarge",
    "PlatformError",
    "PlatformUnreachable",
    "PortInUse",
    "ServiceAlreadyExists",
    "ServiceNotFound",
    "ServiceUnavailable",
    "TagNotFound",
    "TaskAlreadyExists",
    "TaskAlreadyFinished",
    "TaskAlreadyRunning",
    "TaskCancelledError",
    "TaskFailedError",
    "TaskNotFound",
    "TaskTimeoutError",
    "Unauthorized",
    "UpstreamUnavailable",
    "VersionNotFound",
    "error_from_response",
]


class PlatformUnreachable(UpstreamUnavailable):
    """No answer from the AI Platform: refused, timed out, or the connection broke.

    Its code is ``UPSTREAM_UNAVAILABLE``, the same as the server's own error when *it* cannot
    reach the Data Platform, so one ``except UpstreamUnavailable`` covers "the platform is down".
    """

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class TaskFailedError(Exception):
    """The task ended ``failed``.

    Attributes:
        task: the final task record.
        error: its ``error`` (reason, type, message).
        reason: ``exception``, ``bad_result``, ``crashed``, ``killed``, ``cancelled``,
            ``timeout``, ``interrupted`` or ``rejected``.
    """

    code = "TASK_FAILED"  # for printing next to server codes; no HTTP status has it

    def __init__(self, task: Task) -> None:
        self.task = task
        self.error: TaskFailure | None = task.error
        self.reason = task.error.reason if task.error else "unknown"
        self.message = task.error.describe() if task.error else "failed without an error record"
        super().__init__(f"task {task.id} ({task.name}) failed: {self.message}")


class TaskCancelledError(TaskFailedError):
    """The task was cancelled (``error.reason == "cancelled"``); a :class:`TaskFailedError`."""

    code = "TASK_CANCELLED"


class TaskTimeoutError(TimeoutError):
    """``wait`` ran out of time; the task is still pending or running on the server.

    Attributes:
        task: the last record seen.
        timeout: the seconds waited.
    """

    code = "TASK_TIMEOUT"

    def __init__(self, task: Task, timeout: float) -> None:
        self.task = task
        self.timeout = timeout
        super().__init__(f"task {task.id} is still {task.status} after {timeout:g} s")
