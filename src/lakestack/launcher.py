"""Start the whole platform: the Data Platform and the AI Platform, as two processes.

``python -m lakestack.launcher`` (``make up``) runs both in the foreground until Ctrl-C. Each
reads its own settings from the environment (``DP_*``, ``AIP_*``); the launcher only makes them
agree: the AI Platform is pointed at the Data Platform it started, and keeps its state beside
the lake unless told otherwise.

Level 2 (``DP_RUNTIME=ray`` and/or ``AIP_RUNTIME=ray``): unless given ``*_RAY_ADDRESS``, the
launcher starts one private local Ray for both services (its own temp dir, ports and token),
passes them its address and token file, and stops it after them.

Ctrl-C or SIGTERM stops both services at once; whatever still runs ``grace`` seconds later
(``LAKESTACK_SHUTDOWN_GRACE_SECONDS``, default 10) is killed, and what the services started
(model servers, tasks) dies with them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from ai_platform.settings import AIPlatformSettings
from data_platform.settings import DataPlatformSettings
from serverkit.procs import set_pdeathsig
from serverkit.ray_runtime import LocalRay

GRACE_ENV = "LAKESTACK_SHUTDOWN_GRACE_SECONDS"
GRACE_SECONDS = 10.0


class Platform:
    """Both services as child processes, sharing one lake."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        grace: float | None = None,
    ) -> None:
        self.env = {**os.environ, **(env or {})}
        self.grace = float(self.env.get(GRACE_ENV, GRACE_SECONDS)) if grace is None else grace
        # Either key protects both services (the AI Platform falls back on DP_API_KEY itself).
        if self.env.get("AIP_API_KEY") and not self.env.get("DP_API_KEY"):
            self.env["DP_API_KEY"] = self.env["AIP_API_KEY"]
        dp = DataPlatformSettings(_env_file=None, **_from_env(self.env, "DP_"))
        self.dp_url = f"http://{dp.host}:{dp.port}"
        self.env.setdefault("AIP_DATA_PLATFORM_URL", self.dp_url)
        self.env.setdefault("AIP_STATE_DIR", str(dp.lake_root / "_ai_platform"))
        aip = AIPlatformSettings(_env_file=None, **_from_env(self.env, "AIP_"))
        self.url = f"http://{aip.host}:{aip.port}"
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        # The services that need a Ray and were given none: they share the one we start.
        self.ray_prefixes = [
            prefix
            for prefix, settings in (("DP_", dp), ("AIP_", aip))
            if settings.runtime == "ray" and not settings.ray_address
        ]
        self.ray: LocalRay | None = None
        self.direct_ingress = aip.ray_direct_ingress  # Serve's direct ingress: Ray-wide

    def start(self, timeout: float | None = None) -> Platform:
        """Start (a Ray if needed, then) both services; each must answer within ``timeout``
        (default 60 s, 120 s with Ray, whose imports and Serve start are slow on 2 cores)."""
        if timeout is None:
            timeout = 120.0 if self.ray_prefixes else 60.0
        if self.ray_prefixes:
            self.ray = LocalRay(direct_ingress=self.direct_ingress).start()
            for prefix in self.ray_prefixes:
                self.env[f"{prefix}RAY_ADDRESS"] = str(self.ray.address)
                self.env[f"{prefix}RAY_AUTH_TOKEN_PATH"] = str(self.ray.token_path)
        for module, url in (("data_platform", self.dp_url), ("ai_platform", self.url)):
            out = None
            if self.log_dir is not None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                out = open(self.log_dir / f"{module}.log", "ab")  # noqa: SIM115
            # Both services die with the launcher however it dies (SIGKILL, an OOM kill): an
            # orphaned pair would hold the ports and the lake.
            self.procs[module] = subprocess.Popen(
                [sys.executable, "-m", module],
                env=self.env,
                stdout=out,
                stderr=out,
                preexec_fn=set_pdeathsig,
            )
            if out is not None:
                out.close()
            self._wait_healthy(module, url, timeout)
        return self

    def _wait_healthy(self, module: str, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[module].poll() is not None:
                self.stop()
                raise RuntimeError(f"{module} exited with code {self.procs[module].returncode}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{module} did not answer at {url} within {timeout:g} s")

    def stop(self) -> None:
        """Both services at once (the AI Platform stops its model servers, the Data Platform
        its tasks), killed if they outlast the grace period; then the Ray we started (only
        that one)."""
        running = [p for p in self.procs.values() if p.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for proc in running:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()  # its children die with it (PDEATHSIG, or their parent watch)
                proc.wait()
        if self.ray is not None:
            self.ray.stop()
            self.ray = None

    def wait(self) -> int:
        """Block until either service exits; returns its exit code."""
        while True:
            for proc in self.procs.values():
                if proc.poll() is not None:
                    return proc.returncode
            time.sleep(0.5)


def _from_env(env: dict[str, str], prefix: str) -> dict[str, Any]:
    """The settings ``env`` gives one service, as init arguments: pydantic parses the strings
    into each field's type, but not JSON (an env source would): objects and lists such as
    ``DP_LAKE_STORAGE_OPTIONS`` are decoded here."""
    values: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(prefix):
            continue
        parsed: Any = value
        if value.lstrip().startswith(("{", "[")):
            # Not JSON after all: the service's own settings will say what is wrong with it.
            with contextlib.suppress(ValueError):
                parsed = json.loads(value)
        values[key[len(prefix) :].lower()] = parsed
    return values


def main() -> int:
    platform = Platform()

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        platform.start()
        print(f"Data Platform: {platform.dp_url}  (docs: {platform.dp_url}/docs)")
        print(f"AI Platform:   {platform.url}  (docs: {platform.url}/docs)")
        if platform.ray is not None:
            print(f"Ray (local):   {platform.ray.address}  (temp dir {platform.ray.temp_dir})")
        print("Ctrl-C stops both.")
        return platform.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        platform.stop()


if __name__ == "__main__":
    sys.exit(main())
