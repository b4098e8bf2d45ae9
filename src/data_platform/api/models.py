from __future__ import annotations

from fastapi import APIRouter, Response

from data_platform.api.deps import LakeDep
from data_platform.api.tags import add_tag_routes
from lakeapi.schemas import Model, ModelVersion
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


@router.get("/{model_id}/versions", response_model=list[ModelVersion])
def list_versions(model_id: str, lake: LakeDep) -> list[ModelVersion]:
    """The model's versions, oldest first, each with its metrics, source and provenance."""
    return lake.model_versions(model_id)


@router.delete("/{model_id}", status_code=204)
def delete_model(model_id: str, lake: LakeDep, force: bool = False) -> Response:
    """Delete a model and all its versions; 409 IN_USE while a service runs it, unless
    ``?force=true``."""
    lake.delete_model(model_id, force)
    return Response(status_code=204)


add_tag_routes(router, "models")
