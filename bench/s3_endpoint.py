"""A local S3 endpoint for the Level 3 rows: ``lakestack.local_s3``'s ``weed mini`` (as the
Level 3 tests start it), ready once a Lance write to its bucket succeeds. Clients always get
endpoint, region and keys, so no SDK goes looking for AWS (instance metadata, ~/.aws).
"""

from __future__ import annotations

from pathlib import Path

from lakestack.local_s3 import WeedMini, unavailable

__all__ = ["Endpoint", "unavailable"]


class Endpoint(WeedMini):
    """``weed mini`` under ``root`` with one bucket; a context manager."""

    def __init__(self, root: Path, bucket: str = "lake") -> None:
        super().__init__(root, bucket, key_prefix="AKBENCH")

    @property
    def env(self) -> dict[str, str]:
        """The same settings as the environment variables Lance reads by default (for a
        bare process given only a URI), and no instance-metadata lookups."""
        return {
            **{k.upper(): v for k, v in self.storage_options.items()},
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def __enter__(self) -> Endpoint:
        self.start(self._bucket_writable, timeout=60.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _bucket_writable(self) -> bool:
        """The gateway answers before the bucket exists: ready once Lance can write there."""
        import lance
        import pyarrow as pa

        lance.write_dataset(
            pa.table({"x": [1]}),
            self.uri("_ready.lance"),
            mode="overwrite",
            storage_options=self.storage_options,
        )
        return True
