"""Datasets and models: the Data Platform's, passed through typed, with the same envelope."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ai_platform.api.deps import Client
from lakeapi.names import check_name
from lakeapi.schemas import Dataset, DatasetVersion, Model
from serverkit.paging import Cursor, Limit, set_next_cursor

datasets = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])
models = APIRouter(prefix="/api/v1/models", tags=["models"])


@datasets.get("", response_model=list[Dataset])
async def list_datasets(
    client: Client, response: Response, limit: Limit = None, cursor: Cursor = None
) -> list[Dataset]:
    """List the datasets in the lake by name, a page at a time (``X-Next-Cursor``)."""
    datasets, next_cursor = await client.list_datasets(limit, cursor)
    set_next_cursor(response, next_cursor)
    return datasets


@datasets.get("/{dataset_id}", response_model=Dataset)
async def get_dataset(dataset_id: str, client: Client) -> Dataset:
    """One dataset: path, schema, rows, size, Lance version."""
    return await client.get_dataset(check_name(dataset_id, "dataset id"))


@datasets.get("/{dataset_id}/versions", response_model=list[DatasetVersion])
async def dataset_versions(dataset_id: str, client: Client) -> list[DatasetVersion]:
    """The dataset's Lance versions, oldest first."""
    return await client.dataset_versions(check_name(dataset_id, "dataset id"))


@datasets.delete("/{dataset_id}", status_code=204)
async def delete_dataset(dataset_id: str, client: Client) -> Response:
    """Delete a dataset and all its versions."""
    await client.delete_dataset(check_name(dataset_id, "dataset id"))
    return Response(status_code=204)


@models.get("", response_model=list[Model])
async def list_models(
    client: Client, response: Response, limit: Limit = None, cursor: Cursor = None
) -> list[Model]:
    """List the models by name, a page at a time (``X-Next-Cursor``); per-epoch histories
    are left to ``GET /models/{id}``."""
    models, next_cursor = await client.list_models(limit, cursor)
    set_next_cursor(response, next_cursor)
    return models


@models.get("/{model_id}", response_model=Model)
async def get_model(model_id: str, client: Client) -> Model:
    """One model with its metrics, params, per-epoch history and source dataset version."""
    return await client.get_model(check_name(model_id, "model id"))


@models.delete("/{model_id}", status_code=204)
async def delete_model(model_id: str, client: Client) -> Response:
    """Delete a model and all its versions."""
    await client.delete_model(check_name(model_id, "model id"))
    return Response(status_code=204)
