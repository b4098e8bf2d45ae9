"""Lineage and reproduce: from a model version back to the raw files, and forward again.

The chain is read from what the platform recorded, not guessed: the model record names its
source dataset and exact version; task records say what each task ran (script and its sha256,
params), on which input version or raw files (checksums), and which version it wrote. The
writers of a dataset version are followed back through every task that added a version on top
(a batch inference, an append) to the one that created it.
"""

from __future__ import annotations

from typing import Any

from data_platform import provenance
from data_platform.manager import TaskManager
from data_platform.store import Lake
from lakeapi.errors import (
    Conflict,
    DatasetNotFound,
    InvalidRequest,
    PlatformError,
    VersionNotFound,
)
from lakeapi.lakeops import Lineage, ReproduceCreate, Reproduction, TaskRef
from lakeapi.names import Ref
from lakeapi.schemas import Model, Task, TaskCreate, TaskStatus

MAX_CHAIN = 64


class LakeConflict(Conflict):
    """A 409 with its own code (``SCRIPT_CHANGED``, ``DATASET_CHANGED``, ``LINEAGE_MISSING``)."""


def ref(task: Task) -> TaskRef:
    return TaskRef.model_validate(task.model_dump())


def _completed(manager: TaskManager, output: str) -> list[Task]:
    return [
        t
        for t in manager.list(status=TaskStatus.COMPLETED)
        if t.output == output and t.output_version is not None
    ]


def training_task(manager: TaskManager, model: Model) -> Task | None:
    """The task that wrote this model version."""
    recorded = model.info.get("task_id") or (model.info.get("task") or {}).get("id")
    if recorded:
        try:
            return manager.get(str(recorded))
        except PlatformError:
            pass
    for task in _completed(manager, f"models/{model.id}"):
        if task.output_version == model.version:
            return task
    return None


def producers(manager: TaskManager, dataset: str, version: int) -> list[Task]:
    """The tasks whose versions make up ``datasets/NAME`` at ``version``, newest first."""
    writers = sorted(
        _completed(manager, f"datasets/{dataset}"),
        key=lambda t: t.output_version or 0,
        reverse=True,
    )
    chain: list[Task] = []
    upto: int | None = version
    for task in writers:
        if upto is None or len(chain) >= MAX_CHAIN:
            break
        if task.output_version is not None and task.output_version <= upto:
            chain.append(task)
            upto = task.output_version_before  # None: it created the dataset
    return chain


def lineage(manager: TaskManager, lake: Lake, name: str) -> Lineage:
    """Model version -> training task -> dataset version -> its writers, in one answer.

    Raises:
        ModelNotFound: no such model.
    """
    model = lake.get_model(name)
    missing: list[str] = []
    training = training_task(manager, model)
    if training is None:
        missing.append("the training task (the model was not written by a task of this lake)")
    elif training.script_sha256 is None:
        missing.append("the training script's sha256 (submitted before it was recorded)")
    source: dict[str, Any] = model.source or {}
    dataset, version = source.get("name"), source.get("version")
    chain: list[Task] = []
    if dataset is None or version is None:
        missing.append("the source dataset version (the model record does not name it)")
    else:
        chain = producers(manager, str(dataset), int(version))
        if not chain:
            missing.append(f"the task that wrote datasets/{dataset} version {version}")
        elif chain[-1].output_version_before is not None:
            missing.append(f"the task that created datasets/{dataset}")
        for task in chain:
            if task.input and not task.input_checksums and task.input_version is None:
                missing.append(f"the input checksums of {task.id}")
    return Lineage(
        model=name,
        model_version=model.version,
        metrics=model.metrics,
        training=ref(training) if training else None,
        dataset=str(dataset) if dataset is not None else None,
        dataset_path=source.get("path"),
        dataset_version=int(version) if version is not None else None,
        producers=[ref(t) for t in chain],
        missing=missing,
    )


def reproduce(manager: TaskManager, lake: Lake, name: str, req: ReproduceCreate) -> Reproduction:
    """Submit a retraining of the model's latest version: same script, params and dataset
    version, into a new version of the same model.

    Raises:
        ModelNotFound: no such model.
        LakeConflict: ``lineage_missing`` (no training task or dataset version recorded),
            ``script_changed`` (its sha256 differs, or was not recorded; unless
            ``use_current_script``), ``dataset_changed`` (that dataset version is gone).
    """
    lin = lineage(manager, lake, name)
    training = lin.training
    if training is None or lin.dataset is None or lin.dataset_version is None:
        raise LakeConflict(
            f"model '{name}' cannot be reproduced: " + "; ".join(lin.missing) + " not recorded",
            code="LINEAGE_MISSING",
        )
    try:
        current = provenance.sha256_file(manager.resolve.script(training.script))
    except InvalidRequest:
        current = None
    changed = current is None or current != training.script_sha256
    if changed and not req.use_current_script:
        why = (
            "no longer exists"
            if current is None
            else "had no recorded sha256"
            if training.script_sha256 is None
            else f"changed (sha256 {training.script_sha256[:12]}... -> {current[:12]}...)"
        )
        raise LakeConflict(
            f"script {training.script!r} {why}; pass use_current_script: true to run it anyway",
            code="SCRIPT_CHANGED",
        )
    create = TaskCreate(
        script=training.script,
        input=_pinned(lake, lin.dataset, lin.dataset_version),
        output=training.output,
        params=training.params,
        kind=training.kind,
        name=req.name,
    )
    task = manager.submit(create)
    return Reproduction(
        task=task,
        model=name,
        original_version=lin.model_version,
        original_metrics=lin.metrics,
        dataset=lin.dataset,
        dataset_version=lin.dataset_version,
        script_changed=changed,
    )


def _pinned(lake: Lake, dataset: str, version: int) -> str:
    """The input that names exactly ``version`` of the dataset (``datasets/NAME@V``).

    Raises:
        LakeConflict: ``DATASET_CHANGED``: that version (or the dataset) is gone, e.g.
            removed by housekeeping; the rows the model was trained on cannot be read.
    """
    try:
        lake.resolve(Ref("datasets", dataset, version=version))
    except (VersionNotFound, DatasetNotFound):
        raise LakeConflict(
            f"datasets/{dataset} version {version}, which the model was trained on, no longer "
            "exists (deleted, or removed by housekeeping): it cannot be reproduced exactly",
            code="DATASET_CHANGED",
        ) from None
    return f"datasets/{dataset}@{version}"


def reproduction(manager: TaskManager, lake: Lake, name: str, task_id: str) -> Reproduction:
    """A reproduce task and, once it completed, both versions' metrics side by side.

    Raises:
        TaskNotFound: no such task.
        InvalidRequest: the task did not write this model.
    """
    from lakekit import modelrec

    task = manager.get(task_id)
    if task.output != f"models/{name}":
        raise InvalidRequest(f"task {task_id} did not write models/{name}")
    path = lake.path_of("models", name)
    before = task.output_version_before
    original = (
        modelrec.read_model_info(path, before, lake.storage_options or None) if before else {}
    )
    source = original.get("source") or {}
    answer = Reproduction(
        task=task,
        model=name,
        original_version=int(original.get("version") or 0),
        original_metrics=original.get("metrics") or {},
        dataset=source.get("name"),
        dataset_version=source.get("version"),
    )
    if task.status is not TaskStatus.COMPLETED or task.output_version is None:
        return answer
    new = modelrec.read_model_info(path, task.output_version, lake.storage_options or None)
    metrics = new.get("metrics") or {}
    return answer.model_copy(
        update={
            "new_version": task.output_version,
            "new_metrics": metrics,
            "differences": {
                k: float(v) - float(answer.original_metrics[k])
                for k, v in metrics.items()
                if _number(v) and _number(answer.original_metrics.get(k))
            },
        }
    )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
