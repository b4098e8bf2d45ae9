"""Level 3: the supervisor of one task, a named detached Ray actor on the task's node.

As Ray Jobs' ``JobSupervisor``: the actor is scheduled where the task runs (by the task's
resource request), owns the task's process tree there (the same ``ChildProcess`` as Levels 1
and 2: own session, SIGTERM then SIGKILL, the environment marker), measures its memory, and
ships its log and progress into the lake (``ray_lakelog``), so the Data Platform needs no disk
shared with the node. The node's disk holds scratch only (a temp dir removed at the end).

The actor is detached and named ``task:<id>``: a Data Platform that restarts finds it again
by name and reattaches (``ray_nodes.NodeTasks.recover``). Nothing in it waits for the Data
Platform: the task runs to its end, its log is shipped, and the outcome is kept until a Data
Platform collects it (and kills the actor) or, with none coming for ``ORPHAN_SECONDS``, the
actor exits.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from data_platform.execution import Outcome, RunSpec
from data_platform.local_executor import (
    TASK_ENV,
    ChildProcess,
    TaskFiles,
    read_from,
    read_outcome,
)
from data_platform.ray_lakelog import PROGRESS_OBJECT, TaskObjects
from lakekit.progress import Follower
from serverkit.procs import tree_rss_bytes

SHIP_SECONDS = 1.0
CHUNK_MAX_BYTES = 4 * 1024 * 1024
ORPHAN_SECONDS = 600.0  # an ended task's outcome waits this long for a Data Platform


class TaskSupervisor:
    """Runs on the task's node (as a Ray actor with ``max_concurrency`` > 1: ``wait`` blocks
    while ``poll`` and ``stop`` answer)."""

    def __init__(
        self,
        spec: RunSpec,
        lake_root: str,
        storage_options: dict[str, str],
        script_source: bytes,
        log_max_bytes: int,
    ) -> None:
        self.spec = spec
        self.objects = TaskObjects(lake_root, storage_options, spec.task_id)
        self.scratch_root = Path(tempfile.mkdtemp(prefix=f"lakekit-{spec.task_id}-"))
        self.files = TaskFiles(self.scratch_root, spec.task_id)
        if not os.path.exists(spec.script_path):
            # This node does not have the Data Platform's scripts: run the shipped copy.
            script = self.scratch_root / "script" / os.path.basename(spec.script_path)
            script.parent.mkdir(parents=True)
            script.write_bytes(script_source)
            spec = dataclasses.replace(spec, script_path=str(script))
        self._points: list[dict[str, Any]] = []
        self._follower = Follower(self.files.progress_path)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._outcome: Outcome | None = None
        self._seq = self._shipped = 0
        self._progress_size = -1
        self.child = ChildProcess(spec, self.files, log_max_bytes, cwd=str(self.scratch_root))
        threading.Thread(target=self._ship_until_done, daemon=True, name="ship").start()
        threading.Thread(target=self._watch, daemon=True, name="watch").start()

    # -- what the Data Platform calls -----------------------------------------------------

    def where(self) -> dict[str, Any]:
        import ray

        ctx = ray.get_runtime_context()
        ip = ray.util.get_node_ip_address()
        return {"node_id": ctx.get_node_id(), "ip": ip, "pid": self.child.pid}

    def wait(self, timeout: float) -> Outcome | None:
        """The outcome once the task ended and its log is in the lake; None after timeout."""
        self._done.wait(timeout)
        return self._outcome

    def poll(self, since: int) -> tuple[list[dict[str, Any]], int | None]:
        """Progress points from index ``since`` on, and the tree's resident memory now."""
        with self._lock:
            self._points += self._follower.poll()
            points = self._points[since:]
        rss = None if self._done.is_set() else tree_rss_bytes(TASK_ENV, self.spec.task_id)
        return points, rss

    def stop(self, grace: float) -> Outcome | None:
        """SIGTERM, ``grace``, SIGKILL; returns once the tree is gone and the log shipped."""
        self.child.terminate(grace)
        self._done.wait(grace + 30)
        return self._outcome

    # -- on the node ----------------------------------------------------------------------

    def _watch(self) -> None:
        code = self.child.wait()
        assert code is not None  # without a timeout, wait() returns once the tree is gone
        try:
            self._ship()  # the pump has finished (reap joined it): the rest of the log
            outcome = read_outcome(self.files, code)
            with self._lock:
                self._points += self._follower.poll()
        finally:
            shutil.rmtree(self.scratch_root, ignore_errors=True)
        self._outcome = outcome
        self._done.set()
        # A Data Platform that has the outcome kills the actor; with none coming (it crashed
        # and stayed away), do not hold the node's resources forever.
        time.sleep(ORPHAN_SECONDS)
        os._exit(0)

    def _ship_until_done(self) -> None:
        while not self._done.wait(SHIP_SECONDS):
            try:
                self._ship()
            except Exception:  # the lake unreachable for a moment: the next round retries
                continue

    def _ship(self) -> None:
        with self._lock:  # one shipper at a time: chunk numbers stay in order
            while True:
                data, offset = read_from(self.files.log_path, self._shipped, CHUNK_MAX_BYTES)
                if offset < self._shipped:  # the local log rotated: it starts over
                    self._shipped = 0
                    continue
                if not data:
                    break
                self.objects.put(self.objects.chunk_uri(self._seq), data)
                self._seq += 1
                self._shipped = offset
            try:
                progress = self.files.progress_path.read_bytes()
            except FileNotFoundError:
                return
            if len(progress) != self._progress_size:
                self.objects.put(f"{self.objects.folder}/{PROGRESS_OBJECT}", progress)
                self._progress_size = len(progress)
