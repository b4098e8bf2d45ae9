"""How a task runs, as the manager and the supervisor see it: an interface, no processes.

An :class:`Executor` starts a task from a :class:`RunSpec` and hands back an
:class:`Execution`, which reports progress, resource use and the outcome, and stops the task.
Where the task's log, scratch, progress and result live, and how they travel, is the
executor's business: Level 1 (``local_executor.py``) uses files beside the Data Platform,
Level 2 (``ray_executor.py``) a Ray task on the same machine; a node-remote executor (Level 3)
ships them. The manager and the supervisor only use what is defined here.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lakeapi.schemas import Task, TaskError

MEMORY = "memory"  # a limit an executor can enforce: it measures the task's resident memory
CPUS, MEMORY_MB = "cpus", "memory_mb"  # the request's own keys; any other is a custom resource


@dataclass(frozen=True)
class RunSpec:
    """Everything an executor needs to run one task; locations are URIs, never local paths.

    The task's log and scratch are not here: the executor places them (see its ``logs``).
    """

    task_id: str
    script_path: str  # the script, as the Data Platform resolved it under its scripts root
    input_uri: str  # "" when the task takes no input
    output_uri: str
    params: dict[str, Any]
    storage_options: dict[str, str] = field(default_factory=dict)
    daft_runner: str = "native"
    env: dict[str, str] = field(default_factory=dict)
    resources: dict[str, float] | None = None  # the task's request (see Executor.check_resources)


@dataclass(frozen=True)
class Outcome:
    """How a task's process ended, as far as the executor can tell."""

    result: dict[str, Any] | None = None  # run() returned this dict
    error: TaskError | None = None  # what went wrong in the task (never a platform decision)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Resources:
    """What a running task uses now; None where the executor cannot tell."""

    rss_bytes: int | None = None


class Execution(ABC):
    """One running task."""

    pid: int | None = None  # of the task's process, where it is one the platform can name
    node: str | None = None  # where it runs, if known

    @abstractmethod
    def progress(self) -> list[dict[str, Any]]:
        """Progress points reported since the last call."""

    def resources(self) -> Resources:
        """Resource use of the task's whole tree (by default: unknown)."""
        return Resources()

    def release(self) -> None:  # noqa: B027 - optional hook
        """Let the task begin its work. An executor that starts a task held (its process up,
        its script not yet loaded) lets its start overlap the commit of the running record,
        which must be durable before anything can write; by default tasks are not held."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> Outcome | None:
        """The outcome once the task has ended, or None when ``timeout`` passes first."""

    @abstractmethod
    def stop(self, grace: float) -> None:
        """SIGTERM, up to ``grace`` seconds, then SIGKILL; returns once the tree is gone.

        Idempotent, and safe on an execution that already ended: it then only releases what
        the executor kept for the task (scratch), so the supervisor calls it in every case.
        """


class LogSource(ABC):
    """A task's log as the executor keeps it: reads from an offset, and a tail.

    Async, so that a follower costs no thread whether the log is a local file or travels
    from another node; an implementation keeps each call short for the event loop (a large
    local read goes to a worker thread for its duration only).
    """

    @abstractmethod
    async def read(self, offset: int, limit: int) -> tuple[bytes, int]:
        """Up to ``limit`` bytes from ``offset`` and the offset after them; a log that
        started over (rotated past its cap) is read from its new beginning."""

    @abstractmethod
    async def tail(self, lines: int | None) -> tuple[bytes, int]:
        """The last ``lines`` lines (None: everything) and the offset they end at."""


class Executor(ABC):
    """Runs tasks; recovers what it was running after a restart; enforces what it can."""

    default_concurrency: int = 1  # tasks at once unless DP_MAX_CONCURRENT_TASKS says otherwise
    limits: frozenset[str] = frozenset()  # the limits it can enforce, e.g. {MEMORY}

    @abstractmethod
    def start(self, spec: RunSpec) -> Execution:
        """Start the task; raises when it cannot (the task then fails ``rejected``)."""

    def check_resources(self, request: Mapping[str, Any] | None) -> None:
        """Refuse, at submit, a resource request this executor can never meet.

        By default tasks run on this machine: ``cpus`` and ``memory_mb`` may not exceed what
        it has, and it has no custom resources. Nothing is reserved (``DP_MAX_CONCURRENT_TASKS``
        gates how many tasks run at once).

        Raises:
            ValueError: what is wrong, in words for the client.
        """
        for key, value in resource_amounts(request).items():
            has = machine_resources().get(key, 0.0)
            if value > has:
                what = f"{has:g}" if key in (CPUS, MEMORY_MB) else "none"
                raise ValueError(
                    f"resource {key!r}: {value:g} requested, this machine has {what} "
                    "(tasks run on the Data Platform's machine)"
                )

    @abstractmethod
    def recover(self, task: Task) -> Execution | None:
        """After a restart: reattach to ``task`` if it still runs, else None, having killed
        whatever is left of it that cannot be reattached."""

    @abstractmethod
    def logs(self, task_id: str) -> LogSource:
        """The task's log (also for tasks that ended or never started: then it is empty)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the runtime (a Ray cluster the executor started)."""


def resource_amounts(request: Mapping[str, Any] | None) -> dict[str, float]:
    """A resource request's amounts, checked: each a finite, non-negative number.

    Raises:
        ValueError: a value that is not one (a bool, a string, NaN, infinity, < 0).
    """
    amounts: dict[str, float] = {}
    for key, value in (request or {}).items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ValueError(f"resource {key!r} must be a non-negative number, not {value!r}")
        amounts[str(key)] = float(value)
    return amounts


def machine_resources() -> dict[str, float]:
    """What this machine has, in a request's terms: the CPUs this process may use, its RAM."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {CPUS: float(cpus or 1), MEMORY_MB: memory / (1024 * 1024)}
