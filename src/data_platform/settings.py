"""Data Platform settings: environment variables with the ``DP_`` prefix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_core import core_schema
from pydantic_settings import BaseSettings, SettingsConfigDict

from serverkit.lakefs import is_local, normalize_uri, resolve_storage_options

DEFAULT_TASK_TIME_LIMIT = 24 * 3600.0


class LakeUri(str):
    """The lake's URI, normalised (``serverkit.lakefs.normalize_uri``). ``/`` joins a name
    under it, so code written when the lake was a ``Path`` (``settings.lake_root /
    "_ai_platform"``) keeps working for local lakes."""

    __slots__ = ()

    def __truediv__(self, name: str) -> str:
        return f"{self.rstrip('/')}/{name}"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(
            _fspath, core_schema.no_info_after_validator_function(cls.parse, handler(str))
        )

    @classmethod
    def parse(cls, value: str) -> LakeUri:
        return cls(normalize_uri(value))


def _fspath(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


class DataPlatformSettings(BaseSettings):
    """Every knob of the Data Platform; built once and passed to ``create_app``."""

    model_config = SettingsConfigDict(env_prefix="DP_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = 8001
    lake_root: LakeUri = Field(
        LakeUri("./lance_storage"),
        validate_default=True,
        description="The Lance lake: a local path, file:///path or s3://bucket/prefix.",
    )
    lake_storage_options: dict[str, str] = Field(
        {},
        description="JSON object of Lance storage options (aws_access_key_id, "
        "aws_secret_access_key, aws_endpoint, aws_region, allow_http); AWS_* vars fill gaps.",
    )
    work_dir: Path | None = Field(
        None,
        description="Local folder for task logs and scratch; unset: <lake>/_system for a "
        "local lake, else ./.dp-work.",
    )
    scripts_root: Path = Field(Path("./scripts"), description="Only scripts under it can run.")
    data_root: Path = Field(
        Path("./data"), description="Raw inputs (a task input that is not a lake name) live here."
    )
    runtime: Literal["local", "ray"] = Field("local", description="Level 1 local or Level 2 Ray.")
    ray_address: str | None = Field(
        None, description="runtime=ray: join this Ray cluster; unset: start a private one."
    )
    ray_auth_token_path: Path | None = Field(
        None, description="runtime=ray: Ray token file for ray_address (else Ray's own lookup)."
    )
    daft_runner: Literal["native", "ray"] | None = Field(
        None,
        description="Daft runner of each task's process; unset: ray with runtime=ray, else native.",
    )
    max_concurrent_tasks: int | None = Field(
        None, ge=1, description="Tasks at once; unset: 1 (local) or the Ray cluster's CPUs (ray)."
    )
    cancel_grace_seconds: float = Field(5.0, ge=0, description="SIGTERM to SIGKILL delay.")
    task_time_limit: float | None = Field(
        DEFAULT_TASK_TIME_LIMIT,
        gt=0,
        description="Longest a task may run, in seconds (default 24 h); 'none': no limit.",
    )
    task_timeout_seconds: float | None = Field(
        None, gt=0, description="Older name of the time limit; when set it wins."
    )
    task_memory_mb: int | None = Field(
        None, gt=0, description="Optional limit on the resident memory of a task's process tree."
    )
    log_max_bytes: int = Field(50 * 1024 * 1024, gt=0, description="Per-task log cap.")
    api_key: str | None = Field(
        None,
        # Either key protects both services: with only the AI Platform's key set, the Data
        # Platform requires it too (the AI Platform sends it here).
        validation_alias=AliasChoices("DP_API_KEY", "AIP_API_KEY"),
        description="When set, requests need 'Bearer <key>'; unset: AIP_API_KEY stands in.",
    )
    max_body_bytes: int = Field(1024 * 1024, gt=0, description="Largest request body.")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names accepted besides loopback's and DP_HOST ('*': any); others "
        "get 400 (DNS rebinding).",
    )
    log_requests: bool = Field(False, description="Log one line per request (off: errors only).")
    compact_every_commits: int = Field(200, ge=1, description="Compact task records this often.")
    housekeeping_interval_seconds: float = Field(
        3600.0, gt=0, description="How often old dataset and model versions are cleaned."
    )
    version_retention_hours: float = Field(
        168.0, ge=0, description="Versions older than this are removed unless a model pins them."
    )

    @field_validator("task_time_limit", mode="before")
    @classmethod
    def _no_limit(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("none", "off", "0", ""):
            return None
        return value

    @property
    def time_limit_seconds(self) -> float | None:
        """The time limit tasks run under (None: none)."""
        if self.task_timeout_seconds is not None:
            return self.task_timeout_seconds
        return self.task_time_limit

    @property
    def storage_options(self) -> dict[str, str]:
        """The lake's storage options, with the AWS_* environment filling what is unset."""
        if is_local(self.lake_root):
            return dict(self.lake_storage_options)
        return resolve_storage_options(self.lake_storage_options)

    @property
    def resolved_work_dir(self) -> Path:
        if self.work_dir is not None:
            return self.work_dir.resolve()
        if is_local(self.lake_root):
            return Path(self.lake_root) / "_system"
        return Path(".dp-work").resolve()

    @property
    def task_daft_runner(self) -> str:
        return self.daft_runner or ("ray" if self.runtime == "ray" else "native")
