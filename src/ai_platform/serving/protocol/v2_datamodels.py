"""The Open Inference Protocol v2's JSON shapes (KServe ``v2_datamodels``, Triton's REST API).

Unknown fields and ``parameters`` are accepted and ignored, as the protocol asks.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RequestInput(_Open):
    """One input tensor: ``data`` (nested or flat, row-major), or binary data after the
    JSON header when ``parameters.binary_data_size`` is set."""

    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    data: list[Any] | None = None


class RequestOutput(_Open):
    """An output the client wants; ``parameters.binary_data`` asks for it in binary."""

    name: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class InferenceRequest(_Open):
    id: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ModelReady(BaseModel):
    name: str
    ready: bool
