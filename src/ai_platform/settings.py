"""AI Platform settings: environment variables with the ``AIP_`` prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AIPlatformSettings(BaseSettings):
    """Every knob of the AI Platform; built once and passed to ``create_app``."""

    model_config = SettingsConfigDict(env_prefix="AIP_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    data_platform_url: str = Field("http://127.0.0.1:8001", description="Data Platform base URL.")
    state_dir: Path = Field(
        Path("./lance_storage/_ai_platform"), description="Inference-service records (Lance)."
    )
    api_key: str | None = Field(
        None, description="When set, requests need 'Bearer <key>'; also sent to the Data Platform."
    )
    max_body_bytes: int = Field(16 * 1024 * 1024, gt=0, description="Largest request body.")
    serving_host: str = Field("127.0.0.1", description="Address model servers bind.")
    serving_start_timeout: float = Field(60.0, gt=0, description="Seconds for a model to load.")
    upstream_timeout: float = Field(60.0, gt=0, description="HTTP timeout towards other servers.")
    runtime: Literal["local", "ray"] = Field(
        "local", description="'local' (model servers as processes) or 'ray' (Ray Serve)."
    )
    ray_address: str | None = Field(
        None, description="runtime=ray: join this Ray cluster; unset: start a private one."
    )
    ray_auth_token_path: Path | None = Field(
        None, description="runtime=ray: Ray token file for ray_address (else Ray's own lookup)."
    )
    ray_serve_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="runtime=ray: Ray Serve's HTTP port if we start Serve (0: a free one); "
        "a Serve already running on the cluster keeps its own.",
    )
    ray_replica_cpus: float = Field(
        0.0, ge=0, description="runtime=ray: CPUs each model replica reserves in Ray."
    )
