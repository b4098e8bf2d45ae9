"""``aip ingest``, ``aip train`` and ``aip tasks``: submit, list, show, cancel, logs, wait."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.text import Text

from aip.cli.context import Context, UsageError
from aip.cli.exits import EXIT_OK
from aip.cli.output import history_table, seconds, status
from aip.cli.progress import describe_progress, follow_log, wait_for
from aip.client import TasksAPI
from aip.errors import TaskAlreadyFinished, TaskFailedError, TaskTimeoutError
from aip.handles import TaskHandle
from aip.records import Task


def parse_params(pairs: Sequence[str] | None, params_json: str | None) -> dict[str, Any]:
    """``--params-json`` first, then each ``--param k=v`` over it; values are JSON if they parse.

    Raises:
        UsageError: a pair without ``=``, or ``--params-json`` that is not a JSON object.
    """
    params: dict[str, Any] = {}
    if params_json:
        try:
            params = json.loads(params_json)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--params-json is not valid JSON: {exc}") from None
        if not isinstance(params, dict):
            raise UsageError("--params-json must be a JSON object")
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {pair!r}: use KEY=VALUE")
        try:
            params[key] = json.loads(value)  # 2 -> 2, true -> True, [1,2] -> list
        except json.JSONDecodeError:
            params[key] = value  # a bare word stays a string
    return params


def _state(task: Task) -> Text:
    return status(task.status, task.error.reason if task.error else None)


def _submit(ctx: Context, api: TasksAPI) -> int:
    args = ctx.args
    params = parse_params(args.param, args.params_json)
    handle = api.submit(
        name=args.name,
        input=args.input,
        script=args.script,
        output=args.output,
        params=params,
        mode=args.mode,
    )
    if not (args.wait or args.follow):
        if ctx.out.json_mode:
            ctx.out.json(handle.record.raw)
        else:
            ctx.out.text(f"submitted {handle.id} ({handle.name})")
            ctx.out.note(f"aip tasks show {handle.id} | aip tasks logs {handle.id} --follow")
        return EXIT_OK
    ctx.out.note(f"submitted {handle.id} ({handle.name})")
    return _wait(ctx, handle, args.timeout, args.follow)


def _wait(ctx: Context, handle: TaskHandle, timeout: float | None, follow: bool) -> int:
    """Wait with progress, then show the outcome; errors map to exit codes in main."""
    try:
        task = wait_for(ctx.out, handle, timeout, follow)
    except TaskFailedError as exc:
        if ctx.out.json_mode:
            ctx.out.json(exc.task.raw)
        raise
    except (TaskTimeoutError, KeyboardInterrupt):
        if not ctx.out.pipe_closed:
            ctx.out.note(f"{handle.id} keeps running; `aip tasks cancel {handle.id}` stops it")
        raise
    if ctx.out.json_mode:
        ctx.out.json(task.raw)
        return EXIT_OK
    line = Text.assemble(
        ("completed ", "bold green"), f"{task.id} ({task.name}) in {seconds(task.duration)}"
    )
    ctx.out.print(line)
    if task.result:
        ctx.out.table(("RESULT", "VALUE"), task.result.items())
    return EXIT_OK


def cmd_ingest(ctx: Context) -> int:
    return _submit(ctx, ctx.client.ingestion)


def cmd_train(ctx: Context) -> int:
    return _submit(ctx, ctx.client.training)


def cmd_tasks_ls(ctx: Context) -> int:
    tasks = ctx.client.list_tasks(kind=ctx.args.kind, status=ctx.args.status)
    if ctx.out.json_mode:
        ctx.out.json([t.raw for t in tasks])
        return EXIT_OK
    rows = [
        (
            t.id,
            t.name,
            _state(t),
            t.script,
            t.output,
            describe_progress(t)[2] or "-",
            t.created_at,
        )
        for t in tasks
    ]
    ctx.out.table(("ID", "NAME", "STATUS", "SCRIPT", "OUTPUT", "PROGRESS", "CREATED"), rows)
    return EXIT_OK


def cmd_tasks_show(ctx: Context) -> int:
    task = ctx.client.task(ctx.args.id).record
    if ctx.out.json_mode:
        ctx.out.json(task.raw)
        return EXIT_OK
    ctx.out.fields(
        [
            ("id", task.id),
            ("kind", task.kind),
            ("name", task.name),
            ("status", status(task.status)),
            ("input", task.input),
            ("script", task.script),
            ("output", task.output),
            ("params", task.params),
            ("created", task.created_at),
            ("started", task.started_at),
            ("completed", task.completed_at),
            ("duration", seconds(task.duration) if task.duration is not None else None),
            ("progress", describe_progress(task)[2]),
            ("error", Text(task.error.describe(), style="red") if task.error else None),
        ]
    )
    if task.result:
        ctx.out.table(("RESULT", "VALUE"), task.result.items(), title="result")
    history_table(ctx.out, task.history, "history")
    return EXIT_OK


def cmd_tasks_cancel(ctx: Context) -> int:
    handle = ctx.client.task(ctx.args.id)
    try:
        task = handle.cancel(finished_ok=False)
        ended_before = False
    except TaskAlreadyFinished:
        task = handle.record  # refreshed by cancel()
        ended_before = True
    if ctx.out.json_mode:
        ctx.out.json(task.raw)
    else:
        line = Text(f"{task.id} ({task.name}): ")
        line.append_text(_state(task))
        ctx.out.print(line)
    if ended_before:
        # A conflict, as REST answers 409: a script can tell "I stopped it" from "it had ended".
        raise TaskAlreadyFinished(
            f"task {task.id} had already ended ({_state(task).plain}): nothing to cancel"
        )
    return EXIT_OK


def cmd_tasks_logs(ctx: Context) -> int:
    handle = ctx.client.task(ctx.args.id)
    if ctx.args.follow:
        follow_log(ctx.out, handle, ctx.args.tail)
        return EXIT_OK
    return ctx.logs(handle.id, handle.logs(tail=ctx.args.tail))


def cmd_tasks_wait(ctx: Context) -> int:
    return _wait(ctx, ctx.client.task(ctx.args.id), ctx.args.timeout, ctx.args.follow)
