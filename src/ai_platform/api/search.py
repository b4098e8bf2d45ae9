"""Similar-example search and vector indexes: the Data Platform's, passed through typed."""

from __future__ import annotations

from fastapi import APIRouter

from ai_platform.api.deps import Client
from lakeapi.lakeops import IndexCreate, IndexInfo, SearchCreate, SearchResult
from lakeapi.names import check_name, split_at

router = APIRouter(prefix="/api/v1/datasets", tags=["search"])


@router.post("/{dataset_id}/search", response_model=SearchResult)
async def search(dataset_id: str, req: SearchCreate, client: Client) -> SearchResult:
    """The k nearest rows to a vector, a row, or an input (an image) a model embeds;
    ``NAME@V`` or ``NAME@tag`` searches that version."""
    split_at(dataset_id, "dataset id")
    return await client.search(dataset_id, req)


@router.post("/{dataset_id}/indexes", response_model=IndexInfo, status_code=201)
async def build_index(dataset_id: str, req: IndexCreate, client: Client) -> IndexInfo:
    """Build (or replace) a vector index on an embedding column."""
    return await client.build_index(check_name(dataset_id, "dataset id"), req)


@router.get("/{dataset_id}/indexes", response_model=list[IndexInfo])
async def list_indexes(dataset_id: str, client: Client) -> list[IndexInfo]:
    """The dataset's indexes."""
    return await client.list_indexes(check_name(dataset_id, "dataset id"))
