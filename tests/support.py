"""Test helpers: real servers on free loopback ports, polling without bare sleeps."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from serverkit.net import free_port

REPO = Path(__file__).resolve().parents[1]
FIXTURE_SCRIPTS = REPO / "tests" / "fixtures" / "scripts"
MNIST_DIR = REPO / "data" / "raw" / "mnist"


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:  # the thing polled may not exist yet
            last_exc = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last error: {last_exc!r})")


def process_scratch(prefix: str) -> Path:
    """A folder for what a test process builds once and copies to each test that needs it
    (a trained model, a written dataset); removed when the process exits."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


class Server:
    """A service run as a real process (``python -m MODULE``) on a free loopback port."""

    def __init__(self, module: str, env: dict[str, str], port_var: str, log_path: Path) -> None:
        self.module = module
        self.port = free_port()
        self.env = {**os.environ, **env, port_var: str(self.port)}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Server:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        log.close()

        def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.module} exited: {self.log_path.read_text()[-3000:]}")
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200

        deadline = time.monotonic() + timeout
        while True:
            try:
                if healthy():
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.module} did not start: {self.log_path.read_text()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def dp_env(root: Path, scripts_root: Path = FIXTURE_SCRIPTS, **extra: str) -> dict[str, str]:
    return {
        "DP_LAKE_ROOT": str(root / "lake"),
        "DP_SCRIPTS_ROOT": str(scripts_root),
        "DP_DATA_ROOT": str(root / "data"),
        "DP_CANCEL_GRACE_SECONDS": "1",
        **extra,
    }


def make_scripts_root(root: Path) -> Path:
    """The repo's scripts plus the test fixtures, copied (symlinks out of a root are refused)."""
    import shutil

    scripts = root / "scripts"
    shutil.copytree(REPO / "scripts", scripts, dirs_exist_ok=True)
    shutil.copytree(FIXTURE_SCRIPTS, scripts / "fixtures", dirs_exist_ok=True)
    return scripts


class PlatformServers:
    """Both services as real processes on free ports, one lake under ``root``."""

    def __init__(self, root: Path, **extra_env: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        data = root / "data"
        if not data.exists():
            import shutil

            # A copy, not a link: a link leading out of the data root is refused.
            shutil.copytree(MNIST_DIR, data / "raw" / "mnist")
        scripts = root / "scripts"
        if not scripts.exists():
            make_scripts_root(root)
        dp_vars = {k: v for k, v in extra_env.items() if k.startswith("DP_")}
        aip_vars = {k: v for k, v in extra_env.items() if k.startswith("AIP_")}
        self.dp = Server(
            "data_platform", dp_env(root, scripts, **dp_vars), "DP_PORT", root / "dp.log"
        )
        self.aip = Server(
            "ai_platform",
            {
                "AIP_DATA_PLATFORM_URL": self.dp.url,
                "AIP_STATE_DIR": str(root / "lake" / "_ai_platform"),
                **aip_vars,
            },
            "AIP_PORT",
            root / "aip.log",
        )

    @property
    def url(self) -> str:
        return self.aip.url

    def start(self) -> PlatformServers:
        self.dp.start()
        self.aip.start()
        return self

    def stop(self) -> None:
        self.aip.stop()
        self.dp.stop()
