"""A model's lineage, and reproducing it from its exact inputs."""

from __future__ import annotations

from fastapi import APIRouter

from data_platform import lineage as chain
from data_platform.api.deps import LakeDep, Manager
from lakeapi.lakeops import Lineage, ReproduceCreate, Reproduction

router = APIRouter(prefix="/api/v1/models", tags=["lineage"])


@router.get("/{model_id}/lineage", response_model=Lineage)
def get_lineage(model_id: str, manager: Manager, lake: LakeDep) -> Lineage:
    """Model version -> training task -> dataset version -> the tasks that wrote it."""
    return chain.lineage(manager, lake, model_id)


@router.post("/{model_id}/reproduce", response_model=Reproduction, status_code=201)
def reproduce(
    model_id: str, manager: Manager, lake: LakeDep, req: ReproduceCreate | None = None
) -> Reproduction:
    """Retrain from the same dataset version, script and params into a new model version;
    409 SCRIPT_CHANGED when the script changed (unless use_current_script)."""
    return chain.reproduce(manager, lake, model_id, req or ReproduceCreate())


@router.get("/{model_id}/reproductions/{task_id}", response_model=Reproduction)
def get_reproduction(model_id: str, task_id: str, manager: Manager, lake: LakeDep) -> Reproduction:
    """A reproduce task, and once it completed both versions' metrics and their differences."""
    return chain.reproduction(manager, lake, model_id, task_id)
