"""What the fault tests share: a Data Platform they can crash and restart, a small real
file system they can fill, and the checks every fault ends with."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import lance
import pytest

from data_platform.local_executor import TASK_ENV
from serverkit.procs import marked_processes
from tests.support import FIXTURE_SCRIPTS, Server, dp_env, wait_until

FAULT_SCRIPTS = Path(__file__).with_name("scripts")


def scripts_root(root: Path) -> Path:
    """The fixture scripts plus this tier's own."""
    scripts = root / "scripts"
    shutil.copytree(FIXTURE_SCRIPTS, scripts, dirs_exist_ok=True)
    shutil.copytree(FAULT_SCRIPTS, scripts, dirs_exist_ok=True)
    return scripts


class DP:
    """A Data Platform process on ``root``'s lake that a test restarts at will."""

    def __init__(self, root: Path, **env: str) -> None:
        self.root = root
        self.env = dp_env(
            root, scripts_root(root), DP_WORK_DIR=str(root / "work"), DP_LOG_REQUESTS="0", **env
        )
        self.log = root / "dp.log"
        self.server: Server | None = None
        self.client: httpx.Client | None = None

    def start(self, **env: str) -> httpx.Client:
        self.close_client()
        self.server = Server("data_platform", {**self.env, **env}, "DP_PORT", self.log).start(60)
        self.client = httpx.Client(base_url=self.server.url, timeout=30)
        return self.client

    def close_client(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def kill(self) -> None:
        self.close_client()
        if self.server is not None:
            self.server.kill()

    def stop(self) -> None:
        self.close_client()
        if self.server is not None:
            self.server.stop()

    def exited(self, timeout: float = 60) -> int:
        """Wait for the process to end on its own (a crash point); its exit status."""
        assert self.server is not None and self.server.proc is not None
        code = self.server.proc.wait(timeout)
        self.close_client()
        return code


@pytest.fixture
def dp_factory(tmp_path: Path) -> Iterator[type[DP]]:
    made: list[DP] = []

    class Made(DP):
        def __init__(self, root: Path = tmp_path, **env: str) -> None:
            super().__init__(root, **env)
            made.append(self)

    yield Made
    for dp in made:
        dp.stop()


def submit(client: httpx.Client, script: str, output: str = "datasets/out", **body: object) -> dict:
    r = client.post("/api/v1/tasks", json={"script": script, "output": output, **body})
    assert r.status_code == 201, r.text
    return r.json()


def wait_done(client: httpx.Client, task_id: str, timeout: float = 60) -> dict:
    def done() -> dict | None:
        task = client.get(f"/api/v1/tasks/{task_id}").json()
        return task if task["status"] in ("completed", "failed") else None

    return wait_until(done, timeout)


def tags(uri: str) -> list[str]:
    return lance.dataset(uri).to_table().column("tag").to_pylist()


def no_task_processes(*task_ids: str) -> None:
    """No orphan: nothing of these tasks runs any more."""
    wait_until(lambda: not any(marked_processes(TASK_ENV, t) for t in task_ids), 10)


def stored_tasks(lake: Path) -> dict[str, dict]:
    from data_platform.store import Lake

    return {t.id: t.model_dump(mode="json") for t in Lake(lake).load_tasks()}


@contextmanager
def small_disk(path: Path, size_mb: int = 24) -> Iterator[Path]:
    """A real, small file system at ``path`` (a tmpfs): filling it gives ENOSPC.

    Needs root and a working ``mount``; otherwise the test is skipped, saying why.
    """
    if os.geteuid() != 0:
        pytest.skip("disk-full cases need root to mount a small tmpfs (not root here)")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"disk-full cases need a small tmpfs; mount failed: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(filler: Path) -> None:
    """Grow ``filler`` until its file system is full."""
    chunk = b"\0" * 65536
    try:
        with open(filler, "wb") as fh:
            while True:
                fh.write(chunk)
                fh.flush()
    except OSError:
        pass


def bounded(start: float, seconds: float) -> None:
    assert time.monotonic() - start < seconds, f"took over {seconds} s"
