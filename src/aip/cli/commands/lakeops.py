"""``aip batch-infer``, ``aip search``, ``aip datasets index``, ``aip models lineage|reproduce``."""

from __future__ import annotations

import json
from typing import Any

from aip.cli.commands.tasks import _wait
from aip.cli.context import Context, UsageError
from aip.cli.exits import EXIT_FAILED, EXIT_OK


def cmd_batch_infer(ctx: Context) -> int:
    args = ctx.args
    handle = ctx.client.batch_inference.submit(
        args.model,
        args.dataset,
        model_version=args.model_version,
        filter=args.filter,
        layer=args.layer,
        input_column=args.input_column,
        prefix=args.prefix,
        batch_size=args.batch_size,
        name=args.name,
        retries=args.retries,
    )
    if not args.wait:
        if ctx.out.json_mode:
            ctx.out.json(handle.record.raw)
        else:
            ctx.out.text(f"submitted {handle.id} ({handle.name})")
        return EXIT_OK
    ctx.out.note(f"submitted {handle.id} ({handle.name})")
    return _wait(ctx, handle, args.timeout, False)


def cmd_search(ctx: Context) -> int:
    args = ctx.args
    given = [x for x in (args.vector, args.row_id, args.image) if x is not None]
    if len(given) != 1:
        raise UsageError("give exactly one of --vector, --row-id or --image")
    query: dict[str, Any] = {"k": args.k, "column": args.column}
    if args.vector is not None:
        try:
            query["vector"] = [float(x) for x in json.loads(args.vector)]
        except (ValueError, TypeError):
            raise UsageError("--vector must be a JSON list of numbers") from None
    if args.row_id is not None:
        query["row_id"] = args.row_id
    if args.image is not None:
        if not args.model:
            raise UsageError("--image needs --model: the model that embeds it")
        query["input"] = args.image
    for key in ("model", "filter"):
        if getattr(args, key):
            query[key] = getattr(args, key)
    if args.columns:
        query["columns"] = args.columns.split(",")
    result = ctx.client.datasets.search(args.dataset, **query)
    if ctx.out.json_mode:
        ctx.out.json(result.raw)
        return EXIT_OK
    columns = sorted({c for h in result.hits for c in h.values})
    rows = [
        (h.row_id, round(h.distance, 4), *(h.values.get(c) for c in columns)) for h in result.hits
    ]
    ctx.out.table(("ROW", "DISTANCE", *(c.upper() for c in columns)), rows)
    how = "index" if result.indexed else "flat scan"
    ctx.out.note(f"{len(rows)} hits by {how} on version {result.dataset_version}")
    return EXIT_OK


def cmd_datasets_index(ctx: Context) -> int:
    args = ctx.args
    options: dict[str, Any] = {"column": args.column, "index_type": args.type}
    if args.partitions:
        options["num_partitions"] = args.partitions
    info = ctx.client.datasets.build_index(args.id, **options)
    if ctx.out.json_mode:
        ctx.out.json(info.raw)
    else:
        ctx.out.text(f"built {info.index_type} index {info.name} (version {info.dataset_version})")
    return EXIT_OK


def _task_line(task: Any) -> str:
    if task is None:
        return "not recorded"
    sha = (task.script_sha256 or "no sha256")[:12]
    return f"{task.id} {task.kind} {task.script} ({sha}) -> {task.output} v{task.output_version}"


def cmd_models_lineage(ctx: Context) -> int:
    lin = ctx.client.models.lineage(ctx.args.id)
    if ctx.out.json_mode:
        ctx.out.json(lin.raw)
        return EXIT_OK
    steps = [
        ("model", f"{lin.model} v{lin.model_version}"),
        ("trained by", _task_line(lin.training)),
    ]
    if lin.training is not None and lin.training.params:
        steps.append(("params", json.dumps(lin.training.params)))
    steps.append(("dataset", f"{lin.dataset} v{lin.dataset_version}"))
    for producer in lin.producers:
        steps.append(("written by", _task_line(producer)))
        for name, digest in producer.input_checksums.items():
            steps.append(("  raw", f"{name} {digest[:12]}"))
    ctx.out.fields(steps)
    for gap in lin.missing:
        ctx.out.note(f"not recorded: {gap}")
    return EXIT_OK


def cmd_models_reproduce(ctx: Context) -> int:
    args = ctx.args
    rep = ctx.client.models.reproduce(
        args.id, use_current_script=args.use_current_script, wait=args.wait, timeout=args.timeout
    )
    if ctx.out.json_mode:
        ctx.out.json(rep.raw)
    elif not args.wait:
        ctx.out.text(f"submitted {rep.task.id}: retraining {rep.model} v{rep.original_version}")
    else:
        rows = [
            (k, rep.original_metrics.get(k), (rep.new_metrics or {}).get(k), rep.differences.get(k))
            for k in sorted(set(rep.original_metrics) | set(rep.new_metrics or {}))
        ]
        title = f"v{rep.original_version} vs v{rep.new_version}"
        ctx.out.table(("METRIC", "ORIGINAL", "REPRODUCED", "DIFFERENCE"), rows, title=title)
    return EXIT_FAILED if args.wait and rep.task.status == "failed" else EXIT_OK
