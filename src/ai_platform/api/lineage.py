"""A model's lineage and its reproduction: the Data Platform's, passed through typed."""

from __future__ import annotations

from fastapi import APIRouter

from ai_platform.api.deps import Client
from lakeapi.lakeops import Lineage, ReproduceCreate, Reproduction
from lakeapi.names import check_name

router = APIRouter(prefix="/api/v1/models", tags=["lineage"])


@router.get("/{model_id}/lineage", response_model=Lineage)
async def lineage(model_id: str, client: Client) -> Lineage:
    """Model version -> training task -> dataset version -> the tasks that wrote it."""
    return await client.lineage(check_name(model_id, "model id"))


@router.post("/{model_id}/reproduce", response_model=Reproduction, status_code=201)
async def reproduce(
    model_id: str, client: Client, req: ReproduceCreate | None = None
) -> Reproduction:
    """Retrain from the exact dataset version, script and params into a new model version;
    409 SCRIPT_CHANGED when the script changed (unless use_current_script)."""
    return await client.reproduce(check_name(model_id, "model id"), req or ReproduceCreate())


@router.get("/{model_id}/reproductions/{task_id}", response_model=Reproduction)
async def reproduction(model_id: str, task_id: str, client: Client) -> Reproduction:
    """The reproduce task and, once completed, both versions' metrics side by side."""
    check_name(task_id, "task id")
    return await client.reproduction(check_name(model_id, "model id"), task_id)
