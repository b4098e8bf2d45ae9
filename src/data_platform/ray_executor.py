"""Level 2: each task is a Ray task that runs the task's process, as Level 1 does, in a worker.

The Ray task (``run_child``) starts the same ``ChildProcess`` as ``LocalExecutor``: own session
and process group, output pumped into the task's log, progress and result files read by the
Data Platform. Level 2 is one machine, so those files, the environment marker and /proc work
as on Level 1; records, logs and outcomes stay ours and Ray only places and runs the process.

Cancel: ``ray.cancel(ref)`` raises KeyboardInterrupt in the Ray task, which stops the tree
(SIGTERM, grace, SIGKILL) as Level 1 does; if the task does not end in time,
``ray.cancel(ref, force=True)`` kills the worker (the child dies with it: PR_SET_PDEATHSIG),
and the environment-marker kill removes anything left. What ``ray.get`` raises then does not
reliably say "cancelled"; the supervisor knows it asked for the stop and decides the reason.

Recovery: a Ray task of an earlier Data Platform has no handle we could find again (Level 3's
named supervisor actor gives one: ``ray_nodes``); its tree is killed and the task interrupted.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray.exceptions import RayError

import ray
from data_platform.execution import Execution, LogSource, Outcome, RunSpec
from data_platform.local_executor import (
    ChildProcess,
    FileProgress,
    MachineExecutor,
    TaskFiles,
    kill_task_processes,
    read_outcome,
)
from data_platform.ray_nodes import NodeTasks, ray_options
from data_platform.settings import DataPlatformSettings
from lakeapi.schemas import FailureReason, Task, TaskError
from serverkit.lakefs import is_local
from serverkit.ray_runtime import RayConnection, auth_env, lake_env

NAMESPACE = "lakekit-data-platform"

_POLL_SECONDS = 0.1
_FORCE_AFTER_SECONDS = 5.0  # past the grace, before a graceful cancel gives way to force


def run_child(spec: RunSpec, files: TaskFiles, grace: float, log_max_bytes: int, cwd: str) -> int:
    """Runs in a Ray worker: the task's process from start to end; returns its exit code."""
    child = ChildProcess(spec, files, log_max_bytes, cwd)
    try:
        # Poll rather than block: Ray delivers a cancel as KeyboardInterrupt between bytecodes.
        while (code := child.wait(_POLL_SECONDS)) is None:
            pass
    except KeyboardInterrupt:
        child.terminate(grace)
        raise
    finally:
        child.reap()
    return code


# No CPU reserved: a task's own Daft-on-Ray work needs the cluster's CPUs, and holding them
# here could deadlock it. DP_MAX_CONCURRENT_TASKS (default: the cluster's CPUs) gates how many
# run. No retries: a user script is not idempotent.
_run_child = ray.remote(num_cpus=0, max_retries=0)(run_child)


class RayExecution(FileProgress, Execution):
    pid = None  # the process lives inside a Ray worker; its tree carries the task's marker

    def __init__(self, ref: ray.ObjectRef, spec: RunSpec, files: TaskFiles) -> None:
        super().__init__(spec.task_id, files)
        self.ref = ref
        self.spec = spec
        self.files = files

    def wait(self, timeout: float | None = None) -> Outcome | None:
        ready, _ = ray.wait([self.ref], timeout=timeout)
        if not ready:
            return None
        try:
            code = ray.get(self.ref)
        except RayError as exc:  # cancelled, or the worker died
            outcome = read_outcome(self.files, -signal.SIGKILL)
            if outcome.error is not None and outcome.error.reason is FailureReason.KILLED:
                message = str(exc).strip().splitlines()[-1:] or [""]
                outcome = Outcome(
                    error=TaskError(
                        reason=FailureReason.KILLED,
                        type=type(exc).__name__,
                        message=f"the Ray worker running the task was lost: {message[0]}"[:500],
                    )
                )
            return outcome
        finally:
            kill_task_processes(self.spec.task_id)
        return read_outcome(self.files, code)

    def stop(self, grace: float) -> None:
        ready, _ = ray.wait([self.ref], timeout=0)
        if not ready and grace > 0:
            ray.cancel(self.ref)  # graceful: the task SIGTERMs its tree, then SIGKILLs
            ready, _ = ray.wait([self.ref], timeout=grace + _FORCE_AFTER_SECONDS)
        if not ready:
            ray.cancel(self.ref, force=True)
            ray.wait([self.ref], timeout=_FORCE_AFTER_SECONDS)
        kill_task_processes(self.spec.task_id)
        self.keep_progress()
        shutil.rmtree(self.files.scratch, ignore_errors=True)


class RayExecutor(MachineExecutor):
    """Level 2: tasks as Ray tasks on a cluster we join or start (``DP_RAY_ADDRESS``); one
    machine, so logs, scratch, the marker kill and /proc memory work as on Level 1.

    Level 3, when the lake is on object storage (the nodes then share no disk with us): each
    task runs under a supervisor actor on a node of the cluster (``ray_nodes``), its log and
    progress shipped into the lake.
    """

    def __init__(self, settings: DataPlatformSettings) -> None:
        super().__init__(settings.resolved_work_dir, settings.log_max_bytes)
        self.grace = settings.cancel_grace_seconds
        self.ray = RayConnection(
            settings.ray_address, settings.ray_auth_token_path, namespace=NAMESPACE
        ).open()
        self.default_concurrency = self.ray.cpus()
        self.nodes: NodeTasks | None = None
        if not is_local(settings.lake_root):
            self.nodes = NodeTasks(
                settings.lake_root, settings.storage_options, NAMESPACE, settings.log_max_bytes
            )

    def start(self, spec: RunSpec) -> Execution:
        if self.nodes is not None:
            # The task's own Daft-on-Ray (DAFT_RUNNER=ray) joins the cluster we are on; a
            # script that opens the lake without options finds them in AWS_* as on a pod.
            env = {
                **lake_env(spec.storage_options),
                "RAY_ADDRESS": str(self.ray.address),
                **spec.env,
            }
            return self.nodes.start(dataclasses.replace(spec, env=env))
        # The worker's cwd is not ours: every path absolute, the child in our cwd as on Level 1;
        # RAY_ADDRESS and the token let the task's own Daft-on-Ray join this cluster.
        spec = dataclasses.replace(
            spec,
            script_path=os.path.abspath(spec.script_path),
            input_uri=_absolute(spec.input_uri),
            output_uri=_absolute(spec.output_uri),
            env={**auth_env(), "RAY_ADDRESS": str(self.ray.address), **spec.env},
        )
        files = self.fresh_files(spec.task_id)
        ref = _run_child.options(name=f"task:{spec.task_id}", **ray_options(spec.resources)).remote(
            spec, files, self.grace, self.log_max_bytes, str(Path.cwd())
        )
        return RayExecution(ref, spec, files)

    def check_resources(self, request: Mapping[str, Any] | None) -> None:
        options = ray_options(request)
        if self.nodes is not None:
            # Level 3: nodes come and go; one no node can meet fails the task ``rejected``
            # when it cannot be placed (ray_nodes.PLACE_TIMEOUT_SECONDS).
            return
        # Level 2: the local Ray is all there is, and a Ray task it cannot place waits forever.
        has = ray.cluster_resources()
        wanted = {"CPU": options["num_cpus"], **options.get("resources", {})}
        if "memory" in options:
            wanted["memory"] = options["memory"]
        for key, value in wanted.items():
            if value > has.get(key, 0.0):
                raise ValueError(
                    f"resource {key!r}: {value:g} requested, the Ray cluster has "
                    f"{has.get(key, 0.0):g}"
                )

    def recover(self, task: Task) -> Execution | None:
        if self.nodes is not None:
            return self.nodes.recover(task)
        return super().recover(task)

    def logs(self, task_id: str) -> LogSource:
        if self.nodes is not None:
            return self.nodes.logs(task_id)
        return super().logs(task_id)

    def close(self) -> None:
        self.ray.close()


def _absolute(path: str) -> str:
    return os.path.abspath(path) if path and "://" not in path else path
