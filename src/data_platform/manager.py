"""The task manager: submit, schedule, supervise, cancel, recover. All task logic lives here.

Records live in memory for fast reads and are written through to the lake on every change, so
a restart finds them all. One method, ``_move``, enforces the state machine and stamps times.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from data_platform.executor import (
    TASK_ENV,
    Execution,
    Executor,
    Outcome,
    RunSpec,
    kill_task_processes,
)
from data_platform.settings import DataPlatformSettings
from data_platform.store import Lake
from lakeapi.errors import (
    DatasetNotFound,
    InvalidRequest,
    ModelNotFound,
    PlatformError,
    ServiceUnavailable,
    TaskAlreadyExists,
    TaskAlreadyFinished,
    TaskAlreadyRunning,
    TaskNotFound,
)
from lakeapi.names import new_id
from lakeapi.schemas import (
    TRANSITIONS,
    FailureReason,
    Task,
    TaskCreate,
    TaskError,
    TaskStatus,
    utcnow,
)
from lakekit import progress
from serverkit.procs import tree_rss_bytes

log = logging.getLogger(__name__)

HISTORY_LIMIT = 2000
PROGRESS_SAVE_SECONDS = 5.0
WATCH_SECONDS = 0.25
FOLLOW_POLL_SECONDS = 0.2


class TaskManager:
    """Owns every task record and the processes behind the running ones."""

    def __init__(self, settings: DataPlatformSettings, lake: Lake, executor: Executor) -> None:
        self.settings = settings
        self.lake = lake
        self.executor = executor
        self.max_concurrent = settings.max_concurrent_tasks or executor.default_concurrency
        self.scripts_root = settings.scripts_root.resolve()
        self.data_root = settings.data_root.resolve()
        self._tasks: dict[str, Task] = {}
        self._queue: deque[str] = deque()
        self._running: dict[str, Execution] = {}
        self._cancelling: set[str] = set()
        self._cond = threading.Condition(threading.RLock())
        self._closed = False
        self._stop = threading.Event()
        self._compacting = threading.Lock()  # held by the one compaction thread running
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
                self.lake.tasks.compact()
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
            running = list(self._running.items())
            self._cond.notify_all()
        for task_id, execution in running:
            self._cancelling.add(task_id)
            execution.stop(self.settings.cancel_grace_seconds)
        for worker in list(self._workers):
            worker.join(timeout=self.settings.cancel_grace_seconds + 5)
        if self._dispatcher:
            self._dispatcher.join(timeout=5)
        self.executor.close()

    def _recover(self) -> None:
        tasks = sorted(self.lake.load_tasks(), key=lambda t: t.created_at)
        interrupted = []
        for task in tasks:
            self._tasks[task.id] = task
            if task.status is TaskStatus.RUNNING:
                killed = kill_task_processes(task.id)
                undo = self.lake.roll_back(task.output_path, task.output_version_before)
                message = "interrupted by restart of the Data Platform"
                if killed:
                    message += f" ({killed} leftover process(es) killed)"
                if undo:
                    message += f"; output {undo}"
                interrupted.append(
                    self._move(
                        task,
                        TaskStatus.FAILED,
                        save=False,
                        error=TaskError(reason=FailureReason.INTERRUPTED, message=message),
                    )
                )
            elif task.status is TaskStatus.PENDING:
                self._queue.append(task.id)
        self.lake.save_tasks(*interrupted)
        if interrupted or self._queue:
            log.info("recovered: %d interrupted, %d requeued", len(interrupted), len(self._queue))

    # -- queries -------------------------------------------------------------------------

    def get(self, task_id: str) -> Task:
        with self._cond:
            task = self._tasks.get(task_id)
        if task is None:
            raise TaskNotFound(f"Task '{task_id}' does not exist")
        return task

    def list(
        self,
        status: TaskStatus | None = None,
        kind: str | None = None,
        name: str | None = None,
        limit: int | None = None,
    ) -> list[Task]:
        with self._cond:
            tasks = list(self._tasks.values())
        tasks = [
            t
            for t in tasks
            if (status is None or t.status is status)
            and (kind is None or t.kind == kind)
            and (name is None or t.name == name)
        ]
        tasks.sort(key=lambda t: (t.created_at, t.id), reverse=True)
        return tasks[:limit] if limit else tasks

    def logs(self, task_id: str, tail: int | None = None) -> str:
        """The task's log, or its last ``tail`` lines."""
        self.get(task_id)
        return read_log(self.lake.log_path(task_id), tail)[0].decode("utf-8", errors="replace")

    def follow_logs(self, task_id: str, tail: int | None = None) -> Iterator[bytes]:
        """The log so far (or its last ``tail`` lines), then new output as it is written,
        until the task has ended and everything it wrote was sent.

        Raises TaskNotFound now, not once streaming has begun.
        """
        self.get(task_id)
        return self._follow(task_id, tail)

    def _follow(self, task_id: str, tail: int | None) -> Iterator[bytes]:
        path = self.lake.log_path(task_id)
        data, offset = read_log(path, tail)
        if data:
            yield data
        while True:
            finished = self.get(task_id).status.is_terminal()
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size < offset:  # rotated: the new file starts over
                offset = 0
            if size > offset:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read(size - offset)
                offset += len(chunk)
                yield chunk
            elif finished:
                return
            else:
                time.sleep(FOLLOW_POLL_SECONDS)

    # -- submit and cancel ---------------------------------------------------------------

    def submit(self, req: TaskCreate) -> Task:
        script_path = self._resolve_script(req.script)
        input_path = self._resolve_input(req.input)
        output_path = self._resolve_output(req.output)
        with self._cond:
            if self._closed:
                raise ServiceUnavailable("the Data Platform is shutting down")
            task_id = req.id or new_id("task")
            if task_id in self._tasks:
                raise TaskAlreadyExists(f"Task '{task_id}' already exists")
            if req.name is not None:
                for other in self._tasks.values():
                    if (
                        other.name == req.name
                        and other.kind == req.kind
                        and not other.status.is_terminal()
                    ):
                        raise TaskAlreadyRunning(
                            f"a {req.kind} task named '{req.name}' is already {other.status}"
                            f" ({other.id})"
                        )
            task = Task(
                id=task_id,
                kind=req.kind,
                name=req.name,
                script=req.script,
                input=req.input,
                output=req.output,
                params=req.params,
                input_path=input_path,
                output_path=str(output_path),
            )
            task.script = str(script_path.relative_to(self.scripts_root))
            self._tasks[task_id] = task
            self.lake.save_tasks(task)
            self._queue.append(task_id)
            self._cond.notify_all()
        return task

    def cancel(self, task_id: str) -> Task:
        """Cancel a task: a pending one at once, a running one by stopping its process tree.

        Raises:
            TaskNotFound: no such task.
            TaskAlreadyFinished: the task already ended (409).
        """
        with self._cond:
            task = self.get(task_id)
            if task.status.is_terminal():
                raise TaskAlreadyFinished(f"Task '{task_id}' already {task.status}")
            if task.status is TaskStatus.PENDING:
                if task_id in self._queue:
                    self._queue.remove(task_id)
                return self._move(
                    task,
                    TaskStatus.FAILED,
                    error=TaskError(reason=FailureReason.CANCELLED, message="cancelled"),
                )
            self._cancelling.add(task_id)
            execution = self._running.get(task_id)
        if execution is not None:
            execution.stop(self.settings.cancel_grace_seconds)
        with self._cond:
            self._cond.wait_for(lambda: self._tasks[task_id].status.is_terminal(), timeout=5)
            return self._tasks[task_id]

    # -- validation ----------------------------------------------------------------------

    def _resolve_script(self, script: str) -> Path:
        if Path(script).is_absolute() or ".." in Path(script).parts or "\0" in script:
            raise InvalidRequest(
                f"script {script!r} must be a relative path under the scripts root"
            )
        path = (self.scripts_root / script).resolve()
        if not path.is_relative_to(self.scripts_root):
            raise InvalidRequest(f"script {script!r} leads out of the scripts root")
        if not path.is_file():
            raise InvalidRequest(f"script {script!r} not found under the scripts root")
        if path.suffix != ".py":
            raise InvalidRequest(f"script {script!r} is not a .py file")
        return path

    def _resolve_input(self, value: str) -> str:
        if not value:
            return ""
        if "\0" in value:
            raise InvalidRequest("input contains a NUL byte")
        ref = self.lake.parse_ref(value)
        if ref is not None:
            kind, name = ref
            path = self.lake.path_of(kind, name)
            if self.lake.version_of(path) is None:
                missing = DatasetNotFound if kind == "datasets" else ModelNotFound
                raise missing(f"{kind[:-1].capitalize()} '{name}' does not exist")
            return str(path)
        raw = Path(value)
        if ".." in raw.parts:
            raise InvalidRequest(f"input {value!r} must not contain '..'")
        candidate = raw if raw.is_absolute() else self.data_root / raw
        path = candidate.resolve()
        if not path.is_relative_to(self.data_root):
            raise InvalidRequest(f"input {value!r} is outside the data root")
        if not path.exists():
            raise InvalidRequest(f"input {value!r} does not exist under the data root")
        return str(path)

    def _resolve_output(self, value: str) -> Path:
        ref = self.lake.parse_ref(value)
        if ref is None:
            raise InvalidRequest(f"output {value!r} must be 'datasets/NAME' or 'models/NAME'")
        return self.lake.path_of(*ref)

    # -- state ---------------------------------------------------------------------------

    def _move(self, task: Task, status: TaskStatus, *, save: bool = True, **changes: Any) -> Task:
        """The one place a task changes state: checks the transition, stamps the time."""
        with self._cond:
            current = self._tasks[task.id]
            if status not in TRANSITIONS[current.status]:
                raise PlatformError(f"illegal transition {current.status} -> {status}")
            now = utcnow()
            if status is TaskStatus.RUNNING:
                changes["started_at"] = now
            if status.is_terminal():
                changes["completed_at"] = now
            updated = current.model_copy(update={"status": status, **changes})
            self._tasks[task.id] = updated
            if save:
                self._save(updated)
            self._cond.notify_all()
            return updated

    def _update(self, task_id: str, *, save: bool, **changes: Any) -> Task:
        with self._cond:
            updated = self._tasks[task_id].model_copy(update=changes)
            self._tasks[task_id] = updated
            if save:
                self._save(updated)
            return updated

    def _save(self, task: Task) -> None:
        self.lake.save_tasks(task)
        due = self.lake.tasks.commits_since_compact >= self.settings.compact_every_commits
        # One compaction at a time: saves that land before it resets the count start none.
        if due and self._compacting.acquire(blocking=False):
            threading.Thread(target=self._compact, name="compact", daemon=True).start()

    def _compact(self) -> None:
        try:
            self.lake.tasks.compact()
        except Exception:  # housekeeping must never take the service down
            log.exception("compacting task records failed")
        finally:
            self._compacting.release()

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
                task = self._tasks[task_id]
                # Claim the slot now so the next loop iteration sees it taken.
                self._running[task_id] = _Starting()
            worker = threading.Thread(target=self._work, args=(task,), name=task_id, daemon=True)
            self._workers.add(worker)
            worker.start()

    def _work(self, task: Task) -> None:
        try:
            self._supervise(task)
        except Exception as exc:
            log.exception("supervising %s failed", task.id)
            with self._cond:
                if not self._tasks[task.id].status.is_terminal():
                    self._move(
                        task,
                        TaskStatus.FAILED,
                        error=TaskError(
                            reason=FailureReason.CRASHED,
                            type=type(exc).__name__,
                            message=f"platform error while running the task: {exc}",
                        ),
                    )
        finally:
            with self._cond:
                self._running.pop(task.id, None)
                self._cancelling.discard(task.id)
                self._cond.notify_all()
            self._workers.discard(threading.current_thread())

    def _supervise(self, task: Task) -> None:
        work_dir = self.lake.root / "_system" / "work" / task.id
        shutil.rmtree(work_dir, ignore_errors=True)
        spec = RunSpec(
            task_id=task.id,
            script_path=self.scripts_root / task.script,
            input_path=task.input_path,
            output_path=task.output_path,
            params=task.params,
            log_path=self.lake.log_path(task.id),
            work_dir=work_dir,
            daft_runner=self.settings.task_daft_runner,
            log_max_bytes=self.settings.log_max_bytes,
        )
        version_before = self.lake.version_of(task.output_path)
        with self._cond:
            if self._tasks[task.id].status.is_terminal() or self._closed:
                return  # cancelled while starting; cancel() already recorded it
            execution = self.executor.start(spec)
            self._running[task.id] = execution
            task = self._move(
                task,
                TaskStatus.RUNNING,
                pid=execution.pid,
                output_version_before=version_before,
            )
        follower = progress.Follower(spec.progress_path)
        outcome = self._watch(task, execution, follower)
        # What the watch already read is on the record; only the last lines are new.
        points = (self.get(task.id).history + follower.poll())[-HISTORY_LIMIT:]
        tracked = {"progress": points[-1] if points else None, "history": points}
        if outcome.error is None:
            self._pin_source(task)
            self._move(
                task,
                TaskStatus.COMPLETED,
                result=outcome.result,
                output_version=self.lake.version_of(task.output_path),
                **tracked,
            )
        else:
            error = outcome.error
            if task.id in self._cancelling and error.reason not in _LIMITS:
                error = TaskError(reason=FailureReason.CANCELLED, message="cancelled")
            if self._closed and task.id in self._cancelling:
                error = TaskError(
                    reason=FailureReason.INTERRUPTED,
                    message="interrupted: the Data Platform shut down",
                )
            undo = self.lake.roll_back(task.output_path, version_before)
            if undo:
                error = error.model_copy(update={"message": f"{error.message} (output {undo})"})
            self._move(task, TaskStatus.FAILED, error=error, **tracked)
        shutil.rmtree(work_dir, ignore_errors=True)

    def _pin_source(self, task: Task) -> None:
        if not task.output.startswith("models/"):
            return
        try:
            self.lake.pin_model_source(task.output_path)
        except Exception:  # a script may write a model in its own format: then nothing pins
            log.warning("%s: could not pin the model's source dataset", task.id, exc_info=True)

    def _watch(self, task: Task, execution: Execution, follower: progress.Follower) -> Outcome:
        """Wait for the task, following its progress and enforcing time and memory limits."""
        time_limit = self.settings.task_timeout_seconds
        memory_limit = self.settings.task_memory_mb
        started = time.monotonic()
        last_saved = started
        history: list[dict[str, Any]] = []
        while True:
            outcome = execution.wait(timeout=WATCH_SECONDS)
            if outcome is not None:
                return outcome
            if points := follower.poll():
                history = (history + points)[-HISTORY_LIMIT:]
                save = time.monotonic() - last_saved > PROGRESS_SAVE_SECONDS
                if save:
                    last_saved = time.monotonic()
                self._update(task.id, save=save, progress=history[-1], history=history)
            breach = None
            if time_limit is not None and time.monotonic() - started > time_limit:
                breach = TaskError(
                    reason=FailureReason.TIMEOUT, message=f"time limit of {time_limit:g} s exceeded"
                )
            elif memory_limit is not None:
                rss = tree_rss_bytes(TASK_ENV, task.id)
                if rss > memory_limit * 1024 * 1024:
                    breach = TaskError(
                        reason=FailureReason.MEMORY,
                        message=f"memory limit of {memory_limit} MB exceeded "
                        f"(resident {rss // (1024 * 1024)} MB)",
                    )
            if breach is not None:
                grace = self.settings.cancel_grace_seconds
                execution.stop(0 if breach.reason is FailureReason.MEMORY else grace)
                execution.wait()
                return Outcome(error=breach)


_LIMITS = (FailureReason.TIMEOUT, FailureReason.MEMORY)


class _Starting(Execution):
    """Placeholder for a slot claimed by a task whose process is being started."""

    def wait(self, timeout: float | None = None) -> None:
        return None

    def stop(self, grace: float) -> None:
        return None


def read_log(path: Path, tail: int | None = None) -> tuple[bytes, int]:
    """The whole log, or its last ``tail`` lines, and the file size they were read at.

    Reads backwards in blocks, so tailing a large log costs only what is returned.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return b"", 0
    with fh:
        size = fh.seek(0, 2)
        if tail is None:
            fh.seek(0)
            return fh.read(size), size
        if tail == 0:
            return b"", size
        block, data, pos = 65536, b"", size
        while pos > 0 and data.count(b"\n") <= tail:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
        lines = data.splitlines(keepends=True)
        return b"".join(lines[-tail:]), size
