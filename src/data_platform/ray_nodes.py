"""Level 3: tasks on the nodes of a Ray cluster that share no disk with the Data Platform.

Each task gets a supervisor actor (``ray_supervisor.TaskSupervisor``) placed by the task's
resource request; the Data Platform only holds its handle, asks it for the outcome in long
polls (``wait``), for progress and memory in short ones (``poll``, at most twice a second,
never blocking the supervisor's watch loop), and reads the log from the lake.

Restart: the actors are detached and named ``task:<id>``; a Data Platform that comes back
finds a running task's actor by that name and reattaches (the task runs on, undisturbed).
A task whose actor is gone is interrupted and rolled back by the manager, as on Level 1.

Node loss: a task whose actor died is ``node lost`` when its node is dead in Ray's node table
(the GCS notices within its health-check budget; ``NODE_DEATH_WAIT_SECONDS`` bounds how long
we ask), else ``killed``. Its output is rolled back by the supervisor as for any failure.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray.exceptions import GetTimeoutError, RayActorError, RayError

import ray
from data_platform.execution import (
    CPUS,
    MEMORY_MB,
    Execution,
    LogSource,
    Outcome,
    Resources,
    RunSpec,
    resource_amounts,
)
from data_platform.ray_lakelog import LakeLog, TaskObjects
from data_platform.ray_supervisor import TaskSupervisor
from lakeapi.schemas import FailureReason, Task, TaskError

log = logging.getLogger(__name__)

LONG_POLL_SECONDS = 2.0
POLL_EVERY_SECONDS = 0.5
PLACE_TIMEOUT_SECONDS = 120.0  # a request no node can meet fails instead of waiting forever
STOP_MARGIN_SECONDS = 40.0  # past the grace: SIGKILL, the last log chunk, the answer
NODE_DEATH_WAIT_SECONDS = 30.0
DRAIN_SECONDS = 10.0
# Ray's names for what the request calls cpus and memory_mb, and those Ray manages itself.
_RAY_OWN = frozenset({"CPU", "GPU", "memory", "object_store_memory"})

# No retries and no restarts: a user script is not idempotent, and a restarted supervisor
# would not have the task's process. Threads: wait blocks while poll and stop answer.
_Supervisor: Any = ray.remote(  # type: ignore[call-overload]  # Ray's stubs lack actor options
    max_restarts=0, max_task_retries=0, max_concurrency=8
)(TaskSupervisor)


def actor_name(task_id: str) -> str:
    return f"task:{task_id}"


def ray_options(request: Mapping[str, Any] | None) -> dict[str, Any]:
    """Ray's actor (or task) options for a task's resource request.

    ``{"cpus": 1, "memory_mb": 512, "worker1": 1}``: CPUs (default 0, see Level 2: a task's
    own Daft-on-Ray work needs them), memory to reserve in MB, any other key a custom resource.

    Raises:
        ValueError: a value that is not a finite non-negative number, or one of Ray's own
            resource names as a custom key (Ray refuses those).
    """
    options: dict[str, Any] = {"num_cpus": 0}
    custom: dict[str, float] = {}
    for key, value in resource_amounts(request).items():
        if key == CPUS:
            options["num_cpus"] = value
        elif key == MEMORY_MB:
            options["memory"] = int(value * 1024 * 1024)
        elif key in _RAY_OWN or key.startswith("node:"):
            raise ValueError(
                f"resource {key!r} is Ray's own: ask for 'cpus' or 'memory_mb', or for a "
                "custom resource of the cluster"
            )
        else:
            custom[key] = value
    if custom:
        options["resources"] = custom
    return options


def node_alive(node_id: str) -> bool | None:
    """Whether Ray's node table has the node alive (None: not in it)."""
    for node in ray.nodes():
        if node.get("NodeID") == node_id:
            return bool(node.get("Alive"))
    return None


class NodeExecution(Execution):
    """A task whose supervisor actor runs on some node of the cluster."""

    def __init__(
        self, actor: Any, where: Mapping[str, Any], progress_after: float | None = None
    ) -> None:
        self.actor = actor
        self.pid = where.get("pid")
        self.node = where.get("ip")
        self.node_id = str(where.get("node_id", ""))
        self._progress_after = progress_after  # reattached: points up to here are recorded
        self._seen = 0
        self._rss: int | None = None
        self._wait_ref: Any = None
        self._poll_ref: Any = None
        self._polled_at = 0.0
        self._outcome: Outcome | None = None
        self._released = False
        self._kept: list[dict[str, Any]] = []  # drained before the actor went, not yet read

    def progress(self) -> list[dict[str, Any]]:
        if self._outcome is not None and not self._released:
            self._drain()  # ended: the last points, waited for, before the actor goes
        elif not self._released:
            self._collect()
        points, self._kept = self._kept, []
        after = self._progress_after
        if after is not None:
            points = [p for p in points if float(p.get("time", 0)) > after]
        return points

    def _collect(self) -> None:
        """The answer of the poll in flight, if there is one yet; a new poll when due."""
        if self._poll_ref is not None:
            ready, _ = ray.wait([self._poll_ref], timeout=0)
            if not ready:
                return
            ref, self._poll_ref = self._poll_ref, None
            try:
                polled, self._rss = ray.get(ref)
            except RayError:
                polled = []  # the actor is gone: wait() tells why
            self._seen += len(polled)
            self._kept += polled
        if time.monotonic() - self._polled_at > POLL_EVERY_SECONDS:
            self._polled_at = time.monotonic()
            self._poll_ref = self.actor.poll.remote(self._seen)

    def _drain(self) -> None:
        """Every point not read yet, waiting for the answer (the task has ended)."""
        if self._poll_ref is not None:
            with contextlib.suppress(RayError, GetTimeoutError):
                polled, _ = ray.get(self._poll_ref, timeout=DRAIN_SECONDS)
                self._seen += len(polled)
                self._kept += polled
            self._poll_ref = None
        with contextlib.suppress(RayError, GetTimeoutError):
            polled, _ = ray.get(self.actor.poll.remote(self._seen), timeout=DRAIN_SECONDS)
            self._seen += len(polled)
            self._kept += polled

    def resources(self) -> Resources:
        return Resources(rss_bytes=self._rss)

    def wait(self, timeout: float | None = None) -> Outcome | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._outcome is None:
            if self._wait_ref is None:
                self._wait_ref = self.actor.wait.remote(LONG_POLL_SECONDS)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _ = ray.wait([self._wait_ref], timeout=left)
            if not ready:
                return None
            ref, self._wait_ref = self._wait_ref, None
            try:
                self._outcome = ray.get(ref)
            except RayActorError as exc:
                self._outcome = self._lost(exc)
            except RayError as exc:
                self._outcome = _failed(FailureReason.CRASHED, exc, "the task's supervisor failed")
            if self._outcome is None and deadline is not None and time.monotonic() >= deadline:
                return None
        return self._outcome

    def _lost(self, exc: RayActorError) -> Outcome:
        if self._released:  # we killed it (stop): the supervisor decides what that means
            return _failed(FailureReason.KILLED, exc, "the task's supervisor was stopped")
        deadline = time.monotonic() + NODE_DEATH_WAIT_SECONDS
        while time.monotonic() < deadline:
            if node_alive(self.node_id) is False:
                return Outcome(
                    error=TaskError(
                        reason=FailureReason.NODE_LOST,
                        type=type(exc).__name__,
                        message=f"node lost: the node running the task ({self.node}) died",
                    )
                )
            time.sleep(0.5)
        return _failed(FailureReason.KILLED, exc, "the task's supervisor actor died")

    def stop(self, grace: float) -> None:
        if self._released:
            return
        if self._outcome is None:
            try:
                self._outcome = ray.get(
                    self.actor.stop.remote(grace), timeout=grace + STOP_MARGIN_SECONDS
                )
            except (RayError, GetTimeoutError):
                log.warning("%s: the supervisor did not answer the stop", self.node)
        self._drain()
        self._released = True
        kill(self.actor)


def kill(actor: Any) -> None:
    """End a supervisor actor (and with it anything of its task left on the node)."""
    with contextlib.suppress(RayError, ValueError):  # already gone
        ray.kill(actor, no_restart=True)


def _failed(reason: FailureReason, exc: BaseException, what: str) -> Outcome:
    detail = (str(exc).strip().splitlines() or [""])[-1]
    message = f"{what}: {detail}"[:500]
    return Outcome(error=TaskError(reason=reason, type=type(exc).__name__, message=message))


class NodeTasks:
    """Starts, finds again and reads the logs of tasks on the cluster's nodes (the node-remote
    half of ``RayExecutor``, used when the lake is on object storage)."""

    def __init__(
        self,
        lake_root: str,
        storage_options: Mapping[str, str],
        namespace: str,
        log_max_bytes: int,
    ) -> None:
        self.lake_root = lake_root
        self.storage_options = dict(storage_options)
        self.namespace = namespace
        self.log_max_bytes = log_max_bytes

    def objects(self, task_id: str) -> TaskObjects:
        return TaskObjects(self.lake_root, self.storage_options, task_id)

    def start(self, spec: RunSpec) -> Execution:
        options = ray_options(spec.resources)
        self.objects(spec.task_id).delete()  # a log of an earlier try of this id would lie
        actor = _Supervisor.options(
            name=actor_name(spec.task_id),
            namespace=self.namespace,
            lifetime="detached",
            **options,
        ).remote(
            spec,
            self.lake_root,
            self.storage_options,
            Path(spec.script_path).read_bytes(),
            self.log_max_bytes,
        )
        try:
            where = ray.get(actor.where.remote(), timeout=PLACE_TIMEOUT_SECONDS)
        except (GetTimeoutError, RayError) as exc:
            kill(actor)
            if isinstance(exc, GetTimeoutError):
                raise RuntimeError(
                    f"no node could take the task within {PLACE_TIMEOUT_SECONDS:g} s "
                    f"(requested {options})"
                ) from None
            raise
        log.info("%s runs on %s (pid %s)", spec.task_id, where.get("ip"), where.get("pid"))
        return NodeExecution(actor, where)

    def recover(self, task: Task) -> Execution | None:
        """Reattach to the task's supervisor if it still runs; else None (nothing is left)."""
        try:
            actor = ray.get_actor(actor_name(task.id), namespace=self.namespace)
        except ValueError:
            return None
        try:
            where: dict[str, Any] = ray.get(actor.where.remote(), timeout=30)  # type: ignore[assignment]
        except (GetTimeoutError, RayError):
            kill(actor)
            return None
        after = task.progress.get("time") if task.progress else None
        log.info("%s reattached on %s", task.id, where.get("ip"))
        return NodeExecution(actor, where, float(after) if after is not None else None)

    def logs(self, task_id: str) -> LogSource:
        return LakeLog(self.objects(task_id))
