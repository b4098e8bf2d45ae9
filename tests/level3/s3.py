"""A real S3 endpoint for tests: SeaweedFS's ``weed mini`` on loopback, started by
``lakestack.local_s3`` (the bench's Level 3 rows start the same), and a client side that
probes it without an AWS SDK (SigV4 requests, listings, Daft's ``IOConfig``)."""

from __future__ import annotations

import datetime
import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from lakestack.local_s3 import WeedMini, storage_options


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
        return storage_options(self.endpoint, self.region, self.access_key, self.secret_key)

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
        self.server = WeedMini(root, bucket, key_prefix="AKL3")
        self.endpoint = S3Endpoint(
            endpoint=self.server.url,
            region=self.server.region,
            access_key=self.server.access_key,
            secret_key=self.server.secret_key,
            bucket=bucket,
        )

    def start(self, timeout: float = 30.0) -> S3Endpoint:
        self.server.start(lambda: self.endpoint.request("HEAD").status_code == 200, timeout)
        return self.endpoint

    def stop(self) -> None:
        self.server.stop()
