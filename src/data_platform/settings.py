"""Data Platform settings: environment variables with the ``DP_`` prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DataPlatformSettings(BaseSettings):
    """Every knob of the Data Platform; built once and passed to ``create_app``."""

    model_config = SettingsConfigDict(env_prefix="DP_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8001
    lake_root: Path = Field(Path("./lance_storage"), description="Root of the Lance lake.")
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
    task_timeout_seconds: float | None = Field(None, gt=0, description="Optional time limit.")
    task_memory_mb: int | None = Field(
        None, gt=0, description="Optional limit on the resident memory of a task's process tree."
    )
    log_max_bytes: int = Field(50 * 1024 * 1024, gt=0, description="Per-task log cap.")
    api_key: str | None = Field(None, description="When set, requests need 'Bearer <key>'.")
    max_body_bytes: int = Field(1024 * 1024, gt=0, description="Largest request body.")
    compact_every_commits: int = Field(200, ge=1, description="Compact task records this often.")
    housekeeping_interval_seconds: float = Field(
        3600.0, gt=0, description="How often old dataset and model versions are cleaned."
    )
    version_retention_hours: float = Field(
        168.0, ge=0, description="Versions older than this are removed unless a model pins them."
    )

    @property
    def task_daft_runner(self) -> str:
        return self.daft_runner or ("ray" if self.runtime == "ray" else "native")
