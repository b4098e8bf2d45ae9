"""One supervisor per running task: start it, watch it, and always end it cleanly.

The supervisor starts the task's execution, follows its progress, enforces the time and
memory limits, and, whatever happens (the task ending, a cancel, shutdown, a limit, the
executor refusing to start, or the supervisor's own code raising), in one ``finally``: stops
and reaps the task's tree, rolls its output back unless it completed, and records the end.
:func:`decide_failure` is the one place the failure reason is chosen, from the facts.

It records through :class:`TaskRecords` (the manager) and touches the output only through the
lake, so the same supervisor drives a local process, a Ray task or a fake in the unit tests.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from data_platform import recovery
from data_platform.execution import MEMORY, Execution, Executor, Outcome, RunSpec
from data_platform.faults import crash_point
from data_platform.store import Lake
from lakeapi.names import parse_ref
from lakeapi.schemas import FailureReason, Task, TaskError, TaskStatus

log = logging.getLogger(__name__)

WATCH_SECONDS = 0.1
PROGRESS_SAVE_SECONDS = 5.0
STOPPED_WAIT_SECONDS = 10.0  # for the outcome of a tree that stop() already reaped


class TaskRecords(Protocol):
    """What a supervisor changes on its task's record (the manager implements it)."""

    def running(self, task_id: str, version_before: int | None, execution: Execution) -> Task:
        """PENDING -> RUNNING with where it runs (pid, node); returns once durable."""

    def progress(self, task_id: str, points: list[dict[str, Any]], persist: bool) -> None:
        """New progress points; ``persist``: also save them (fire-and-forget)."""

    def finish(self, task_id: str, status: TaskStatus, **changes: Any) -> Task:
        """The terminal record."""


@dataclass(frozen=True)
class Limits:
    time_seconds: float | None = None
    memory_bytes: int | None = None
    grace_seconds: float = 5.0


@dataclass(frozen=True)
class Facts:
    """What happened to a task, gathered by its supervisor."""

    outcome: Outcome | None = None  # how the execution ended, if it did
    start_error: BaseException | None = None  # the executor could not start it
    crash: BaseException | None = None  # the supervisor's own code raised
    breach: TaskError | None = None  # a limit it was stopped for
    cancel_requested: bool = False
    shutting_down: bool = False


def decide_failure(facts: Facts) -> TaskError | None:
    """Why the task failed, or None when it completed. Order matters: a limit explains the
    stop it caused; a result written before a cancel or shutdown took effect still counts."""
    if facts.start_error is not None:
        return TaskError(
            reason=FailureReason.REJECTED,
            type=type(facts.start_error).__name__,
            message=f"the task could not be started: {facts.start_error}",
        )
    if facts.breach is not None:
        return facts.breach
    if facts.outcome is not None and facts.outcome.ok:
        return None
    if facts.shutting_down:
        return TaskError(
            reason=FailureReason.INTERRUPTED, message="interrupted: the Data Platform shut down"
        )
    if facts.cancel_requested:
        return TaskError(reason=FailureReason.CANCELLED, message="cancelled")
    if facts.crash is not None:
        return TaskError(
            reason=FailureReason.CRASHED,
            type=type(facts.crash).__name__,
            message=f"platform error while running the task: {facts.crash}",
        )
    if facts.outcome is not None and facts.outcome.error is not None:
        return facts.outcome.error
    return TaskError(reason=FailureReason.CRASHED, message="the task ended without an outcome")


class Supervisor:
    """Owns one task from start (or reattachment after a restart) to its terminal record.

    Args:
        task: the task's record (PENDING, or RUNNING when ``execution`` is given).
        spec: what to start.
        executor: who starts it.
        lake: where its output is rolled back and its model pinned.
        records: where its state changes go.
        limits: time, memory and the stop's grace period.
        execution: a running execution to reattach to (from ``Executor.recover``).
    """

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
        self.task = task
        self.spec = spec
        self.executor = executor
        self.lake = lake
        self.records = records
        self.limits = limits
        self.execution = execution
        self._reattached = execution is not None
        self._started_at = task.started_at
        self._stop = threading.Event()
        self._cancel = False
        self._shutdown = False

    @property
    def task_id(self) -> str:
        return self.task.id

    def cancel(self) -> None:
        """Ask the task to stop; it ends cancelled (unless it completed meanwhile)."""
        self._cancel = True
        self._stop.set()

    def shutdown(self) -> None:
        """Ask the task to stop because the Data Platform is going away."""
        self._shutdown = True
        self._stop.set()

    def run(self) -> None:
        """Start, watch and end the task; never raises."""
        outcome: Outcome | None = None
        start_error: BaseException | None = None
        crash: BaseException | None = None
        breach: TaskError | None = None
        version_before = self.task.output_version_before
        try:
            if not self._reattached and not self._stop.is_set():
                version_before = self.lake.version_of(self.spec.output_uri)
                try:
                    self._recheck()
                    self.execution = self.executor.start(self.spec)
                except Exception as exc:
                    log.warning("%s: could not start: %s", self.task_id, exc)
                    start_error = exc
                else:
                    # The process starts held; the record (with what to roll back to) is
                    # durable before it is released, so nothing is written unrecorded.
                    task = self.records.running(self.task_id, version_before, self.execution)
                    self._started_at = task.started_at
                    self.execution.release()
            if self.execution is not None:
                outcome, breach = self._watch(self.execution)
        except Exception as exc:
            log.exception("supervising %s failed", self.task_id)
            crash = exc
        finally:
            facts = Facts(
                outcome=outcome,
                start_error=start_error,
                crash=crash,
                breach=breach,
                cancel_requested=self._cancel,
                shutting_down=self._shutdown,
            )
            self._end(facts, version_before)

    def _watch(self, execution: Execution) -> tuple[Outcome | None, TaskError | None]:
        """Wait for the task's end, a stop request or a limit; the outcome, and any breach."""
        started = time.monotonic()
        last_saved = started
        while True:
            outcome = execution.wait(timeout=WATCH_SECONDS)
            if outcome is not None:
                return outcome, None
            if points := execution.progress():
                persist = time.monotonic() - last_saved > PROGRESS_SAVE_SECONDS
                if persist:
                    last_saved = time.monotonic()
                self.records.progress(self.task_id, points, persist)
            if self._stop.is_set():
                execution.stop(self.limits.grace_seconds)
                return execution.wait(STOPPED_WAIT_SECONDS), None
            breach = self._breach(execution, started)
            if breach is not None:
                grace = 0 if breach.reason is FailureReason.MEMORY else self.limits.grace_seconds
                execution.stop(grace)
                return execution.wait(STOPPED_WAIT_SECONDS), breach

    def _breach(self, execution: Execution, started: float) -> TaskError | None:
        limit = self.limits.time_seconds
        if limit is not None and time.monotonic() - started > limit:
            return TaskError(
                reason=FailureReason.TIMEOUT, message=f"time limit of {limit:g} s exceeded"
            )
        memory = self.limits.memory_bytes
        if memory is not None and MEMORY in self.executor.limits:
            rss = execution.resources().rss_bytes
            if rss is not None and rss > memory:
                return TaskError(
                    reason=FailureReason.MEMORY,
                    message=f"memory limit of {memory // (1024 * 1024)} MB exceeded "
                    f"(resident {rss // (1024 * 1024)} MB)",
                )
        return None

    def _end(self, facts: Facts, version_before: int | None) -> None:
        """Stop and reap, roll back unless completed, record the end; each step survives the
        one before it failing, so no tree outlives its task and no task stays running."""
        execution = self.execution
        if execution is not None:
            try:
                if points := execution.progress():
                    self.records.progress(self.task_id, points, False)
            except Exception:
                log.exception("%s: reading its last progress failed", self.task_id)
            try:
                execution.stop(self.limits.grace_seconds)
            except Exception:
                log.exception("%s: stopping its execution failed", self.task_id)
        error = decide_failure(facts)
        try:
            if error is None:
                error = self._check_output()
            if error is None:
                assert facts.outcome is not None
                self._pin_source()
                crash_point("end:before-marker")
                error = self._complete(facts.outcome)
                if error is None:
                    return
            if execution is not None:  # only a started task can have written anything
                error = self._roll_back(error, version_before)
        except Exception as exc:
            log.exception("%s: ending the task failed", self.task_id)
            error = error or TaskError(
                reason=FailureReason.CRASHED,
                type=type(exc).__name__,
                message=f"platform error while ending the task: {exc}",
            )
        try:
            self.records.finish(self.task_id, TaskStatus.FAILED, error=error)
        except Exception:
            log.exception("%s: recording its end failed", self.task_id)

    def _complete(self, outcome: Outcome) -> TaskError | None:
        """Mark the output, then record the task completed; the error when the marker, the
        durable proof of completion, cannot be committed (the output is then rolled back)."""
        try:
            marked = recovery.mark_completed(
                self.lake, self.spec.output_uri, self.task, outcome.result
            )
        except Exception as exc:
            log.exception("%s: committing its completion marker failed", self.task_id)
            return TaskError(
                reason=FailureReason.CRASHED,
                type=type(exc).__name__,
                message=f"its completion could not be recorded in the output: {exc}",
            )
        crash_point("end:after-marker")
        self.records.finish(
            self.task_id, TaskStatus.COMPLETED, result=outcome.result, output_version=marked
        )
        crash_point("end:after-record")
        return None

    def _roll_back(self, error: TaskError, version_before: int | None) -> TaskError:
        try:
            undo = recovery.roll_back(
                self.lake, self.spec.output_uri, version_before, self._started_at
            )
        except Exception as exc:
            log.exception("%s: rolling its output back failed", self.task_id)
            undo = f"could not be rolled back: {exc}"
        if not undo:
            return error
        return error.model_copy(update={"message": f"{error.message} (output {undo})"})

    def _recheck(self) -> None:
        """What submit checked may have changed while the task waited: check it again."""
        if not os.path.isfile(self.spec.script_path):
            raise FileNotFoundError(f"its script {self.task.script!r} no longer exists")
        if self.task.input and parse_ref(self.task.input) is not None:
            if not self.lake.readable(self.spec.input_uri):
                raise FileNotFoundError(f"its input {self.task.input!r} no longer exists")
        elif self.spec.input_uri and not os.path.exists(self.spec.input_uri):
            raise FileNotFoundError(f"its input {self.task.input!r} no longer exists")

    def _check_output(self) -> TaskError | None:
        """A task that writes a model must leave a servable model record; else it failed."""
        if not self.task.output.startswith("models/"):
            return None
        try:
            problem = self.lake.model_problem(self.spec.output_uri)
        except Exception as exc:  # unreadable is unservable: the output is rolled back
            log.exception("%s: checking its model record failed", self.task_id)
            problem = f"the record could not be read ({type(exc).__name__}: {exc})"
        if problem is None:
            return None
        return TaskError(
            reason=FailureReason.BAD_RESULT,
            message=f"run() returned, but its output is not a model record: {problem}",
        )

    def _pin_source(self) -> None:
        if not self.task.output.startswith("models/"):
            return
        try:
            self.lake.pin_model_source(self.spec.output_uri)
        except Exception:  # a script may write a model in its own format: then nothing pins
            log.warning("%s: could not pin the model's source dataset", self.task_id, exc_info=True)
