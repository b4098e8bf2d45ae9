"""Datasets and models: the Data Platform's, passed through with the same envelope."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from ai_platform.api.deps import Client
from lakeapi.names import check_name

datasets = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])
models = APIRouter(prefix="/api/v1/models", tags=["models"])


@datasets.get("")
def list_datasets(client: Client) -> list[dict[str, Any]]:
    """List the datasets in the lake."""
    return client.list_datasets()


@datasets.get("/{dataset_id}")
def get_dataset(dataset_id: str, client: Client) -> dict[str, Any]:
    """One dataset: path, schema, rows, size, Lance version."""
    return client.get_dataset(check_name(dataset_id, "dataset id"))


@datasets.get("/{dataset_id}/versions")
def dataset_versions(dataset_id: str, client: Client) -> list[dict[str, Any]]:
    """The dataset's Lance versions, oldest first."""
    return client.dataset_versions(check_name(dataset_id, "dataset id"))


@datasets.delete("/{dataset_id}", status_code=204)
def delete_dataset(dataset_id: str, client: Client) -> Response:
    """Delete a dataset and all its versions."""
    client.delete_dataset(check_name(dataset_id, "dataset id"))
    return Response(status_code=204)


@models.get("")
def list_models(client: Client) -> list[dict[str, Any]]:
    """List the models in the lake."""
    return client.list_models()


@models.get("/{model_id}")
def get_model(model_id: str, client: Client) -> dict[str, Any]:
    """One model with its metrics, params, per-epoch history and source dataset version."""
    return client.get_model(check_name(model_id, "model id"))


@models.delete("/{model_id}", status_code=204)
def delete_model(model_id: str, client: Client) -> Response:
    """Delete a model and all its versions."""
    client.delete_model(check_name(model_id, "model id"))
    return Response(status_code=204)
