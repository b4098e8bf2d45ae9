from __future__ import annotations

from fastapi import APIRouter, Response

from data_platform.api.deps import LakeDep
from lakeapi.schemas import Model
from serverkit.paging import Cursor, Limit, set_next_cursor

router = APIRouter(prefix="/api/v1/models", tags=["models"])


@router.get("", response_model=list[Model])
def list_models(
    lake: LakeDep, response: Response, limit: Limit = None, cursor: Cursor = None
) -> list[Model]:
    """List the models by name, a page at a time (``X-Next-Cursor``); per-epoch histories
    are left to ``GET /models/{id}``."""
    models, next_cursor = lake.list_models(limit, cursor)
    set_next_cursor(response, next_cursor)
    return [m.model_copy(update={"history": []}) for m in models]


@router.get("/{model_id}", response_model=Model)
def get_model(model_id: str, lake: LakeDep) -> Model:
    """One model: metrics, params, history, source dataset version, weight size."""
    return lake.get_model(model_id)


@router.delete("/{model_id}", status_code=204)
def delete_model(model_id: str, lake: LakeDep) -> Response:
    """Delete a model and all its versions."""
    lake.delete_model(model_id)
    return Response(status_code=204)
