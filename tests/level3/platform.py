"""The Data Platform of the Level 3 tests: a real process joined to the test cluster, its lake on
the S3 endpoint, the tier's scripts as its scripts root."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx

from tests.level3.ray_cluster import RayCluster
from tests.level3.s3 import S3Endpoint
from tests.support import FIXTURE_SCRIPTS, MNIST_DIR, REPO, Server, wait_until

SCRIPTS = Path(__file__).with_name("scripts")
START_TIMEOUT = 120.0


class DataPlatform:
    """The Data Platform as a real process, joined to the cluster, its lake on the endpoint."""

    def __init__(self, root: Path, cluster: RayCluster, s3: S3Endpoint) -> None:
        self.root = root
        self.lake = s3.uri(f"{root.name}/lake")
        self.env = {
            "DP_LAKE_ROOT": self.lake,
            "DP_LAKE_STORAGE_OPTIONS": json.dumps(s3.storage_options),
            "DP_RUNTIME": "ray",
            "DP_RAY_ADDRESS": cluster.address,
            "DP_RAY_AUTH_TOKEN_PATH": str(cluster.token_path),
            "DP_DAFT_RUNNER": "native",
            "DP_WORK_DIR": str(root / "dp-work"),
            "DP_SCRIPTS_ROOT": str(root / "scripts"),
            "DP_DATA_ROOT": str(root / "data"),
            "DP_CANCEL_GRACE_SECONDS": "1",
            # One task per node, fixed: the session's Data Platform may start (or restart)
            # while a worker an earlier module killed is still coming back.
            "DP_MAX_CONCURRENT_TASKS": "3",
        }
        # The platform's own scripts and the tier's, and MNIST as the raw input (copies: a
        # link leading out of a root is refused).
        shutil.copytree(REPO / "scripts", root / "scripts")
        shutil.copytree(SCRIPTS, root / "scripts", dirs_exist_ok=True)
        # The tests' one tiny training script, the same one Level 1 tests run.
        shutil.copy(FIXTURE_SCRIPTS / "train_tiny.py", root / "scripts" / "train_tiny.py")
        shutil.copytree(MNIST_DIR, root / "data" / "raw" / "mnist")
        self.server: Server | None = None

    def start(self) -> Server:
        self.server = Server("data_platform", self.env, "DP_PORT", self.root / "dp.log")
        return self.server.start(START_TIMEOUT)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"{self.server.url}/api/v1/tasks"

    def submit(
        self, name: str, worker: str, script: str = "tick.py", output: str = "", **params: object
    ) -> dict:
        body = {
            "script": script,
            "output": output or f"datasets/{name}",
            "params": {"pid_file": str(self.root / name), **params},
            "resources": {worker: 1},
        }
        r = httpx.post(self.url, json=body, timeout=30)
        assert r.status_code == 201, r.text
        return r.json()

    def get(self, task_id: str) -> dict:
        return httpx.get(f"{self.url}/{task_id}", timeout=30).json()

    def ended(self, task_id: str, timeout: float = 90) -> dict:
        def done() -> dict | None:
            task = self.get(task_id)
            return task if task["status"] in ("completed", "failed") else None

        return wait_until(done, timeout, interval=0.2)

    def pid(self, name: str) -> int:
        return int(wait_until(lambda: (self.root / name).read_text(), timeout=60))


def lake_keys(s3: S3Endpoint, dp: DataPlatform, under: str) -> list[str]:
    prefix = dp.lake.split("/", 3)[3]
    return s3.list_keys(f"{prefix}/{under}")
