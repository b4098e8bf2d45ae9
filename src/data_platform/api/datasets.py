from __future__ import annotations

from fastapi import APIRouter, Response

from data_platform.api.deps import LakeDep
from data_platform.api.tags import add_tag_routes
from lakeapi.schemas import Dataset, DatasetVersion
from serverkit.paging import Cursor, Limit, set_next_cursor

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])


@router.get("", response_model=list[Dataset])
def list_datasets(
    lake: LakeDep, response: Response, limit: Limit = None, cursor: Cursor = None
) -> list[Dataset]:
    """List the datasets in the lake by name, a page at a time (``X-Next-Cursor``)."""
    datasets, next_cursor = lake.list_datasets(limit, cursor)
    set_next_cursor(response, next_cursor)
    return datasets


@router.get("/{dataset_id}", response_model=Dataset)
def get_dataset(dataset_id: str, lake: LakeDep) -> Dataset:
    """One dataset: path, schema, rows, size, Lance version."""
    return lake.get_dataset(dataset_id)


@router.get("/{dataset_id}/versions", response_model=list[DatasetVersion])
def list_versions(dataset_id: str, lake: LakeDep) -> list[DatasetVersion]:
    """The dataset's Lance versions, oldest first."""
    return lake.dataset_versions(dataset_id)


@router.delete("/{dataset_id}", status_code=204)
def delete_dataset(dataset_id: str, lake: LakeDep, force: bool = False) -> Response:
    """Delete a dataset and all its versions; 409 IN_USE while a model was trained on it,
    unless ``?force=true``."""
    lake.delete_dataset(dataset_id, force)
    return Response(status_code=204)


add_tag_routes(router, "datasets")
