"""Where model servers run. Level 1: one local process per service (this file); Level 2: one
Ray Serve application per service (``ray_backend.py``).

A backend places a new service (its port and endpoint), starts a server for it, tells whether
it is alive and where its replicas answer, and stops it. The serving manager above it keeps
the records and is the same for every backend.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

from lakeapi.errors import PortInUse
from lakeapi.schemas import Service
from serverkit.lakefs import STORAGE_OPTIONS_ENV
from serverkit.net import free_port, port_is_free
from serverkit.procs import PARENT_ENV, kill_marked, scrubbed_env, signal_group, write_secret

SERVICE_ENV = "AIP_SERVICE_ID"


class ServingBackend(ABC):
    @abstractmethod
    def place(self, service_id: str, port: int | None, taken: set[int]) -> tuple[int, str]:
        """The port and endpoint of a new service; ``port``: the one asked for, if any.

        Raises:
            PortInUse: the port asked for is taken (409).
            InvalidRequest: this backend cannot serve on that port (400).
        """

    def revived(self, service: Service) -> Service:
        """The record of a service started again after a restart (Level 1: unchanged)."""
        return service

    @abstractmethod
    def start(self, service: Service, log_path: Path) -> int | None:
        """Start the model server; returns its PID if it has one."""

    @abstractmethod
    def exit_status(self, service: Service) -> str | None:
        """None while the server runs; else how it ended. Never blocks: predict asks."""

    @abstractmethod
    def stop(self, service: Service) -> None:
        """Stop the server and free its port; no-op if it is gone."""

    def urls(self, service: Service) -> tuple[str, ...]:
        """Where the service answers: one base URL per replica, the first its endpoint
        (Level 1: the endpoint). Never blocks: predict asks; ``refresh`` brings it up to date.
        """
        return (service.endpoint,)

    def refresh(self) -> None:  # noqa: B027 - optional hook
        """Fetch the runtime's view of every server (may block: the monitor thread calls it;
        ``exit_status`` then answers from what was fetched, without blocking)."""

    def reclaim(self, service: Service) -> None:  # noqa: B027 - optional hook
        """Kill whatever a previous platform process left of this service."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the backend's runtime."""


class LocalProcessBackend(ServingBackend):
    """Each service is ``python -m ai_platform.serving.model_server`` in its own session.

    With an API key, every model server needs it too: it gets the key through a file only
    this user can read (``--api-key-file``), never through its environment, which its model's
    code could print into the log that the API serves.
    """

    def __init__(
        self,
        host: str,
        api_key: str | None = None,
        storage_options: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.api_key = api_key
        # The lake's storage options (an S3 lake): model servers load the model with them.
        self.storage_options = dict(storage_options or {})
        self._key_dir: str | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    def _key_file(self) -> list[str]:
        """The model server's key argument (none without a key); the file is made once."""
        if not self.api_key:
            return []
        if self._key_dir is None:
            self._key_dir = tempfile.mkdtemp(prefix="aip-keys-")  # 0700
            write_secret(os.path.join(self._key_dir, "model-server.key"), self.api_key)
        return ["--api-key-file", os.path.join(self._key_dir, "model-server.key")]

    def place(self, service_id: str, port: int | None, taken: set[int]) -> tuple[int, str]:
        if port:
            if port in taken or not port_is_free(self.host, port):
                raise PortInUse(f"port {port} is already in use")
        else:
            port = free_port(self.host)
        return port, f"http://{self.host}:{port}"

    def start(self, service: Service, log_path: Path) -> int | None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **scrubbed_env(),
            SERVICE_ENV: service.id,
            PARENT_ENV: str(os.getpid()),
            "PYTHONUNBUFFERED": "1",
        }
        if self.storage_options:
            env[STORAGE_OPTIONS_ENV] = json.dumps(self.storage_options)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ai_platform.serving.model_server",
                    "--model-path",
                    service.model_path,
                    "--model-name",  # OIP clients address the model by the service's name
                    service.name,
                    "--host",
                    self.host,
                    "--port",
                    str(service.port),
                    "--device",
                    service.device,
                    *self._key_file(),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self._procs[service.id] = proc
        return proc.pid

    def exit_status(self, service: Service) -> str | None:
        proc = self._procs.get(service.id)
        if proc is None:
            return "not running"
        code = proc.poll()
        if code is None:
            return None
        if code < 0:
            return f"model server killed by signal {signal.Signals(-code).name}"
        return f"model server exited with code {code}"

    def stop(self, service: Service) -> None:
        proc = self._procs.pop(service.id, None)
        if proc is not None and proc.poll() is None:
            signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        kill_marked(SERVICE_ENV, service.id)

    def reclaim(self, service: Service) -> None:
        kill_marked(SERVICE_ENV, service.id)

    def close(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                signal_group(proc.pid, signal.SIGTERM)
        for proc in self._procs.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                signal_group(proc.pid, signal.SIGKILL)
        self._procs.clear()
        if self._key_dir is not None:
            shutil.rmtree(self._key_dir, ignore_errors=True)
            self._key_dir = None
