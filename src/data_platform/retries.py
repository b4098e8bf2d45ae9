"""Retries: a failed attempt's output is rolled back (as for any failure), then the task runs
again after a backoff, while the record stays RUNNING and lists the failed attempts.

A :class:`RetryingSupervisor` is a :class:`Supervisor` whose records hold back the FAILED end
of an attempt that may be retried; what the task was stopped for (a cancel, a refused start,
a shutdown during the backoff) is never retried. An attempt that a restart of the Data
Platform interrupted (a crash, or a shutdown: its record is then left running) is retried
after it when retries are left (``retry_after_restart``): that attempt is recorded, its output
rolled back, and the task queued again.
"""

from __future__ import annotations

import logging
from typing import Any

from data_platform.execution import Execution, Executor, RunSpec
from data_platform.store import Lake
from data_platform.supervisor import Limits, Supervisor, TaskRecords
from lakeapi.schemas import Attempt, FailureReason, Task, TaskError, TaskStatus

log = logging.getLogger(__name__)

RETRYABLE = frozenset(
    {
        FailureReason.EXCEPTION,
        FailureReason.BAD_RESULT,
        FailureReason.CRASHED,
        FailureReason.KILLED,
        FailureReason.TIMEOUT,
        FailureReason.MEMORY,
        FailureReason.NODE_LOST,
    }
)
MAX_BACKOFF_SECONDS = 600.0


def retry_after_restart(task: Task, error: TaskError) -> list[Attempt] | None:
    """The attempts of a task a restart interrupted (its output already rolled back), with
    that attempt recorded, when it has retries left; None when it ends here."""
    if len(task.attempts) >= task.retries:
        return None
    return [*task.attempts, Attempt(attempt=len(task.attempts) + 1, error=error)]


class _Attempts:
    """The manager's records, with a retryable attempt's FAILED end held back."""

    def __init__(self, records: TaskRecords, owner: RetryingSupervisor) -> None:
        self.records = records
        self.owner = owner
        self.held: TaskError | None = None
        self.attempts: list[Attempt] = []
        self.task: Task | None = None

    def running(self, task_id: str, version_before: int | None, execution: Execution) -> Task:
        # The first attempt moves the record (with its pid and node); later ones keep it, so
        # the record keeps the first attempt's pid: recovery finds a task's processes by its
        # environment marker, not by that pid.
        if self.task is None:
            self.task = self.records.running(task_id, version_before, execution)
        return self.task

    def progress(self, task_id: str, points: list[dict[str, Any]], persist: bool) -> None:
        self.records.progress(task_id, points, persist)

    def finish(self, task_id: str, status: TaskStatus, **changes: Any) -> Task:
        error = changes.get("error")
        if status is TaskStatus.FAILED and error is not None and self.owner.may_retry(error):
            self.held = error
            assert self.task is not None
            return self.task
        if status is TaskStatus.FAILED and error is not None and self.owner.resumes(error):
            # Left RUNNING (output rolled back): the next start records this attempt as
            # interrupted and queues the task again, as after a crash.
            assert self.task is not None
            self.owner.left_running = True
            return self.task
        return self.records.finish(task_id, status, attempts=self.attempts, **changes)


class RetryingSupervisor(Supervisor):
    """A supervisor that runs its task up to ``task.retries`` more times after a failure."""

    def __init__(
        self,
        task: Task,
        spec: RunSpec,
        executor: Executor,
        lake: Lake,
        records: TaskRecords,
        limits: Limits,
        execution: Execution | None = None,
    ) -> None:
        self._attempts = _Attempts(records, self)
        self.left_running = False  # stopped by a shutdown, to be retried after the restart
        self._attempts.attempts = list(task.attempts)
        if execution is not None or task.status is TaskStatus.RUNNING:
            # Reattached, or queued again after a restart (retry_after_restart): the record
            # is RUNNING already and stays so.
            self._attempts.task = task
        super().__init__(task, spec, executor, lake, self._attempts, limits, execution)

    def may_retry(self, error: TaskError) -> bool:
        return (
            error.reason in RETRYABLE
            and len(self._attempts.attempts) < self.task.retries
            and not self._stop.is_set()
        )

    def resumes(self, error: TaskError) -> bool:
        """An attempt stopped by the Data Platform's shutdown (not a wait to retry: that
        attempt's record would be lost) with retries left: retried after the restart."""
        return (
            self._shutdown
            and self._attempts.held is None
            and error.reason is FailureReason.INTERRUPTED
            and len(self._attempts.attempts) < self.task.retries
        )

    def run(self) -> None:
        """Attempts until one completes, one may not be retried, or the retries are spent."""
        while True:
            self._attempts.held = None
            super().run()
            error = self._attempts.held
            if error is None:
                return  # the record is terminal
            attempt = Attempt(attempt=len(self._attempts.attempts) + 1, error=error)
            self._attempts.attempts.append(attempt)
            wait = min(
                self.task.retry_backoff_seconds * 2 ** (attempt.attempt - 1), MAX_BACKOFF_SECONDS
            )
            log.info(
                "%s: attempt %d failed (%s); retrying in %.1f s",
                self.task_id,
                attempt.attempt,
                error.reason,
                wait,
            )
            point = {
                "attempt": attempt.attempt,
                "failed": error.reason.value,
                "message": error.message[:500],
                "retry_in_seconds": wait,
            }
            self._attempts.progress(self.task_id, [point], True)
            if self._stop.wait(wait):
                reason = FailureReason.INTERRUPTED if self._shutdown else FailureReason.CANCELLED
                stopped = TaskError(reason=reason, message=f"{reason.value} while waiting to retry")
                self._attempts.finish(self.task_id, TaskStatus.FAILED, error=stopped)
                return
            self.execution = None
            self._reattached = False
