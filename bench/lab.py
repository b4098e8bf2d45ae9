"""The platform under test: both services started in a temp dir (own lake, data and scripts
roots, free ports), driven through the REST API the way users drive it.

The scripts root is a copy of the repo's ``scripts/`` plus ``bench/noop.py`` (symlinks leading
out of a root are refused); the data root holds a copy of the shipped MNIST IDX files.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.measure import PeakSampler
from serverkit.procs import kill_file_holders

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO / "data" / "raw" / "mnist"
NOOP_SCRIPT = "bench/noop.py"
TASK_MARKER = "LAKEKIT_TASK_ID"  # data_platform.executor.TASK_ENV: marks a task's processes


class TaskFailed(RuntimeError):
    def __init__(self, task: dict[str, Any], why: str, submitted_at: float = 0.0) -> None:
        super().__init__(why)
        self.task = task
        self.submitted_at = submitted_at


@dataclass
class TaskRun:
    """One task followed from submit to its end, timed from the client's side."""

    task: dict[str, Any]
    wall_s: float  # POST sent -> first poll that saw it completed
    to_running_s: float | None  # POST sent -> first poll that saw it running
    peak_rss_bytes: int
    server: dict[str, float] = field(default_factory=dict)  # from the record's own stamps
    submitted_at: float = 0.0  # time.time() just before the POST (progress points use it)

    @property
    def result(self) -> dict[str, Any]:
        return self.task.get("stats") or self.task.get("metrics") or {}


def _stamp(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def server_times(task: dict[str, Any]) -> dict[str, float]:
    """created -> started -> completed, from the Data Platform's records (one clock)."""
    created, started, done = (
        _stamp(task.get(k)) for k in ("created_at", "started_at", "completed_at")
    )
    out: dict[str, float] = {}
    if created and started:
        out["created_to_started_s"] = (started - created).total_seconds()
    if created and done:
        out["created_to_completed_s"] = (done - created).total_seconds()
    if started and done:
        out["started_to_completed_s"] = (done - started).total_seconds()
    return out


class Lab:
    """A private copy of everything the platform needs, under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_root = root / "data"
        self.scripts_root = root / "scripts"
        self.lake = root / "lake"
        self.logs = root / "logs"
        self.mnist_input = "raw/mnist"  # relative to the data root, as users give it

    def prepare(self) -> Lab:
        shutil.copytree(MNIST_DIR, self.data_root / "raw" / "mnist", dirs_exist_ok=True)
        shutil.copytree(REPO / "scripts", self.scripts_root, dirs_exist_ok=True)
        (self.scripts_root / "bench").mkdir(exist_ok=True)
        shutil.copy2(Path(__file__).with_name("noop.py"), self.scripts_root / NOOP_SCRIPT)
        return self

    def dataset_path(self, name: str) -> Path:
        return self.lake / "datasets" / f"{name}.lance"

    def model_path(self, name: str) -> Path:
        return self.lake / "models" / f"{name}.lance"

    def platform(
        self, runtime: str = "local", env: dict[str, str] | None = None
    ) -> RunningPlatform:
        """Both services; ``env`` adds to (or overrides) their settings, e.g. another lake."""
        return RunningPlatform(self, runtime, env)


class RunningPlatform:
    """Both services, started by ``lakestack.launcher.Platform``; a context manager."""

    def __init__(self, lab: Lab, runtime: str, extra_env: dict[str, str] | None = None) -> None:
        from lakestack.launcher import Platform  # pydantic settings: only when needed
        from serverkit.net import free_port

        self.lab = lab
        self.runtime = runtime
        env = {
            "DP_LAKE_ROOT": str(lab.lake),
            "DP_SCRIPTS_ROOT": str(lab.scripts_root),
            "DP_DATA_ROOT": str(lab.data_root),
            "DP_PORT": str(free_port("127.0.0.1")),
            "AIP_PORT": str(free_port("127.0.0.1")),
            "DP_RUNTIME": runtime,
            "AIP_RUNTIME": runtime,
            # A key in the caller's environment would lock the bench's own client out.
            "DP_API_KEY": "",
            "AIP_API_KEY": "",
            **(extra_env or {}),
        }
        self.platform = Platform(env, log_dir=lab.logs / runtime)
        self.api = httpx.Client(base_url=self.platform.url, timeout=120)
        self.leftovers: list[str] = []  # processes of our Ray that outlived its stop

    @property
    def url(self) -> str:
        return self.platform.url

    def __enter__(self) -> RunningPlatform:
        # Ray's imports and Serve's start are slow on 2 busy cores: give them room.
        self.platform.start(timeout=300.0 if self.runtime == "ray" else 90.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.api.close()
        ray_dir = self.platform.ray.temp_dir if self.platform.ray is not None else None
        self.platform.stop()
        if ray_dir is not None:
            self.leftovers = kill_file_holders(ray_dir)

    # -- tasks -----------------------------------------------------------------------------

    def run_task(
        self,
        kind: str,
        body: dict[str, Any],
        *,
        poll: float = 0.05,
        timeout: float = 600.0,
        sample_rss: bool = False,
    ) -> TaskRun:
        """Submit ``body`` to ``/api/v1/{kind}-tasks`` and follow it to its end.

        Raises:
            TaskFailed: it failed, or ran past ``timeout`` (then it is cancelled first).
        """
        submitted_at = time.time()
        started = time.perf_counter()
        response = self.api.post(f"/api/v1/{kind}-tasks", json=body)
        if response.status_code != 201:
            raise RuntimeError(f"submit {kind} task: HTTP {response.status_code} {response.text}")
        task = response.json()
        path = f"/api/v1/{kind}-tasks/{task['id']}"
        sampler = PeakSampler(TASK_MARKER, task["id"]).start() if sample_rss else None
        to_running = None
        try:
            while True:
                task = self.api.get(path).json()
                now = time.perf_counter()
                if task["status"] != "pending" and to_running is None:
                    to_running = now - started
                if task["status"] in ("completed", "failed"):
                    break
                if now - started > timeout:
                    task = self.api.post(f"{path}/cancel").json()
                    raise TaskFailed(
                        task, f"{kind} task ran past {timeout:g} s; cancelled", submitted_at
                    )
                time.sleep(poll)
        finally:
            peak = sampler.stop() if sampler else 0
        wall = time.perf_counter() - started
        if task["status"] != "completed":
            raise TaskFailed(task, f"{kind} task failed: {task.get('error')}", submitted_at)
        return TaskRun(task, wall, to_running, peak, server_times(task), submitted_at)

    def delete_dataset(self, name: str) -> None:
        self.api.delete(f"/api/v1/datasets/{name}")

    # -- services --------------------------------------------------------------------------

    def create_service(self, name: str, model: str) -> dict[str, Any]:
        r = self.api.post("/api/v1/inference-services", json={"name": name, "model": model})
        if r.status_code != 201:
            raise RuntimeError(f"create service: HTTP {r.status_code} {r.text}")
        return r.json()

    def delete_service(self, service_id: str) -> None:
        self.api.delete(f"/api/v1/inference-services/{service_id}")

    def predict_url(self, service_id: str) -> str:
        return f"{self.url}/api/v1/inference-services/{service_id}/predict"
