"""AI Platform settings: environment variables with the ``AIP_`` prefix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from serverkit.lakefs import resolve_storage_options


class AIPlatformSettings(BaseSettings):
    """Every knob of the AI Platform; built once and passed to ``create_app``."""

    model_config = SettingsConfigDict(env_prefix="AIP_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = 8000
    data_platform_url: str = Field("http://127.0.0.1:8001", description="Data Platform base URL.")
    state_dir: str = Field(
        "./lance_storage/_ai_platform",
        description="Inference-service records (Lance): a path, 'file://...' or 's3://...'.",
    )
    state_storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="Lance storage options for state_dir (JSON object in the environment).",
    )
    lake_storage_options: dict[str, str] | None = Field(
        None,
        description="Lance storage options for the lake's models (JSON object in the "
        "environment), where the model check and the replicas open them; unset: "
        "state_storage_options (the state usually lives in the lake).",
    )
    log_dir: Path | None = Field(
        None,
        description="Model-server logs, on this machine's disk; unset: <state_dir>/logs when "
        "state_dir is local, else ./.aip-logs.",
    )
    api_key: str | None = Field(
        None, description="When set, requests need 'Bearer <key>' (unset: DP_API_KEY's value)."
    )
    dp_api_key: str | None = Field(
        None,
        validation_alias=AliasChoices("dp_api_key", "DP_API_KEY"),
        description="The Data Platform's key, if it was given to this service too.",
    )
    data_platform_api_key: str | None = Field(
        None, description="The key sent to the Data Platform (unset: DP_API_KEY, then api_key)."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names requests may carry besides loopback and the bound host "
        "(JSON list; '*' allows any).",
    )
    max_body_bytes: int = Field(16 * 1024 * 1024, gt=0, description="Largest request body.")
    log_requests: bool = Field(
        False, description="Log one line per request and per upstream call (off: errors only)."
    )
    serving_host: str = Field("127.0.0.1", description="Address model servers bind.")
    serving_start_timeout: float = Field(60.0, gt=0, description="Seconds for a model to load.")
    dp_connect_timeout: float = Field(2.0, gt=0, description="Seconds to connect to the DP.")
    dp_read_timeout: float = Field(
        10.0, gt=0, description="Seconds for the Data Platform to answer a read (GET)."
    )
    dp_write_timeout: float = Field(
        30.0, gt=0, description="Seconds for the Data Platform to answer a write (POST, DELETE)."
    )
    predict_timeout: float = Field(
        30.0, gt=0, description="Seconds for a model server to answer one prediction."
    )
    health_probe_interval: float = Field(
        0.5, gt=0, description="Seconds between health probes of each model server."
    )
    health_probe_timeout: float = Field(
        1.0, gt=0, description="Seconds a model server has to answer a health probe."
    )
    health_probe_failures: int = Field(
        2, ge=1, description="Failed probes in a row that make a service unhealthy."
    )
    alias_poll_interval: float = Field(
        5.0,
        ge=0,
        description="Seconds between checks of the aliases services follow: an alias moved "
        "elsewhere (at the Data Platform, by another client) rolls them within this (0: off; "
        "a move through this service rolls them at once).",
    )
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
    ray_replicas: int = Field(
        1, ge=1, le=64, description="runtime=ray: replicas of each service (Ray Serve)."
    )
    ray_replicas_per_node: int | None = Field(
        None,
        ge=1,
        description="runtime=ray: at most this many replicas of a service on one node "
        "(1: one per node); unset: Ray places them.",
    )
    ray_direct_ingress: bool = Field(
        True,
        description="runtime=ray, a Ray the platform starts: Ray Serve's direct ingress (each "
        "replica answers on its own port, the endpoint; the platform route spreads requests "
        "over the replicas). A Ray we join keeps its own setting.",
    )
    serve_config: Path | None = Field(
        None,
        description="runtime=ray: Ray Serve's settings file (a ServeDeploySchema, YAML); "
        "its http_options and proxy_location start Serve.",
    )

    @model_validator(mode="after")
    def _either_key(self) -> AIPlatformSettings:
        """Either key protects both services; an empty one is none."""
        self.api_key = self.api_key or self.dp_api_key or None
        self.data_platform_api_key = (
            self.data_platform_api_key or self.dp_api_key or self.api_key or None
        )
        return self

    @field_validator("state_dir", mode="before")
    @classmethod
    def _path_as_text(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @property
    def state_uri(self) -> str:
        """``state_dir`` as Lance takes it: an absolute path when local, else the URI as is."""
        local = local_path(self.state_dir)
        return str(local.resolve()) if local is not None else self.state_dir.rstrip("/")

    @property
    def model_storage_options(self) -> dict[str, str]:
        """What opens the lake's models: the lake's own options, else the state's (the
        AWS_* environment filling what is unset, as at the Data Platform)."""
        if self.lake_storage_options is not None:
            return resolve_storage_options(self.lake_storage_options)
        return self.state_options

    @property
    def state_options(self) -> dict[str, str]:
        """The state dir's storage options; on object storage the AWS_* environment fills
        what is unset, as at the Data Platform."""
        if local_path(self.state_dir) is not None:
            return dict(self.state_storage_options)
        return resolve_storage_options(self.state_storage_options)

    @property
    def logs_dir(self) -> Path:
        """Where model-server logs go: always a local directory (the servers run here)."""
        if self.log_dir is not None:
            return self.log_dir
        local = local_path(self.state_dir)
        return (local / "logs") if local is not None else Path(".aip-logs")


def local_path(uri: str) -> Path | None:
    """The local path a state URI names (a plain path or ``file://``), or None (object storage)."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme and len(parts.scheme) > 1:  # one letter: a Windows drive, still a path
        return None
    return Path(uri)
