"""Similar-example search and vector indexes on a dataset's embedding column."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from data_platform.search import Searcher, searcher_of
from lakeapi.lakeops import IndexCreate, IndexInfo, SearchCreate, SearchResult

router = APIRouter(prefix="/api/v1/datasets", tags=["search"])


async def _searcher(request: Request) -> Searcher:
    return searcher_of(request.app.state.lake)


SearcherDep = Annotated[Searcher, Depends(_searcher)]


@router.post("/{dataset_id}/search", response_model=SearchResult)
def search(dataset_id: str, req: SearchCreate, searcher: SearcherDep) -> SearchResult:
    """The k nearest rows to a vector, a row, or an input a model embeds; flat without an
    index, the index once built."""
    return searcher.search(dataset_id, req)


@router.post("/{dataset_id}/indexes", response_model=IndexInfo, status_code=201)
def build_index(dataset_id: str, req: IndexCreate, searcher: SearcherDep) -> IndexInfo:
    """Build (or replace) a vector index on a column; answers once it is committed."""
    return searcher.build_index(dataset_id, req)


@router.get("/{dataset_id}/indexes", response_model=list[IndexInfo])
def list_indexes(dataset_id: str, searcher: SearcherDep) -> list[IndexInfo]:
    """The dataset's indexes."""
    return searcher.indexes(dataset_id)
