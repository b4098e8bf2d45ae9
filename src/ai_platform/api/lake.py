"""Datasets and models: the Data Platform's, passed through typed, with the same envelope."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ai_platform.api.deps import Client, Serving
from lakeapi.names import check_name, check_tag
from lakeapi.schemas import (
    Dataset,
    DatasetVersion,
    Model,
    ModelVersion,
    Restored,
    RestoreRequest,
    Tag,
    TagCreate,
    TagMove,
)
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
async def delete_dataset(dataset_id: str, client: Client, force: bool = False) -> Response:
    """Delete a dataset and all its versions; 409 IN_USE while a model was trained on it,
    unless ``?force=true``."""
    await client.delete_dataset(check_name(dataset_id, "dataset id"), force)
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


@models.get("/{model_id}/versions", response_model=list[ModelVersion])
async def model_versions(model_id: str, client: Client) -> list[ModelVersion]:
    """The model's versions, oldest first, each with its metrics, source and provenance."""
    return await client.model_versions(check_name(model_id, "model id"))


@models.delete("/{model_id}", status_code=204)
async def delete_model(model_id: str, client: Client, force: bool = False) -> Response:
    """Delete a model and all its versions; 409 IN_USE while a service runs it, unless
    ``?force=true``."""
    await client.delete_model(check_name(model_id, "model id"), force)
    return Response(status_code=204)


# -- tags and restore: the same routes for both kinds --------------------------------------


def _add_tag_routes(router: APIRouter, kind: str) -> None:
    what = kind[:-1]

    @router.get("/{name}/tags", response_model=list[Tag], name=f"list_{what}_tags")
    async def list_tags(name: str, client: Client) -> list[Tag]:
        """The tags, by name, with the version each is on."""
        return await client.tags(kind, check_name(name, f"{what} id"))

    @router.post("/{name}/tags", response_model=Tag, status_code=201, name=f"create_{what}_tag")
    async def create_tag(name: str, req: TagCreate, client: Client, serving: Serving) -> Tag:
        """Tag a version (409 ALREADY_EXISTS if the tag exists: move it with PUT)."""
        tag = await client.create_tag(kind, check_name(name, f"{what} id"), req.tag, req.version)
        if kind == "models":
            await serving.follow(name, tag.name, tag.version)
        return tag

    @router.put("/{name}/tags/{tag}", response_model=Tag, name=f"move_{what}_tag")
    async def move_tag(name: str, tag: str, req: TagMove, client: Client, serving: Serving) -> Tag:
        """Put the tag on a version, creating or moving it. A model's services that follow
        this alias roll to that version before the answer comes."""
        moved = await client.move_tag(
            kind, check_name(name, f"{what} id"), check_tag(tag), req.version
        )
        if kind == "models":
            await serving.follow(name, moved.name, moved.version)
        return moved

    @router.delete("/{name}/tags/{tag}", status_code=204, name=f"delete_{what}_tag")
    async def delete_tag(name: str, tag: str, client: Client) -> Response:
        """Remove the tag; the version stays (a service following it keeps its version)."""
        await client.delete_tag(kind, check_name(name, f"{what} id"), check_tag(tag))
        return Response(status_code=204)

    @router.post("/{name}/restore", response_model=Restored, name=f"restore_{what}")
    async def restore(name: str, req: RestoreRequest, client: Client) -> Restored:
        """Make an earlier version's content the latest, as a new version (nothing is
        rewritten)."""
        return await client.restore(kind, check_name(name, f"{what} id"), req.version)


_add_tag_routes(datasets, "datasets")
_add_tag_routes(models, "models")
