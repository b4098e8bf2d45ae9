"""The task manager: submit, queue, dispatch, cancel, list, recover, and the records.

Records live in memory and change there under one lock; :class:`RecordWriter` persists them
in order on its own thread, so no request waits on a Lance commit while holding the lock. An
answer that promises a record waits for that record's own commit (``submit``: the new task is
durable before it is visible or queued; ``cancel``: the terminal record is durable). One
method, ``_move``, enforces the state machine and stamps times.

How a task runs is not here: a :class:`Supervisor` per running task drives an
:class:`Executor` (``execution.py``); logs come from the executor.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import AsyncIterator
from concurrent.futures import Future
from datetime import timedelta
from typing import Any

from data_platform import builtins, provenance, recovery, search
from data_platform.execution import MEMORY, Execution, Executor, RunSpec
from data_platform.follow import follow
from data_platform.retries import RetryingSupervisor, retry_after_restart
from data_platform.settings import DataPlatformSettings
from data_platform.store import Lake
from data_platform.submission import Resolver
from data_platform.supervisor import Limits, Supervisor
from lakeapi.errors import (
    InvalidRequest,
    PlatformError,
    ServiceUnavailable,
    TaskAlreadyExists,
    TaskAlreadyFinished,
    TaskAlreadyRunning,
    TaskNotFound,
)
from lakeapi.names import new_id, split_uri
from lakeapi.schemas import (
    TRANSITIONS,
    FailureReason,
    QueuePlace,
    Task,
    TaskCreate,
    TaskError,
    TaskStatus,
    utcnow,
)
from lakekit.taskenv import WRITE_MODE_ENV
from serverkit.recordstore import RecordWriter

log = logging.getLogger(__name__)
Points = list[dict[str, Any]]  # spelled here: inside the class, ``list`` is the method

HISTORY_LIMIT = 2000
SAVE_TIMEOUT_SECONDS = 30.0


class TaskManager:
    """Owns every task record and the supervisors of the running ones."""

    def __init__(self, settings: DataPlatformSettings, lake: Lake, executor: Executor) -> None:
        self.settings = settings
        self.lake = lake
        self.executor = executor
        self.max_concurrent = settings.max_concurrent_tasks or executor.default_concurrency
        self.resolve = Resolver(settings.scripts_root, settings.data_root, lake)
        self.scripts_root = self.resolve.scripts_root
        memory = settings.task_memory_mb
        if memory is not None and MEMORY not in executor.limits:
            log.warning("DP_TASK_MEMORY_MB is set but this executor cannot enforce it")
        self.limits = Limits(
            time_seconds=settings.time_limit_seconds,
            memory_bytes=memory * 1024 * 1024 if memory is not None else None,
            grace_seconds=settings.cancel_grace_seconds,
        )
        self.writer = RecordWriter(
            lake.tasks, compact_every=settings.compact_every_commits, name="tasks"
        )
        self._tasks: dict[str, Task] = {}
        self._reserved: dict[str, Task] = {}  # being saved by submit: not visible yet
        self._saved: dict[str, Future[None]] = {}  # each task's latest change
        self._queue: deque[str] = deque()
        self._running: dict[str, Supervisor] = {}
        self._cond = threading.Condition(threading.RLock())
        self._closed = False
        self._stop = threading.Event()
        self._dispatcher: threading.Thread | None = None
        self._workers: set[threading.Thread] = set()

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Recover what the last process left, then begin dispatching."""
        self._recover()
        self._dispatcher = threading.Thread(target=self._dispatch, name="dispatcher", daemon=True)
        self._dispatcher.start()
        threading.Thread(target=self._housekeep, name="housekeeping", daemon=True).start()

    def _housekeep(self) -> None:
        """On a schedule: fold the task records together and drop old lake versions."""
        interval = self.settings.housekeeping_interval_seconds
        retention = timedelta(hours=self.settings.version_retention_hours)
        while not self._stop.wait(interval):
            try:
                self.writer.request_compaction()
                removed = self.lake.clean_old_versions(retention)
                if removed:
                    log.info("housekeeping removed old versions: %s", removed)
            except Exception:  # housekeeping must never take the service down
                log.exception("housekeeping failed")

    def close(self) -> None:
        """Stop dispatching and stop every running task (they end failed, interrupted)."""
        self._stop.set()
        with self._cond:
            self._closed = True
            running = list(self._running.values())
            self._cond.notify_all()
        for supervisor in running:
            supervisor.shutdown()
        for worker in list(self._workers):
            worker.join(timeout=self.settings.cancel_grace_seconds + 10)
        if self._dispatcher:
            self._dispatcher.join(timeout=5)
        self.writer.close()
        self.executor.close()

    def _recover(self) -> None:
        """What the last process left, from the records and the evidence in the lake
        (``recovery.py``): a task whose output carries its completion marker completed; one
        the executor still runs is reattached; any other running one failed (interrupted)
        with what it wrote rolled back; pending ones are queued again; completed tasks whose
        records were lost are rebuilt from their markers."""
        tasks = self.lake.load_tasks()
        lost = recovery.lost_tasks(self.lake, {t.id for t in tasks})
        counts: Counter[str] = Counter({"rebuilt from their markers": len(lost)})
        rebuilt = {t.id for t in lost}
        for task in sorted([*tasks, *lost], key=lambda t: t.created_at):
            self._tasks[task.id] = task
            if task.id in rebuilt:
                self._persist(task)
            elif not task.status.is_terminal():
                counts[self._recover_one(task)] += 1
        self.writer.flush(SAVE_TIMEOUT_SECONDS)
        if any(counts.values()):
            log.info("recovered: %s", ", ".join(f"{n} {what}" for what, n in counts.items()))

    def _recover_one(self, task: Task) -> str:
        """Decide one unfinished task after a restart; says what became of it."""
        marker = recovery.completion(self.lake, task)
        execution = None
        if task.status is TaskStatus.RUNNING or marker is not None:
            try:
                execution = self.executor.recover(task)
            except Exception:
                log.exception("%s: recovering its execution failed", task.id)
        if marker is not None:
            if execution is not None:  # it finished; whatever is left of it goes
                execution.stop(self.settings.cancel_grace_seconds)
            log.warning("%s: finished, but its record was not saved: completed", task.id)
            if task.status is TaskStatus.PENDING:
                self._move(task.id, TaskStatus.RUNNING)
            stamped = marker.completed_at
            self._move(
                task.id,
                TaskStatus.COMPLETED,
                result=marker.result,
                output_version=marker.version,
                **({"completed_at": stamped} if stamped else {}),
            )
            return "completed from their markers"
        if task.status is TaskStatus.PENDING:
            self._queue.append(task.id)
            return "requeued"
        if execution is not None:
            self._launch(self._supervisor(task, execution))
            return "reattached"
        message = "interrupted by restart of the Data Platform"
        undo = recovery.roll_back(
            self.lake, task.output_path, task.output_version_before, task.started_at
        )
        if undo:
            message += f"; output {undo}"
        error = TaskError(reason=FailureReason.INTERRUPTED, message=message)
        attempts = retry_after_restart(task, error)
        if attempts is not None:  # still RUNNING: its retrying supervisor keeps the record
            self._update(task.id, persist=True, attempts=attempts)
            self._queue.append(task.id)
            return "queued again to retry"
        self._move(task.id, TaskStatus.FAILED, error=error)
        return "interrupted"

    # -- queries -------------------------------------------------------------------------

    def get(self, task_id: str) -> Task:
        with self._cond:
            task = self._tasks.get(task_id)
            if task is None:
                raise TaskNotFound(f"Task '{task_id}' does not exist")
            return self._with_queue(task)

    def counts(self) -> dict[TaskStatus, int]:
        """How many tasks are in each state."""
        with self._cond:
            return dict(Counter(t.status for t in self._tasks.values()))

    def _with_queue(self, task: Task) -> Task:
        """A pending task says why it waits (computed on read, never stored)."""
        if task.status is not TaskStatus.PENDING or task.id not in self._queue:
            return task
        place = QueuePlace(
            position=self._queue.index(task.id) + 1,
            running=sorted(self._running),
            slots=self.max_concurrent,
        )
        return task.model_copy(update={"queue": place})

    def list(
        self,
        status: TaskStatus | None = None,
        kind: str | None = None,
        name: str | None = None,
        limit: int | None = None,
    ) -> list[Task]:
        with self._cond:
            tasks = [self._with_queue(t) for t in self._tasks.values()]
        tasks = [
            t
            for t in tasks
            if (status is None or t.status is status)
            and (kind is None or t.kind == kind)
            and (name is None or t.name == name)
        ]
        tasks.sort(key=lambda t: (t.created_at, t.id), reverse=True)
        return tasks[:limit] if limit else tasks

    async def logs(self, task_id: str, tail: int | None = None) -> str:
        """The task's log, or its last ``tail`` lines."""
        self.get(task_id)
        data, _ = await self.executor.logs(task_id).tail(tail)
        return data.decode("utf-8", errors="replace")

    def follow_logs(self, task_id: str, tail: int | None = None) -> AsyncIterator[bytes]:
        """The log so far (or its last ``tail`` lines), then new output as it is written,
        until the task has ended and everything it wrote was sent.

        Raises TaskNotFound now, not once streaming has begun.
        """
        self.get(task_id)
        return follow(self.executor.logs(task_id), lambda: self._ended(task_id), tail)

    def _ended(self, task_id: str) -> bool:
        return self.get(task_id).status.is_terminal()

    # -- submit and cancel ---------------------------------------------------------------

    def submit(self, req: TaskCreate) -> Task:
        """Validate and persist a new task; only then is it visible and queued.

        Raises:
            InvalidRequest, DatasetNotFound, ModelNotFound: bad script, input or output.
            TaskAlreadyExists, TaskAlreadyRunning: its id, or its kind and name, are taken.
            ServiceUnavailable: shutting down, or the record could not be saved.
        """
        script_path = builtins.script_of(req, self.resolve)
        input_path = self.resolve.input(req.input)
        output_path = self.resolve.output(req.output, req.mode)
        try:
            self.executor.check_resources(req.resources)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        stamped = provenance.stamp(script_path, req.input, input_path, self.lake)
        with self._cond:
            if self._closed:
                raise ServiceUnavailable("the Data Platform is shutting down")
            task_id = req.id or new_id("task")
            if task_id in self._tasks or task_id in self._reserved:
                raise TaskAlreadyExists(f"Task '{task_id}' already exists")
            if req.name is not None:
                self._check_name_free(req.kind, req.name)
            task = Task(
                id=task_id,
                kind=req.kind,
                name=req.name,
                script=builtins.stored_script(script_path, self.scripts_root),
                input=req.input,
                output=req.output,
                params=builtins.params_of(req, split_uri(input_path)[1]),
                input_path=input_path,
                output_path=output_path,
                mode=req.mode,
                retries=req.retries,
                retry_backoff_seconds=req.retry_backoff_seconds,
                resources=req.resources,
                **stamped,
            )
            self._reserved[task_id] = task
        try:
            self.writer.put(task.model_dump(mode="json")).result(SAVE_TIMEOUT_SECONDS)
        except Exception as exc:
            with self._cond:
                self._reserved.pop(task_id, None)
            raise ServiceUnavailable(f"the task record could not be saved: {exc}") from exc
        with self._cond:
            self._reserved.pop(task_id, None)
            self._tasks[task_id] = task
            self._queue.append(task_id)
            self._cond.notify_all()
        return task

    def _check_name_free(self, kind: str, name: str) -> None:
        for other in (*self._tasks.values(), *self._reserved.values()):
            if other.name == name and other.kind == kind and not other.status.is_terminal():
                raise TaskAlreadyRunning(
                    f"a {kind} task named '{name}' is already {other.status} ({other.id})"
                )

    def cancel(self, task_id: str) -> Task:
        """Cancel a task: a queued one at once, a running one by stopping its process tree.
        Answers once the terminal record is durable.

        Raises:
            TaskNotFound: no such task.
            TaskAlreadyFinished: the task already ended (409).
            ServiceUnavailable: the terminal record could not be saved.
        """
        with self._cond:
            task = self.get(task_id)
            if task.status.is_terminal():
                raise TaskAlreadyFinished(f"Task '{task_id}' already {task.status}")
            supervisor = self._running.get(task_id)
            if supervisor is None:  # queued: dispatch takes it off the queue under this lock
                if task_id in self._queue:
                    self._queue.remove(task_id)
                error = TaskError(reason=FailureReason.CANCELLED, message="cancelled")
                self._move(task_id, TaskStatus.FAILED, error=error)
            else:
                supervisor.cancel()
            timeout = self.settings.cancel_grace_seconds + 10
            self._cond.wait_for(lambda: self._tasks[task_id].status.is_terminal(), timeout)
            saved = self._saved.get(task_id)
        try:
            if saved is not None:
                saved.result(SAVE_TIMEOUT_SECONDS)
        except Exception as exc:
            raise ServiceUnavailable(f"the task's record could not be saved: {exc}") from exc
        return self.get(task_id)

    # -- records: the supervisors report here (supervisor.TaskRecords) ---------------------

    def running(self, task_id: str, version_before: int | None, execution: Execution) -> Task:
        # One commit: the state, what to roll back to, and where the task runs.
        task = self._move(
            task_id,
            TaskStatus.RUNNING,
            output_version_before=version_before,
            pid=execution.pid,
            node=execution.node,
        )
        self._saved[task_id].result(SAVE_TIMEOUT_SECONDS)
        return task

    def progress(self, task_id: str, points: Points, persist: bool) -> None:
        with self._cond:
            history = (self._tasks[task_id].history + points)[-HISTORY_LIMIT:]
            self._update(task_id, persist=persist, progress=history[-1], history=history)

    def finish(self, task_id: str, status: TaskStatus, **changes: Any) -> Task:
        if status is not TaskStatus.COMPLETED:
            return self._move(task_id, status, **changes)
        # Durable before anyone reads "completed". Only the supervisor changes a running
        # task's record, and it is here, so nothing can slip in between.
        with self._cond:
            updated = self._next(task_id, status, changes)
            self._persist(updated)
            saved = self._saved[task_id]
        try:
            saved.result(SAVE_TIMEOUT_SECONDS)
        except Exception:  # the output's completion marker stands for it until a restart
            log.exception("%s: its completed record could not be saved", task_id)
        with self._cond:
            self._tasks[task_id] = updated
            self._cond.notify_all()
        search.warm_after(self.lake, updated)  # in the background: the first search is quick
        return updated

    # -- state ---------------------------------------------------------------------------

    def _move(self, task_id: str, status: TaskStatus, **changes: Any) -> Task:
        """The one place a task changes state: checks the transition, stamps the time,
        hands the record to the writer (``_saved[task_id]`` says when it is durable)."""
        with self._cond:
            updated = self._next(task_id, status, changes)
            self._tasks[task_id] = updated
            self._persist(updated)
            self._cond.notify_all()
            return updated

    def _next(self, task_id: str, status: TaskStatus, changes: dict[str, Any]) -> Task:
        """The record after a move (checked and stamped), not yet stored anywhere."""
        current = self._tasks[task_id]
        if status not in TRANSITIONS[current.status]:
            raise PlatformError(f"illegal transition {current.status} -> {status}")
        now = utcnow()
        if status is TaskStatus.RUNNING:
            changes["started_at"] = now
        if status.is_terminal():
            changes.setdefault("completed_at", now)
        updated = current.model_copy(update={"status": status, **changes})
        log.info("%s %s -> %s%s", task_id, current.status, status, _why(updated))
        return updated

    def _update(self, task_id: str, *, persist: bool, **changes: Any) -> Task:
        with self._cond:
            updated = self._tasks[task_id].model_copy(update=changes)
            self._tasks[task_id] = updated
            if persist:
                self._persist(updated)
            return updated

    def _persist(self, task: Task) -> None:
        # Under the lock: the writer receives changes in the order memory saw them.
        self._saved[task.id] = self.writer.put(task.model_dump(mode="json"))

    # -- scheduling ----------------------------------------------------------------------

    def _next_runnable(self) -> str | None:
        busy_outputs = {self._tasks[t].output_path for t in self._running}
        for task_id in self._queue:
            if self._tasks[task_id].output_path not in busy_outputs:
                return task_id
        return None

    def _dispatch(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: (
                        self._closed
                        or (
                            len(self._running) < self.max_concurrent
                            and self._next_runnable() is not None
                        )
                    )
                )
                if self._closed:
                    return
                task_id = self._next_runnable()
                assert task_id is not None
                self._queue.remove(task_id)
                self._launch(self._supervisor(self._tasks[task_id]))

    def _supervisor(self, task: Task, execution: Execution | None = None) -> Supervisor:
        spec = RunSpec(
            task_id=task.id,
            script_path=str(self.scripts_root / task.script),
            input_uri=task.input_path,
            output_uri=task.output_path,
            params=task.params,
            storage_options=self.lake.storage_options,
            daft_runner=self.settings.task_daft_runner,
            env={WRITE_MODE_ENV: task.mode.value},
            resources=task.resources,
        )
        cls = RetryingSupervisor if task.retries else Supervisor
        return cls(task, spec, self.executor, self.lake, self, self.limits, execution)

    def _launch(self, supervisor: Supervisor) -> None:
        """Claim the task's slot and run its supervisor on a thread of its own."""
        with self._cond:
            self._running[supervisor.task_id] = supervisor
        worker = threading.Thread(
            target=self._work, args=(supervisor,), name=supervisor.task_id, daemon=True
        )
        self._workers.add(worker)
        worker.start()

    def _work(self, supervisor: Supervisor) -> None:
        try:
            supervisor.run()
        finally:
            with self._cond:
                left = isinstance(supervisor, RetryingSupervisor) and supervisor.left_running
                if not left and not self._tasks[supervisor.task_id].status.is_terminal():
                    # The supervisor could not even record the end: never leave it running.
                    error = TaskError(reason=FailureReason.CRASHED, message="supervisor failed")
                    self._move(supervisor.task_id, TaskStatus.FAILED, error=error)
                self._running.pop(supervisor.task_id, None)
                self._cond.notify_all()
            self._save_end(supervisor.task_id)
            self._workers.discard(threading.current_thread())

    def _save_end(self, task_id: str) -> None:
        """A terminal record that could not be saved (a full disk) is saved again until it
        is, or the service stops (a restart then decides from the lake)."""
        delay = 0.5
        while True:
            saved = self._saved.get(task_id)
            try:
                if saved is not None:
                    saved.result(SAVE_TIMEOUT_SECONDS)
                return
            except Exception as exc:
                log.warning(
                    "%s: its end is not saved yet (%s); retrying in %g s", task_id, exc, delay
                )
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, 30.0)
            with self._cond:
                self._persist(self._tasks[task_id])


def _why(task: Task) -> str:
    return f" ({task.error.reason}: {task.error.message[:200]})" if task.error else ""
